"""The layers import one way: no import cycle in vitdeblur/ and train/ (module-level and function-level imports alike),
and only app.py leans on the app logic."""

import ast

from app_fixtures import REPO_ROOT

PACKAGES = ("vitdeblur", "train")


def project_modules() -> dict[str, ast.Module]:
    """Module name ('vitdeblur.hub', 'vitdeblur' for its __init__, 'app') -> its parsed source."""
    paths = [path for package in PACKAGES for path in (REPO_ROOT / package).glob("*.py")] + [REPO_ROOT / "app.py"]
    modules = {}
    for path in paths:
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = ast.parse(path.read_text(), filename=str(path))
    return modules


def import_graph(modules: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Module -> the modules among `modules` that it imports anywhere in its body, functions included
    (`from vitdeblur import hub` counts for both vitdeblur and vitdeblur.hub)."""
    graph = {}
    for name, tree in modules.items():
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    done, path = set(), []

    def visit(node):
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        path.append(node)
        for child in sorted(graph.get(node, ())):
            cycle = visit(child)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in sorted(graph):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_function_level_imports_make_cycles_too():
    modules = {"pkg.a": ast.parse("def load():\n    from pkg import b\n"), "pkg.b": ast.parse("import pkg.a\n")}
    assert find_cycle(import_graph(modules)) == ["pkg.a", "pkg.b", "pkg.a"]


def test_no_import_cycles():
    assert find_cycle(import_graph(project_modules())) is None


def test_only_the_app_imports_the_app_logic():
    graph = import_graph(project_modules())
    assert {name for name, imported in graph.items() if "vitdeblur.app_logic" in imported} == {"app"}

"""The example photos shipped with the app: listing them, and finding an example's ground truth from its bytes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


@dataclass(frozen=True)
class Example:
    name: str
    blurred: Path
    sharp: Path | None  # the ground truth; None for real blur

    @property
    def label(self) -> str:
        return self.name if self.sharp else f"{self.name} (no ground truth)"


def list_examples(folder: str | Path = EXAMPLES_DIR) -> list[Example]:
    """Every <folder>/<name>/blurred.png, with <name>/sharp.png as its ground truth when present."""
    folder = Path(folder)
    examples = []
    for blurred in sorted(folder.glob("*/blurred.png")):
        sharp = blurred.with_name("sharp.png")
        examples.append(Example(blurred.parent.name, blurred, sharp if sharp.is_file() else None))
    return examples


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=8)
def _examples_by_digest(folder: Path) -> dict[str, Example]:
    return {file_digest(e.blurred): e for e in list_examples(folder)}


def find_example(path: str | Path, folder: str | Path = EXAMPLES_DIR) -> Example | None:
    """The example whose blurred file has exactly these bytes, wherever the copy lives (Gradio copies example files
    into its cache, and API users upload their own copy): this is how an example's ground truth is found."""
    path = Path(path)
    if not path.is_file():
        return None
    return _examples_by_digest(Path(folder).resolve()).get(file_digest(path))

"""Halve a set of real blurred/sharp pairs: choose epochs and checkpoints on one half, compare runs on the other.

    python -m train.halve_pairs ../shared/data/gopro_GOPR0477 runs/gopro-halves
    python -m train --recipe adam ... --val-data runs/gopro-halves/select
    python -m vitdeblur evaluate --checkpoint runs/NAME/best --data runs/gopro-halves/compare --split all

A checkpoint chosen as the best of many epochs on a set reads high on that set by selection alone (round 11: up to
0.1 dB, the size of every difference being judged), so runs are compared on pairs that chose none of them. Video frames
neighbour each other, so the halves are contiguous in name (time) order, not alternate frames; with several groups
(scenes of a GoPro folder, Kaggle scenes) whole groups go to one half. Both halves are written as `pairs` folders of
symbolic links to the source's files (copies where the file system has no links), so nothing is duplicated.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from vitdeblur.data import LAYOUTS, Pair, find_pairs

HALVES = ("select", "compare")


def halves(pairs: list[Pair]) -> tuple[list[Pair], list[Pair]]:
    """(select, compare): the first half of the groups in sorted order, the rest; one group is halved by its order."""
    groups = sorted({p.group for p in pairs})
    if len(groups) >= 2:
        first = set(groups[:len(groups) // 2])
        return [p for p in pairs if p.group in first], [p for p in pairs if p.group not in first]
    return pairs[:len(pairs) // 2], pairs[len(pairs) // 2:]


def _link(source: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(source.resolve())
    except OSError:
        shutil.copyfile(source, link)


def halve_pairs(source: Path, target: Path, layout: str = "auto") -> tuple[int, int]:
    """Write `target/select` and `target/compare` (each with blur/ and sharp/); returns their sizes."""
    pairs = [p for p in find_pairs(source, layout) if p.blur is not None]
    if len(pairs) < 2:
        raise SystemExit(f"error: {source} holds {len(pairs)} blurred/sharp pair; halving needs two or more")
    if target.exists() and any(target.iterdir()):
        raise SystemExit(f"error: {target} is not empty; give a new folder")
    chosen = halves(pairs)
    for half, half_pairs in zip(HALVES, chosen):
        for pair in half_pairs:
            # the blurred file's name, led by its group where groups hold several files (GoPro scenes)
            group = "" if pair.group == pair.blur.name else pair.group.replace("/", "_") + "_"
            name = group + pair.blur.name
            _link(pair.blur, target / half / "blur" / name)
            _link(pair.sharp, target / half / "sharp" / name)
    return len(chosen[0]), len(chosen[1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m train.halve_pairs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a folder of real pairs (GoPro, Kaggle or pairs layout)")
    parser.add_argument("target", type=Path, help="a new folder for select/ and compare/")
    parser.add_argument("--layout", default="auto", choices=LAYOUTS)
    args = parser.parse_args(argv)
    selected, compared = halve_pairs(args.source, args.target, args.layout)
    print(f"{selected} pairs to choose on in {args.target / 'select'}, {compared} to compare on in "
          f"{args.target / 'compare'}")


if __name__ == "__main__":
    main()

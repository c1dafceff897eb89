"""A stand-in for the benchmark of real camera-shake kernels (Levin et al. 2009 recorded 8 kernels of 13-27 px):
held-out sharp photos blurred with random camera-shake kernels of that size, written as a `pairs` dataset.

    python -m train.kernel_pairs ../shared/data/sharp runs/kernel-pairs
    python -m vitdeblur evaluate --checkpoint adam --data runs/kernel-pairs --split all

Photos come from the folder's test split by default (never trained on). Each gets `--kernels` kernels
(`synthesis.motion_kernel`: a smooth random camera path, the kind Levin et al. recorded), odd sizes drawn from
13-27 px, applied in linear light, then Gaussian noise of sigma 0.005, clipped and saved as 8-bit PNG. Kernels and
noise are fixed by each photo's name, so the set is the same on every machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from vitdeblur.data import SPLITS, find_pairs, save_pair, split_pairs, stable_seed
from vitdeblur.images import load_image
from vitdeblur.synthesis import blur_image, motion_kernel

KERNEL_SIZES = range(13, 28, 2)  # the recorded kernels' range
NOISE_SIGMA = 0.005


def make_kernel_pairs(source: Path, target: Path, split: str = "test", kernels: int = 2) -> int:
    """Write `target/blur/*.png` and `target/sharp/*.png` for every photo of `source`'s split; returns the count."""
    photos = split_pairs(find_pairs(source, "sharp"), split)
    if not photos:
        raise SystemExit(f"error: the {split} split of {source} is empty")
    count = 0
    for pair in photos:
        sharp = load_image(pair.sharp).rgb
        rng = np.random.default_rng(stable_seed(pair.sharp.name))
        for _ in range(kernels):
            size = int(rng.choice(KERNEL_SIZES))
            blurred = blur_image(sharp, motion_kernel(rng, size), NOISE_SIGMA, rng)
            save_pair(target, f"{pair.sharp.stem}_k{size}_{count:03d}.png", blurred, sharp)
            count += 1
    return count


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m train.kernel_pairs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a folder of sharp photos")
    parser.add_argument("target", type=Path, help="where the pairs go (blur/ and sharp/)")
    parser.add_argument("--split", default="test", choices=SPLITS, help="which photos (default: the test split)")
    parser.add_argument("--kernels", type=int, default=2, help="kernels per photo (default 2)")
    args = parser.parse_args(argv)
    count = make_kernel_pairs(args.source, args.target, args.split, args.kernels)
    print(f"{count} pairs written to {args.target}")


if __name__ == "__main__":
    main()

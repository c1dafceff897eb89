"""How strong is the synthetic blur? `python -m train.blur_stats --sharp PHOTOS --real PAIRS`

Prints the histogram of blurred-vs-sharp PSNR for synthetic pairs (a training blur mix, `BLURS`) next to
real blurred/sharp pairs, e.g. frame-averaged GoPro frames, so the synthesis can be calibrated against real blur;
and how much fine detail the sharp images hold per pixel (mean |Laplacian|): GoPro frames hold less than half of
what crops of downscaled photos do, which `--max-scale` (photos enlarged at random, as training does) brings closer.
"""

from __future__ import annotations

import argparse

import numpy as np

from vitdeblur.data import DeblurDataset, find_pairs
from vitdeblur.evaluate import psnr
from vitdeblur.synthesis import BLURS

EDGES = (0, 20, 25, 30, 35, 40, np.inf)


def histogram(values: list[float]) -> list[int]:
    return np.histogram(values, bins=EDGES)[0].tolist()


def fine_detail(image: np.ndarray) -> float:
    """Mean absolute Laplacian of an (H, W, 3) image in [0, 1], in grey levels: fine detail per pixel."""
    grey = image.mean(axis=2) * 255
    laplacian = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(np.abs(laplacian).mean())


def pair_stats(dataset: DeblurDataset, samples: int) -> tuple[list[float], list[float]]:
    """Blurred-vs-sharp PSNR of each pair and the fine detail of its sharp image."""
    psnrs, details = [], []
    for i in range(samples):
        blur, sharp = (t.permute(1, 2, 0).numpy() for t in dataset[i % len(dataset)])
        psnrs.append(min(psnr(blur, sharp), 99.0))
        details.append(fine_detail(sharp))
    return psnrs, details


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.blur_stats", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sharp", required=True, help="folder of sharp photos (synthetic blur)")
    p.add_argument("--real", action="append", default=[], help="real pairs (any paired layout); repeatable")
    p.add_argument("--samples", type=int, default=400, help="synthetic pairs to draw")
    p.add_argument("--crop", type=int, default=256, help="synthetic pairs are random crops of this size")
    p.add_argument("--blur", default="realistic", choices=BLURS, help="the synthetic blur mix (a recipe's `blur`)")
    p.add_argument("--min-scale", type=float, default=1.0, help="photos resized at random as training does (a recipe's)")
    p.add_argument("--max-scale", type=float, default=1.0, help="the largest enlargement (a recipe's max_scale)")
    args = p.parse_args(argv)

    synthetic = DeblurDataset(find_pairs(args.sharp, "sharp"), train=True, crop=args.crop, blur_spec=BLURS[args.blur],
                              min_scale=args.min_scale, max_scale=args.max_scale)
    resized = f", x{args.min_scale:g}-{args.max_scale:g}" if (args.min_scale, args.max_scale) != (1, 1) else ""
    columns = {f"synthetic ({args.blur}{resized})": pair_stats(synthetic, args.samples)}
    for folder in args.real:
        dataset = DeblurDataset(find_pairs(folder), train=False)
        columns[f"real: {folder}"] = pair_stats(dataset, len(dataset))
    labels = [f"{lo:g}-{hi:g} dB" if np.isfinite(hi) else f">= {lo:g} dB" for lo, hi in zip(EDGES, EDGES[1:])]
    print(f"{'blurred vs sharp':<18}" + "".join(f"{name[:28]:>30}" for name in columns))
    for row, label in enumerate(labels):
        print(f"{label:<18}" + "".join(f"{histogram(v)[row] / len(v):>29.0%} " for v, _ in columns.values()))
    print(f"{'median':<18}" + "".join(f"{np.median(v):>27.1f} dB" for v, _ in columns.values()))
    print(f"{'n':<18}" + "".join(f"{len(v):>30}" for v, _ in columns.values()))
    print(f"{'sharp fine detail':<18}" + "".join(f"{np.median(d):>30.2f}" for _, d in columns.values())
          + "  (median mean |Laplacian|, grey levels)")


if __name__ == "__main__":
    main()

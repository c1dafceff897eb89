"""How strong is the synthetic blur? `python -m train.blur_stats --sharp PHOTOS --real PAIRS`

Prints the histogram of blurred-vs-sharp PSNR for synthetic pairs (a training blur mix, `BLURS`) next to
real blurred/sharp pairs, e.g. frame-averaged GoPro frames, so the synthesis can be calibrated against real blur.
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


def pair_psnrs(dataset: DeblurDataset, samples: int) -> list[float]:
    values = []
    for i in range(samples):
        blur, sharp = dataset[i % len(dataset)]
        values.append(min(psnr(blur.permute(1, 2, 0).numpy(), sharp.permute(1, 2, 0).numpy()), 99.0))
    return values


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.blur_stats", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sharp", required=True, help="folder of sharp photos (synthetic blur)")
    p.add_argument("--real", action="append", default=[], help="real pairs (any paired layout); repeatable")
    p.add_argument("--samples", type=int, default=400, help="synthetic pairs to draw")
    p.add_argument("--crop", type=int, default=256, help="synthetic pairs are random crops of this size")
    p.add_argument("--blur", default="realistic", choices=BLURS, help="the synthetic blur mix (a recipe's `blur`)")
    args = p.parse_args(argv)

    synthetic = DeblurDataset(find_pairs(args.sharp, "sharp"), train=True, crop=args.crop, blur_spec=BLURS[args.blur])
    columns = {f"synthetic ({args.blur})": pair_psnrs(synthetic, args.samples)}
    for folder in args.real:
        dataset = DeblurDataset(find_pairs(folder), train=False)
        columns[f"real: {folder}"] = pair_psnrs(dataset, len(dataset))
    labels = [f"{lo:g}-{hi:g} dB" if np.isfinite(hi) else f">= {lo:g} dB" for lo, hi in zip(EDGES, EDGES[1:])]
    print(f"{'blurred vs sharp':<18}" + "".join(f"{name[:28]:>30}" for name in columns))
    for row, label in enumerate(labels):
        print(f"{label:<18}" + "".join(f"{histogram(v)[row] / len(v):>29.0%} " for v in columns.values()))
    print(f"{'median':<18}" + "".join(f"{np.median(v):>27.1f} dB" for v in columns.values()))
    print(f"{'n':<18}" + "".join(f"{len(v):>30}" for v in columns.values()))


if __name__ == "__main__":
    main()

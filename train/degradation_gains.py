"""What does a model undo, and what does it damage? `python -m train.degradation_gains --sharp PHOTOS -c adam -c sgd`

A synthetic test's mean gain mixes easy wins (noise removal) with hard ones (large blur) and hides losses on images
that need nothing done. This prints the gain (model PSNR - blurred PSNR) per kind of degradation, one at a time:
unblurred crops with only noise or only JPEG (a model should gain or leave them alone), camera shake of 2-24 px
along smooth paths and along random walks, uniform motion kernels and defocus, each without noise, averaged in
linear light and (one size of each kind) in sRGB. Centre crops of the folder's validation split (never trained on);
every degradation is fixed by the photo's name, so runs compare.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch

from vitdeblur.data import SPLITS, find_pairs, split_pairs, stable_seed
from vitdeblur.evaluate import psnr
from vitdeblur.hub import load_model
from vitdeblur.images import load_image
from vitdeblur.inference import PRECISIONS, deblur_array
from vitdeblur.synthesis import REALISTIC, BlurSpec, Degradation, degrade_crop

SMOOTH = BlurSpec(smooth_path_probability=1.0)


def conditions() -> dict[str, Callable[[np.random.Generator], Degradation]]:
    """name -> a function of a numpy RNG that returns the degradation. Shake follows smooth camera paths, as a hand
    moves over one exposure; one row follows the random walks of the `realistic` mix, whose middle frame (a target
    of GoPro's kind) can lie anywhere on the streak."""
    def blur(kind: str, extent: float, linear: bool = True, spec: BlurSpec = SMOOTH):
        return lambda rng: spec.blur_only(kind, extent, rng, linear)

    return {
        "unblurred + noise": lambda rng: Degradation(shot_noise=0.001, read_noise=0.0025),
        "unblurred + JPEG q80": lambda rng: Degradation(jpeg_quality=80),
        **{f"shake {e} px": blur("shake", e) for e in (2, 6, 12, 24)},
        "shake 12 px, sRGB mean": blur("shake", 12, linear=False),
        "shake 12 px, random walk": blur("shake", 12, spec=REALISTIC),
        **{f"motion kernel {e} px": blur("motion", e) for e in (7, 13, 25)},
        "motion kernel 13 px, sRGB mean": blur("motion", 13, linear=False),
        **{f"defocus {e} px": blur("defocus", e) for e in (4, 8)},
        "defocus 8 px, sRGB mean": blur("defocus", 8, linear=False),
    }


def degraded_crops(photos: list, crop: int) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Per condition, (blurred, sharp) float (crop, crop, 3) centre crops of every photo."""
    generator = torch.Generator().manual_seed(0)
    made = conditions()
    crops = {name: [] for name in made}
    for photo in photos:
        image = torch.from_numpy(load_image(photo.sharp).rgb).permute(2, 0, 1)
        size = min(crop, *image.shape[-2:]) // 16 * 16
        y, x = (image.shape[-2] - size) // 2, (image.shape[-1] - size) // 2
        for name, make in made.items():
            degradation = make(np.random.default_rng(stable_seed(f"{photo.sharp.name}/{name}")))
            blurred, sharp = degrade_crop(image, degradation, y, x, size, size, generator)
            crops[name].append(tuple(t.permute(1, 2, 0).numpy() for t in (blurred, sharp)))
    return crops


def gains(model: torch.nn.Module, pairs: list[tuple[np.ndarray, np.ndarray]], blurred_psnr: np.ndarray,
          precision: str) -> np.ndarray:
    """Per pair: model PSNR - the blurred PSNR measured once for all the models."""
    return np.array([psnr(deblur_array(model, blurred, precision=precision), sharp)
                     for blurred, sharp in pairs]) - blurred_psnr


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m train.degradation_gains", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sharp", required=True, help="folder of sharp photos")
    p.add_argument("-c", "--checkpoint", action="append", required=True,
                   help="a checkpoint folder or shipped name (adam, sgd); repeatable")
    p.add_argument("--split", default="val", choices=SPLITS, help="which photos (default: the validation split)")
    p.add_argument("--crop", type=int, default=384, help="centre crop size (default 384, one inference tile)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    args = p.parse_args(argv)

    photos = split_pairs(find_pairs(args.sharp, "sharp"), args.split)
    if not photos:
        raise SystemExit(f"error: the {args.split} split of {args.sharp} is empty")
    crops = degraded_crops(photos, args.crop)
    models = {name: load_model(name) for name in args.checkpoint}
    print(f"{len(photos)} photos ({args.split} split), {args.crop} px centre crops; gain = model - blurred PSNR, "
          f"mean (worst)")
    print(f"{'degradation':<32}{'blurred':>9}" + "".join(f"{name[-22:]:>24}" for name in models))
    for name, pairs in crops.items():
        blurred = np.array([psnr(b, s) for b, s in pairs])
        row = [gains(model, pairs, blurred, args.precision) for model in models.values()]
        print(f"{name:<32}{blurred.mean():>6.2f} dB" + "".join(f"{g.mean():>+14.2f} ({g.min():+.2f})" for g in row),
              flush=True)


if __name__ == "__main__":
    main()

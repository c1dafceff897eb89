"""Build the app's examples: blurred/sharp pairs from photos that scikit-image ships, plus one real camera-shake photo.

    python examples/make_examples.py

Writes ``examples/<name>/blurred.png`` and ``examples/<name>/sharp.png`` (the ground truth; absent for real blur).
Everything is deterministic: the kernels come from vitdeblur.data with the fixed seeds listed in EXAMPLES, so running
the script again gives the same pixels. The table in examples/README.md lists the same kernels.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

from vitdeblur.synthesis import blur_image, defocus_kernel, motion_kernel
from vitdeblur.images import to_uint8

EXAMPLES_DIR = Path(__file__).resolve().parent
MAX_SIDE = 640  # keeps the committed PNGs small and every example under the app's default megapixel limit


@dataclass(frozen=True)
class Example:
    name: str  # folder name under examples/
    image: str  # skimage.data function
    kernel: str  # "motion" or "defocus"
    size: float  # motion: kernel size in pixels; defocus: disk radius in pixels
    seed: int  # seeds the motion trajectory and the noise
    noise: float = 0.0  # Gaussian noise sigma added after blurring (images in [0, 1])

    def make_kernel(self) -> np.ndarray:
        if self.kernel == "motion":
            return motion_kernel(np.random.default_rng(self.seed), int(self.size))
        return defocus_kernel(self.size)


EXAMPLES = [
    Example("astronaut-motion", "astronaut", "motion", 21, seed=1, noise=0.003),
    Example("coffee-defocus", "coffee", "defocus", 4.0, seed=2),
    Example("chelsea-motion", "chelsea", "motion", 15, seed=3, noise=0.003),
    Example("rocket-motion", "rocket", "motion", 31, seed=4),
    Example("camera-defocus", "camera", "defocus", 3.0, seed=5, noise=0.003),  # grayscale
    Example("ihc-motion", "immunohistochemistry", "motion", 11, seed=6),
    Example("hubble-motion", "hubble_deep_field", "motion", 17, seed=7),
    Example("retina-defocus", "retina", "defocus", 5.0, seed=8),
]
REAL_BLUR = "clock-real-camera-shake"  # skimage.data.clock(): a photo blurred by moving the camera, no ground truth


def load_sharp(name: str) -> tuple[np.ndarray, bool]:
    """A skimage.data image as float RGB in [0, 1], downscaled to MAX_SIDE; and whether it is grayscale."""
    img = Image.fromarray(getattr(skdata, name)())
    grayscale = img.mode == "L"
    if max(img.size) > MAX_SIDE:
        scale = MAX_SIDE / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0, grayscale


def save_png(rgb: np.ndarray, path: Path, grayscale: bool) -> None:
    img = Image.fromarray(to_uint8(rgb))
    img.convert("L" if grayscale else "RGB").save(path, optimize=True)


def main() -> None:
    for example in EXAMPLES:
        sharp, grayscale = load_sharp(example.image)
        blurred = blur_image(sharp, example.make_kernel(), example.noise, np.random.default_rng(example.seed))
        if grayscale:  # blur_image works on RGB; keep one channel so the example stays a grayscale file
            blurred = np.repeat(blurred[..., :1], 3, axis=2)
        folder = EXAMPLES_DIR / example.name
        folder.mkdir(exist_ok=True)
        save_png(blurred, folder / "blurred.png", grayscale)
        save_png(sharp, folder / "sharp.png", grayscale)
        print(f"{folder.name}: {sharp.shape[1]}x{sharp.shape[0]}, {example.kernel} {example.size}")
    folder = EXAMPLES_DIR / REAL_BLUR
    folder.mkdir(exist_ok=True)
    shutil.copyfile(Path(skdata.__file__).parent / "clock_motion.png", folder / "blurred.png")
    print(f"{folder.name}: real camera shake, no ground truth")


if __name__ == "__main__":
    main()

"""Paired blurred/sharp data: dataset layouts, the deterministic 80/10/10 split, synthetic blur and crops.

Layouts (``auto`` detects which):

* ``kaggle`` -- the Kaggle Blur dataset: ``sharp/X_S.jpg``, ``motion_blurred/X_M.jpg``, ``defocused_blurred/X_F.jpg``.
* ``gopro``  -- GoPro: ``<split>/<scene>/blur/*.png`` and ``<split>/<scene>/sharp/*.png`` (any depth).
* ``pairs``  -- a folder with ``blur/`` and ``sharp/`` holding files of the same names.
* ``sharp``  -- any folder of sharp photos; blurred inputs are made synthetically (`vitdeblur.synthesis`).
* ``examples`` -- the app's examples: ``<name>/blurred.png`` with ``<name>/sharp.png`` (those without are skipped).
"""

from __future__ import annotations

import math
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from vitdeblur.examples import list_examples
from vitdeblur.images import ImageError, check_image, load_image, to_uint8
from vitdeblur.synthesis import GAMMA, BlurMix, BlurSpec, Degradation, degrade_crop, scaled_size

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}  # a GIF gives its first frame
LAYOUTS = ("auto", "kaggle", "gopro", "pairs", "sharp", "examples")
SPLITS = ("train", "val", "test", "all")
KAGGLE_BLUR = {"motion": ("motion_blurred", "_M"), "defocus": ("defocused_blurred", "_F")}


@dataclass(frozen=True)
class Pair:
    sharp: Path
    blur: Path | None = None  # None: the blurred input is synthesised from `sharp`
    group: str = ""  # pairs of one group (e.g. one Kaggle scene) always land in the same split


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def detect_layout(root: str | Path) -> str:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    if (root / "sharp").is_dir() and any((root / d).is_dir() for d, _ in KAGGLE_BLUR.values()):
        return "kaggle"
    if (root / "blur").is_dir() and (root / "sharp").is_dir():
        return "pairs"
    if any(p.name == "blur" and (p.parent / "sharp").is_dir() for p in root.rglob("blur")):
        return "gopro"
    if list_images(root):
        return "sharp"
    if list_examples(root):
        return "examples"
    raise ValueError(f"{root}: no known layout (kaggle, gopro, pairs, examples, or a folder of sharp images)")


def check_scale_range(min_scale: float, max_scale: float) -> None:
    """Training resizes photos by a factor in [min_scale, max_scale]; the range must hold 1 (the photo as it is)."""
    if not 0 < min_scale <= 1 <= max_scale < math.inf:
        raise ValueError(f"need 0 < min_scale <= 1 <= max_scale, got {min_scale} and {max_scale}")


def centre_window(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """(y, x, h, w) of the centre crop of `size` px (no larger than the image) that validation uses."""
    size_h, size_w = min(size, height), min(size, width)
    return (height - size_h) // 2, (width - size_w) // 2, size_h, size_w


def _same_name_pairs(blur_dir: Path, sharp_dir: Path, group: str | None = None) -> list[Pair]:
    """Pairs of same-named files; each its own group unless `group` (e.g. a video scene) is given."""
    sharp = {p.name: p for p in list_images(sharp_dir)}
    return [Pair(sharp[b.name], b, group or b.name) for b in list_images(blur_dir) if b.name in sharp]


def find_pairs(root: str | Path, layout: str = "auto", kaggle_blur: str = "both") -> list[Pair]:
    """All pairs of a dataset in a stable (sorted) order."""
    root = Path(root)
    layout = detect_layout(root) if layout == "auto" else layout
    if layout == "kaggle":
        kinds = list(KAGGLE_BLUR) if kaggle_blur == "both" else [kaggle_blur]
        pairs = []
        for sharp in list_images(root / "sharp"):
            stem = sharp.stem[:-2] if sharp.stem.upper().endswith("_S") else sharp.stem
            for kind in kinds:
                folder, suffix = KAGGLE_BLUR[kind]
                matches = [p for p in (root / folder).glob(stem + suffix + ".*") if p.suffix.lower() in IMAGE_SUFFIXES]
                if matches:
                    pairs.append(Pair(sharp, matches[0], stem))
    elif layout == "pairs":
        pairs = _same_name_pairs(root / "blur", root / "sharp")
    elif layout == "gopro":
        pairs = []
        for blur_dir in sorted(p for p in root.rglob("blur") if (p.parent / "sharp").is_dir()):
            scene = blur_dir.parent.relative_to(root).as_posix()  # e.g. train/GOPR0372_07_00
            pairs += _same_name_pairs(blur_dir, blur_dir.parent / "sharp", scene)
    elif layout == "sharp":
        pairs = [Pair(p, None, p.name) for p in list_images(root)]
    elif layout == "examples":
        pairs = [Pair(e.sharp, e.blurred, e.name) for e in list_examples(root) if e.sharp]
    else:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not pairs:
        raise ValueError(f"{root}: no image pairs found for layout {layout!r}")
    return pairs


def split_pairs(pairs: list[Pair], split: str) -> list[Pair]:
    """The study's 80/10/10 split, deterministic: groups in sorted order, the last 10% test, the 10% before val.

    Contiguous blocks rather than a shuffle, so neighbouring video frames rarely straddle train and test. A dataset
    with its own test/ folder (GoPro) keeps it as the test split; val is then the last 10% of the other scenes.
    """
    if split == "all":
        return list(pairs)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    groups = sorted({p.group for p in pairs})
    official_test = [g for g in groups if g.startswith("test/")]
    if official_test and len(official_test) < len(groups):
        rest = [g for g in groups if g not in official_test]
        n_val = max(1, round(len(rest) * 0.1)) if len(rest) >= 2 else 0
        chosen = {"train": rest[:len(rest) - n_val], "val": rest[len(rest) - n_val:], "test": official_test}
    else:
        n_held = round(len(groups) * 0.1) if len(groups) >= 10 else (1 if len(groups) >= 3 else 0)
        n_train = len(groups) - 2 * n_held
        chosen = {"train": groups[:n_train], "val": groups[n_train:n_train + n_held],
                  "test": groups[n_train + n_held:]}
    keep = set(chosen[split])
    return [p for p in pairs if p.group in keep]


# ----------------------------------------------------------------------------------------------------------------
# Frame averaging


def stable_seed(name: str, seed: int = 0) -> int:
    """A seed from a file name, the same in every run and on every machine (unlike hash())."""
    return zlib.crc32(name.encode()) + seed


def average_frames(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The GoPro recipe: the blurred image is the mean of consecutive sharp frames in linear light (gamma 2.2); the
    sharp image is the middle frame. Frames are float RGB in [0, 1]."""
    if not frames:
        raise ValueError("need at least one frame")
    linear = np.mean([np.power(np.clip(f, 0, 1), GAMMA) for f in frames], axis=0)
    return np.power(linear, 1 / GAMMA).astype(np.float32), frames[len(frames) // 2]


def make_frame_pairs(frames_dir: str | Path, out_dir: str | Path, n: int = 7, stride: int | None = None) -> int:
    """Turn a folder of consecutive high-fps frames into a `pairs` dataset (blur/ and sharp/); returns the count."""
    if n < 1:
        raise ValueError("n must be at least 1")
    frames = list_images(Path(frames_dir))
    out_dir = Path(out_dir)
    count = 0
    for start in range(0, len(frames) - n + 1, stride or n):
        window = [load_image(p).rgb for p in frames[start:start + n]]
        blur, sharp = average_frames(window)
        save_pair(out_dir, f"{frames[start + n // 2].stem}_n{n:02d}.png", blur, sharp)
        count += 1
    return count


def save_pair(out_dir: Path, name: str, blur: np.ndarray, sharp: np.ndarray) -> None:
    """Write one pair of a `pairs` dataset: out_dir/blur/NAME and out_dir/sharp/NAME (8-bit)."""
    for folder, rgb in (("blur", blur), ("sharp", sharp)):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(to_uint8(rgb)).save(out_dir / folder / name)


# ----------------------------------------------------------------------------------------------------------------
# Datasets


def _to_float(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(_to_float(rgb))).permute(2, 0, 1)


def evaluation_degradation(spec: BlurSpec | BlurMix, rng: np.random.Generator) -> Degradation:
    """A degradation for validation and test pairs: never one that leaves the image unchanged, whose infinite PSNR
    would swamp a set's mean (training keeps them: they teach the model to leave sharp content alone)."""
    for _ in range(1000):
        degradation = spec.sample(rng)
        if not degradation.is_identity:
            return degradation
    raise ValueError("this blur spec only makes unchanged pairs: there is nothing to evaluate")


class DeblurDataset(Dataset):
    """(blurred, sharp) float tensors in [0, 1].

    train=True: random crops of `crop` pixels, flipped and transposed at random; synthetic pairs get a fresh random
    degradation every time and come from the photo resized by a random factor, log-uniform in [min_scale, max_scale]
    (1, 1: never): more content scales from few photos; enlarged, a photo is as soft per pixel as video frames are
    (GOPR0477's sharp frames hold less than half the fine detail of crops of the project's photos). Real pairs keep
    their scale, which sets their blur.
    train=False: whole images (or a centre crop of `crop` if given); synthetic pairs get a degradation fixed by the
    file name, so validation and test sets never change between runs; with `variants` > 1, each sharp photo comes
    that many times, with as many fixed degradations (the first the same as with one): a set of a few photos then
    measures more than a few blur draws.
    Decoded images are cached in memory as uint8 (the datasets here are small).
    """

    def __init__(self, pairs: list[Pair], train: bool, crop: int | None = None,
                 blur_spec: BlurSpec | BlurMix | None = None, seed: int = 0, min_scale: float = 1.0,
                 max_scale: float = 1.0, variants: int = 1):
        if not pairs:
            raise ValueError("empty dataset")
        if train and not crop:
            raise ValueError("training needs a crop size")
        check_scale_range(min_scale, max_scale)
        if variants < 1 or (train and variants != 1):
            raise ValueError(f"variants must be 1 for training and at least 1 otherwise, got {variants}")
        self.pairs, self.train, self.crop, self.seed = pairs, train, crop, seed
        self.min_scale, self.max_scale = min_scale, max_scale
        self.items = [(pair, v) for pair in pairs for v in range(variants if pair.blur is None else 1)]
        self.blur_spec = blur_spec or BlurSpec()
        self._cache: dict[Path, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.items)

    def read_uint8(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            self._cache[path] = to_uint8(load_image(path).rgb)
        return self._cache[path]

    def _window(self, height: int, width: int, size: int, rng: np.random.Generator | None) -> tuple[int, int, int, int]:
        if rng is not None and min(height, width) < size:  # training crops must all be the same size to batch
            raise ValueError(f"a {width}x{height} training image is smaller than the {size} px crop; use a smaller "
                             "--crop or larger images")
        if rng is None:
            return centre_window(height, width, size)
        size_h, size_w = min(size, height), min(size, width)
        return int(rng.integers(0, height - size_h + 1)), int(rng.integers(0, width - size_w + 1)), size_h, size_w

    def random_scale(self, height: int, width: int, crop: int, rng: np.random.Generator) -> float:
        """A resize factor, log-uniform in [min_scale, max_scale] (before round 7 shrinking was uniform) but never so
        small that the photo gets smaller than the crop."""
        low = max(self.min_scale, (crop + 1) / min(height, width))
        return float(np.exp(rng.uniform(math.log(low), math.log(self.max_scale)))) if low < self.max_scale else 1.0

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pair, variant = self.items[index]
        rng = np.random.default_rng() if self.train else None
        # Images stay uint8 until cropped: a full-size float copy per training crop would be wasted work.
        sharp = self.read_uint8(pair.sharp)
        if pair.blur is not None:
            blur = self.read_uint8(pair.blur)
            if blur.shape != sharp.shape:
                raise ValueError(f"{pair.blur} and {pair.sharp} differ in size: {blur.shape} vs {sharp.shape}")
            if self.crop:
                y, x, h, w = self._window(*sharp.shape[:2], self.crop, rng)
                blur, sharp = blur[y:y + h, x:x + w], sharp[y:y + h, x:x + w]
        else:
            blur_rng = rng or np.random.default_rng(stable_seed(pair.sharp.name, self.seed + variant))
            if self.train:
                degradation = self.blur_spec.sample(blur_rng)
            else:
                degradation = evaluation_degradation(self.blur_spec, blur_rng)
            generator = torch.Generator().manual_seed(int(blur_rng.integers(2 ** 62)))
            image = torch.from_numpy(sharp).permute(2, 0, 1)  # uint8, no copy
            scale = self.random_scale(*sharp.shape[:2], self.crop, rng) if self.train else 1.0
            height, width = scaled_size(image, scale)
            y, x, h, w = self._window(height, width, self.crop, rng) if self.crop else (0, 0, height, width)
            blur, sharp_crop = degrade_crop(image, degradation, y, x, h, w, generator, scale)
            blur, sharp = blur.permute(1, 2, 0).numpy(), sharp_crop.permute(1, 2, 0).numpy()
        if self.train:
            if rng.random() < 0.5:
                blur, sharp = blur[:, ::-1], sharp[:, ::-1]
            if rng.random() < 0.5:
                blur, sharp = blur[::-1], sharp[::-1]
            if rng.random() < 0.5:  # crops are square
                blur, sharp = blur.transpose(1, 0, 2), sharp.transpose(1, 0, 2)
        return _to_tensor(blur), _to_tensor(sharp)


class BadImagesError(ValueError):
    """Images of a dataset that cannot be used; the message lists every one."""


def find_bad_images(pairs: list[Pair], crop: int | None = None) -> dict[Path, str]:
    """Every file of `pairs` that would fail when sampled, with the reason: unreadable (header, size, and the
    structure check of images.check_image), a blurred image whose size differs from its sharp one, or (with `crop`)
    an image smaller than the training crop. Cheap: no pixels are decoded."""
    bad, sizes = {}, {}
    for path in dict.fromkeys(p for pair in pairs for p in (pair.sharp, pair.blur) if p is not None):
        try:
            sizes[path] = check_image(path)
        except ImageError as e:
            bad[path] = str(e).removeprefix(f"{path}: ")
            continue
        if crop and min(sizes[path]) < crop:
            bad[path] = f"{sizes[path][0]}x{sizes[path][1]} is smaller than the {crop} px crop"
    for pair in pairs:
        usable = pair.blur in sizes and pair.sharp in sizes and not {pair.blur, pair.sharp} & bad.keys()
        if usable and sizes[pair.blur] != sizes[pair.sharp]:
            bad.setdefault(pair.blur, f"its size differs from {pair.sharp.name}'s")
    return bad


def load_dataset(root: str | Path, split: str, train: bool, layout: str = "auto", crop: int | None = None,
                 kaggle_blur: str = "both", skip_bad_images: bool = False, **kwargs) -> DeblurDataset:
    """The pairs of one split as a dataset, every image checked first (find_bad_images): bad ones raise
    BadImagesError listing them all, or with skip_bad_images are left out (their pairs too) with a warning."""
    root = Path(root)
    pairs = find_pairs(root, layout, kaggle_blur)
    chosen = split_pairs(pairs, split)
    if not chosen:
        groups = len({p.group for p in pairs})
        raise ValueError(f"{root}: the {split} split is empty ({groups} images or scenes; the 80/10/10 split holds "
                         "some out from 3 on); use --split all, or more data")
    bad = find_bad_images(chosen, crop if train else None)
    if bad:
        listing = "; ".join(f"{path.relative_to(root)}: {reason}" for path, reason in bad.items())
        if not skip_bad_images:
            raise BadImagesError(f"{len(bad)} unusable images in the {split} split of {root}: {listing}")
        chosen = [p for p in chosen if p.sharp not in bad and p.blur not in bad]
        print(f"warning: skipping {len(bad)} unusable images in the {split} split of {root}: {listing}",
              file=sys.stderr)
        if not chosen:
            raise BadImagesError(f"{root}: no usable images left in the {split} split")
    return DeblurDataset(chosen, train=train, crop=crop, **kwargs)

"""Reading any image safely into float RGB (with its alpha and grayscale-ness), and writing results back."""

from __future__ import annotations

import io
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 100_000_000  # refuse headers claiming 100 megapixels or more before decoding anything
MIN_SIDE = 8  # smaller images carry too little to deblur (and break reflect padding)
WIDE_GRAYSCALE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # 16-bit, 32-bit int and float pixels
GRAYSCALE_MODES = ("1", "L", "LA", *WIDE_GRAYSCALE_MODES)
# Pillow's own bomb check warns above MAX_IMAGE_PIXELS; align it with ours so that the limit is exactly MAX_PIXELS.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

ImageSource = str | os.PathLike | bytes | BinaryIO | Image.Image


class ImageError(ValueError):
    """An input that cannot be deblurred; the message says why in words a user understands."""


@dataclass
class LoadedImage:
    rgb: np.ndarray  # float32 (H, W, 3) in [0, 1], upright (EXIF orientation applied)
    alpha: np.ndarray | None = None  # float32 (H, W) in [0, 1], kept as is
    grayscale: bool = False  # the source had one channel: results are written back as grayscale
    original_size: tuple[int, int] | None = None  # (width, height) of the upright source, before any downscaling
    frames: int = 1  # an animated source's frame count; only the first frame is read

    def __post_init__(self):
        self.original_size = self.original_size or self.size

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def _open(source: ImageSource, name: str) -> Image.Image:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{name}: file not found")
        if path.stat().st_size == 0:
            raise ImageError(f"{name}: the file is empty (0 bytes)")
    elif isinstance(source, bytes):
        if not source:
            raise ImageError(f"{name}: the file is empty (0 bytes)")
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image, or a format Pillow cannot read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: the image is too large (at least {MAX_PIXELS // 1_000_000} megapixels)") from None
    except OSError as e:
        raise ImageError(f"{name}: cannot be read ({e})") from None


def load_image(source: ImageSource, name: str | None = None, max_megapixels: float | None = None) -> LoadedImage:
    """Read a file, bytes, file object or PIL image into float RGB, refusing bad input with a clear ImageError.

    Handles EXIF orientation, palette/RGBA/LA (alpha kept), grayscale, 16-bit and 32-bit float grayscale, CMYK; an
    animated image gives its first frame. With max_megapixels, larger images are downscaled while they are decoded
    (JPEG draft mode, then whole-pixel reduction, then Lanczos), so memory follows the limit rather than the source.
    """
    name = name or (str(source) if isinstance(source, (str, os.PathLike)) else "image")
    if isinstance(source, Image.Image):
        return _decode(source, name, max_megapixels)
    with _open(source, name) as img:  # closes the file whatever happens
        return _decode(img, name, max_megapixels)


def _check_size(img: Image.Image, name: str) -> None:
    width, height = img.size
    if width * height >= MAX_PIXELS:
        raise ImageError(f"{name}: {width}x{height} is {width * height / 1e6:.0f} megapixels; "
                         f"the limit is {MAX_PIXELS // 1_000_000}")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{name}: {width}x{height} is too small; both sides must be at least {MIN_SIDE} pixels")


def check_image(path: str | os.PathLike, name: str | None = None) -> tuple[int, int]:
    """The stored (width, height) of an image file after the cheap checks: it opens, its header's size is within
    limits, and its structure verifies (for PNG, every chunk's checksum, which catches truncation) without decoding
    the pixels. Raises ImageError like load_image (its messages begin with `name`, by default the path)."""
    name = name or str(path)
    with _open(path, name) as img:
        _check_size(img, name)
        size = img.size  # before draft() shrinks it
        try:
            if img.format == "JPEG":  # verify() does nothing for JPEG: decode at 1/8 scale, which reads every byte
                img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
                img.load()
            else:
                img.verify()
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageError(f"{name}: the file is corrupt or truncated ({e})") from None
        return size


def _resizable(img: Image.Image) -> Image.Image:
    """The image in a mode that Lanczos resizing accepts, losing nothing that _decode keeps."""
    if img.mode.startswith("I;16"):
        return img.convert("I")
    if img.mode == "1":
        return img.convert("L")
    if img.mode in ("P", "PA"):
        return img.convert("RGBA" if img.mode == "PA" or "transparency" in img.info else "RGB")
    return img


def _is_rotated(img: Image.Image) -> bool:
    """Whether EXIF orientation turns the image by 90 or 270 degrees (swapping its sides)."""
    return img.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)


def _decode(img: Image.Image, name: str, max_megapixels: float | None = None) -> LoadedImage:
    _check_size(img, name)
    frames = getattr(img, "n_frames", 1)
    sixteen_bit = img.mode.startswith("I;16")
    stored_size = img.size
    target = fitted_size(stored_size, max_megapixels)  # in the stored orientation, as it is decoded
    try:
        rotated = _is_rotated(img)  # reading a PNG's EXIF can decode it
        if target != stored_size:
            img.draft(None, target)  # JPEG: decode at 1/2, 1/4 or 1/8 scale, never below the target
            # reducing_gap: a fast box reduction to 3x the target, then Lanczos; all before any float copy
            img = _resizable(img).resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: the file is corrupt or truncated ({e})") from None
    image = _to_float(img, sixteen_bit)
    image.original_size, image.frames = stored_size[::-1] if rotated else stored_size, frames
    return image


def _to_float(img: Image.Image, sixteen_bit: bool) -> LoadedImage:
    alpha = None
    grayscale = img.mode in GRAYSCALE_MODES
    if img.mode in WIDE_GRAYSCALE_MODES:
        gray = np.asarray(img).astype(np.float32)
        scale = 65535.0 if sixteen_bit or gray.max() > 255 else 255.0
        if img.mode == "F" and gray.max() <= 1.0:
            scale = 1.0
        gray = np.clip(gray / scale, 0.0, 1.0)
        return LoadedImage(np.repeat(gray[..., None], 3, axis=2), None, True)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return LoadedImage(np.ascontiguousarray(rgb), alpha, grayscale)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (clipped) -> uint8, rounded."""
    return (np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_pil(rgb: np.ndarray, alpha: np.ndarray | None = None, grayscale: bool = False) -> Image.Image:
    """Float RGB in [0, 1] (+ alpha) -> 8-bit PIL image; grayscale sources come back as grayscale."""
    img = Image.fromarray(to_uint8(rgb), "RGB")
    if grayscale:
        img = img.convert("L")
    if alpha is not None:
        img = img.convert("LA" if grayscale else "RGBA")
        img.putalpha(Image.fromarray(to_uint8(alpha), "L"))
    return img


# zlib level 1: a 12 MP photo writes in a quarter of the time PIL's default (6) takes, in a file about 17% larger.
PNG_COMPRESS_LEVEL = 1


def save_png(img: Image.Image, path: str | os.PathLike, overwrite: bool = False) -> None:
    """Write a PNG under a temporary name beside `path`, then rename it: `path` is never left half-written.
    Without overwrite an existing `path` is an error (FileExistsError) rather than replaced."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists already (--overwrite replaces it)")
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}.", suffix=".png.tmp", delete=False) as f:
        temporary = Path(f.name)
    try:
        img.save(temporary, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def check_megapixels(max_megapixels: float | None) -> None:
    if max_megapixels is not None and not (max_megapixels > 0 and math.isfinite(max_megapixels)):
        raise ValueError(f"the megapixel limit must be a positive number, got {max_megapixels}")


def fitted_size(size: tuple[int, int], max_megapixels: float | None) -> tuple[int, int]:
    """(width, height) scaled down to at most max_megapixels, keeping the aspect ratio; smaller sizes unchanged."""
    check_megapixels(max_megapixels)
    width, height = size
    if max_megapixels is None or width * height <= max_megapixels * 1e6:
        return size
    scale = math.sqrt(max_megapixels * 1e6 / (width * height))
    return max(MIN_SIDE, int(width * scale)), max(MIN_SIDE, int(height * scale))


def _resize(image: LoadedImage, size: tuple[int, int]) -> LoadedImage:
    """Lanczos in float, channel by channel."""
    def resize(channels: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(channels, "F").resize(size, Image.Resampling.LANCZOS))

    rgb = np.stack([resize(image.rgb[..., c]) for c in range(3)], axis=2).clip(0, 1)
    alpha = resize(image.alpha).clip(0, 1) if image.alpha is not None else None
    return LoadedImage(rgb.astype(np.float32), alpha, image.grayscale, image.original_size, image.frames)


def limit_megapixels(image: LoadedImage, max_megapixels: float | None) -> LoadedImage:
    """Downscale (Lanczos) so that the image has at most max_megapixels; smaller images are returned unchanged."""
    size = fitted_size(image.size, max_megapixels)
    return image if size == image.size else _resize(image, size)

"""Reading any image safely into float RGB (with its alpha and grayscale-ness), and writing results back."""

from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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


def load_image(source: ImageSource, name: str | None = None) -> LoadedImage:
    """Read a file, bytes, file object or PIL image into float RGB, refusing bad input with a clear ImageError.

    Handles EXIF orientation, palette/RGBA/LA (alpha kept), grayscale, 16-bit and 32-bit float grayscale, CMYK.
    """
    name = name or (str(source) if isinstance(source, (str, os.PathLike)) else "image")
    if isinstance(source, Image.Image):
        return _decode(source, name)
    with _open(source, name) as img:  # closes the file whatever happens
        return _decode(img, name)


def _decode(img: Image.Image, name: str) -> LoadedImage:
    width, height = img.size
    if width * height >= MAX_PIXELS:
        raise ImageError(f"{name}: {width}x{height} is {width * height / 1e6:.0f} megapixels; "
                         f"the limit is {MAX_PIXELS // 1_000_000}")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{name}: {width}x{height} is too small; both sides must be at least {MIN_SIDE} pixels")
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: the file is corrupt or truncated ({e})") from None

    alpha = None
    grayscale = img.mode in GRAYSCALE_MODES
    if img.mode in WIDE_GRAYSCALE_MODES:
        gray = np.asarray(img).astype(np.float32)
        scale = 65535.0 if img.mode.startswith("I;16") or gray.max() > 255 else 255.0
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


def limit_megapixels(image: LoadedImage, max_megapixels: float | None) -> LoadedImage:
    """Downscale (Lanczos) so that the image has at most max_megapixels; smaller images are returned unchanged."""
    width, height = image.size
    if not max_megapixels or width * height <= max_megapixels * 1e6:
        return image
    scale = math.sqrt(max_megapixels * 1e6 / (width * height))
    size = (max(MIN_SIDE, int(width * scale)), max(MIN_SIDE, int(height * scale)))

    def resize(channels: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(channels, "F").resize(size, Image.Resampling.LANCZOS))

    rgb = np.stack([resize(image.rgb[..., c]) for c in range(3)], axis=2).clip(0, 1)
    alpha = resize(image.alpha).clip(0, 1) if image.alpha is not None else None
    return LoadedImage(rgb.astype(np.float32), alpha, image.grayscale)

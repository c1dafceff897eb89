"""Helpers shared by the app tests: tiny adam/sgd checkpoints and the awkward files users upload."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import photo, tiny_model
from vitdeblur import save_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_tiny_checkpoints(folder: Path) -> Path:
    """folder/adam and folder/sgd: tiny models whose outputs differ from the input and from each other."""
    for seed, variant in enumerate(("adam", "sgd"), start=1):
        save_checkpoint(tiny_model(seed=seed), folder / variant, half=True)
    return folder


def exif_rotated_jpeg(path: Path, width: int = 120, height: int = 72, orientation: int = 6) -> Path:
    """A landscape JPEG stored sideways: EXIF Orientation 6 means 'rotate 90 degrees clockwise to display'."""
    img = Image.fromarray(photo("chelsea", (width, height)))
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(path, format="JPEG", quality=95, exif=exif)
    return path


def rgba_png(path: Path, width: int = 96, height: int = 64) -> Path:
    """An RGBA PNG with a left-to-right alpha ramp."""
    rgb = photo("coffee", (width, height))
    alpha = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    return path


def png_claiming(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose header claims another size (with a correct CRC), like a decompression bomb."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)

"""Shared fixtures: tiny models and image folders made on the fly (no network, no ../shared)."""

import io
import os
import struct
import zlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported: tests never touch the network

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from vitdeblur import ViTDeblur, ViTDeblurConfig, save_checkpoint

TINY = dict(backbone="test_vit", decoder_width=8, tile_size=64, tile_overlap=16)  # timm's 0.3M-parameter test ViT


def tiny_model(decoder: str = "residual", seed: int = 0, perturb: bool = True) -> ViTDeblur:
    """A tiny model; with perturb=True the residual decoders' head is nudged away from zero so that the output differs
    from the input."""
    torch.manual_seed(seed)
    model = ViTDeblur(ViTDeblurConfig(decoder=decoder, **TINY)).eval()
    if perturb and decoder in ("residual", "nafnet"):
        torch.nn.init.normal_(model.decoder.head.weight, std=0.01)
    return model


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    return save_checkpoint(tiny_model(), tmp_path / "tiny")


def photo(name: str = "astronaut", size: tuple[int, int] | None = None) -> np.ndarray:
    """A real photo shipped with scikit-image, as uint8 RGB, optionally resized to (width, height)."""
    img = Image.fromarray(getattr(skdata, name)())
    img = img.convert("RGB")
    if size:
        img = img.resize(size, Image.Resampling.BICUBIC)
    return np.array(img)


def save(rgb: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture
def sharp_folder(tmp_path) -> Path:
    """Ten small sharp photos (layout 'sharp')."""
    names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "immunohistochemistry", "hubble_deep_field",
             "coins", "retina", "cat"]
    for i, name in enumerate(names):
        save(photo(name, (96, 80)), tmp_path / "sharp_photos" / f"{i:02d}_{name}.png")
    return tmp_path / "sharp_photos"


@pytest.fixture
def pairs_folder(tmp_path) -> Path:
    """Ten blurred/sharp pairs with the same names (layout 'pairs'), blurred by a 5x5 box filter."""
    from scipy.ndimage import uniform_filter

    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket", "camera"] * 2):
        sharp = photo(name, (96 + 16 * (i % 2), 80))
        blur = uniform_filter(sharp.astype(np.float32), size=(5, 5, 1)).round().astype(np.uint8)
        save(sharp, tmp_path / "pairs" / "sharp" / f"{i:02d}.png")
        save(blur, tmp_path / "pairs" / "blur" / f"{i:02d}.png")
    return tmp_path / "pairs"


# Awkward files that users upload.


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

"""Deblurring real photos: running the model over any size with blended tiles."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from PIL import Image

from vitdeblur.images import ImageSource, LoadedImage, limit_megapixels, load_image, to_pil


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU; asking for CUDA without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA GPU is available")
    return device


def _tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _feather(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weights of a tile: flat where the tile touches the image border; towards a neighbouring tile,
    zero over the outer quarter of the overlap (where padding spoils the output) and then a linear ramp to 1."""
    margin = overlap // 4
    ramp = np.clip((np.arange(length) - margin + 0.5) / max(1, overlap - 2 * margin), 0.0, 1.0)
    weight = np.ones(length)
    if not at_start:
        weight = np.minimum(weight, ramp)
    if not at_end:
        weight = np.minimum(weight, ramp[::-1])
    return weight.astype(np.float32)


@torch.inference_mode()
def deblur_array(
    model: torch.nn.Module,
    rgb: np.ndarray,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Deblur float RGB (H, W, 3) of any size: overlapping tiles, batched, blended with feathered weights.

    The model only ever sees batch_size tiles at once, so memory beyond the image itself stays bounded.
    """
    config = getattr(model, "config", None)
    tile = tile_size or getattr(config, "tile_size", 256)
    overlap = getattr(config, "tile_overlap", 32) if tile_overlap is None else tile_overlap
    if not 0 <= overlap < tile:
        raise ValueError(f"tile_overlap must be in [0, tile_size), got {overlap} with tile_size {tile}")
    height, width = rgb.shape[:2]
    tile_h, tile_w = min(tile, height), min(tile, width)
    boxes = [(y, x) for y in _tile_starts(height, tile_h, overlap) for x in _tile_starts(width, tile_w, overlap)]
    out = np.zeros((height, width, 3), np.float32)
    total_weight = np.zeros((height, width, 1), np.float32)
    device = next(model.parameters()).device
    model.eval()
    for first in range(0, len(boxes), batch_size):
        batch_boxes = boxes[first:first + batch_size]
        tiles = np.stack([rgb[y:y + tile_h, x:x + tile_w] for y, x in batch_boxes])
        result = model(torch.from_numpy(tiles).permute(0, 3, 1, 2).to(device)).float().permute(0, 2, 3, 1).cpu()
        for (y, x), tile_out in zip(batch_boxes, result.numpy()):
            weight = np.outer(_feather(tile_h, overlap, y == 0, y + tile_h == height),
                              _feather(tile_w, overlap, x == 0, x + tile_w == width))[..., None]
            out[y:y + tile_h, x:x + tile_w] += tile_out * weight
            total_weight[y:y + tile_h, x:x + tile_w] += weight
        if progress is not None:
            progress(min(first + batch_size, len(boxes)), len(boxes))
    out /= total_weight
    return np.clip(out, 0.0, 1.0, out=out)


def deblur_image(model: torch.nn.Module, source: ImageSource | LoadedImage, max_megapixels: float | None = None,
                 **tile_options) -> Image.Image:
    """Read, deblur and return a PIL image: the size of the input (or of the downscaled input with max_megapixels),
    with its alpha channel and grayscale-ness kept."""
    image = source if isinstance(source, LoadedImage) else load_image(source)
    image = limit_megapixels(image, max_megapixels)
    restored = deblur_array(model, image.rgb, **tile_options)
    return to_pil(restored, image.alpha, image.grayscale)

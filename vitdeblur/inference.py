"""Deblurring real photos: running the model over any size with blended tiles."""

from __future__ import annotations

import copy
import ctypes
import math
import os
import platform
import weakref
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vitdeblur.images import ImageSource, LoadedImage, limit_megapixels, load_image, to_pil
from vitdeblur.model import check_inference_scales

MIN_SCALED_SIDE = 64  # a downscaled copy whose shorter side would be smaller carries too little to deblur: skipped


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU; asking for CUDA without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but no CUDA GPU is available")
    return device


def plan_tiles(length: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """Tile length and start offsets along one axis. Takes as many tiles as the nominal size needs, then shrinks
    them to the smallest multiple of 16 (the patch size) that still covers `length` with at least `overlap` between
    neighbours, spread evenly: fewer pixels are computed twice than with fixed-size tiles and one crammed last tile."""
    if length <= tile:
        return length, [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, 16 * math.ceil((length + (count - 1) * overlap) / count / 16))
    return size, [round(i * (length - size) / (count - 1)) for i in range(count)]


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


PRECISIONS = ("auto", "fp32", "bf16")
FAST_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that make bf16 matrix products faster than fp32


def fast_bf16_cpu_flags() -> list[str]:
    """The flags of this CPU (from /proc/cpuinfo) that promise fast bf16 matrix products; empty where there is none
    or no /proc/cpuinfo (then 'auto' keeps fp32, which is never slower)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return [flag for flag in FAST_BF16_CPU_FLAGS if flag in flags]


def resolve_precision(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for a precision setting, None for plain fp32. 'auto': bf16 on CPUs with fast bf16 (by their
    flags), fp32 on other CPUs; on CUDA bf16, or fp16 on GPUs without bf16."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if fast_bf16_cpu_flags() else None


_CPU_BF16_COPIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cpu_bf16_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A bf16, channels-last copy of a CPU model for inference, kept while the model's weights stay unchanged. On a
    2-core Xeon with AMX it ran 384 px tiles 1.9x as fast as bf16 autocast, which re-casts every weight on every call
    and mixes fp32 and bf16 tensors between layers."""
    weights_key = tuple((p.data_ptr(), p._version) for p in model.parameters())
    cached = _CPU_BF16_COPIES.get(model)
    if cached is None or cached[0] != weights_key:
        bf16 = copy.deepcopy(model).to(torch.bfloat16).to(memory_format=torch.channels_last).eval()
        cached = _CPU_BF16_COPIES[model] = (weights_key, bf16)
    return cached[1]


def use_available_cores() -> int:
    """Let PyTorch use every core this process may run on (its default can be the physical cores only, e.g. 1 of a
    2-vCPU cloud machine). Called at the start of the CLI and the app, not on import."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(cores)
    return cores


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (glibc's malloc.h)


def retain_freed_memory(mmap_threshold_mb: int = 128, trim_threshold_mb: int = 512) -> bool:
    """Make glibc's malloc keep freed blocks of up to `mmap_threshold_mb` for reuse, and up to `trim_threshold_mb` of
    free memory before returning any to the system. By default it unmaps every freed block above its mmap threshold
    (which only ever rises to 32 MiB) at once, so each large activation of a batch of tiles (a 1/2-scale feature map
    of 4 fp32 tiles is 35 MB) is fresh memory whose pages fault in on first touch: on a 2-core AMD EPYC in fp32 that
    made 1x1 convolutions 4x slower, and a 1280x720 frame took 1.2-1.4 s instead of 0.8-1.0 s (12 MP: 19.0 s instead
    of 14.2 s; peak RSS about the same). It is what an allocator such as jemalloc, preloaded, would do. Returns
    whether it applied (glibc only). Called at the start of the CLI, the app and train.ship, not on import: it changes
    the whole process."""
    if platform.libc_ver()[0] != "glibc":  # empty off Linux and on other C libraries
        return False
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold_mb << 20)
                and libc.mallopt(M_TRIM_THRESHOLD, trim_threshold_mb << 20))


def tile_settings(model: torch.nn.Module, tile_size: int | None = None,
                  tile_overlap: int | None = None) -> tuple[int, int]:
    """The nominal tile size and overlap: the arguments where given, else the model config's."""
    config = getattr(model, "config", None)
    tile = tile_size or getattr(config, "tile_size", 256)
    overlap = getattr(config, "tile_overlap", 32) if tile_overlap is None else tile_overlap
    if not 0 <= overlap < tile:
        raise ValueError(f"tile_overlap must be in [0, tile_size), got {overlap} with tile_size {tile}")
    return tile, overlap


def tile_grid(height: int, width: int, tile: int, overlap: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """The (height, width) shared by all tiles of an image and their top-left corners."""
    tile_h, starts_y = plan_tiles(height, tile, overlap)
    tile_w, starts_x = plan_tiles(width, tile, overlap)
    return (tile_h, tile_w), [(y, x) for y in starts_y for x in starts_x]


def scale_plan(model: torch.nn.Module, height: int, width: int,
               scales: tuple[int, ...] | None = None) -> list[tuple[int, int, int]]:
    """(factor, height, width) of each size an image is deblurred at: `scales`, else the model config's
    inference_scales, without the factors that would leave a shorter side than MIN_SCALED_SIDE (factor 1 stays, and
    the smallest factor where none would)."""
    factors = check_inference_scales(scales or getattr(getattr(model, "config", None), "inference_scales", (1,)))
    kept = [f for f in factors if f == 1 or min(height, width) / f >= MIN_SCALED_SIDE] or [min(factors)]
    return [(f, max(1, round(height / f)), max(1, round(width / f))) for f in kept]


@torch.inference_mode()
def deblur_array(
    model: torch.nn.Module,
    rgb: np.ndarray,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    batch_size: int = 4,
    precision: str = "auto",
    progress: Callable[[int, int], None] | None = None,
    scales: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Deblur float RGB (H, W, 3) of any size: overlapping tiles, batched, blended with feathered weights; with
    several scales (`scales`, else the model config's inference_scales), the mean of the corrections (deblurred -
    input) made at each, upsampled to full size.

    The model only ever sees batch_size tiles at once, so memory beyond the image itself (and, with several scales,
    a few float copies of it) stays bounded. precision: 'fp32', 'bf16' or 'auto' (see resolve_precision). bf16 runs a
    bf16 copy of the model on the CPU (cpu_bf16_copy) and autocast on CUDA.
    """
    tile, overlap = tile_settings(model, tile_size, tile_overlap)
    height, width = rgb.shape[:2]
    plan = scale_plan(model, height, width, scales)
    tiles = [len(tile_grid(h, w, tile, overlap)[1]) for _, h, w in plan]

    def run(image: np.ndarray, done_before: int) -> np.ndarray:
        report = progress and (lambda done, _: progress(done_before + done, sum(tiles)))
        return _deblur_tiles(model, image, tile, overlap, batch_size, precision, report)

    if plan == [(1, height, width)]:
        return run(rgb, 0)
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
    correction = torch.zeros_like(image)
    for (factor, h, w), done_before in zip(plan, np.cumsum([0, *tiles[:-1]])):
        small = image if factor == 1 else F.interpolate(image, size=(h, w), mode="bilinear", antialias=True)
        change = torch.from_numpy(run(small[0].permute(1, 2, 0).contiguous().numpy(), int(done_before)))
        change = change.permute(2, 0, 1)[None] - small
        correction += change if factor == 1 else F.interpolate(change, size=(height, width), mode="bicubic")
    out = (image + correction / len(plan))[0].permute(1, 2, 0).numpy()
    return np.clip(out, 0.0, 1.0, out=out)


def _deblur_tiles(model: torch.nn.Module, rgb: np.ndarray, tile: int, overlap: int, batch_size: int, precision: str,
                  progress: Callable[[int, int], None] | None) -> np.ndarray:
    """One scale of deblur_array."""
    # Measured on 1280x720 (bf16 autocast, 2-core Xeon with AMX): batches of 4 tiles ran 1.9x as fast as single tiles
    # and a little faster than 8. The nominal tile is the checkpoint's: 384 px for the nafnet model (8 tiles, 66
    # GFLOP; 256 px: 24 tiles, 73 GFLOP, 8% slower), 256 px for the older residual one (larger tiles were no faster
    # there: its attention grows with tokens per tile).
    height, width = rgb.shape[:2]
    (tile_h, tile_w), boxes = tile_grid(height, width, tile, overlap)
    out = np.zeros((height, width, 3), np.float32)
    total_weight = np.zeros((height, width, 1), np.float32)
    device = next(model.parameters()).device
    dtype = resolve_precision(precision, device)
    model.eval()
    runner = cpu_bf16_copy(model) if device.type == "cpu" and dtype == torch.bfloat16 else model
    for first in range(0, len(boxes), batch_size):
        batch_boxes = boxes[first:first + batch_size]
        tiles = torch.from_numpy(np.stack([rgb[y:y + tile_h, x:x + tile_w] for y, x in batch_boxes]))
        tiles = tiles.permute(0, 3, 1, 2).to(device)  # a channels-last view of the (B, H, W, 3) stack
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None and runner is model):
            result = runner(tiles)
        result = result.float().permute(0, 2, 3, 1).cpu()
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
                 precision: str = "auto", **tile_options) -> Image.Image:
    """Read, deblur and return a PIL image: the size of the input (or of the downscaled input with max_megapixels),
    with its alpha channel and grayscale-ness kept. precision: 'fp32', 'bf16' or 'auto' (see resolve_precision)."""
    if isinstance(source, LoadedImage):
        image = limit_megapixels(source, max_megapixels)
    else:  # decoded straight to the processing size, so memory follows the limit rather than the source
        image = load_image(source, max_megapixels=max_megapixels)
    restored = deblur_array(model, image.rgb, precision=precision, **tile_options)
    return to_pil(restored, image.alpha, image.grayscale)

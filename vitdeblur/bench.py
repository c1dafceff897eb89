"""How fast a checkpoint deblurs on this machine, and how close that is to what the machine can do.

`python -m vitdeblur bench` counts the FLOPs of the tiles that deblur_array actually runs, times a 1280x720 frame and a
12 MP photo in fp32 and bf16, and measures the machine's matrix-product (GEMM) peak in the same run, so that the
achieved GFLOP/s can be judged against it on a busy or an idle machine alike.
"""

from __future__ import annotations

import resource
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from vitdeblur.inference import (FAST_BF16_CPU_FLAGS, deblur_array, fast_bf16_cpu_flags, resolve_precision,
                                 scale_plan, tile_grid, tile_settings)

FRAME = (1280, 720)  # (width, height): a 720p video frame, the size of the GoPro validation pairs
PHOTO = (4000, 3000)  # a 12 MP phone photo
BENCH_PRECISIONS = ("fp32", "bf16")


def count_flops(model: torch.nn.Module, height: int, width: int) -> int:
    """FLOPs of one forward pass on one (height, width) tile (a multiply-add counts as 2)."""
    device = next(model.parameters()).device
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.rand(1, 3, height, width, device=device))
    return counter.get_total_flops()


def image_flops(model: torch.nn.Module, width: int, height: int,
                **tile_options) -> tuple[int, list[tuple[int, tuple[int, int], int]]]:
    """FLOPs of deblurring a width x height image as it is actually tiled, at every scale it runs at; and per scale,
    (downscale factor, tile shape, tile count)."""
    tile, overlap = tile_settings(model, tile_options.get("tile_size"), tile_options.get("tile_overlap"))
    flops, scales = 0, []
    for factor, h, w in scale_plan(model, height, width, tile_options.get("scales")):
        (tile_h, tile_w), boxes = tile_grid(h, w, tile, overlap)
        flops += count_flops(model, tile_h, tile_w) * len(boxes)
        scales.append((factor, (tile_h, tile_w), len(boxes)))
    return flops, scales


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_peak(device: torch.device, precision: str, size: int = 1024, repeats: int = 10,
              max_seconds: float = 5.0) -> float:
    """GFLOP/s of the best of `repeats` square matrix products (fewer once `max_seconds` have passed, as they do where
    the precision is slow): what this machine can do right now."""
    dtype = resolve_precision(precision, device) or torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    best, deadline = float("inf"), time.perf_counter() + max_seconds
    for _ in range(repeats + 1):  # the first warms up
        _synchronize(device)
        start = time.perf_counter()
        a @ b
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return 2 * size**3 / best / 1e9


def time_deblur(model: torch.nn.Module, width: int, height: int, precision: str, repeats: int, **tile_options) -> float:
    """Best wall time in seconds of deblur_array on a (height, width) image, after one warm-up on a small one."""
    device = next(model.parameters()).device
    rgb = np.random.default_rng(0).random((height, width, 3), dtype=np.float32)
    deblur_array(model, rgb[:64, :64], precision=precision, **tile_options)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        deblur_array(model, rgb, precision=precision, **tile_options)
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def auto_precision_reason(device: torch.device) -> str:
    """What 'auto' picks here and why (the rule of resolve_precision, in words)."""
    dtype = resolve_precision("auto", device)
    name = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    if device.type == "cuda":
        return f"{name} autocast on CUDA"
    flags = fast_bf16_cpu_flags()
    if flags:
        return f"{name}: the CPU flags {', '.join(flags)} promise fast bf16 (run by a bf16 channels-last copy)"
    return f"{name}: no CPU flag for fast bf16 ({', '.join(FAST_BF16_CPU_FLAGS)})"


def timed_precisions(device: torch.device) -> tuple[str, ...]:
    """The precisions bench times by default: fp32 and bf16, bf16 on a CPU only where its flags promise it fast. On a
    2-core AMD EPYC without them bf16 products ran at 1% of fp32's speed: timing the shipped `adam` in bf16 there
    would take about half an hour, to learn only that 'auto' is right to keep fp32."""
    return BENCH_PRECISIONS if device.type == "cuda" or fast_bf16_cpu_flags() else ("fp32",)


def bench(model: torch.nn.Module, precisions: tuple[str, ...] | None = None, frame: tuple[int, int] = FRAME,
          photo: tuple[int, int] = PHOTO, repeats: int = 3, **tile_options) -> dict:
    """Measure everything `python -m vitdeblur bench` prints; returns it as a JSON-friendly dict. The GEMM peak is
    measured in fp32 and bf16 always (the timed precisions' once more after the images, the higher kept); the images
    are timed in `precisions` (default: timed_precisions)."""
    device = next(model.parameters()).device
    bf16_skipped = "not asked for" if precisions else "no CPU flag for fast bf16 (--precision bf16 times it anyway)"
    precisions = tuple(precisions or timed_precisions(device))
    tile, overlap = tile_settings(model, tile_options.get("tile_size"), tile_options.get("tile_overlap"))
    result = {
        "device": str(device), "threads": torch.get_num_threads(), "auto_precision": auto_precision_reason(device),
        "tile_size": tile, "tile_overlap": overlap, "batch_size": tile_options.get("batch_size", 4),
        "gflop_per_tile": count_flops(model, tile, tile) / 1e9,
        "timed_precisions": list(precisions),
    }
    if "bf16" not in precisions:
        result["bf16_not_timed"] = bf16_skipped
    peaks = {p: gemm_peak(device, p) for p in dict.fromkeys(BENCH_PRECISIONS + precisions)}
    for name, (width, height), image_repeats in [("frame", frame, repeats), ("photo", photo, 1)]:
        flops, scales = image_flops(model, width, height, **tile_options)
        gflop = flops / 1e9
        seconds = {p: time_deblur(model, width, height, p, image_repeats, **tile_options) for p in precisions}
        result[name] = {
            "size": [width, height], "scales": [factor for factor, _, _ in scales],
            "tiles": sum(n for _, _, n in scales), "tile_shape": list(scales[0][1]),  # at the first scale
            "tile_overhead": sum(n * h * w for _, (h, w), n in scales) / (height * width), "gflop": gflop,
            "seconds": seconds,
            "gflops": {p: gflop / s for p, s in seconds.items()},
        }
    # The peak of the timed precisions again, after the images: on a shared 2-core AMD EPYC it read 90 to 180 GFLOP/s
    # from minute to minute, and a share of a low reading flatters. The higher of the two is what the machine can do.
    for p in precisions:
        peaks[p] = max(peaks[p], gemm_peak(device, p))
    result["gemm_peak_gflops"] = peaks
    for name in ("frame", "photo"):
        result[name]["share_of_gemm_peak"] = {p: g / peaks[p] for p, g in result[name]["gflops"].items()}
    result["bf16_gemm_speedup"] = peaks["bf16"] / peaks["fp32"]
    if set(BENCH_PRECISIONS) <= set(precisions):
        result["bf16_speedup"] = {n: result[n]["seconds"]["fp32"] / result[n]["seconds"]["bf16"]
                                  for n in ("frame", "photo")}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return result


def report(result: dict) -> str:
    """The bench result as a short text table."""
    tile = result["tile_size"]
    lines = [f"device {result['device']}, {result['threads']} threads; precision 'auto' -> {result['auto_precision']}",
             f"nominal tile {tile} px, overlap {result['tile_overlap']}, batch {result['batch_size']}: "
             f"{result['gflop_per_tile']:.2f} GFLOP per {tile}x{tile} tile",
             "GEMM peak: " + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in result["gemm_peak_gflops"].items())
             + f" (bf16/fp32 {result['bf16_gemm_speedup']:.2f}x)"]
    if "bf16_not_timed" in result:
        lines.append(f"bf16 not timed: {result['bf16_not_timed']}")
    for name in ("frame", "photo"):
        r = result[name]
        width, height = r["size"]
        shape = f"{r['tile_shape'][1]}x{r['tile_shape'][0]}"
        tiles = f"{r['tiles']} tiles of {shape}" if r["scales"] == [1] else (
            f"{r['tiles']} tiles at scales {', '.join('1' if f == 1 else f'1/{f}' for f in r['scales'])} "
            f"({shape} at the first)")
        lines.append(f"{width}x{height}: {tiles}, tile overhead {r['tile_overhead']:.2f} (pixels computed / pixels), "
                     f"{r['gflop']:.0f} GFLOP")
        for p, seconds in r["seconds"].items():
            lines.append(f"  {p}: {seconds:.2f} s, {r['gflops'][p]:.0f} GFLOP/s "
                         f"({100 * r['share_of_gemm_peak'][p]:.0f}% of the {p} GEMM peak)")
        if "bf16_speedup" in result:
            lines.append(f"  bf16 is {result['bf16_speedup'][name]:.2f}x as fast as fp32")
    lines.append(f"peak RSS {result['peak_rss_mb']:.0f} MB")
    return "\n".join(lines)

"""The one metric definition of the project, and full-resolution evaluation of a checkpoint on a dataset."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vitdeblur.data import DeblurDataset
from vitdeblur.images import to_uint8
from vitdeblur.inference import deblur_array

METRIC_DEFINITION = ("PSNR and SSIM from scikit-image on RGB in [0, 1] (data_range=1, SSIM with channel_axis and "
                     "its default 7x7 uniform window), at full image resolution, no border crop, averaged over images")


def psnr(result: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of float RGB (H, W, 3) in [0, 1]: data_range=1, no border crop."""
    return float(peak_signal_noise_ratio(reference, np.clip(result, 0, 1), data_range=1.0))


def ssim(result: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of float RGB (H, W, 3) in [0, 1]: scikit-image's default 7x7 uniform window per channel, data_range=1."""
    return float(structural_similarity(reference, np.clip(result, 0, 1), data_range=1.0, channel_axis=2))


def _thumbnail(rgb: np.ndarray, height: int) -> Image.Image:
    img = Image.fromarray(to_uint8(rgb))
    return img.resize((max(1, round(img.width * height / img.height)), height), Image.Resampling.LANCZOS)


def save_grid(rows: list[list[np.ndarray]], path: str | Path, height: int = 256, gap: int = 4,
              labels: list[str] | None = None) -> None:
    """An image with one row per image and one column per version (e.g. blurred | deblurred | sharp), with an
    optional caption above each column of the first row; PNG, or JPEG at quality 90 for a .jpg path (a fifth of the
    size for the docs' grids of photos)."""
    if not rows:
        raise ValueError("a grid needs at least one row")
    thumbs = [[_thumbnail(img, height) for img in row] for row in rows]
    header = 24 if labels else 0
    width = max(sum(t.width for t in row) + gap * (len(row) - 1) for row in thumbs)
    grid = Image.new("RGB", (width, header + len(rows) * height + gap * (len(rows) - 1)), "white")
    draw = ImageDraw.Draw(grid)
    for r, row in enumerate(thumbs):
        x = 0
        for c, t in enumerate(row):
            if labels and r == 0:
                draw.text((x + 4, 4), labels[c], fill="black", font_size=16)
            grid.paste(t, (x, header + r * (height + gap)))
            x += t.width + gap
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    grid.save(path, quality=90)  # for JPEG; PNG ignores it


def evaluate(model: torch.nn.Module, dataset: DeblurDataset, grid_rows: int = 0, **tile_options) -> tuple[dict, list]:
    """Deblur every image at full resolution; return the averaged metrics (of the model and of the blurred input
    itself) and up to `grid_rows` [blurred, deblurred, sharp] rows for a visual grid."""
    per_image, rows, seconds = [], [], 0.0
    for i in range(len(dataset)):
        blur, sharp = (t.permute(1, 2, 0).numpy() for t in dataset[i])
        start = time.perf_counter()
        restored = deblur_array(model, blur, **tile_options)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        per_image.append({
            "image": dataset.items[i][0].sharp.name,
            "psnr_blurred": psnr(blur, sharp), "ssim_blurred": ssim(blur, sharp),
            "psnr": psnr(restored, sharp), "ssim": ssim(restored, sharp),
        })
        if len(rows) < grid_rows:
            rows.append([blur, restored, sharp])
    metrics = {"n": len(per_image)}
    for key in ("psnr_blurred", "ssim_blurred", "psnr", "ssim"):
        metrics[key] = float(np.mean([m[key] for m in per_image]))
    metrics["psnr_gain"] = metrics["psnr"] - metrics["psnr_blurred"]
    metrics["seconds_per_image"] = seconds / max(1, len(per_image))
    metrics["device"] = str(next(model.parameters()).device)
    metrics["images"] = per_image
    return metrics, rows

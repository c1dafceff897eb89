"""What the Gradio app does, without any UI: choosing checkpoints and the device, loading models lazily, deblurring
with one or both variants, and reporting PSNR/SSIM (against an example's ground truth) and timings.

``app.py`` is a thin layer over this module, so everything here can be tested without a browser or a server.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from vitdeblur.evaluate import psnr, ssim
from vitdeblur.examples import EXAMPLES_DIR, Example, find_example
from vitdeblur.hub import VARIANTS, load_model
from vitdeblur.images import ImageError, LoadedImage, check_megapixels, load_image, to_pil
from vitdeblur.inference import deblur_array, resolve_device

CHOICES = (*VARIANTS, "both")  # the values of the app's variant setting and of its API
# Processing is capped at this many megapixels by default; larger photos are downscaled first (Lanczos).
# Measured on 2 idle CPU cores with the shipped checkpoints, a 12 MP JPEG with variant "both" took 6.6 s in all at
# 1.5 MP (9.6 s at 2 MP), leaving room for Gradio's own work inside ~15 s. A GPU does 12 MP in seconds.
DEFAULT_MAX_MEGAPIXELS = {"cpu": 1.5, "cuda": 12.0}
MAX_MEGAPIXELS_LIMIT = {"cpu": 8.0, "cuda": 48.0}  # the most the setting allows
RESULTS_MAX_AGE_S = 3600  # result PNGs older than this are deleted when new ones are written
# Uploads above this many megabytes are refused by the server ($VITDEBLUR_MAX_FILE_MB); 50 MB holds any camera JPEG
# or a 16-bit PNG of about 25 megapixels.
DEFAULT_MAX_FILE_MB = 50
# Requests that may wait in the queue ($VITDEBLUR_QUEUE_SIZE); one runs at a time, later ones are told it is full.
DEFAULT_QUEUE_SIZE = 64


def _positive_setting(variable: str, default: float) -> float:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"${variable} must be a positive number, got {text!r}")
    return value


def max_upload_bytes() -> int:
    """The app's upload limit in bytes."""
    return int(_positive_setting("VITDEBLUR_MAX_FILE_MB", DEFAULT_MAX_FILE_MB) * 1_000_000)


def queue_size() -> int:
    """How many requests may wait in the app's queue."""
    return int(_positive_setting("VITDEBLUR_QUEUE_SIZE", DEFAULT_QUEUE_SIZE))

TRAINING_NOTE = """\
**What these models were trained on, and their limits.** Both variants are the same small model (a ViT-Tiny encoder
with a convolutional decoder, 6.6M parameters) trained from random initialisation, on a 2-core CPU, for 2000 steps:
`adam` with Adam and an L1 loss, `sgd` with SGD and an MSE loss, as in the study the project follows. The training
data is small: synthetic motion and defocus blur applied to 28 photos, plus real blur from frame-averaged GoPro video
of a single scene. On held-out real GoPro blur `adam` gains about 1.2 dB PSNR and `sgd` about 0.1 dB; on held-out
synthetic blur neither beats the input on average (they sharpen heavy blur and over-sharpen light blur). Expect
little on blur far outside that range: very long camera shake, heavy noise, low light, or moving objects. Large
photos are downscaled to the megapixel limit before deblurring. None of the example photos were used in training."""


def describe_device(device: str) -> str:
    if device.startswith("cuda"):
        return f"GPU ({torch.cuda.get_device_name(torch.device(device))})"
    return f"CPU ({torch.get_num_threads()} threads)"


def checkpoint_spec(variant: str) -> str:
    """Where a variant's checkpoint comes from: $VITDEBLUR_ADAM / $VITDEBLUR_SGD (a folder or a Hub repo id), else
    $VITDEBLUR_CHECKPOINTS/<variant>, else the shipped checkpoints/<variant>."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    explicit = os.environ.get(f"VITDEBLUR_{variant.upper()}", "").strip()
    if explicit:
        return explicit
    folder = os.environ.get("VITDEBLUR_CHECKPOINTS", "").strip()
    if folder:
        return str(Path(folder) / variant)
    return variant  # load_model resolves a bare variant name to checkpoints/<variant>


def variants_for(choice: str) -> list[str]:
    """'adam' -> ['adam'], 'sgd' -> ['sgd'], 'both' -> ['adam', 'sgd']."""
    if choice == "both":
        return list(VARIANTS)
    if choice in VARIANTS:
        return [choice]
    raise ValueError(f"unknown variant {choice!r}; choose one of {', '.join(CHOICES)}")


class Models:
    """Loads each variant's checkpoint on first use and keeps it; safe to share between request threads."""

    def __init__(self, device: str | None = None, specs: dict[str, str] | None = None):
        self.device = device or str(resolve_device())
        self._specs = specs or {}
        self._models: dict[str, torch.nn.Module] = {}
        self._lock = threading.Lock()

    def spec(self, variant: str) -> str:
        return self._specs.get(variant) or checkpoint_spec(variant)

    @property
    def loaded(self) -> list[str]:
        return list(self._models)

    def get(self, variant: str) -> torch.nn.Module:
        """The model of a variant; raises CheckpointError (with a clear message) when it cannot be loaded."""
        with self._lock:
            if variant not in self._models:
                self._models[variant] = load_model(self.spec(variant), self.device)
            return self._models[variant]


# ----------------------------------------------------------------------------------------------------------------
# Deblurring

ProgressCallback = Callable[[float, str], None]  # (fraction done in [0, 1], what is happening)


@dataclass
class Outcome:
    """Everything the page shows for one request; all images have the same size (the processed size)."""

    name: str  # a file-name-safe stem for the downloads
    blurred: Image.Image
    restored: dict[str, Image.Image]  # variant -> deblurred image
    ground_truth: Image.Image | None
    metrics: list[dict] = field(default_factory=list)  # rows {"image", "psnr", "ssim"}; empty without ground truth
    seconds: dict[str, float] = field(default_factory=dict)  # variant -> model time
    total_seconds: float = 0.0  # reading, downscaling, deblurring and metrics
    device: str = ""
    original_size: tuple[int, int] = (0, 0)  # (width, height) of the upright input
    size: tuple[int, int] = (0, 0)  # (width, height) processed and shown
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """The JSON-friendly facts (no images): metrics, timings, device and sizes."""
        return {"name": self.name, "variants": list(self.restored), "metrics": self.metrics,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "total_seconds": round(self.total_seconds, 3), "device": self.device,
                "original_size": list(self.original_size), "size": list(self.size),
                "ground_truth": self.ground_truth is not None, "notes": self.notes}


def safe_stem(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._")
    return stem[:60] or "image"


def read_data_url(url: str, max_bytes: int | None = None) -> bytes:
    """The bytes of a base64 `data:` URL (how the API and a pasted image send an image inline), exactly as sent."""
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or not header.endswith(";base64"):
        raise ImageError("the image data is not a base64 data: URL")
    if max_bytes is not None and len(payload) * 3 // 4 > max_bytes:
        raise ImageError(f"the image is over the {max_bytes / 1e6:g} MB limit")
    try:
        return base64.b64decode(payload, validate=True)
    except binascii.Error as e:
        raise ImageError(f"the image data is not valid base64 (cut short?): {e}") from None


def deblur(source: str | Path, choice: str, models: Models, max_megapixels: float | None = None,
           examples_dir: str | Path = EXAMPLES_DIR, progress: ProgressCallback | None = None) -> Outcome:
    """Read `source` (a file path, or a base64 `data:` URL), deblur it with the chosen variant(s) and measure against
    the ground truth when the file is one of the examples. Raises ImageError for unreadable input, CheckpointError
    for missing checkpoints and ValueError for an unknown variant -- all with messages meant for the user."""
    start = time.perf_counter()
    variants = variants_for(choice)
    check_megapixels(max_megapixels)
    report = progress or (lambda fraction, message: None)
    report(0.0, "reading the image")
    if str(source).startswith("data:"):
        name, example = "pasted image", None
        image = load_image(read_data_url(str(source), max_upload_bytes()), name, max_megapixels)
    else:
        source = Path(source)
        name, example = source.name, find_example(source, examples_dir)
        image = load_image(source, name, max_megapixels)  # decoded straight to the processing size
    original_size = image.original_size
    truth = _ground_truth(example, max_megapixels, image.size)

    restored, seconds = {}, {}
    for i, variant in enumerate(variants):
        report(i / len(variants), f"loading {variant}")
        model = models.get(variant)

        def tiles_done(done: int, total: int, i=i, variant=variant):
            report((i + done / total) / len(variants), f"deblurring with {variant}: tile {done} of {total}")

        variant_start = time.perf_counter()
        restored[variant] = deblur_array(model, image.rgb, progress=tiles_done)
        if models.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds[variant] = time.perf_counter() - variant_start

    metrics = []
    if truth is not None:
        report(1.0, "measuring PSNR and SSIM")
        for label, rgb in [("blurred input", image.rgb)] + [(f"deblurred ({v})", r) for v, r in restored.items()]:
            metrics.append({"image": label, "psnr": psnr(rgb, truth.rgb), "ssim": ssim(rgb, truth.rgb)})

    notes = []
    if image.frames > 1:
        notes.append(f"the image is animated ({image.frames} frames); only its first frame was deblurred")
    if image.size != original_size:
        notes.append(f"downscaled from {original_size[0]}x{original_size[1]} to {image.size[0]}x{image.size[1]} "
                     f"(limit {max_megapixels:g} megapixels)")
    if example is not None and truth is None and example.sharp is not None:
        notes.append("the ground truth does not match the input's size, so no metrics")
    return Outcome(
        name=example.name if example else safe_stem(name),
        blurred=to_pil(image.rgb, image.alpha, image.grayscale),
        restored={v: to_pil(rgb, image.alpha, image.grayscale) for v, rgb in restored.items()},
        ground_truth=to_pil(truth.rgb, None, truth.grayscale) if truth is not None else None,
        metrics=metrics, seconds=seconds, total_seconds=time.perf_counter() - start,
        device=describe_device(models.device), original_size=original_size, size=image.size, notes=notes)


def _ground_truth(example: Example | None, max_megapixels: float | None, size: tuple[int, int]) -> LoadedImage | None:
    """The example's sharp image, downscaled exactly like the input; None without one or if the sizes disagree."""
    if example is None or example.sharp is None:
        return None
    truth = load_image(example.sharp, max_megapixels=max_megapixels)
    return truth if truth.size == size else None


def metrics_markdown(outcome: Outcome) -> str:
    """The report under the panels: a PSNR/SSIM table when there is ground truth, then timings and device."""
    lines = []
    if outcome.metrics:
        lines += ["| image | PSNR (dB) | SSIM |", "|---|---|---|"]
        lines += [f"| {row['image']} | {row['psnr']:.2f} | {row['ssim']:.4f} |" for row in outcome.metrics]
        lines.append("")
    else:
        lines += ["No ground truth for this image, so no PSNR/SSIM (pick one of the examples to see them).", ""]
    timings = ", ".join(f"{variant} {s:.2f} s" for variant, s in outcome.seconds.items())
    lines.append(f"**Time:** {outcome.total_seconds:.2f} s in all (model: {timings}) on **{outcome.device}**; "
                 f"image {outcome.size[0]}x{outcome.size[1]}.")
    lines += [f"*Note: {note}.*" for note in outcome.notes]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Result files


def results_folder(root: str | Path | None = None) -> Path:
    """A fresh folder for one request's PNGs; folders older than RESULTS_MAX_AGE_S are removed on the way."""
    root = Path(root or Path(tempfile.gettempdir()) / "vitdeblur-app")
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.iterdir():
        if old.is_dir() and now - old.stat().st_mtime > RESULTS_MAX_AGE_S:
            shutil.rmtree(old, ignore_errors=True)
    folder = root / uuid.uuid4().hex
    folder.mkdir()
    return folder


def save_outputs(outcome: Outcome, folder: str | Path) -> dict[str, str]:
    """Write every panel once as PNG (lossless); keys 'blurred', each variant, and 'ground_truth' when present.
    The deblurred files are the full-resolution downloads."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = {"blurred": outcome.blurred, **outcome.restored}
    if outcome.ground_truth is not None:
        images["ground_truth"] = outcome.ground_truth
    paths = {}
    for key, img in images.items():
        suffix = "blurred" if key == "blurred" else "ground_truth" if key == "ground_truth" else f"deblurred_{key}"
        path = folder / f"{outcome.name}_{suffix}.png"
        img.save(path)
        paths[key] = str(path)  # Gradio's file components take str paths
    return paths

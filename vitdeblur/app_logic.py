"""What the Gradio app does, without any UI: choosing checkpoints and the device, loading models lazily, deblurring
with one or both variants, and reporting PSNR/SSIM (against an example's ground truth) and timings.

``app.py`` is a thin layer over this module, so everything here can be tested without a browser or a server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
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

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageOps
from scipy.signal import convolve2d

from vitdeblur.evaluate import psnr, ssim
from vitdeblur.examples import EXAMPLES_DIR, Example, find_example
from vitdeblur.hub import VARIANTS, load_model, resolve_checkpoint
from vitdeblur.images import ImageError, LoadedImage, check_image, check_megapixels, load_image, save_png, to_pil
from vitdeblur.inference import deblur_array, resolve_device, resolve_precision
from vitdeblur.loupe import change_magnitude, opacity, picture
from vitdeblur.synthesis import blur_image, defocus_kernel, line_kernel, motion_kernel

CHOICES = (*VARIANTS, "both")  # the values of the app's variant setting and of its API
# Processing is capped at this many megapixels by default; larger photos are downscaled first (Lanczos), so that a
# photo takes at most the ~15 s a user should wait. Measured through `deblur` + `save_outputs` with both shipped
# (nafnet) checkpoints on 2 idle CPU cores: with fast bf16 (a Xeon with AMX) a 12 MP JPEG with "both" takes 11.4 s at
# full resolution (9.2 s reading and deblurring, 2.1 s writing the three PNGs at zlib level 1); in fp32 on a CPU
# without fast bf16 (a 2-core AMD EPYC without AVX-512, malloc retaining freed memory) it takes 33.9 s, 13.2-14.4 s
# capped at 5 MP (2581x1936) and 14.6-16.3 s at 6 MP.
DEFAULT_MAX_MEGAPIXELS = {"cpu": 12.0, "cpu-fp32": 5.0, "cuda": 12.0}
MAX_MEGAPIXELS_LIMIT = {"cpu": 12.0, "cpu-fp32": 12.0, "cuda": 48.0}  # the most the setting allows
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

# What the variants are, for users who do not know the optimisers: the labels name optimiser and loss, as the study does.
VARIANT_LABELS = {"adam": "Adam + L1 (adam)", "sgd": "SGD + MSE (sgd)"}
VARIANT_EXPLANATION = ("Same model, two training recipes from the study: Adam with an L1 (absolute error) loss, "
                       "or SGD (momentum, per-layer step sizes) with an MSE (squared error) loss that weighs every "
                       "image alike.")
CHOICE_LABELS = [(VARIANT_LABELS["adam"], "adam"), (VARIANT_LABELS["sgd"], "sgd"), ("Both, side by side", "both")]


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
    """Loads each variant's checkpoint on first use and keeps it; safe to share between request threads.
    precision: fp32, bf16 or auto (see inference.resolve_precision); default $VITDEBLUR_PRECISION, else auto."""

    def __init__(self, device: str | None = None, specs: dict[str, str] | None = None, precision: str | None = None):
        self.device = device or str(resolve_device())
        self.precision = precision or os.environ.get("VITDEBLUR_PRECISION", "").strip() or "auto"
        resolve_precision(self.precision, self.device)  # a bad setting fails at start, not on the first request
        self._specs = specs or {}
        self._models: dict[str, torch.nn.Module] = {}
        self._lock = threading.Lock()

    @property
    def speed_kind(self) -> str:
        """Which megapixel defaults apply: 'cuda', 'cpu' (bf16 on a CPU that has it fast) or 'cpu-fp32'."""
        if self.device.startswith("cuda"):
            return "cuda"
        return "cpu" if resolve_precision(self.precision, self.device) == torch.bfloat16 else "cpu-fp32"

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


def is_data_url(source: str | Path) -> bool:
    return str(source).startswith("data:")


def read_input(source: str | Path, max_megapixels: float | None) -> tuple[str, LoadedImage]:
    """(name, image) of a file path or a base64 `data:` URL (the API's inline form), read by the package's reader and
    decoded straight to the processing size."""
    if is_data_url(source):
        return "pasted image", load_image(read_data_url(str(source), max_upload_bytes()), "pasted image",
                                          max_megapixels)
    return Path(source).name, load_image(source, Path(source).name, max_megapixels)


def upload_problem(source: str | Path | None) -> str | None:
    """Why an uploaded file cannot be deblurred, as far as the cheap checks tell (images.check_image: it opens as an
    image, its size is within limits, its structure verifies), or None. The page says so on upload, rather than
    showing a broken preview until Run. A data: URL (a pasted image) is checked when it is read."""
    if source is None or is_data_url(source):
        return None
    try:
        check_image(source, Path(source).name)
    except ImageError as e:
        return str(e)
    return None


BROWSER_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "ICO")  # what every browser shows in an <img>
PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "CMYK")  # CMYK as RGB, which is what the reader makes of it


def browser_preview(source: str | Path | None, root: str | Path | None = None) -> Path | None:
    """For an upload that browsers cannot show (TIFF, PPM, TGA...), a PNG of it in a fresh results_folder(root) to
    stand in for it in the input: upright, and the same pixels as the reader decodes from the original, so nothing is
    lost. None for no upload or a data: URL, for what browsers show, for several frames (the page reports the count),
    for modes PNG cannot hold (32-bit, float) and for what does not open (upload_problem's business)."""
    if source is None or is_data_url(source):
        return None
    try:
        with Image.open(source) as img:
            if img.format in BROWSER_FORMATS or getattr(img, "n_frames", 1) > 1 or img.mode not in PNG_MODES:
                return None
            upright = ImageOps.exif_transpose(img)
            if upright.mode == "CMYK":
                upright = upright.convert("RGB")
            target = results_folder(root) / f"{Path(source).stem}.png"  # a folder only when a PNG is written
            upright.save(target, compress_level=1, icc_profile=img.info.get("icc_profile"))
            return target
    except (OSError, SyntaxError, ValueError):
        return None


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
    name, image = read_input(source, max_megapixels)
    example = None if is_data_url(source) else find_example(Path(source), examples_dir)
    original_size = image.original_size
    truth = _ground_truth(example, max_megapixels, image.size)

    notes = _downscale_notes(original_size, image.size, max_megapixels)
    if image.frames > 1:
        notes.insert(0, f"the image is animated ({image.frames} frames); only its first frame was deblurred")
    if example is not None and truth is None and example.sharp is not None:
        notes.append("the ground truth does not match the input's size, so no metrics")
    return _restore(example.name if example else safe_stem(name), image, truth, variants, models, report,
                    start, original_size, notes)


@dataclass(frozen=True)
class BlurSettings:
    """The blur-your-own-photo settings; every part is optional (0 = off) and they combine."""

    motion_length: float = 0.0  # straight-line motion, pixels
    motion_angle: float = 0.0  # degrees, counter-clockwise from horizontal
    shake: float = 0.0  # extent of a random camera-shake path, pixels
    defocus_radius: float = 0.0  # pixels
    noise: float = 0.0  # Gaussian noise sigma, in 8-bit grey levels
    seed: int = 0  # fixes the shake path and the noise, so the same settings give the same blur

    def describe(self) -> str:
        parts = []
        if self.motion_length >= 1:
            parts.append(f"motion {self.motion_length:g} px at {self.motion_angle:g}°")
        if self.shake >= 1:
            parts.append(f"camera shake {self.shake:g} px (seed {self.seed})")
        if self.defocus_radius >= 0.5:
            parts.append(f"defocus radius {self.defocus_radius:g} px")
        if self.noise > 0:
            parts.append(f"noise sigma {self.noise:g}/255")
        return ", ".join(parts) or "no blur (so this shows what the models do to a sharp photo)"


MAX_BLUR_PX = 64  # the sliders' upper end; longer blur is far outside what the models saw


def blur_kernel(settings: BlurSettings) -> np.ndarray:
    """The one kernel for all the chosen blurs (they are convolved together); [[1]] when none is chosen."""
    for name in ("motion_length", "shake", "defocus_radius"):
        if not 0 <= getattr(settings, name) <= MAX_BLUR_PX:
            raise ValueError(f"{name.replace('_', ' ')} must be between 0 and {MAX_BLUR_PX} px")
    kernel = np.ones((1, 1), np.float32)
    if settings.motion_length >= 1:
        kernel = convolve2d(kernel, line_kernel(settings.motion_length, settings.motion_angle))
    if settings.shake >= 1:
        size = int(round(settings.shake)) | 1
        kernel = convolve2d(kernel, motion_kernel(np.random.default_rng(settings.seed), max(size, 3)))
    if settings.defocus_radius >= 0.5:
        kernel = convolve2d(kernel, defocus_kernel(settings.defocus_radius))
    return (kernel / kernel.sum()).astype(np.float32)


def blur_and_deblur(source: str | Path, choice: str, models: Models, settings: BlurSettings,
                    max_megapixels: float | None = None, progress: ProgressCallback | None = None) -> Outcome:
    """Blur a sharp photo with the package's own synthesis (the photo itself is then the ground truth), deblur it
    and measure PSNR/SSIM. A transparent photo is first laid on white, as a viewer sees it: the blur is defined on
    colours only, and the colours hidden under its transparent pixels are not part of the picture."""
    start = time.perf_counter()
    variants = variants_for(choice)
    check_megapixels(max_megapixels)
    if not 0 <= settings.noise <= 50:
        raise ValueError("noise must be between 0 and 50 grey levels")
    report = progress or (lambda fraction, message: None)
    report(0.0, "reading the image")
    name, sharp = read_input(source, max_megapixels)
    original_size = sharp.original_size
    on_white = sharp.rgb if sharp.alpha is None else sharp.rgb * sharp.alpha[..., None] + 1 - sharp.alpha[..., None]
    sharp = LoadedImage(on_white.astype(np.float32), None, sharp.grayscale)
    report(0.0, "blurring")
    kernel = blur_kernel(settings)
    blurred_rgb = blur_image(sharp.rgb, kernel, settings.noise / 255, np.random.default_rng(settings.seed))
    if sharp.grayscale:  # the noise differs per channel; a grey photo should stay grey
        blurred_rgb = np.repeat(blurred_rgb.mean(axis=2, keepdims=True), 3, axis=2)
    blurred = LoadedImage(blurred_rgb, None, sharp.grayscale)
    notes = [f"blurred here: {settings.describe()}"] + _downscale_notes(original_size, sharp.size, max_megapixels)
    # a blur wider or higher than half the photo leaves colour mush (a 30 px streak over a 40x30 photo), scored as usual
    rows, columns = (np.flatnonzero(kernel.any(axis=axis)) for axis in (1, 0))
    extent = (columns[-1] - columns[0] + 1, rows[-1] - rows[0] + 1)  # the blur's own width and height, in px
    if extent[0] > sharp.size[0] / 2 or extent[1] > sharp.size[1] / 2:
        notes.append(f"the blur ({extent[0]}x{extent[1]} px) spans more than half of this {sharp.size[0]}x"
                     f"{sharp.size[1]} photo: too little of it is left to recover; use a larger photo or less blur")
    return _restore(safe_stem(name), blurred, sharp, variants, models, report, start, original_size, notes)


def _downscale_notes(original_size: tuple[int, int], size: tuple[int, int], max_megapixels: float | None) -> list[str]:
    if size == original_size:
        return []
    return [f"downscaled from {original_size[0]}x{original_size[1]} to {size[0]}x{size[1]} "
            f"(limit {max_megapixels:g} megapixels)"]


def _restore(name: str, image: LoadedImage, truth: LoadedImage | None, variants: list[str], models: Models,
             report: ProgressCallback, start: float, original_size: tuple[int, int], notes: list[str]) -> Outcome:
    """Deblur `image` with each variant, time it and measure PSNR/SSIM against `truth` when there is one."""
    restored, seconds = {}, {}
    for i, variant in enumerate(variants):
        report(i / len(variants), f"loading {variant}")
        model = models.get(variant)

        def tiles_done(done: int, total: int, i=i, variant=variant):
            report((i + done / total) / len(variants), f"deblurring with {variant}: tile {done} of {total}")

        variant_start = time.perf_counter()
        restored[variant] = deblur_array(model, image.rgb, precision=models.precision, progress=tiles_done)
        if models.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds[variant] = time.perf_counter() - variant_start

    metrics = []
    if truth is not None:
        report(1.0, "measuring PSNR and SSIM")
        for label, rgb in [("blurred input", image.rgb)] + [(f"deblurred ({v})", r) for v, r in restored.items()]:
            metrics.append({"image": label, "psnr": psnr(rgb, truth.rgb), "ssim": ssim(rgb, truth.rgb)})
    return Outcome(
        name=name,
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


def _display_label(row_label: str) -> str:
    """'deblurred (adam)' -> 'Adam + L1 (adam)' for the table; the details keep the short, stable labels."""
    for variant, label in VARIANT_LABELS.items():
        if row_label == f"deblurred ({variant})":
            return label
    return row_label


def metrics_markdown(outcome: Outcome) -> str:
    """The report under the panels: PSNR/SSIM with the change against the blurred input and the best value of each
    column marked (when there is ground truth), then timings and device."""
    lines = []
    if outcome.metrics:
        base = outcome.metrics[0]
        best_psnr = max(row["psnr"] for row in outcome.metrics)
        best_ssim = max(row["ssim"] for row in outcome.metrics)

        def cell(value: float, best: float, digits: int) -> str:
            text = f"{value:.{digits}f}"
            return f"**{text}** (best)" if value == best else text

        lines += ["| image | PSNR (dB) | change | SSIM | change |", "|---|---|---|---|---|"]
        for row in outcome.metrics:
            psnr_change = "–" if row is base else f"{row['psnr'] - base['psnr']:+.2f} dB"
            ssim_change = "–" if row is base else f"{row['ssim'] - base['ssim']:+.4f}"
            lines.append(f"| {_display_label(row['image'])} | {cell(row['psnr'], best_psnr, 2)} | {psnr_change} | "
                         f"{cell(row['ssim'], best_ssim, 4)} | {ssim_change} |")
        lines += ["", "*Higher is better for both; change = against the blurred input, measured against the ground "
                      "truth.*", ""]
    else:
        lines += ["No ground truth for this image, so no PSNR/SSIM (pick an example with ground truth, or blur your "
                  "own sharp photo, to see them).", ""]
    timings = ", ".join(f"{variant} {s:.2f} s" for variant, s in outcome.seconds.items())
    lines.append(f"**Time:** {outcome.total_seconds:.2f} s in all (model: {timings}) on **{outcome.device}**; "
                 f"image {outcome.size[0]}x{outcome.size[1]}.")
    lines += [f"*Note: {note}.*" for note in outcome.notes]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Seeing the difference: the detail loupe and the "what changed" heat maps

LOUPE_VIEW_PX = 256  # each loupe crop is shown at this size; the region's side is LOUPE_VIEW_PX / zoom
ZOOMS = (2, 4)


PANORAMA_ASPECT = 2.0  # width / height from which the result panels are laid out wider


def is_panorama(size: tuple[int, int]) -> bool:
    return size[0] >= PANORAMA_ASPECT * size[1]


def loupe_side(size: tuple[int, int], zoom: int) -> int:
    """The side of the loupe's square region for an image of `size` (width, height); never larger than the image."""
    return max(1, min(LOUPE_VIEW_PX // zoom, *size))


def change_heatmaps(blurred, restored: dict[str, object]) -> list[tuple[Image.Image, str]]:
    """One heat map of |deblurred - blurred| per variant, on one shared scale so that the variants compare: black is
    unchanged, bright yellow is the largest change (the 99.5th percentile over all variants, so a few extreme pixels
    do not wash out the rest). Captions give the scale and the mean change in 8-bit grey levels."""
    blurred = picture(blurred)  # converted once for all the variants and the caption's area
    changes = {variant: change_magnitude(blurred, image) for variant, image in restored.items()}
    if not changes:
        return []
    visible = opacity(blurred)  # the mean change is over the visible picture: transparent pixels count as unchanged
    area = next(iter(changes.values())).size if visible is None else max(float(visible.sum()), 1.0)
    top = max(float(np.percentile(np.stack(list(changes.values())), 99.5)), 1 / 255)
    colormap = colormaps["inferno"]
    maps = []
    for variant, change in changes.items():
        rgb = (colormap(np.clip(change / top, 0, 1))[..., :3] * 255 + 0.5).astype(np.uint8)
        maps.append((Image.fromarray(rgb), f"{VARIANT_LABELS.get(variant, variant)}: mean change "
                                           f"{change.sum() / area * 255:.1f}/255 (bright = {top * 255:.0f}/255 or "
                                           f"more)"))
    return maps


# ----------------------------------------------------------------------------------------------------------------
# The training note, from the numbers the checkpoints ship with


def checkpoint_facts(folder: str | Path) -> dict:
    """What a local checkpoint folder says about itself: train_config.json and every metrics-<set>.json (by set);
    empty parts when a file is missing or unreadable (the note then says less rather than failing)."""
    folder = Path(folder)
    facts = {"config": {}, "metrics": {}}
    try:
        facts["config"] = json.loads((folder / "train_config.json").read_text())
    except (OSError, ValueError):
        pass
    for path in sorted(folder.glob("metrics-*.json")):
        try:
            facts["metrics"][path.stem.removeprefix("metrics-")] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return facts


TEST_SET_NAMES = {"gopro": "real blur (GoPro)", "synthetic": "synthetic blur",
                  "examples": "the examples (uniform blur kernels)", "kernels": "random camera-shake kernels"}


def training_note(facts: dict[str, dict]) -> str:
    """The note on what the variants were trained on and how they score, from `checkpoint_facts` per variant."""
    lines = ["**What these models were trained on, and their limits.**"]
    for variant, fact in facts.items():
        config = fact.get("config") or {}
        if not config:
            continue
        start = "ImageNet-pretrained" if config.get("pretrained") else "trained from random init"
        data = ", ".join(f"`{Path(d).name}`" for d in config.get("data", [])) or "unknown data"
        training = (f"{config.get('steps', '?')} steps of batch {config.get('batch_size', '?')} on "
                    f"{config.get('crop', '?')} px crops of {config.get('train_images', '?')} training images "
                    f"({data}), on {config.get('hardware', '?')}")
        if config.get("init"):  # a checkpoint that continued another: its steps are those of its last run only
            previous = f"the previous {variant}" if config["init"] == f"checkpoints/{variant}" else config["init"]
            training = f"its last run {training}, continuing {previous}"
        lines.append(f"- {VARIANT_LABELS.get(variant, variant)}: a `{config.get('backbone', '?')}` encoder ({start}) "
                     f"with a `{config.get('decoder', '?')}` decoder; {training}.")
    rows = []
    for variant, fact in facts.items():
        for test_set, m in fact.get("metrics", {}).items():
            if "psnr" in m and "psnr_blurred" in m:
                name = TEST_SET_NAMES.get(test_set, test_set)
                rows.append(f"| {VARIANT_LABELS.get(variant, variant)} | {name} ({m.get('n', '?')} images) | "
                            f"{m['psnr_blurred']:.2f} → {m['psnr']:.2f} ({m['psnr'] - m['psnr_blurred']:+.2f}) | "
                            f"{m.get('ssim_blurred', float('nan')):.4f} → {m.get('ssim', float('nan')):.4f} |")
    if rows:
        lines += ["", "Held-out test sets, never trained on (blurred input → deblurred; from the checkpoints' "
                      "`metrics-*.json`):", "", "| variant | test set | PSNR (dB) | SSIM |", "|---|---|---|---|", *rows,
                  ""]
    lines.append("Expect little on blur far outside the training data: very long camera shake, heavy noise, low light "
                 "or moving objects. Large photos are downscaled to the megapixel limit first. None of the example "
                 "photos were used in training.")
    return "\n".join(lines)


def local_checkpoint_folder(models: Models, variant: str) -> Path | None:
    """The variant's checkpoint folder when it is on disk (a Hub repo id that is not has no local files)."""
    folder = Path(resolve_checkpoint(models.spec(variant)))
    return folder if folder.is_dir() else None


def document_url(path: Path, app_root: Path) -> str:
    """Where the page links a Markdown file of the app's folder (README, model card): on a Hugging Face Space
    ($SPACE_ID), the Hub's rendered view of it; elsewhere the file itself, relative so that it works behind a proxy
    (the app must allow the path)."""
    space = os.environ.get("SPACE_ID")
    if space:
        try:
            return f"https://huggingface.co/spaces/{space}/blob/main/{path.resolve().relative_to(app_root.resolve())}"
        except ValueError:  # not in the Space's repository
            pass
    return f"gradio_api/file={path}"


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


def examples_cache_folder(checkpoint_specs: list[str], settings: str, code_files: list[Path],
                          root: str | Path | None = None) -> Path:
    """Where Gradio caches the examples' results: a folder named by a digest of everything the results depend on
    (the checkpoints' files, the settings such as the megapixel limit and precision, the code), so a retrained
    checkpoint or changed code never shows stale results."""
    digest = hashlib.sha256(settings.encode())
    for spec in checkpoint_specs:
        digest.update(spec.encode())
        folder = Path(resolve_checkpoint(spec))
        for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("config.json")):
            digest.update(path.read_bytes())
    for path in code_files:
        digest.update(Path(path).read_bytes())
    root = Path(root or Path(tempfile.gettempdir()) / "vitdeblur-examples-cache")
    return root / digest.hexdigest()[:16]


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
        save_png(img, path, overwrite=True)
        paths[key] = str(path)  # Gradio's file components take str paths
    return paths

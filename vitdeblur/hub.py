"""Checkpoint folders in the Hugging Face Hub layout: saving, strict loading, clear errors and model cards.

A checkpoint is a folder (local, or a Hub repo) holding ``config.json`` (a ViTDeblurConfig) and
``model.safetensors`` -- or shards ``model-0000X-of-0000N.safetensors`` plus ``model.safetensors.index.json``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import httpx2
import torch
from huggingface_hub import (
    EvalResult,
    ModelCard,
    ModelCardData,
    PyTorchModelHubMixin,
    load_torch_model,
    save_torch_state_dict,
    snapshot_download,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from safetensors import SafetensorError

from vitdeblur.evaluate import METRIC_DEFINITION
from vitdeblur.model import ViTDeblur, ViTDeblurConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DIR = PROJECT_ROOT / "checkpoints"
VARIANTS = ("adam", "sgd")
MAX_SHARD_SIZE = "15MB"  # keeps every file under the 16 MiB that some transfers (and git hosts) accept comfortably
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the problem and, when offline, the fallback."""


def resolve_checkpoint(spec: str | os.PathLike) -> str:
    """A shipped variant name ('adam', 'sgd') -> its folder in checkpoints/; folders and repo ids pass through."""
    spec = str(spec)
    if spec in VARIANTS and not Path(spec).exists():
        return str(SHIPPED_DIR / spec)
    return spec


def load_model(spec: str | os.PathLike, device: str | torch.device = "cpu", **kwargs):
    """Load a checkpoint folder, a Hub repo id or a shipped variant name, ready for inference on `device`."""
    return ViTDeblur.from_pretrained(resolve_checkpoint(spec), **kwargs).to(device).eval()


@contextlib.contextmanager
def clear_errors(name: str):
    """Turn the Hub's and safetensors' exceptions into one CheckpointError with a message a user can act on."""
    offline_hint = f"offline, use a shipped checkpoint instead: {', '.join(str(SHIPPED_DIR / v) for v in VARIANTS)}"
    as_repo = f"{name}: no such local folder; as a Hub repo id"
    try:
        yield
    except CheckpointError:
        raise
    except json.JSONDecodeError as e:  # the Hub mixin reads config.json without saying which file failed
        raise CheckpointError(f"{Path(name) / 'config.json'}: not valid JSON ({e})") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, httpx2.TransportError) as e:
        raise CheckpointError(f"{as_repo}, it cannot be downloaded and is not in the local cache "
                              f"({type(e).__name__}); {offline_hint}") from None
    except RepositoryNotFoundError:
        raise CheckpointError(f"{as_repo}, no such model on the Hub (or it is private: set HF_TOKEN)") from None
    except HFValidationError:
        raise CheckpointError(f"{name}: no such checkpoint folder, and not a valid Hub repo id (OWNER/NAME)") from None
    except HfHubHTTPError as e:  # bad token, rate limit, server error, unknown revision...
        raise CheckpointError(f"{as_repo}, the Hub refused it: {str(e).splitlines()[0]}") from None


def save_weights(model: torch.nn.Module, folder: str | os.PathLike, max_shard_size: str = MAX_SHARD_SIZE) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    save_torch_state_dict(model.state_dict(), folder, max_shard_size=max_shard_size)


def save_checkpoint(model, folder: str | os.PathLike, half: bool = False, training: dict | None = None,
                    evaluations: list[dict] | None = None, files: Iterable[str | os.PathLike] = ()) -> Path:
    """Write a checkpoint folder, ready to ship or upload: config.json, safetensors weights (fp16 with half=True),
    the model card made from the run's `training` facts and `evaluations` (see model_card), and copies of `files`
    (train_config.json, metrics, loss curves...)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    to_save = copy.deepcopy(model).half() if half else model
    to_save.save_pretrained(folder)
    model_card(model.config, evaluations, training).save(folder / "README.md")  # the mixin keeps an old card
    for f in files:
        shutil.copy2(f, folder / Path(f).name)
    return folder


def _weights_folder(model_id: str, **download_options) -> Path:
    if os.path.isdir(model_id):
        return Path(model_id)
    return Path(snapshot_download(model_id, allow_patterns=["*.json", "*.safetensors", "*.md"], **download_options))


def load_weights(cls, model_id: str, config: ViTDeblurConfig | dict | None = None, map_location: str = "cpu",
                 **download_options):
    """Build the model from its config and load the safetensors weights strictly (every key, every shape)."""
    folder = _weights_folder(model_id, **download_options)
    files = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    if not any(f.endswith(".safetensors") for f in files):
        pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
        if pickles:
            raise CheckpointError(f"{model_id}: holds pickle weights ({', '.join(pickles)}), which can run code when "
                                  "loaded; ViTDeblur loads safetensors only")
        raise CheckpointError(f"{model_id}: no model.safetensors in the checkpoint folder")
    if config is None:
        raise CheckpointError(f"{model_id}: no config.json in the checkpoint folder")
    try:
        if not dataclasses.is_dataclass(config):
            config = ViTDeblurConfig(**config)
        # Weights come from the checkpoint, so never download or read ImageNet weights while building.
        model = cls(dataclasses.replace(config, pretrained=False, pretrained_file=None))
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{model_id}: config.json does not describe a ViTDeblur model ({e})") from None
    try:
        load_torch_model(model, folder, strict=True, safe=True, map_location=map_location)
    except (SafetensorError, ValueError) as e:  # huggingface_hub re-raises a bad header as ValueError
        raise CheckpointError(f"{model_id}: the safetensors weights are corrupt or truncated ({e.__cause__ or e})") from None
    except RuntimeError as e:
        first_lines = "; ".join(str(e).strip().splitlines()[:3])
        raise CheckpointError(f"{model_id}: the weights do not match config.json ({first_lines})") from None
    return model


REALISTIC_BLUR = ("non-uniform camera shake, motion and defocus of 0.5-32 px, unblurred pairs, highlights, noise "
                  "and JPEG")
KERNELS_BLUR = "uniform motion and defocus kernels of 7-41 px with noise"
BLUR_TEXT = {  # a recipe's `blur` mix (vitdeblur.synthesis.BLURS) in words
    "realistic": REALISTIC_BLUR,
    "kernels": KERNELS_BLUR,
    "mixed": f"half {REALISTIC_BLUR}; half {KERNELS_BLUR}",
    "moving": f"half {REALISTIC_BLUR}, a third of its shaken pairs with a moving object; half {KERNELS_BLUR}",
    "mixed-smooth": f"half {REALISTIC_BLUR}, the shake along smooth camera paths; half {KERNELS_BLUR}",
}


def model_card(config, evaluations: list[dict] | None = None, training: dict | None = None) -> ModelCard:
    """The model card (README.md with YAML metadata) for a checkpoint: architecture, recipe, data, results, limits.

    evaluations: JSON objects written by `python -m vitdeblur evaluate --json`, one per test set.
    training: the resolved training config plus run facts (steps, hardware, minutes), as written by `python -m train`.
    """
    evaluations = evaluations or []
    training = training or {}
    eval_results = []
    for ev in evaluations:
        for metric in ("psnr", "ssim"):
            eval_results.append(EvalResult(
                task_type="image-to-image", task_name="Image deblurring", dataset_type="custom",
                dataset_name=ev.get("dataset", ev.get("data", "test set")), dataset_split=ev.get("split"),
                metric_type=metric, metric_name=metric.upper(), metric_value=round(float(ev[metric]), 4),
                metric_config=f"{metric}_blurred_input={float(ev[metric + '_blurred']):.4f}",
                metric_args={"definition": METRIC_DEFINITION}))
    name = training.get("name") or f"vitdeblur-{config.decoder}-{config.backbone}"
    card_data = ModelCardData(
        model_name=name, library_name="vitdeblur", license="mit", pipeline_tag="image-to-image",
        tags=["image-deblurring", "vision-transformer", "image-restoration", "pytorch_model_hub_mixin"],
        eval_results=eval_results or None, metrics=["psnr", "ssim"])
    pretrained = config.pretrained or bool(config.pretrained_file) or training.get("pretrained", False)
    decoder_text = {
        "paper": "the study's ViTDecoder: ViT tokens added to the 16x16-patched blurred image, five bilinear-upsampling "
                 "+ 1x1-conv blocks, the full-scale blurred image added back, then 1x1 conv + GELU decoding blocks",
        "residual": f"a small U-Net decoder (width {config.decoder_width}): 3x3 convolutions with skips from a "
                    "full-resolution CNN stem, ViT tokens entering at 1/16 scale, and a global residual "
                    "(output = input + predicted residual, identity at initialisation)",
        "nafnet": f"a NAFNet-style U-Net decoder (width {config.decoder_width}): a pixel-unshuffle stem, gated and "
                  "normalised NAF blocks at 1/2 to 1/8 scale, ViT tokens entering at 1/16 scale "
                  f"({config.middle_blocks} NAF blocks there), and a global residual "
                  "(output = input + predicted residual, identity at initialisation)",
    }[config.decoder]
    lines = [
        f"# {name}",
        "",
        "Image deblurring with a Vision Transformer encoder and a CNN decoder, after the 2024 study "
        "*Exploring Image Restoration Techniques: The Application of ViTDeblur*. Code, app and training kit: "
        "the ViTDeblur project.",
        "",
        "## Architecture",
        f"- Encoder: timm `{config.backbone}`"
        f"{f', its first {config.encoder_depth} transformer blocks' if config.encoder_depth else ''} "
        f"({'ImageNet-pretrained' if pretrained else 'trained from random init, not ImageNet-pretrained'}).",
        f"- Decoder: {decoder_text}.",
        f"- Any input size: inputs are reflect-padded to a multiple of 16; large images run in {config.tile_size}px "
        f"tiles with {config.tile_overlap}px feathered overlaps.",
        "",
        "## Usage",
        "```python",
        "from vitdeblur import load_model, deblur_image",
        "model = load_model('OWNER/REPO')  # or a local folder, or 'adam' / 'sgd' for the shipped checkpoints",
        "deblur_image(model, 'blurred.jpg').save('deblurred.png')",
        "```",
        "",
    ]
    if training:
        lines += ["## Training", ""]
        facts = [("recipe", "recipe" if "recipe" in training else "name"), ("loss", "loss"),
                 ("optimizer", "optimizer"), ("learning rate", "lr"), ("momentum", "momentum"),
                 ("LARS trust", "lars_trust"),
                 ("schedule", "schedule"), ("batch size", "batch_size"), ("crop", "crop"), ("steps", "steps"),
                 ("EMA decay", "ema_decay"), ("data", "data"), ("synthetic blur", "blur"),
                 ("validation (never trained on)", "val_data"),
                 ("started from", "init"), ("hardware", "hardware"),
                 ("training time (minutes)", "minutes")]
        for label, key in facts:
            value = training.get(key)
            if isinstance(value, list):
                value = ", ".join(Path(v).name for v in value)
            if value not in (None, "") and value != 0:  # 0: an option that is off (momentum, LARS, EMA)
                lines.append(f"- {label}: {value}")
        lines.append("")
    if evaluations:
        lines += ["## Results", "", METRIC_DEFINITION + ".", "",
                  "| test set | images | PSNR blurred | PSNR deblurred | SSIM blurred | SSIM deblurred | s/image |",
                  "|---|---|---|---|---|---|---|"]
        for ev in evaluations:
            lines.append(f"| {ev.get('dataset', ev.get('data'))} ({ev.get('split', '')}) | {ev['n']} | "
                         f"{ev['psnr_blurred']:.2f} | {ev['psnr']:.2f} | {ev['ssim_blurred']:.4f} | {ev['ssim']:.4f} | "
                         f"{ev['seconds_per_image']:.2f} ({ev.get('device', '')}) |")
        lines.append("")
    data = ", ".join(Path(d).name for d in training.get("data", [])) or "the data listed under Training"
    blur = training.get("blur", "realistic")
    lines += [
        "## Limitations",
        f"- Trained only on {data} (images in a `sharp` layout get the project's synthetic blur: "
        f"{BLUR_TEXT.get(blur, blur)}); expect little on blur far outside that (very large motion, heavy noise, "
        f"low light{'' if blur == 'moving' else ', moving objects'}).",
        "- " + ("The encoder started from random init: ImageNet weights could not be used where it was trained."
                if not pretrained else "The encoder started from timm's ImageNet weights."),
        "- PSNR here is not comparable with the ~48 dB the study reports: that figure is not reproducible with "
        "the standard definition above on pixel-aligned pairs.",
        "",
    ]
    return ModelCard.from_template(card_data, template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(lines))


def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs):
    """Load strictly from a checkpoint folder or a Hub repo id; failures raise CheckpointError."""
    with clear_errors(str(pretrained_model_name_or_path)):
        return PyTorchModelHubMixin.from_pretrained.__func__(cls, pretrained_model_name_or_path, **kwargs)


def generate_model_card(model, *args, **kwargs) -> ModelCard:
    return model_card(model.config)


# The Hub mixin's hooks are set here rather than in the model class, so that the model never imports this module:
# save_pretrained, from_pretrained and push_to_hub write and read the folder format above, with our model card.
ViTDeblur._save_pretrained = save_weights
ViTDeblur._from_pretrained = classmethod(load_weights)
ViTDeblur.from_pretrained = classmethod(from_pretrained)
ViTDeblur.generate_model_card = generate_model_card

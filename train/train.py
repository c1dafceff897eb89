"""Train a ViTDeblur model: `python -m train --recipe adam --data PATH --out runs/NAME`.

CPU or CUDA (bf16 autocast), several GPUs with `torchrun --nproc_per_node N -m train ...` (DDP), resumable with
`--resume` (the whole training state is replaced atomically after every epoch).

Writes to --out: train_config.json (the resolved recipe and run facts), log.csv (per-epoch train/val loss and val
PSNR), loss_curve.png, train_state.pt (for --resume), last/ and best/ (Hub-format checkpoint folders; best = highest
val PSNR).
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import json
import math
import os
import pickle
import platform
import time
import typing
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader, RandomSampler
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from train.device_data import DeviceBatches
from train.recipes import CHOICES, RECIPES, Recipe
from vitdeblur.data import LAYOUTS, BadImagesError, load_dataset
from vitdeblur.evaluate import psnr
from vitdeblur.hub import load_model, save_checkpoint
from vitdeblur.inference import resolve_device, resolve_precision
from vitdeblur.model import ViTDeblur, ViTDeblurConfig
from vitdeblur.synthesis import BLURS

LOG_FIELDS = ["epoch", "step", "lr", "train_loss", "val_loss", "val_psnr", "val_psnr_blurred", "minutes"]
# The recipe fields that configure the model (backbone, decoder...): those it shares with ViTDeblurConfig.
MODEL_FIELDS = [f.name for f in dataclasses.fields(ViTDeblurConfig) if f.name in Recipe.__dataclass_fields__]


class TrainingDiverged(RuntimeError):
    pass


def recipe_flag(field_name: str) -> str:
    """The `python -m train` flag that overrides a Recipe field."""
    return "--" + field_name.replace("_", "-")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    p.add_argument("--data", required=True, action="append",
                   help="dataset folder; give it several times to mix sources (e.g. sharp photos + real pairs)")
    p.add_argument("--val-data", action="append", default=[],
                   help="a dataset used whole for validation and never trained on (e.g. real pairs of a scene "
                        "unlike the training data); repeatable. The best checkpoint has the highest mean PSNR "
                        "over the validation sets")
    p.add_argument("--layout", default="auto", choices=LAYOUTS, help="layout of every --data folder (default: detect)")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/adam")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its train_state.pt")
    p.add_argument("--init", help="start from the weights (and architecture) of a checkpoint, e.g. checkpoints/adam; "
                                  "a larger --encoder-depth or --middle-blocks grows it by new blocks that start as the "
                                  "identity")
    p.add_argument("--workers", type=int, default=None, help="data-loading processes (default: 0 on CPU, 4 on CUDA)")
    p.add_argument("--device-data", action=argparse.BooleanOptionalAction, default=None,
                   help="hold the data in device memory and blur batches there (default: on with CUDA)")
    p.add_argument("--max-minutes", type=float, help="stop (and save) once training has run this long")
    p.add_argument("--fit-schedule", action="store_true",
                   help="with --max-minutes and the cosine schedule: end the schedule when the minutes run out, "
                        "re-planned after every epoch from the run's speed so far (validation included), so that "
                        "a run stopped by time has annealed its learning rate rather than stopping at its peak")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="leave out unreadable or too small images (with a warning) instead of stopping; every image "
                        "is checked before training starts")
    p.add_argument("--seed", type=int, default=0)
    overrides = p.add_argument_group("recipe overrides", "each replaces one field of the --recipe (train/recipes.py)")
    types = typing.get_type_hints(Recipe)
    for field in dataclasses.fields(Recipe):
        if field.name == "name":
            continue
        flag = recipe_flag(field.name)
        if types[field.name] is bool:
            overrides.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            value_type = typing.get_args(types[field.name])[:1] or [types[field.name]]  # `int | None` takes an int
            overrides.add_argument(flag, type=value_type[0], choices=CHOICES.get(field.name))
    return p.parse_args(argv)


def resolve_recipe(args: argparse.Namespace, resumed: dict | None = None) -> Recipe:
    """The --recipe with the flags given. Resuming, the run's own recipe (`resumed`: its train_config.json) with the
    flags given again, so that resuming without repeating them changes neither the crop, blur nor schedule."""
    if resumed and resumed.get("name", args.recipe) != args.recipe:
        raise SystemExit(f"error: cannot resume: the run in {args.out} used --recipe {resumed['name']}, "
                         f"not {args.recipe}")
    # fields a recipe gained after the run began keep their defaults
    saved = {f.name: resumed[f.name] for f in dataclasses.fields(Recipe) if f.name in resumed and f.name != "name"
             } if resumed else {}
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)
                 if f.name != "name" and getattr(args, f.name, None) is not None}
    try:  # the recipe checks its own fields (__post_init__), given as flags or saved by the run being resumed
        return dataclasses.replace(RECIPES[args.recipe], **{**saved, **overrides})
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def resumed_facts(args: argparse.Namespace) -> dict | None:
    """With --resume, the facts the run in --out saved (train_config.json), or None before its first epoch."""
    path = Path(args.out) / "train_config.json"
    if not args.resume or not path.exists():
        return None
    try:
        facts = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SystemExit(f"error: cannot resume: {path} is unreadable ({e})") from None
    if not isinstance(facts, dict):
        raise SystemExit(f"error: cannot resume: {path} does not hold a run's settings")
    return facts


def lr_factor(recipe: Recipe, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at an optimiser step."""
    if recipe.schedule == "step":
        return recipe.gamma ** ((step // steps_per_epoch) // recipe.step_size)
    if step < recipe.warmup_steps:
        return (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, total_steps - recipe.warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def laplacian(x: torch.Tensor) -> torch.Tensor:
    kernel = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=x.dtype, device=x.device)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel.expand(3, 1, 3, 3), groups=3)


# relative-mse: the blurred input's MSE is floored here (40 dB), so that an unblurred pair does not divide by zero
RELATIVE_MSE_FLOOR = 1e-4


def compute_loss(recipe: Recipe, output: torch.Tensor, target: torch.Tensor, blurred: torch.Tensor) -> torch.Tensor:
    if recipe.loss == "l1":
        loss = F.l1_loss(output, target)
    elif recipe.loss == "mse":
        loss = F.mse_loss(output, target)
    elif recipe.loss == "relative-mse":
        # Each image's MSE over its blurred input's: every image weighs alike (plain MSE is dominated by the strongly
        # blurred ones and trades many dB on lightly blurred images for a little on those); ~ the mean dB gain.
        per_image = (output - target).pow(2).flatten(1).mean(1)
        baseline = (blurred - target).pow(2).flatten(1).mean(1).clamp(min=RELATIVE_MSE_FLOOR)
        loss = (per_image / baseline).mean()
    elif recipe.loss == "charbonnier":
        loss = torch.sqrt((output - target) ** 2 + 1e-6).mean()
    else:
        raise ValueError(f"unknown loss {recipe.loss!r}")
    if recipe.edge_loss_weight:
        loss = loss + recipe.edge_loss_weight * torch.sqrt((laplacian(output) - laplacian(target)) ** 2 + 1e-6).mean()
    if recipe.fft_loss_weight:
        difference = torch.fft.rfft2(output, norm="ortho") - torch.fft.rfft2(target, norm="ortho")
        loss = loss + recipe.fft_loss_weight * torch.view_as_real(difference).abs().mean()
    return loss


def amp_dtype(recipe: Recipe, device: torch.device) -> torch.dtype | None:
    """'auto' decides as inference does (resolve_precision): bf16 on GPUs that have it, else fp16; on CPUs bf16 only
    with fast bf16 instructions. Without them (a 2-core AMD EPYC, no AVX-512) a bf16 step took 21 s against 1.6 s."""
    if recipe.amp == "auto":
        return resolve_precision("auto", device)
    return {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}[recipe.amp]


class LARS(torch.optim.SGD):
    """SGD whose step for each weight matrix or kernel is rescaled to `trust` x ||w|| / ||g|| (LARS, You et al. 2017).
    This model's MSE gradients differ about a thousandfold in scale between its head and its blocks, so one plain
    learning rate either throws the head about or leaves the blocks still. Vectors (biases, norms) and tensors that
    are still zero take the plain SGD step."""

    def __init__(self, params, trust: float, **kwargs):
        super().__init__(params, **kwargs)
        self.trust = trust

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.ndim > 1:
                    weight_norm, grad_norm = p.norm(), p.grad.norm()
                    if weight_norm > 0 and grad_norm > 0:
                        p.grad.mul_(self.trust * weight_norm / grad_norm)
        return super().step(closure)


def make_optimizer(recipe: Recipe, model: torch.nn.Module) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    options = dict(lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    if recipe.lars_trust:
        return LARS(model.parameters(), trust=recipe.lars_trust, **options)
    return torch.optim.SGD(model.parameters(), **options)


def train_step(model, optimizer, recipe: Recipe, blur: torch.Tensor, sharp: torch.Tensor, dtype: torch.dtype | None,
               scaler: torch.amp.GradScaler | None = None) -> float:
    """One optimiser step (autocast forward, loss in fp32, optional gradient clipping); returns the loss."""
    scaler = scaler or torch.amp.GradScaler(enabled=False)
    with torch.autocast(blur.device.type, dtype=dtype, enabled=dtype is not None):
        output = model(blur)
    loss = compute_loss(recipe, output.float(), sharp, blur)
    if not torch.isfinite(loss):
        return loss.item()
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if recipe.grad_clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return loss.item()


def steps_in_budget(steps_done: int, minutes_spent: float, max_minutes: float, planned: int) -> int:
    """The optimiser steps a run can make in `max_minutes` at its speed so far (validation included): at most
    `planned`, never fewer than it has made, and `planned` until it has a speed."""
    if steps_done == 0 or minutes_spent <= 0:
        return planned
    steps_left = int((max_minutes - minutes_spent) * steps_done / minutes_spent)
    return max(steps_done, min(planned, steps_done + steps_left))


def shared_int(value: int, device: torch.device, distributed: bool) -> int:
    """The main process's value, in every process (under DDP all must follow one schedule)."""
    if not distributed:
        return value
    tensor = torch.tensor(value, device=device)
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def out_of_time(local_verdict: bool, device: torch.device, distributed: bool) -> bool:
    """Whether to stop for time; under DDP every process stops at the same step (or the others would hang)."""
    if not distributed:
        return local_verdict
    flag = torch.tensor(float(local_verdict), device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def build_model(recipe: Recipe, init: str | None, encoder_depth: int | None = None,
                middle_blocks: int | None = None) -> ViTDeblur:
    """A new model from the recipe, or the checkpoint `init`; given more ViT blocks (`encoder_depth`) or NAF blocks at
    1/16 scale (`middle_blocks`) than the checkpoint has, the checkpoint grown to them (grow)."""
    if not init:
        return ViTDeblur(ViTDeblurConfig(**{name: getattr(recipe, name) for name in MODEL_FIELDS}))
    model = load_model(init)
    sizes = {"encoder_depth": (encoder_depth, len(model.encoder.blocks)),
             "middle_blocks": (middle_blocks, model.config.middle_blocks)}
    asked = {name: new for name, (new, old) in sizes.items() if new is not None and new != old}
    if not asked:
        return model
    for name, new in asked.items():
        old = sizes[name][1]
        if new < old:
            raise SystemExit(f"error: {recipe_flag(name)} {new}: the checkpoint has {old}, and a continued run can add "
                             f"blocks but not drop trained ones")
    if recipe.lars_trust:  # round 10: sgd-grown's new blocks were still zero after 780 steps
        raise SystemExit(f"error: {recipe_flag(next(iter(asked)))} cannot grow a model trained with LARS "
                         f"(--lars-trust > 0): LARS scales each step to the weights' norm, so the new blocks' zero "
                         f"weights would stay zero")
    return grow(model, **asked)


def grow(model: ViTDeblur, **sizes) -> ViTDeblur:
    """The model with more ViT blocks (`encoder_depth`) or NAF blocks at 1/16 scale (`middle_blocks`): its own, then
    new ones whose residual branches end in zeros, so that the grown model computes exactly what the trained one did
    and training adds capacity from there."""
    if "middle_blocks" in sizes and model.config.decoder != "nafnet":
        raise SystemExit(f"error: --middle-blocks needs the nafnet decoder, the checkpoint's is {model.config.decoder}")
    try:
        grown = ViTDeblur(dataclasses.replace(model.config, **sizes))
    except ValueError as e:
        raise SystemExit(f"error: {' '.join(f'{recipe_flag(k)} {v}' for k, v in sizes.items())}: {e}") from None
    old_counts = {"encoder.blocks": len(model.encoder.blocks), "decoder.middle": model.config.middle_blocks}

    def is_new(name: str) -> bool:
        prefix = ".".join(name.split(".")[:2])
        return prefix in old_counts and int(name.split(".")[2]) >= old_counts[prefix]

    new_names = {name for name in grown.state_dict() if is_new(name)}
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or set(missing) != new_names:  # only the new blocks may lack weights
        raise SystemExit(f"error: the checkpoint does not fit its own architecture grown to {sizes} "
                         f"(missing {sorted(set(missing) - new_names)[:5]}, unexpected {unexpected[:5]})")
    with torch.no_grad():
        for block in grown.encoder.blocks[old_counts["encoder.blocks"]:]:
            for layer in (block.attn.proj, block.mlp.fc2):
                layer.weight.zero_()
                layer.bias.zero_()
        if model.config.decoder == "nafnet":
            for block in grown.decoder.middle[old_counts["decoder.middle"]:]:  # zero branch scales: the identity
                block.beta.zero_()
                block.gamma.zero_()
    return grown


@torch.no_grad()
def validate(model, datasets, recipe: Recipe, device, dtype, names: list[str] | None = None) -> dict:
    """Loss and PSNR on the validation sets. `val_psnr` is the mean of the per-set means, so a small real-blur set
    counts as much as a larger synthetic one; with `names`, each set's PSNR (and its blurred input's) is added too."""
    model.eval()
    losses, set_psnrs, set_psnrs_blurred, row = [], [], [], {}
    for index, dataset in enumerate(datasets):
        psnrs, psnrs_blurred = [], []
        for i in range(len(dataset)):
            blur, sharp = (t.unsqueeze(0).to(device) for t in dataset[i])
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                out = model(blur)
            out = out.float()
            losses.append(compute_loss(recipe, out, sharp, blur).item())
            to_np = lambda t: t[0].permute(1, 2, 0).cpu().numpy()  # noqa: E731
            psnrs.append(psnr(to_np(out), to_np(sharp)))
            psnrs_blurred.append(psnr(to_np(blur), to_np(sharp)))
        set_psnrs.append(float(np.mean(psnrs)))
        set_psnrs_blurred.append(float(np.mean(psnrs_blurred)))
        if names:
            row[f"{names[index]}_psnr"], row[f"{names[index]}_psnr_blurred"] = set_psnrs[-1], set_psnrs_blurred[-1]
    model.train()
    return {"val_loss": float(np.mean(losses)), "val_psnr": float(np.mean(set_psnrs)),
            "val_psnr_blurred": float(np.mean(set_psnrs_blurred)), **row}


def training_sets(args: argparse.Namespace, recipe: Recipe) -> list:
    """The train split of every --data folder; sharp photos get the recipe's synthetic blur mix."""
    return [load_dataset(d, "train", train=True, layout=args.layout, crop=recipe.crop,
                         skip_bad_images=args.skip_bad_images, blur_spec=BLURS[recipe.blur],
                         min_scale=recipe.min_scale, max_scale=recipe.max_scale) for d in args.data]


def validation_sets(args: argparse.Namespace, recipe: Recipe) -> tuple[list, list[str]]:
    """The val split of every --data folder, and every --val-data folder whole; with a short name for each."""
    trained_on = {Path(d).resolve() for d in args.data}
    if overlap := [d for d in args.val_data if Path(d).resolve() in trained_on]:
        raise SystemExit(f"error: {overlap[0]} is given as --data and as --val-data; held-out validation must never "
                         "be trained on")
    # The realistic mix whatever the recipe trains on, so runs with different blur mixes compare on the same pairs.
    options = dict(train=False, layout=args.layout, crop=recipe.val_crop, skip_bad_images=args.skip_bad_images)
    sets = [load_dataset(d, "val", variants=recipe.val_variants, **options) for d in args.data]
    sets += [load_dataset(d, "all", **options) for d in args.val_data]
    names = [f"val_{Path(d).name}" for d in args.data] + [f"heldout_{Path(d).name}" for d in args.val_data]
    return sets, names


def log_fields(val_names: list[str]) -> list[str]:
    return LOG_FIELDS + [f"{name}{suffix}" for name in val_names for suffix in ("_psnr", "_psnr_blurred")]


def plot_curves(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epochs = [int(r["epoch"]) for r in rows]
    fig, (ax_loss, ax_psnr) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [float(r["train_loss"]) for r in rows], label="train")
    ax_loss.plot(epochs, [float(r["val_loss"]) for r in rows], label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_loss.legend()
    # Gain over the blurred input, per validation set and their mean (what picks the best checkpoint)
    sets = ["val"] + [k[:-len("_psnr")] for k in rows[0] if k.endswith("_psnr") and k != "val_psnr"]
    for name in sets:
        gains = [float(r[f"{name}_psnr"]) - float(r[f"{name}_psnr_blurred"]) for r in rows]
        ax_psnr.plot(epochs, gains, label="mean of the sets" if name == "val" else name, lw=2 if name == "val" else 1)
    ax_psnr.axhline(0, color="gray", ls="--", lw=1)
    ax_psnr.set(xlabel="epoch", ylabel="PSNR gain over the blurred input (dB)", title="Validation")
    ax_psnr.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        count = dist.get_world_size() if dist.is_initialized() else 1
        return f"{count}x {torch.cuda.get_device_name(device)}"
    threads = torch.get_num_threads()
    return f"CPU ({platform.processor() or platform.machine()}, {threads} thread{'s' if threads > 1 else ''})"


def atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # an interrupted save never leaves a half-written state behind


class WeightEMA:
    """An exponential moving average of a model's weights. With `warmup` the decay warms up as min(decay, (1 + n) /
    (10 + n)) after n updates, so that in a short run the average is not dominated by the random initial weights.
    Without it (a run that continues trained weights) the average starts at those weights at the full decay."""

    def __init__(self, model: torch.nn.Module, decay: float, warmup: bool = True):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.warmup, self.updates = decay, warmup, 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.warmup else self.decay
        for average, current in zip(self.module.state_dict().values(), model.state_dict().values()):
            if average.dtype.is_floating_point:
                average.lerp_(current, 1 - decay)
            else:
                average.copy_(current)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates, "warmup": self.warmup}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates, self.warmup = state["updates"], state.get("warmup", True)  # runs saved before it was kept


@dataclasses.dataclass
class Progress:
    """Where a run stands; saved in train_state.pt beside the model, optimiser and scheduler states."""

    step: int = 0
    epoch: int = 0
    best_psnr: float = -math.inf
    minutes: float = 0.0


def setup_distributed() -> tuple[int, int, bool]:
    """(rank, local rank, distributed): one process per GPU under torchrun, else a single process."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)), True
    return 0, 0, False


def training_device(name: str, local_rank: int) -> torch.device:
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)  # one GPU per process under torchrun
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def build_loader(args, recipe: Recipe, train_sets: list, device: torch.device, device_data: bool, rank: int,
                 distributed: bool):
    """One epoch of training batches, each process drawing its share: blurred on the device (DeviceBatches) or read
    by a DataLoader."""
    train_set = ConcatDataset(train_sets)
    world_size = dist.get_world_size() if distributed else 1
    if device_data:
        steps = (recipe.samples_per_epoch or len(train_set)) // world_size // recipe.batch_size
        return DeviceBatches(train_sets, recipe.batch_size, recipe.crop, steps, device, seed=args.seed + rank)
    if recipe.samples_per_epoch:  # random crops with replacement
        sampler = RandomSampler(train_set, replacement=True, num_samples=recipe.samples_per_epoch // world_size,
                                generator=torch.Generator().manual_seed(args.seed + rank))
    elif distributed:  # every image once per epoch, split across processes
        sampler = DistributedSampler(train_set, shuffle=True, seed=args.seed)
    else:
        sampler = RandomSampler(train_set)
    workers = args.workers if args.workers is not None else (4 if device.type == "cuda" else 0)
    return DataLoader(train_set, batch_size=recipe.batch_size, sampler=sampler, num_workers=workers,
                      drop_last=True, pin_memory=device.type == "cuda", persistent_workers=workers > 0)


def restore_state(out: Path, resume: bool, model, ema, optimizer, scheduler, device, main_process: bool,
                  fields: list[str]) -> Progress:
    """A fresh start, or the saved state of the run in `out` with --resume; never overwrites a run by accident."""
    state_path = out / "train_state.pt"
    if not resume:
        if state_path.exists():
            raise SystemExit(f"error: {out} already holds a run; add --resume to continue it, or choose another --out")
        return Progress()
    if not state_path.exists():
        raise SystemExit(f"error: --resume given but {state_path} does not exist")
    try:
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        if ema:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        progress = Progress(**{f.name: state[f.name] for f in dataclasses.fields(Progress)})
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SystemExit(f"error: cannot resume from {state_path}: it is corrupt or from a different model or "
                         f"recipe ({reason}); its last/ and best/ checkpoints can start a new run with --init"
                         ) from None
    if main_process:
        trim_log(out / "log.csv", progress.epoch, fields)
        print(f"resumed from {state_path}: epoch {progress.epoch}, step {progress.step}")
    return progress


def trim_log(log_path: Path, epoch: int, fields: list[str]) -> None:
    """Drop the rows logged after the saved state, if any."""
    if not log_path.exists():
        return
    with open(log_path) as f:
        reader = csv.DictReader(f)
        if reader.fieldnames and reader.fieldnames != fields:
            raise SystemExit(f"error: cannot resume: {log_path} has the columns of other validation sets; resume "
                             "with the same --data and --val-data as the run began with")
        rows = [r for r in reader if int(r["epoch"]) <= epoch]
    with open(log_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def run_epoch(model, ema, loader, optimizer, scheduler, scaler, recipe: Recipe, dtype, progress: Progress,
              last_step: int, time_is_up: Callable[[], bool], show_bar: bool) -> tuple[float, bool]:
    """Train through the loader, stopping early at `last_step` or when time is up; returns the mean loss and whether
    time ran out."""
    device = next(model.parameters()).device
    running, count = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {progress.epoch + 1}/{recipe.epochs}", disable=not show_bar, leave=False)
    for blur, sharp in bar:
        blur = blur.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        sharp = sharp.to(device, non_blocking=True)
        loss = train_step(model, optimizer, recipe, blur, sharp, dtype, scaler)
        if ema:
            ema.update(model)
        if not math.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss} at step {progress.step} (epoch {progress.epoch + 1}); lower "
                                   f"--lr or set --grad-clip, then --resume from the last good epoch")
        scheduler.step()
        progress.step += 1
        running, count = running + loss, count + 1
        bar.set_postfix(loss=f"{running / count:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        if time_is_up():
            return running / count, True
        if progress.step >= last_step:
            break
    return running / max(1, count), False


def log_epoch(out: Path, row: dict, fields: list[str]) -> None:
    new_log = not (out / "log.csv").exists()
    with open(out / "log.csv", "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new_log:
            writer.writeheader()
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    print(f"epoch {row['epoch']} step {row['step']}: train {row['train_loss']:.4f} val {row['val_loss']:.4f} "
          f"val PSNR {row['val_psnr']:.2f} dB (blurred {row['val_psnr_blurred']:.2f}) [{row['minutes']:.1f} min]",
          flush=True)


def save_run(out: Path, model, ema, optimizer, scheduler, progress: Progress, facts: dict, val_psnr: float) -> None:
    """After an epoch: the run facts, last/ (and best/ on a new best val PSNR; the EMA weights where there are
    any), the resumable state, the curves."""
    facts.update(steps=progress.step, epochs_done=progress.epoch, minutes=round(progress.minutes, 1))
    (out / "train_config.json").write_text(json.dumps(facts, indent=2))
    weights = ema.module if ema else model
    # each checkpoint folder keeps the facts as of its own step (best/ is often an earlier epoch than the run's end)
    save_checkpoint(weights, out / "last", training=facts, files=[out / "train_config.json"])
    if val_psnr > progress.best_psnr:
        progress.best_psnr = val_psnr
        save_checkpoint(weights, out / "best", training=facts, files=[out / "train_config.json"])
    atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), **({"ema": ema.state_dict()} if ema else {}),
                       **dataclasses.asdict(progress)}, out / "train_state.pt")
    plot_curves(out / "log.csv", out / "loss_curve.png")


def main(argv=None) -> None:
    args = parse_args(argv)
    resumed = resumed_facts(args)
    recipe = resolve_recipe(args, resumed)
    if args.fit_schedule and (not args.max_minutes or recipe.schedule != "cosine"):
        raise SystemExit("error: --fit-schedule fits the cosine schedule into --max-minutes: give --max-minutes, "
                         f"and --schedule cosine (this run's schedule: {recipe.schedule})")
    rank, local_rank, distributed = setup_distributed()
    device = training_device(args.device, local_rank)
    main_process = rank == 0
    torch.manual_seed(args.seed + rank)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    try:  # every image is checked here, so a bad one stops the run before its first step
        train_sets = training_sets(args, recipe)
        val_sets, val_names = validation_sets(args, recipe)
    except BadImagesError as e:
        raise SystemExit(f"error: {e}; fix or remove them, or add --skip-bad-images to train without them") from None
    fields = log_fields(val_names)
    device_data = args.device_data if args.device_data is not None else device.type == "cuda"
    loader = build_loader(args, recipe, train_sets, device, device_data, rank, distributed)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise SystemExit(f"error: fewer training samples per process than one batch of {recipe.batch_size}")
    planned_steps = total_steps = min(recipe.epochs * steps_per_epoch, recipe.max_steps or math.inf)

    # channels-last: faster convolutions on CPU (oneDNN) and on CUDA tensor cores
    # resuming, train_state.pt holds the weights, and the saved recipe the architecture (of a grown model too): nothing
    # to download for a run that began from pretrained ones, and --init given again is not read
    built = dataclasses.replace(recipe, pretrained=False) if args.resume else recipe
    model = build_model(built, None if resumed else args.init, args.encoder_depth, args.middle_blocks)
    model = model.to(device, memory_format=torch.channels_last)
    if args.init:  # the checkpoint decides the architecture (--encoder-depth and --middle-blocks may grow it);
        # record it (a loaded config always says pretrained=False)
        recipe = dataclasses.replace(recipe, **{name: getattr(model.config, name) for name in MODEL_FIELDS
                                                if name != "pretrained"})
    # The EMA of the weights is what gets validated and saved: it averages out the last steps' noise. Continuing
    # trained weights, it starts from them at the full decay: warmed up, it reached 0.999 only after ~9000 steps and
    # followed the first noisy steps of every continuation of rounds 5-8 down (their first-epoch dips). A resumed
    # run's saved average keeps its own setting.
    ema = WeightEMA(model, recipe.ema_decay, warmup=not args.init) if recipe.ema_decay else None
    optimizer = make_optimizer(recipe, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(recipe, step, steps_per_epoch, total_steps))
    dtype = amp_dtype(recipe, device)
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16)
    progress = restore_state(out, args.resume, model, ema, optimizer, scheduler, device, main_process, fields)

    train_model = model
    if distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.type == "cuda" else None)
    facts = {**dataclasses.asdict(recipe), "data": [str(d) for d in args.data],
             "val_data": [str(d) for d in args.val_data], "init": args.init or (resumed or {}).get("init"),
             "hardware": hardware(device), "amp_dtype": str(dtype).replace("torch.", "") if dtype else "none",
             "train_images": sum(len(s) for s in train_sets), "steps_per_epoch": steps_per_epoch,
             "total_steps": total_steps, "device_data": device_data}
    started, minutes_before = time.time(), progress.minutes

    def minutes_so_far() -> float:  # of the whole run, earlier sessions of a resumed one included
        return minutes_before + (time.time() - started) / 60

    def time_is_up() -> bool:  # checked after every step
        return bool(args.max_minutes) and out_of_time(minutes_so_far() > args.max_minutes, device, distributed)

    model.train()
    while progress.epoch < recipe.epochs and progress.step < total_steps:
        if args.fit_schedule:  # re-planned from the speed so far, validations included (resumed: the saved speed)
            planned = steps_in_budget(progress.step, minutes_so_far(), args.max_minutes, planned_steps)
            total_steps = shared_int(planned, device, distributed)
            facts["total_steps"] = total_steps
        if isinstance(getattr(loader, "sampler", None), DistributedSampler):
            loader.sampler.set_epoch(progress.epoch)
        train_loss, stopped = run_epoch(train_model, ema, loader, optimizer, scheduler, scaler, recipe, dtype, progress,
                                        total_steps, time_is_up, show_bar=main_process)
        if stopped:
            total_steps = progress.step  # end here, saving as after any epoch
        progress.epoch += 1
        if not main_process:
            continue
        progress.minutes = minutes_so_far()
        row = {"epoch": progress.epoch, "step": progress.step, "lr": scheduler.get_last_lr()[0],
               "train_loss": train_loss, **validate(ema.module if ema else model, val_sets, recipe, device, dtype,
                                                    val_names),
               "minutes": progress.minutes}
        log_epoch(out, row, fields)
        save_run(out, model, ema, optimizer, scheduler, progress, facts, row["val_psnr"])
    if distributed:
        dist.destroy_process_group()

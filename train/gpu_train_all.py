"""Train the shipped variants and their references in one GPU call, on the same budget, and pack them for the trip back.

    python -m train.gpu_train_all --data data/sharp --val-data data/gopro_GOPR0477 --out "$OUT" --minutes-per-run 2

Runs adam and sgd (their recipes' decoder) and the paper decoder trained with each recipe, all for the same number of
steps; the real GoPro pairs only validate (they pick the best checkpoint and are never trained on): a short probe
measures this machine's throughput first, so the four runs fit the time given. Each run goes to
/tmp/runs/NAME and is packed as OUT/NAME.tar (fp16 best/ checkpoint, log.csv, train_config.json, loss_curve.png),
one file per run, each well under 16 MiB. Back on the CPU machine:

    for f in OUT/*.tar; do mkdir -p runs/$(basename $f .tar) && tar -xf $f -C runs/$(basename $f .tar); done
    python -m train.ship --run adam=runs/adam ... --test synthetic=data/sharp --heldout gopro=data/gopro_GOPR0477 \
        --docs docs/results --ship adam sgd

On the project's device machine: copy the data into the ignored folder data/ (`cp -r ../shared/data/sharp
../shared/data/gopro_GOPR0477 data/`), name `data` in the call's carry, and run the command above (about 50 MiB
travels). Rehearse it on the CPU first with tiny settings: --backbone test_vit --minutes-per-run 0.3 --device cpu.
"""

from __future__ import annotations

import argparse
import dataclasses
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from train.device_data import DeviceBatches
from train.recipes import RECIPES
from train.train import amp_dtype, build_model, make_optimizer, train_step
from train.train import main as train_main
from vitdeblur.data import load_dataset
from vitdeblur.hub import load_model, save_checkpoint
from vitdeblur.inference import resolve_device

RUNS = [("adam", "adam", RECIPES["adam"].decoder), ("sgd", "sgd", RECIPES["sgd"].decoder),
        ("paper-ref-adam", "adam", "paper"), ("paper-ref-sgd", "sgd", "paper")]
EPOCHS = 10


def images_per_second(data: list[str], backbone: str, batch_size: int, crop: int, device: torch.device,
                      steps: int = 30) -> float:
    """Training throughput of the adam recipe's model with on-device data."""
    recipe = RECIPES["adam"]
    model = build_model(dataclasses.replace(recipe, backbone=backbone), None)
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = make_optimizer(recipe, model)
    batches = DeviceBatches([load_dataset(d, "train", train=True, crop=crop) for d in data], batch_size, crop,
                            steps, device)
    dtype = amp_dtype(recipe, device)
    for i, (blur, sharp) in enumerate(batches):
        if i == steps // 3:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        train_step(model, optimizer, recipe, blur, sharp, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (steps - steps // 3) * batch_size / (time.perf_counter() - start)


def pack(run: Path, target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        best = save_checkpoint(load_model(run / "best"), Path(tmp) / "best", half=True)
        with tarfile.open(target, "w") as tar:
            tar.add(best, arcname="best")
            for name in ("log.csv", "train_config.json", "loss_curve.png"):
                if (run / name).exists():
                    tar.add(run / name, arcname=name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--val-data", action="append", default=[], help="validation only, never trained on")
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes-per-run", type=float, default=2.0)
    parser.add_argument("--backbone", default="vit_tiny_patch16_224")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    speed = images_per_second(args.data, args.backbone, args.batch_size, args.crop, device)
    # 80% of the time for training steps: start-up, validation and saving take the rest.
    steps_per_epoch = max(1, int(0.8 * args.minutes_per_run * 60 * speed / args.batch_size) // EPOCHS)
    print(f"{speed:.0f} images/s on {device}: {EPOCHS} epochs of {steps_per_epoch} steps per run", flush=True)
    for name, recipe, decoder in RUNS:
        run = Path("/tmp/runs") / name
        train_main(["--recipe", recipe, "--decoder", decoder, "--backbone", args.backbone, "--out", str(run),
                    *[flag for d in args.data for flag in ("--data", d)],
                    *[flag for d in args.val_data for flag in ("--val-data", d)],
                    "--device", str(device), "--device-data",
                    "--batch-size", str(args.batch_size), "--crop", str(args.crop), "--epochs", str(EPOCHS),
                    "--samples-per-epoch", str(steps_per_epoch * args.batch_size),
                    "--warmup-steps", str(min(200, steps_per_epoch)),
                    "--max-minutes", str(1.3 * args.minutes_per_run)])
        pack(run, out / f"{name}.tar")
        print(f"packed {out / f'{name}.tar'} ({(out / f'{name}.tar').stat().st_size / 2**20:.1f} MiB)", flush=True)


if __name__ == "__main__":
    main()

"""Train the shipped variants and their equal-budget references side by side in one GPU call, packed for the trip back.

    python -m train.gpu_train_all --data data/sharp --out "$OUT" --minutes 6

All runs share the GPU at once, one process each: a small model's training step is launch-bound and the blur
synthesis runs in Python, so a single process leaves most of an H100 idle. `adam` and `sgd` continue from the shipped
checkpoints (`adam` also grown to 12 ViT blocks: `adam-grown*`); five runs start from scratch on the same number of
steps: each recipe with its own decoder and with the study's `paper` decoder (the references the shipped models must
beat), and `adam` with all 12 ViT blocks. A short probe of all the runs at once measures the steps that fit in
--minutes. Each run goes to a fresh temporary folder and, once it has ended well, is packed as OUT/NAME.tar (fp16
best/ checkpoint, log.csv, train_config.json, loss_curve.png, the run's output), one file per run, each under 16 MiB.
Back here:

    for f in OUT/*.tar; do mkdir -p runs/$(basename $f .tar) && tar -xf $f -C runs/$(basename $f .tar); done
    python -m vitdeblur evaluate --checkpoint runs/NAME/best --data runs/gopro-halves/compare --split all
    python -m train.ship --run adam=runs/adam ... --test synthetic=data/sharp --heldout gopro=data/gopro_GOPR0477 \
        --docs docs/results --ship adam sgd

(choose between the runs on GOPR0477's second half, which chose no epoch, and the kernel stand-in; ship with the
whole scene for the model card.)

On the project's device machine everything must travel with the working tree (64 MiB in all): scale the sharp photos
into the git-ignored data/ (`python -m train.pack_data ../shared/data/sharp data/sharp`: 18 MiB for the 96) and take
the validation crops of GOPR0477's first half (`python -m train.halve_pairs ../shared/data/gopro_GOPR0477
runs/gopro-halves`, then `python -m train.pack_data runs/gopro-halves/select data/gopro384 --crop 384`: 2.6 MiB; the
whole frames do not fit), name data in the call's carry and validate with --val-crop 384, so that each run's best/ is
chosen on real blur as on the CPU, and compared back here on the second half, which chose nothing. That machine's timm
and huggingface_hub differ from requirements.txt: carry their wheels (and httpx2's) in the git-ignored .whl/ too. The
call of round 10 (carry data and .whl, timeout 595 s; 7.6 minutes of the command, 8.3 of device time with the start;
five tars, 60 MiB together):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
    PYTHONUNBUFFERED=1 python3 -m train.gpu_train_all --data data/sharp --val-data data/gopro384 --val-crop 384 \
        --out $OUT --minutes 6.8 --batch-size 64 --only adam adam-grown adam-grown-256 sgd sgd-grown

(sgd-grown has since been removed: sgd's LARS steps left its new blocks' zero weights at zero.)

Rehearse on the CPU first: --backbone test_vit --minutes 0.3 --device cpu --only adam-scratch (adam-scratch-deep
needs a backbone of 12 blocks: rehearse it without --backbone).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from train.device_data import DeviceBatches
from train.train import (amp_dtype, build_model, make_optimizer, parse_args, recipe_flag, resolve_recipe,
                         train_step, training_sets)
from vitdeblur.hub import load_model, save_checkpoint
from vitdeblur.inference import resolve_device
from vitdeblur.synthesis import BLURS


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    recipe: str
    decoder: str | None = None  # None: the recipe's
    init: str | None = None  # continue from these weights (they decide the architecture)
    lr: float | None = None  # None: the recipe's
    encoder_depth: int | None = None  # None: the recipe's; continuing, deeper than the checkpoint grows its ViT
    crop: int | None = None  # None: --crop
    blur: str | None = None  # None: --blur from scratch, the checkpoint's own mix when continuing


# Round 9 found the shipped adam gaining about as little on its own training photos (+0.83 dB) as on others
# (+0.69 dB), so adam-grown continues it grown to all 12 ViT-Tiny blocks, the new ones starting as the identity
# (`python -m train --init ... --encoder-depth`), beside a plain continuation with the same steps (the control; sgd's
# LARS cannot grow zero weights). adam continues at its own 128 px crops: at 256 px it lost validation from the first
# epoch in round 8. Round 10 (780 steps of 64 crops): adam-grown tracked its control within 0.01 dB; continued on the
# CPU with its new blocks at 10x the learning rate, it fit the synthetic blur better and real blur worse.
# Round 11 (CPU): along random-walk camera paths the GoPro target (the middle frame) can lie anywhere on the streak,
# and the shipped adam undoes such shake barely at all; continued on smooth paths (`mixed-smooth`) it was the only
# continuation whose GOPR0477 validation rose, by a tie's margin. The adam-*-smooth runs test that mix at a GPU's
# budget, continued and from scratch (beside adam and adam-scratch).
RUNS = (Run("adam", "adam", init="checkpoints/adam", lr=2e-4, crop=128),
        Run("adam-smooth", "adam", init="checkpoints/adam", lr=2e-4, crop=128, blur="mixed-smooth"),
        Run("adam-grown", "adam", init="checkpoints/adam", lr=2e-4, encoder_depth=12, crop=128),
        Run("adam-grown-256", "adam", init="checkpoints/adam", lr=2e-4, encoder_depth=12),
        Run("sgd", "sgd", init="checkpoints/sgd", lr=0.005),
        Run("adam-scratch", "adam"), Run("adam-scratch-smooth", "adam", blur="mixed-smooth"),
        Run("adam-scratch-deep", "adam", encoder_depth=12), Run("sgd-scratch", "sgd"),
        Run("paper-ref-adam", "adam", decoder="paper"), Run("paper-ref-sgd", "sgd", decoder="paper"))
EPOCHS = 12


def images_per_second(run: Run, args: argparse.Namespace, device: torch.device, steps: int = 30) -> float:
    """Training throughput of one run's model with on-device data (the probe; the other runs' probes run alongside).
    The model and recipe are the ones its training command will build."""
    train_args = parse_args(train_command(run, args, 1, device, Path("unused"))[3:])
    recipe = resolve_recipe(train_args)
    model = build_model(recipe, run.init, train_args.encoder_depth)
    model = model.to(device, memory_format=torch.channels_last).train()
    optimizer = make_optimizer(recipe, model)
    batches = DeviceBatches(training_sets(train_args, recipe), recipe.batch_size, recipe.crop, steps, device)
    dtype = amp_dtype(recipe, device)
    for i, (blurred, sharp) in enumerate(batches):
        if i == steps // 3:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        train_step(model, optimizer, recipe, blurred.contiguous(memory_format=torch.channels_last), sharp, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (steps - steps // 3) * recipe.batch_size / (time.perf_counter() - start)


# What a continued run keeps of its checkpoint's training: its blur mix and loss terms (round 7: the CPU continuations
# that switched blur mixes lost 0.07-0.16 dB of GOPR0477 validation in their first epochs and never won it back).
CONTINUED_FIELDS = ("blur", "fft_loss_weight", "edge_loss_weight")


def trained_flags(checkpoint: str) -> list[str]:
    """`python -m train` flags for the CONTINUED_FIELDS a checkpoint folder's train_config.json records."""
    path = Path(checkpoint) / "train_config.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    if saved.get("blur") is not None and saved["blur"] not in BLURS:
        raise SystemExit(f"error: {path} names the blur mix {saved['blur']!r}, which this version does not have")
    return [flag for name in CONTINUED_FIELDS if saved.get(name) is not None
            for flag in (recipe_flag(name), str(saved[name]))]


def train_command(run: Run, args: argparse.Namespace, steps_per_epoch: int, device: torch.device,
                  runs_dir: Path) -> list[str]:
    kept = trained_flags(run.init) if run.init else []  # last but the run's own mix: they replace --blur
    return [sys.executable, "-m", "train", "--recipe", run.recipe, "--out", str(runs_dir / run.name),
            *(["--decoder", run.decoder] if run.decoder else []), *(["--init", run.init] if run.init else []),
            *(["--lr", str(run.lr)] if run.lr else []), *(["--backbone", args.backbone] if args.backbone else []),
            *(["--encoder-depth", str(run.encoder_depth)] if run.encoder_depth else []),
            *[flag for d in args.data for flag in ("--data", d)],
            *[flag for d in args.val_data for flag in ("--val-data", d)],
            "--device", str(device), "--device-data", "--blur", args.blur,
            *(["--min-scale", str(args.min_scale)] if args.min_scale is not None else []),
            *(["--max-scale", str(args.max_scale)] if args.max_scale is not None else []),
            *(["--val-crop", str(args.val_crop)] if args.val_crop is not None else []),
            "--batch-size", str(args.batch_size), "--crop", str(run.crop or args.crop), "--epochs", str(EPOCHS),
            "--samples-per-epoch", str(steps_per_epoch * args.batch_size),
            "--warmup-steps", str(min(200, steps_per_epoch)),
            *(["--ema-decay", str(args.ema_decay)] if run.init else []),
            "--max-minutes", str(1.15 * args.minutes), *kept, *(["--blur", run.blur] if run.blur else [])]


def pack(run: Path, target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        best = save_checkpoint(load_model(run / "best"), Path(tmp) / "best", half=True)
        with tarfile.open(target, "w") as tar:
            tar.add(best, arcname="best")
            for name in ("log.csv", "train_config.json", "loss_curve.png", "output.log"):
                if (run / name).exists():
                    tar.add(run / name, arcname=name)


def run_all(commands: dict[str, list[str]], logs: dict[str, Path],
            on_exit: Callable[[str, int], None] = lambda name, code: None) -> dict[str, int]:
    """Start every command at once, each writing to its log; wait for each in turn (calling on_exit with its name
    and exit code); their exit codes by name."""
    processes = {}
    # progress bars into a log file: a line every 30 s is plenty; the cores shared out (each process would take all)
    threads = str(max(1, len(os.sched_getaffinity(0)) // len(commands)))
    quiet = {**os.environ, "TQDM_MININTERVAL": "30", "OMP_NUM_THREADS": threads}
    for name, command in commands.items():
        logs[name].parent.mkdir(parents=True, exist_ok=True)
        with open(logs[name], "w") as log:
            processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=quiet)
    codes = {}
    for name, process in processes.items():
        codes[name] = process.wait()
        on_exit(name, codes[name])
    return codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--val-data", action="append", default=[], help="validation only, never trained on")
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=6.0, help="training time, all runs at once")
    parser.add_argument("--backbone", help="replace the recipes' backbone in the runs from scratch (e.g. test_vit)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="crops per step (default 32: a step is launch-bound, 32 cost little more than 16)")
    parser.add_argument("--crop", type=int, default=256,
                        help="crop size of the runs that name none (adam and adam-grown keep adam's 128 px)")
    parser.add_argument("--blur", default="moving", choices=sorted(BLURS),
                        help="the synthetic blur mix of the runs from scratch (default moving: it validated best on the "
                             "CPU in round 6); continued runs keep their checkpoint's mix and loss terms")
    parser.add_argument("--min-scale", type=float, help="shrink the photos at random down to this (default: the recipe's)")
    parser.add_argument("--max-scale", type=float, help="enlarge the photos at random up to this (default: the recipe's)")
    parser.add_argument("--val-crop", type=int, help="validation centre crops (default: the recipe's)")
    parser.add_argument("--ema-decay", type=float, default=0.995,
                        help="of the continued runs' weight average, which is validated and saved (default 0.995: "
                             "it starts at their checkpoint, and at the recipes' 0.999 would still hold half of it "
                             "after 700 steps; the runs from scratch warm theirs up)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--only", nargs="+", choices=[run.name for run in RUNS], help="a subset of the runs")
    parser.add_argument("--probe", choices=[run.name for run in RUNS], help=argparse.SUPPRESS)  # one probe process
    args = parser.parse_args()
    device = resolve_device(args.device)
    runs = {run.name: run for run in RUNS if not args.only or run.name in args.only}

    if args.probe:
        print(json.dumps({"images_per_second": images_per_second(runs[args.probe], args, device)}))
        return

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = Path(tempfile.mkdtemp(prefix="gpu_train_all-"))  # never a leftover run of an earlier call
    print(f"runs in {runs_dir}", flush=True)
    probe_logs = {name: runs_dir / f"probe-{name}.log" for name in runs}
    codes = run_all({name: [sys.executable, "-m", "train.gpu_train_all", *sys.argv[1:], "--probe", name]
                     for name in runs}, probe_logs)
    speeds = {}
    for name, code in codes.items():
        text = probe_logs[name].read_text()
        results = [line for line in text.splitlines() if line.startswith('{"images_per_second"')]
        if code or not results:
            raise SystemExit(f"probe of {name} failed:\n{text[-3000:]}")
        speeds[name] = json.loads(results[-1])["images_per_second"]
    # the same number of steps for every run, sized by the slowest; 85% of the time for steps, the rest for
    # start-up, validation and saving
    steps_per_epoch = max(1, int(0.85 * args.minutes * 60 * min(speeds.values()) / args.batch_size) // EPOCHS)
    print(", ".join(f"{name} {speed:.0f}" for name, speed in speeds.items()) + f" images/s at once on {device}: "
          f"{EPOCHS} epochs of {steps_per_epoch} steps of {args.batch_size} crops per run, of "
          + ", ".join(f"{name} {run.crop or args.crop}" for name, run in runs.items()) + " px",
          flush=True)

    def report_and_pack(name: str, code: int) -> None:
        print(f"--- {name}: exit {code}\n" + "\n".join(logs[name].read_text().splitlines()[-4:]), flush=True)
        if code == 0:
            pack(runs_dir / name, out / f"{name}.tar")
            print(f"packed {out / f'{name}.tar'} ({(out / f'{name}.tar').stat().st_size / 2**20:.1f} MiB)", flush=True)

    logs = {name: runs_dir / name / "output.log" for name in runs}
    run_all({name: train_command(run, args, steps_per_epoch, device, runs_dir) for name, run in runs.items()}, logs,
            report_and_pack)


if __name__ == "__main__":
    main()

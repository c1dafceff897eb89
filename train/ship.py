"""Evaluate trained runs side by side, write the results (table, grid, loss curves) and ship checkpoints.

    python -m train.ship --run adam=runs/adam --run sgd=runs/sgd --run paper=runs/paper-ref-adam \
        --test synthetic=../shared/data/sharp --heldout gopro=../shared/data/gopro_GOPR0477 \
        --docs docs/results --ship adam sgd

For every run (its best/ checkpoint) and test set (--test: the test part of the 80/10/10 split; --heldout: the whole
folder, for data that no run trained on) it runs the same full-resolution evaluation as `python -m vitdeblur
evaluate`, writes RUN/metrics-TEST.json, counts GFLOP per 1280x720 as tiled and times one 1280x720 image on the CPU
(as `python -m vitdeblur bench` does, precision auto).
--docs gets results.md (the table), grid.jpg (blurred | each run | sharp, on the app's examples), crops.png (the same
as 2x crops where the runs changed each example most) and loss_curve_RUN.png. --ship NAME...
writes those runs to checkpoints/NAME in fp16 with their model card, metrics and loss curve.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vitdeblur.bench import FRAME, image_flops, time_deblur
from vitdeblur.data import load_dataset
from vitdeblur.evaluate import evaluate, save_grid
from vitdeblur.examples import EXAMPLES_DIR, list_examples
from vitdeblur.hub import SHIPPED_DIR, load_model, save_checkpoint
from vitdeblur.images import load_image, to_uint8
from vitdeblur.inference import deblur_array, retain_freed_memory
from vitdeblur.loupe import loupe_box, loupe_crops, most_changed_point

CROP_SIDE = 96  # px of the example shown in each 2x crop


def named_paths(items: list[str], flag: str) -> dict[str, Path]:
    pairs = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"error: {flag} takes NAME=PATH, got {item!r}")
        pairs[name] = Path(path)
    return pairs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m train.ship", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="NAME=RUN_FOLDER, in table order")
    parser.add_argument("--test", action="append", default=[], help="NAME=DATA_FOLDER (its test split is used)")
    parser.add_argument("--heldout", action="append", default=[],
                        help="NAME=DATA_FOLDER used whole: data that no run trained on (e.g. real pairs of a scene)")
    parser.add_argument("--docs", required=True, help="folder for results.md, grid.jpg and the loss curves")
    parser.add_argument("--ship", nargs="*", default=[], help="run names to write to checkpoints/NAME")
    parser.add_argument("--grid-examples", default=str(EXAMPLES_DIR), help="folder of examples for the grid")
    parser.add_argument("--grid-rows", type=int, default=4)
    args = parser.parse_args(argv)
    runs = named_paths(args.run, "--run")
    tests = {name: (path, "test") for name, path in named_paths(args.test, "--test").items()}
    tests.update({name: (path, "all") for name, path in named_paths(args.heldout, "--heldout").items()})
    if not tests:
        raise SystemExit("error: give at least one --test or --heldout")
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)  # timings are reported for 2 CPU cores
    retain_freed_memory()  # as the CLI and the app run

    table, timings, gflops, models, evaluations = {}, {}, {}, {}, {name: [] for name in runs}
    for run_name, run in runs.items():
        model = models[run_name] = load_model(run / "best", "cpu")
        timings[run_name] = time_deblur(model, *FRAME, precision="auto", repeats=2)  # as `vitdeblur bench` times it
        gflops[run_name] = image_flops(model, *FRAME)[0] / 1e9
        for test_name, (data, split) in tests.items():
            metrics, _ = evaluate(model, load_dataset(data, split, train=False))
            metrics.update(dataset=test_name, data=str(data), split=split, checkpoint=str(run / "best"))
            (run / f"metrics-{test_name}.json").write_text(json.dumps(metrics, indent=2))
            evaluations[run_name].append({k: v for k, v in metrics.items() if k != "images"})
            table[run_name, test_name] = metrics
        if (run / "loss_curve.png").exists():
            shutil.copy2(run / "loss_curve.png", docs / f"loss_curve_{run_name}.png")

    # The visual grid uses the app's examples: images the project may publish (the test sets may not be).
    # crops.png: 2x crops (nearest neighbour) where the runs changed each example most, as the app's loupe shows them.
    grid_rows, crop_rows = [], []
    for example in [e for e in list_examples(args.grid_examples) if e.sharp][:args.grid_rows]:
        blurred = load_image(example.blurred).rgb
        row = [blurred, *(deblur_array(m, blurred) for m in models.values()), load_image(example.sharp).rgb]
        grid_rows.append(row)
        box = loupe_box(blurred.shape[1::-1], most_changed_point(blurred, row[1:-1], CROP_SIDE), CROP_SIDE)
        crops = loupe_crops([("", Image.fromarray(to_uint8(rgb))) for rgb in row], box, zoom=2)
        crop_rows.append([np.asarray(crop, np.float32) / 255 for crop, _ in crops])
    labels = ["blurred", *runs, "sharp"]
    save_grid(grid_rows, docs / "grid.jpg", height=200, labels=labels)
    save_grid(crop_rows, docs / "crops.png", height=2 * CROP_SIDE, labels=labels)

    first_run = next(iter(runs))
    lines = ["| model | " + " | ".join(f"{t} PSNR (gain) | {t} SSIM" for t in tests)
             + " | GFLOP per 1280x720 | s per 1280x720 (bench, 2 CPU threads) |",
             "|---|" + "---|---|" * len(tests) + "---|---|",
             "| blurred input | " + " | ".join(f"{table[first_run, t]['psnr_blurred']:.2f} | "
                                             f"{table[first_run, t]['ssim_blurred']:.4f}" for t in tests)
             + " | - | - |"]
    for run_name in runs:
        cells = [f"{table[run_name, t]['psnr']:.2f} ({table[run_name, t]['psnr_gain']:+.2f}) | "
                 f"{table[run_name, t]['ssim']:.4f}" for t in tests]
        lines.append(f"| {run_name} | " + " | ".join(cells) + f" | {gflops[run_name]:.0f} | {timings[run_name]:.2f} |")
    counts = ", ".join(f"{t}: {table[first_run, t]['n']} images ({tests[t][1]})" for t in tests)
    (docs / "results.md").write_text("\n".join(lines) + f"\n\nTest sets ({counts}).\n")
    print("\n".join(lines))

    for name in args.ship:
        run = runs[name]
        model = load_model(run / "best", "cpu")
        # the facts as of the best epoch where the run kept them (older runs: the run's, as of its last epoch)
        config = run / "best" / "train_config.json"
        if not config.exists():
            config = run / "train_config.json"
        training = json.loads(config.read_text())
        training["recipe"] = training.get("name", name)
        training["name"] = f"vitdeblur-{name}"
        target, staging = SHIPPED_DIR / name, SHIPPED_DIR / f".{name}.new"
        shutil.rmtree(staging, ignore_errors=True)
        save_checkpoint(model, staging, half=True, training=training, evaluations=evaluations[name],
                        files=[config, run / "loss_curve.png", *run.glob("metrics-*.json")])
        load_model(staging)  # the new folder loads before it replaces the old one
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        print(f"shipped {run / 'best'} -> {target}")


if __name__ == "__main__":
    main()

"""Command line: `python -m vitdeblur {evaluate,deblur,bench,make-pairs} ...`."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from vitdeblur.data import LAYOUTS, SPLITS, list_images, load_dataset, make_frame_pairs
from vitdeblur.evaluate import evaluate, save_grid
from vitdeblur.hub import CheckpointError, load_model
from vitdeblur.images import ImageError, check_megapixels, load_image, save_png
from vitdeblur.inference import (PRECISIONS, deblur_image, resolve_device, retain_freed_memory,
                                 use_available_cores)


def writable_file(path: str | None) -> None:
    """Make sure an output file can be written (creating its folder) before the work that produces it starts."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise SystemExit(f"error: {path} is a folder; give a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as e:
        raise SystemExit(f"error: cannot write {path} ({e.strerror or e})") from None


def cmd_evaluate(args) -> None:
    writable_file(args.json)
    writable_file(args.grid)
    model = load_model(args.checkpoint, resolve_device(args.device))
    dataset = load_dataset(args.data, args.split, train=False, layout=args.layout, kaggle_blur=args.kaggle_blur)
    metrics, rows = evaluate(model, dataset, grid_rows=args.grid_rows if args.grid else 0,
                             tile_size=args.tile_size, batch_size=args.batch_size, precision=args.precision,
                             scales=args.scales)
    metrics.update(checkpoint=str(args.checkpoint), data=str(args.data), dataset=args.name or Path(args.data).name,
                   split=args.split, layout=args.layout, precision=args.precision,
                   scales=list(args.scales or model.config.inference_scales))
    print(f"{'':12}{'PSNR (dB)':>11}{'SSIM':>9}")
    print(f"{'blurred':12}{metrics['psnr_blurred']:11.2f}{metrics['ssim_blurred']:9.4f}")
    print(f"{'deblurred':12}{metrics['psnr']:11.2f}{metrics['ssim']:9.4f}")
    print(f"{metrics['n']} images ({args.split} split of {args.data}), {metrics['seconds_per_image']:.3f} s/image "
          f"on {metrics['device']} ({args.precision}), gain {metrics['psnr_gain']:+.2f} dB")
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2))
    if args.grid:
        save_grid(rows, args.grid, labels=["blurred", "deblurred", "sharp"])


def cmd_deblur(args) -> None:
    inputs = []
    for item in map(Path, args.inputs):
        inputs += list_images(item) if item.is_dir() else [item]
    out_dir = Path(args.output)
    targets = [out_dir / (path.stem + ".png") for path in inputs]
    clashes = sorted({str(t) for t in targets if targets.count(t) > 1 or t.resolve() in {p.resolve() for p in inputs}})
    if clashes:  # never overwrite an input, nor one result with another
        raise SystemExit(f"error: these outputs would overwrite an input or each other: {', '.join(clashes)}; "
                         "choose another -o folder")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise SystemExit(f"error: these outputs exist already: {', '.join(existing)}; add --overwrite to replace "
                         "them, or choose another -o folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise SystemExit(f"error: -o {out_dir} is a file; give a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystemExit(f"error: cannot create the output folder {out_dir} ({e.strerror or e})") from None
    model = load_model(args.checkpoint, resolve_device(args.device))
    failures = 0
    for path, target in zip(inputs, targets):
        try:  # one bad file, or one that cannot be written, must not stop the others
            image = load_image(path, max_megapixels=args.max_megapixels)
            if image.frames > 1:
                print(f"note: {path} is animated ({image.frames} frames); only its first frame is deblurred",
                      file=sys.stderr)
            result = deblur_image(model, image, precision=args.precision, tile_size=args.tile_size,
                                  scales=args.scales)
            save_png(result, target, overwrite=args.overwrite)
            print(f"{path} -> {target}")
        except ImageError as e:
            failures += 1
            print(f"skipped: {e}", file=sys.stderr)
        except OSError as e:
            failures += 1
            print(f"skipped: {path}: cannot write {target} ({e.strerror or e})", file=sys.stderr)
    if failures:
        raise SystemExit(f"{failures} of {len(inputs)} inputs could not be deblurred")


def cmd_bench(args) -> None:
    from vitdeblur.bench import bench, report

    writable_file(args.json)
    model = load_model(args.checkpoint, resolve_device(args.device))
    precisions = None if args.precision is None else (args.precision,)
    result = bench(model, precisions, photo=args.photo_size, repeats=args.repeats, tile_size=args.tile_size,
                   batch_size=args.batch_size, scales=args.scales)
    result["checkpoint"] = str(args.checkpoint)
    print(f"checkpoint {args.checkpoint}")
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def image_size(text: str) -> tuple[int, int]:
    """'4000x3000' -> (4000, 3000)."""
    try:
        width, height = (int(side) for side in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return width, height


def positive_megapixels(text: str) -> float:
    try:
        check_megapixels(value := float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number of megapixels, got {text!r}") from None
    return value


def cmd_make_pairs(args) -> None:
    count = make_frame_pairs(args.frames, args.output, n=args.n, stride=args.stride)
    print(f"wrote {count} pairs to {args.output} (layout 'pairs')")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vitdeblur", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_model_args(p, precision_help="auto (default): bf16 on CPUs with fast bf16 and on CUDA, else fp32"):
        p.add_argument("--checkpoint", default="adam",
                       help="checkpoint folder, Hub repo id, or shipped variant name (adam, sgd); default adam")
        p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
        p.add_argument("--tile-size", type=int, default=None, help="inference tile size (default: the checkpoint's)")
        p.add_argument("--scales", type=int, nargs="+", default=None, metavar="FACTOR",
                       help="deblur at these downscale factors too and average the corrections, e.g. 1 2 4 "
                            "(default: the checkpoint's inference_scales)")
        p.add_argument("--precision", default="auto", choices=PRECISIONS, help=precision_help)

    ev = sub.add_parser("evaluate", help="PSNR/SSIM of a checkpoint and of the blurred input, at full resolution")
    add_model_args(ev)
    ev.add_argument("--data", required=True, help="dataset folder")
    ev.add_argument("--layout", default="auto", choices=LAYOUTS)
    ev.add_argument("--split", default="test", choices=SPLITS, help="part of the 80/10/10 split (default test)")
    ev.add_argument("--kaggle-blur", default="both", choices=("motion", "defocus", "both"))
    ev.add_argument("--name", help="dataset name for the JSON and model card (default: the folder name)")
    ev.add_argument("--json", help="write the metrics here")
    ev.add_argument("--grid", help="write blurred | deblurred | sharp rows here (PNG; JPEG for a .jpg name)")
    ev.add_argument("--grid-rows", type=int, default=4, choices=range(1, 65), metavar="1..64")
    ev.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    ev.set_defaults(func=cmd_evaluate)

    db = sub.add_parser("deblur", help="deblur images (files or folders) and write PNGs of the same size")
    add_model_args(db)
    db.add_argument("inputs", nargs="+", help="image files or folders")
    db.add_argument("-o", "--output", required=True, help="output folder")
    db.add_argument("--overwrite", action="store_true", help="replace outputs that exist already (else an error)")
    db.add_argument("--max-megapixels", type=positive_megapixels, default=None,
                    help="downscale larger inputs while reading them")
    db.set_defaults(func=cmd_deblur)

    be = sub.add_parser("bench", help="GFLOP, seconds per 1280x720 and per 12 MP photo, GEMM peak, peak memory")
    add_model_args(be, precision_help="time only this precision (default: fp32, and bf16 where it promises to be fast)")
    be.set_defaults(precision=None)
    be.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    be.add_argument("--photo-size", type=image_size, default=(4000, 3000), help="the large image, WIDTHxHEIGHT")
    be.add_argument("--repeats", type=int, default=3, help="runs per 1280x720 timing (the best counts)")
    be.add_argument("--json", help="write the results here")
    be.set_defaults(func=cmd_bench)

    mp = sub.add_parser("make-pairs", help="average consecutive video frames into blurred/sharp pairs (GoPro recipe)")
    mp.add_argument("frames", help="folder of consecutive frames, in name order")
    mp.add_argument("-o", "--output", required=True)
    mp.add_argument("-n", type=int, default=7, help="frames averaged per blurred image")
    mp.add_argument("--stride", type=int, default=None, help="frames between pairs (default n)")
    mp.set_defaults(func=cmd_make_pairs)

    args = parser.parse_args(argv)
    use_available_cores()
    retain_freed_memory()
    try:
        args.func(args)
    except (CheckpointError, ImageError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()

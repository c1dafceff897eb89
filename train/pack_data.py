"""Copy training data small enough for the trip to a GPU machine (there, the working tree travels with its data in
64 MiB per call).

    python -m train.pack_data ../shared/data/sharp data/sharp
    python -m train.pack_data ../shared/data/gopro_GOPR0477 data/gopro384 --crop 384

Sharp photos are scaled down: every photo keeps its file name and format, so the 80/10/10 split is the same as the
source's; JPEGs are saved again at --quality, PNGs losslessly. Real blurred/sharp pairs are never scaled (that would
change their blur): with --crop each pair keeps the centre crop that validation with `--val-crop` of the same size
sees, as PNG, in the source's layout. Prints the copy's size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageOps

from vitdeblur.data import centre_window, detect_layout, find_pairs, list_images
from vitdeblur.images import load_image, to_uint8


def pack_photos(source: Path, target: Path, max_side: int, quality: int) -> tuple[int, int]:
    """Write every image of `source` to `target`, its longer side at most `max_side`; returns (images, bytes)."""
    photos = list_images(source)
    if not photos:
        raise SystemExit(f"error: no images in {source}")
    if target.resolve() == source.resolve():
        raise SystemExit("error: the copy would overwrite the photos it is made from; give another folder")
    target.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in photos:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")  # upright: the copy carries no EXIF
        scale = max_side / max(image.size)
        if scale < 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        is_jpeg = path.suffix.lower() in (".jpg", ".jpeg")
        image.save(target / path.name, **({"quality": quality} if is_jpeg else {"lossless": True}))
        total += (target / path.name).stat().st_size
    return len(photos), total


def pack_pairs(source: Path, target: Path, crop: int) -> tuple[int, int]:
    """Write the centre `crop` of every image of the real pairs in `source` to the same place under `target`, as PNG;
    returns (pairs, bytes). The crop is taken from the pixels validation reads (images.load_image, as uint8)."""
    source, target = source.resolve(), target.resolve()
    if target == source or target.is_relative_to(source):
        raise SystemExit("error: the copy would go inside the pairs it is made from; give a folder outside it")
    pairs = [pair for pair in find_pairs(source) if pair.blur is not None]
    copies: dict[Path, Path] = {}  # each file once (a Kaggle sharp photo belongs to two pairs)
    for path in sorted({path for pair in pairs for path in (pair.blur, pair.sharp)}):
        copy = (target / path.relative_to(source)).with_suffix(".png")
        if copy in copies:
            raise SystemExit(f"error: {copies[copy]} and {path} would both be copied to {copy}")
        copies[copy] = path
    total = 0
    for copy, path in copies.items():
        pixels = to_uint8(load_image(path).rgb)
        y, x, h, w = centre_window(*pixels.shape[:2], crop)
        copy.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[y:y + h, x:x + w]).save(copy)
        total += copy.stat().st_size
    return len(pairs), total


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m train.pack_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a folder of sharp photos, or of real pairs (with --crop)")
    parser.add_argument("target", type=Path, help="where the copies go (e.g. data/sharp, git-ignored)")
    # 18 MiB for the 96 photos: with the repository (30 MiB), the wheels and GOPR0477's 384 px crops it fits 64 MiB
    parser.add_argument("--max-side", type=int, default=960, help="longest side in pixels (default 960)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the copies (default 90)")
    parser.add_argument("--crop", type=int, help="real pairs: keep each pair's centre crop of this size (the "
                        "validation crop, --val-crop)")
    args = parser.parse_args(argv)
    try:
        layout = detect_layout(args.source)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    if layout == "sharp" and args.crop:
        raise SystemExit(f"error: {args.source} holds sharp photos: --crop is for real pairs (photos are scaled with "
                         "--max-side)")
    if layout == "sharp":
        count, total = pack_photos(args.source, args.target, args.max_side, args.quality)
        print(f"{count} photos, {total / 2 ** 20:.1f} MiB written to {args.target}")
    elif not args.crop or args.crop < 1:
        raise SystemExit(f"error: {args.source} holds {layout} pairs: give --crop N (pairs are cropped, never scaled)")
    else:
        count, total = pack_pairs(args.source, args.target, args.crop)
        print(f"{count} pairs cropped to {args.crop} px, {total / 2 ** 20:.1f} MiB written to {args.target}")


if __name__ == "__main__":
    main()

"""Copy a folder of sharp photos scaled down, for the trip to a GPU machine (there, the working tree travels with
its data in 64 MiB per call).

    python -m train.pack_data ../shared/data/sharp data/sharp --max-side 1152 --quality 92

Every photo keeps its file name and format, so the 80/10/10 split is the same as the source's; JPEGs are saved again
at --quality, PNGs losslessly. Prints the copy's size. Only sharp photos: scaling real blurred/sharp pairs
would change their blur.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageOps

from vitdeblur.data import list_images


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m train.pack_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a folder of sharp photos")
    parser.add_argument("target", type=Path, help="where the scaled copies go (e.g. data/sharp, git-ignored)")
    parser.add_argument("--max-side", type=int, default=1152, help="longest side in pixels (default 1152)")
    parser.add_argument("--quality", type=int, default=92, help="JPEG quality of the copies (default 92)")
    args = parser.parse_args(argv)
    count, total = pack_photos(args.source, args.target, args.max_side, args.quality)
    print(f"{count} photos, {total / 2 ** 20:.1f} MiB written to {args.target}")


if __name__ == "__main__":
    main()

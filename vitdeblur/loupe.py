"""Where deblurring is worth looking at: the per-pixel change a model made, the region where it changed the image
most, and enlarged crops of one region of several images (the app's detail loupe, the README's crops)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def change_magnitude(blurred: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """Per-pixel |deblurred - blurred|, averaged over the colour channels: (H, W) floats in [0, 1], weighted by the
    blurred image's opacity where it has an alpha channel (its transparent pixels' colours are not part of the
    picture, and the models change them freely: the loupe went to an invisible corner)."""
    change = np.abs(_as_float(restored) - _as_float(blurred)).mean(axis=2)
    alpha = opacity(blurred)
    return change if alpha is None else change * alpha


def most_changed_point(blurred, restored: list, side: int) -> tuple[int, int]:
    """The centre (x, y) of the side x side window where the variants changed the image most (the sum of
    |deblurred - blurred| over the window and over the variants): where deblurring is worth looking at."""
    blurred = picture(blurred)  # converted once for all the variants
    change = sum(change_magnitude(blurred, r) for r in restored)
    if np.isscalar(change):  # no variant ran
        change = np.zeros(blurred.shape[:2])
    height, width = change.shape
    side_y, side_x = min(side, height), min(side, width)
    integral = np.pad(change, ((1, 0), (1, 0))).cumsum(0).cumsum(1)  # window sums in O(1) each
    sums = (integral[side_y:, side_x:] - integral[:-side_y, side_x:] - integral[side_y:, :-side_x]
            + integral[:-side_y, :-side_x])
    top, left = np.unravel_index(np.argmax(sums), sums.shape)
    window = change[top:top + side_y, left:left + side_x]
    if window.sum() <= 0:
        return int(left + side_x // 2), int(top + side_y // 2)
    # Centre on the change inside the best window (equal windows would otherwise leave it at an edge)
    ys, xs = np.mgrid[top:top + side_y, left:left + side_x]
    return int(round((xs * window).sum() / window.sum())), int(round((ys * window).sum() / window.sum()))


def loupe_box(size: tuple[int, int], centre: tuple[float, float], side: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the side x side square around `centre`, moved inside an image of `size`."""
    width, height = size
    side_x, side_y = min(side, width), min(side, height)
    left = int(round(min(max(centre[0] - side_x / 2, 0), width - side_x)))
    top = int(round(min(max(centre[1] - side_y / 2, 0), height - side_y)))
    return left, top, left + side_x, top + side_y


def loupe_crops(images: list[tuple[str, Image.Image]], box: tuple[int, int, int, int],
                zoom: int) -> list[tuple[Image.Image, str]]:
    """The same region of every image, enlarged `zoom` times with nearest-neighbour (so pixels stay pixels and
    nothing is smoothed that the model did not do), as (image, caption) pairs for a gallery."""
    left, top, right, bottom = box
    size = ((right - left) * zoom, (bottom - top) * zoom)
    return [(img.crop(box).resize(size, Image.Resampling.NEAREST), f"{caption} · {zoom}x") for caption, img in images]


def picture(image) -> np.ndarray:
    """A PIL image or an array as floats in [0, 1], its alpha channel kept (RGBA for a PIL image with one): what
    change_magnitude and opacity read, converted once for several uses."""
    if isinstance(image, Image.Image):
        image = image.convert("RGBA") if image.mode in ("RGBA", "LA") else image.convert("RGB")
    image = np.asarray(image)
    return image.astype(np.float32) / 255 if image.dtype == np.uint8 else image


def opacity(image) -> np.ndarray | None:
    """The alpha channel as (H, W) floats in [0, 1], or None for an image without one."""
    if isinstance(image, Image.Image):
        return np.asarray(image.getchannel("A"), np.float32) / 255 if image.mode in ("RGBA", "LA") else None
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] not in (2, 4):
        return None
    alpha = image[..., -1].astype(np.float32)
    return alpha / 255 if image.dtype == np.uint8 else alpha


def _as_float(image) -> np.ndarray:
    """A PIL image or an array (uint8 or float in [0, 1]) -> float RGB (H, W, 3) in [0, 1]; alpha is ignored."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[2] in (2, 4):  # grey or RGB with alpha
        image = image[..., :-1]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return image.astype(np.float32)

"""Synthetic blur that looks like real blur, for training on sharp photos (one torch implementation for the CPU data
loader and for batches made on the GPU).

A degradation is sampled once (`BlurSpec.sample`, numpy RNG: validation fixes it by the file name) and applied by
`degrade`, or by `degrade_batch` to many crops at once. The mix:

* **camera shake, rendered the GoPro way**: the mean of N warped copies of the sharp photo along a smooth random
  camera trajectory (translation, roll, slight zoom), so the blur varies across the frame as real shake does. The
  sharp target is the trajectory's middle frame (GoPro) or its centroid (a centred kernel);
* optionally a **moving object** in the shaken scene (the `moving` mix): a soft-edged ellipse of other content of the
  photo that moves along its own path over the camera-shaken background, hiding and revealing it, as people and cars
  do in GoPro's scenes;
* **uniform motion kernels** and **defocus disks**;
* averaged in **linear light** (GoPro's own recipe) or in **sRGB** (as some public GoPro-style data was made);
* **saturated highlights**: bright pixels are pushed above 1 in linear light before blurring and clipped after, the
  bright streaks of real blur;
* **Poisson-Gaussian noise** in linear light, then **JPEG** at a random quality;
* a strength mix that includes **unblurred** and **lightly blurred** pairs, so the model learns to leave sharp
  content alone (`python -m train.blur_stats` prints the blurred-vs-sharp PSNR histogram next to real pairs).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vitdeblur.images import to_uint8

GAMMA = 2.2  # the camera response used to go to linear light and back
KINDS = ("sharp", "shake", "motion", "defocus")


def motion_kernel(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random camera-shake kernel: a smooth random trajectory (velocity random walk with momentum) whose extent is
    about `size` pixels, rasterised with bilinear splatting and normalised to sum 1."""
    points = _random_walk(rng, 96, 2)
    extent = np.abs(points).max()
    points *= (size - 1) / 2 / max(extent, 1e-6) * 0.95
    return _splat(points + (size - 1) / 2, size)


def line_kernel(length: float, angle_degrees: float) -> np.ndarray:
    """Straight-line motion blur: a segment `length` px long at `angle_degrees` (counter-clockwise, image y down),
    drawn from many points so that any angle is smooth; sums to 1."""
    length = max(float(length), 1.0)
    size = (int(math.ceil(length)) | 1) + 2  # room for the splat on both sides
    angle = math.radians(angle_degrees)
    t = np.linspace(-0.5, 0.5, max(8, int(length * 8)))[:, None] * (length - 1)
    points = (size - 1) / 2 + t * np.array([[-math.sin(angle), math.cos(angle)]])  # (y, x)
    return _splat(points, size)


def _splat(points: np.ndarray, size: int) -> np.ndarray:
    """A (size, size) kernel from (y, x) points, each spread over its 4 neighbouring pixels (bilinear), sum 1."""
    kernel = np.zeros((size, size))
    for y, x in points:
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        fy, fx = y - y0, x - x0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                    kernel[y0 + dy, x0 + dx] += wy * wx
    return (kernel / kernel.sum()).astype(np.float32)


def defocus_kernel(radius: float) -> np.ndarray:
    """A disk (defocus) kernel of the given radius, anti-aliased by 8x supersampling, normalised to sum 1."""
    size = 2 * int(np.ceil(radius)) + 1
    fine = (np.arange(size * 8) + 0.5) / 8 - size / 2
    yy, xx = np.meshgrid(fine, fine, indexing="ij")
    disk = (yy ** 2 + xx ** 2 <= radius ** 2).astype(np.float64)
    kernel = disk.reshape(size, 8, size, 8).mean(axis=(1, 3))
    return (kernel / kernel.sum()).astype(np.float32)


def _centred(path: np.ndarray, anchor: int | None) -> np.ndarray:
    """A path moved so that the target frame (`anchor`; None: the path's centroid) sits at zero."""
    return path - (path[anchor] if anchor is not None else path.mean(axis=0))


def _random_walk(rng: np.random.Generator, steps: int, dims: int) -> np.ndarray:
    """A smooth random path (velocity random walk with momentum and a weak pull back), centred on its mean."""
    velocity = rng.normal(size=dims)
    points = np.zeros((steps, dims))
    for i in range(1, steps):
        velocity = 0.8 * velocity + rng.normal(size=dims) * 0.6 - 0.02 * points[i - 1]
        points[i] = points[i - 1] + velocity
    return points - points.mean(axis=0)


def _smooth_path(rng: np.random.Generator, steps: int, dims: int) -> np.ndarray:
    """A smooth path over one exposure: a velocity bent by an acceleration and a jerk, centred on its mean. A hand
    shaking at ~2 Hz moves the camera in nearly straight arcs over the 30-50 ms of a GoPro blur (acceleration x
    exposure ~0.6 x velocity), so the middle frame sits near the blur's centroid; along a random walk it can lie
    anywhere on the streak, which the blurred image does not show."""
    t = np.linspace(-0.5, 0.5, steps)[:, None]
    velocity, acceleration, jerk = rng.normal(size=(3, dims)) * np.array([[1.0], [0.6], [0.3]])
    points = velocity * t + acceleration * t ** 2 / 2 + jerk * t ** 3 / 6
    return points - points.mean(axis=0)


@dataclass
class Degradation:
    """One sampled degradation. Shake poses are per frame: (dy, dx) in pixels, roll in radians, zoom - 1."""

    kind: str = "sharp"
    extent: float = 0.0  # largest displacement in pixels (the kernel's size for motion, the diameter for defocus)
    poses: np.ndarray | None = None  # (N, 4) for shake
    kernel: np.ndarray | None = None  # (k, k) for motion and defocus
    linear: bool = True  # average in linear light (else in sRGB)
    highlight_gain: float = 1.0  # linear-light gain of the brightest pixels before blurring
    shot_noise: float = 0.0  # Poisson part: variance = shot_noise * signal (linear light)
    read_noise: float = 0.0  # Gaussian part: sigma in linear light
    jpeg_quality: int | None = None
    # shake only: a moving object, an ellipse (centre y, x and radii as fractions of the degraded region, angle in
    # radians) holding the region's content turned 180 degrees, displaced by `mover_path` (N, 2) on top of the camera
    mover: np.ndarray | None = None
    mover_path: np.ndarray | None = None

    @property
    def is_identity(self) -> bool:
        """True when the blurred image equals its target (no blur, noise or JPEG): a pair that measures nothing."""
        return self.kind == "sharp" and not (self.shot_noise or self.read_noise) and self.jpeg_quality is None

    @property
    def margin(self) -> int:
        """Pixels of context needed around a crop so that its border sees real neighbours (and a moving object
        seen from the crop never shows the region's edge)."""
        reach = self.extent + (np.hypot(*self.mover_path.T).max() if self.mover_path is not None else 0.0)
        return int(math.ceil(reach)) + 2


@dataclass
class BlurSpec:
    """The distribution of synthetic degradations. The strengths are calibrated so that, on natural photos, the
    blurred-vs-sharp PSNR covers about 20-35 dB like real GoPro blur, plus unblurred and lightly blurred pairs."""

    sharp_probability: float = 0.08  # no blur at all (noise and JPEG only)
    light_probability: float = 0.17  # extent 0.5-4 px
    min_extent: float = 4.0  # the rest: log-uniform extent in [min_extent, max_extent] px
    max_extent: float = 32.0
    shake_probability: float = 0.6  # of blurred pairs: non-uniform camera shake
    defocus_probability: float = 0.15  # of blurred pairs: defocus disk; the rest uniform motion kernels
    middle_frame_probability: float = 0.5  # shake: the sharp target is the middle frame (GoPro), else the centroid
    max_roll_share: float = 0.6  # shake: share of the extent that roll may cause at the image corners
    max_zoom_share: float = 0.3
    smooth_path_probability: float = 0.0  # shake: smooth arcs (`_smooth_path`) instead of random walks
    linear_probability: float = 0.7
    highlight_probability: float = 0.4
    max_highlight_gain: float = 4.0
    noise_probability: float = 0.8
    max_shot_noise: float = 0.002
    max_read_noise: float = 0.005
    jpeg_probability: float = 0.5
    jpeg_qualities: tuple[int, int] = (60, 95)
    mover_probability: float = 0.0  # of shaken pairs: a moving object too
    mover_speeds: tuple[float, float] = (0.5, 2.0)  # its largest displacement, in units of the camera's

    def sample(self, rng: np.random.Generator) -> Degradation:
        d = Degradation(linear=bool(rng.random() < self.linear_probability))
        u = rng.random()
        if u >= self.sharp_probability:
            if u < self.sharp_probability + self.light_probability:
                d.extent = float(rng.uniform(0.5, self.min_extent))
            else:
                d.extent = float(np.exp(rng.uniform(np.log(self.min_extent), np.log(self.max_extent))))
            v = rng.random()
            d.kind = "shake" if v < self.shake_probability else (
                "defocus" if v < self.shake_probability + self.defocus_probability else "motion")
        anchor = self._draw_blur(d, rng)
        if rng.random() < self.highlight_probability:
            d.highlight_gain = float(rng.uniform(1.0, self.max_highlight_gain))
        if rng.random() < self.noise_probability:
            d.shot_noise = float(rng.uniform(0, self.max_shot_noise))
            d.read_noise = float(rng.uniform(0, self.max_read_noise))
        if rng.random() < self.jpeg_probability:
            d.jpeg_quality = int(rng.integers(self.jpeg_qualities[0], self.jpeg_qualities[1] + 1))
        if d.kind == "shake" and self.mover_probability and rng.random() < self.mover_probability:
            self._add_mover(rng, d, anchor)  # drawn last: specs without movers draw exactly what they did before
        return d

    def blur_only(self, kind: str, extent: float, rng: np.random.Generator, linear: bool = True) -> Degradation:
        """A blur of one kind and extent, without highlights, noise or JPEG: for measuring what a model undoes."""
        if kind not in KINDS[1:]:
            raise ValueError(f"kind must be one of {KINDS[1:]}, got {kind!r}")
        d = Degradation(kind=kind, extent=float(extent), linear=linear)
        self._draw_blur(d, rng)
        return d

    def _draw_blur(self, d: Degradation, rng: np.random.Generator) -> int | None:
        """Fills in the camera path (shake) or kernel of `d`'s kind and extent; returns the frame a shake's target
        is (None: its centroid, or no shake)."""
        if d.kind == "shake":
            d.poses, anchor = self._trajectory(rng, d.extent)
            return anchor
        if d.kind == "motion":
            d.kernel = motion_kernel(rng, max(3, int(round(d.extent)) | 1))
        elif d.kind == "defocus":
            d.kernel = defocus_kernel(max(0.5, d.extent / 2))
        return None

    def _add_mover(self, rng: np.random.Generator, d: Degradation, anchor: int | None) -> None:
        """An object of 10-60% of the region's side on a smooth path of its own, at rest in the target frame."""
        path = _random_walk(rng, len(d.poses), 2)
        path = _centred(path, anchor)
        reach = np.hypot(path[:, 0], path[:, 1]).max()
        path *= rng.uniform(*self.mover_speeds) * max(d.extent, 1.0) / max(reach, 1e-6)
        d.mover = np.array([*rng.uniform(0.25, 0.75, 2), *rng.uniform(0.05, 0.3, 2), rng.uniform(0, np.pi)],
                           np.float32)
        d.mover_path = path.astype(np.float32)

    def _trajectory(self, rng: np.random.Generator, extent: float) -> tuple[np.ndarray, int | None]:
        """Poses of a smooth random camera path whose largest displacement anywhere in the frame is `extent` px.
        Roll and zoom are given as the displacement they cause at the frame's half-diagonal (`degrade` scales them
        to the actual image), so the blur grows towards the corners as real rotational shake does. Also returns the
        frame the target is (None: the target is the path's centroid)."""
        # 7-13 frames like GoPro (ghosting on fast motion), else dense enough for a continuous streak
        frames = int(rng.integers(7, 14)) if rng.random() < 0.3 else int(np.clip(extent, 9, 32))
        # drawn only when asked, so that specs without smooth paths draw exactly what they did before
        smooth = self.smooth_path_probability and rng.random() < self.smooth_path_probability
        path = (_smooth_path if smooth else _random_walk)(rng, frames, 4)
        path /= np.maximum(np.abs(path).max(axis=0), 1e-6)  # each component in [-1, 1]
        shares = np.array([1.0, 1.0, rng.uniform(0, self.max_roll_share), rng.uniform(0, self.max_zoom_share)])
        shares[:2] *= rng.uniform(0.2, 1.0, 2)  # elongated paths as often as round ones
        path *= shares
        anchor = frames // 2 if rng.random() < self.middle_frame_probability else None
        path = _centred(path, anchor)
        reach = np.hypot(path[:, 0], path[:, 1]) + np.abs(path[:, 2]) + np.abs(path[:, 3])
        return (path * extent / max(reach.max(), 1e-6)).astype(np.float32), anchor


@dataclass
class BlurMix:
    """Each degradation drawn from one of several blur distributions, picked with the given weights."""

    specs: tuple[BlurSpec, ...]
    weights: tuple[float, ...]

    def sample(self, rng: np.random.Generator) -> Degradation:
        weights = np.asarray(self.weights, dtype=float)
        return self.specs[rng.choice(len(self.specs), p=weights / weights.sum())].sample(rng)


# Named blur mixes (a recipe's `blur` field). "kernels" is the project's first synthesis, kept for ablations: uniform
# motion (70%) and defocus kernels of 7-41 px in linear light with Gaussian noise; no shake, sharp or lightly blurred
# pairs, highlights or JPEG. "mixed" draws half its pairs from each; "moving" is "mixed" with a moving object in a
# third of the shaken pairs; "mixed-smooth" is "mixed" with smooth camera paths (`_smooth_path`).
REALISTIC = BlurSpec()
KERNELS = BlurSpec(sharp_probability=0.0, light_probability=0.0, min_extent=7.0, max_extent=41.0,
                   shake_probability=0.0, defocus_probability=0.3, linear_probability=1.0, highlight_probability=0.0,
                   noise_probability=1.0, max_shot_noise=0.0, max_read_noise=0.01, jpeg_probability=0.0)
BLURS = {"realistic": REALISTIC, "kernels": KERNELS, "mixed": BlurMix((REALISTIC, KERNELS), (0.5, 0.5)),
         "moving": BlurMix((BlurSpec(mover_probability=1 / 3), KERNELS), (0.5, 0.5)),
         "mixed-smooth": BlurMix((BlurSpec(smooth_path_probability=1.0), KERNELS), (0.5, 0.5))}


def _to_linear(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1) ** GAMMA


def _from_linear(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1) ** (1 / GAMMA)


def convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate (C, H, W) with a (k, k) kernel, or (N, C, H, W) with (k, k) or (N, 1, k, k) kernels, by FFT,
    reflect-padded (replicate-padded for images no larger than the kernel's radius): same size out."""
    k = kernel.shape[-1]
    r = k // 2
    batch = image if image.dim() == 4 else image[None]
    padded = F.pad(batch, (r, r, r, r), mode="reflect" if r < min(image.shape[-2:]) else "replicate")
    h, w = padded.shape[-2:]
    spectrum = torch.fft.rfft2(padded) * torch.fft.rfft2(kernel.flip(-1, -2), s=(h, w))
    full = torch.fft.irfft2(spectrum, s=(h, w))[..., 2 * r:, 2 * r:][..., :image.shape[-2], :image.shape[-1]]
    return full if image.dim() == 4 else full[0]


def ellipse_alpha(ellipse: np.ndarray, height: int, width: int, device=None) -> torch.Tensor:
    """(1, H, W) coverage of an ellipse given as (centre y, x, radii y, x) in fractions of the region and an angle,
    with a soft edge (one pixel wide across its short axis)."""
    cy, cx, ry, rx, angle = (float(v) for v in ellipse)
    side = min(height, width)
    y = torch.arange(height, dtype=torch.float32, device=device).view(-1, 1) - cy * (height - 1)
    x = torch.arange(width, dtype=torch.float32, device=device).view(1, -1) - cx * (width - 1)
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = (cos * y + sin * x) / (ry * side), (cos * x - sin * y) / (rx * side)
    inside_px = (1 - torch.sqrt(u ** 2 + v ** 2)) * min(ry, rx) * side  # about the distance to the edge
    return (inside_px + 0.5).clamp(0, 1)[None]


def object_coverage(ellipses: list, height: int, width: int, device=None) -> torch.Tensor:
    """(N, 1, H, W): how much of each pixel each image's moving object covers (an ellipse; None: no object)."""
    return torch.stack([ellipse_alpha(e, height, width, device) if e is not None
                        else torch.zeros(1, height, width, device=device) for e in ellipses])


def object_colour(images: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """The moving objects' premultiplied colour (N, C, H, W): each image turned 180 degrees (other content than what
    the object covers) seen through its coverage."""
    return images.flip(-1, -2) * coverage


def shake(images: torch.Tensor, poses, origins, frame_sizes, movers=None) -> torch.Tensor:
    """The mean of each image warped by each of its poses. `images` (C, H, W) or (N, C, H, W) are regions at
    `origins` (y, x) of frames of `frame_sizes` (H, W) (for a batch: lists, one per image): roll and zoom turn about
    the frame's centre, so a crop gets the blur of its place. All frames of all images go through a few grid_sample
    calls, so a batch costs about as many calls as one image.

    `movers` (per image: None or a Degradation's (mover, mover_path)) adds a moving object to every frame: the
    image turned 180 degrees seen through the ellipse, warped by the camera's pose plus the object's own offset."""
    single = images.dim() == 3
    images = images[None] if single else images
    n, c, h, w = images.shape
    poses, origins, frame_sizes = ([poses], [origins], [frame_sizes]) if single else (poses, origins, frame_sizes)
    movers = ([movers] if single else movers) or [None] * n
    device = images.device
    frames_of = [len(p) for p in poses]
    owner = torch.repeat_interleave(torch.arange(n), torch.tensor(frames_of)).to(device)  # the image of each frame
    layer = None
    if any(m is not None for m in movers):  # premultiplied object colour and its coverage, offsets per frame
        coverage = object_coverage([m[0] if m is not None else None for m in movers], h, w, device)
        layer = torch.cat([object_colour(images, coverage), coverage], dim=1)
        offsets = torch.from_numpy(np.concatenate([m[1] if m is not None else np.zeros((f, 2))
                                                   for m, f in zip(movers, frames_of)]).astype(np.float32)).to(device)
    # per frame: its pose, its image's half-diagonal, frame centre and origin
    pose = torch.from_numpy(np.concatenate(poses).astype(np.float32)).to(device)
    place = torch.tensor([[0.5 * math.hypot(*f), (f[0] - 1) / 2, (f[1] - 1) / 2, o[0], o[1]]
                          for f, o in zip(frame_sizes, origins)], dtype=torch.float32, device=device)[owner]
    rows = torch.arange(h, dtype=torch.float32, device=device).view(1, -1, 1)
    columns = torch.arange(w, dtype=torch.float32, device=device).view(1, 1, -1)
    total = torch.zeros_like(images)
    chunk = max(1, 2 ** 22 // (h * w))  # frames per grid_sample call: bounded memory for large images
    for start in range(0, len(owner), chunk):
        part = slice(start, start + chunk)
        dy, dx, roll_px, zoom_px = (v.view(-1, 1, 1) for v in pose[part].unbind(1))
        half_diagonal, cy, cx, oy, ox = (v.view(-1, 1, 1) for v in place[part].unbind(1))
        angle, scale = roll_px / half_diagonal, 1 + zoom_px / half_diagonal
        cos, sin = torch.cos(angle), torch.sin(angle)

        def sampling_grid(dy, dx):  # where each output pixel comes from: the inverse of (scale, rotate, translate)
            sy, sx = rows + oy - cy - dy, columns + ox - cx - dx
            src_y = (cos * sy - sin * sx) / scale + cy - oy
            src_x = (sin * sy + cos * sx) / scale + cx - ox
            return torch.stack([2 * src_x / max(w - 1, 1) - 1, 2 * src_y / max(h - 1, 1) - 1], dim=-1)

        grid = sampling_grid(dy, dx)
        source = images.expand(len(grid), c, h, w) if n == 1 else images[owner[part]]
        frames = F.grid_sample(source, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
        if layer is not None:  # the object over the background: hides it where it is, reveals it where it was
            object_dy, object_dx = (v.view(-1, 1, 1) for v in offsets[part].unbind(1))
            moved = F.grid_sample(layer[owner[part]], sampling_grid(dy + object_dy, dx + object_dx),
                                  mode="bilinear", padding_mode="zeros", align_corners=True)
            frames = frames * (1 - moved[:, c:]) + moved[:, :c]
        total.index_add_(0, owner[part], frames)
    total /= torch.tensor(frames_of, dtype=total.dtype, device=device).view(-1, 1, 1, 1)
    return total[0] if single else total


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of uint8 (H, W, 3) (Pillow, 4:2:0 like most cameras and web images)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def degrade(sharp: torch.Tensor, d: Degradation, generator: torch.Generator, origin: tuple[int, int] = (0, 0),
            frame_size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a degradation to sharp RGB (3, H, W) in [0, 1]: (blurred, target), same size, in [0, 1]. The target is
    the sharp photo as the camera would have recorded it: with boosted highlights, clipped like the blurred one.

    For a crop, pass a region with `d.margin` pixels of context on every side, its `origin` in the photo and the
    photo's `frame_size`, and cut the margin off afterwards.
    """
    blurred, target = degrade_batch(sharp[None], [d], generator, [origin], [frame_size or tuple(sharp.shape[-2:])])
    return blurred[0], target[0]


def degrade_batch(sharp: torch.Tensor, ds: list[Degradation], generator: torch.Generator,
                  origins: list[tuple[int, int]], frame_sizes: list[tuple[int, int]]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """`degrade` for N regions of one size (N, 3, H, W), each with its own degradation, origin and frame size. Every
    stage is a few calls for the whole batch rather than a few per image: on a GPU, per-image calls would leave it
    waiting on Python. The result equals each image degraded alone, except for the noise: the same distribution,
    other draws. (Kernels are zero-padded to the largest one; sampled kernels are odd-sized, so none moves.)"""
    def where(test) -> list[int]:
        return [i for i, d in enumerate(ds) if test(d)]

    def per_image(values) -> torch.Tensor:
        return torch.tensor(values, dtype=sharp.dtype, device=sharp.device).view(-1, 1, 1, 1)

    linear, target = _to_linear(sharp), sharp
    boosted = where(lambda d: d.highlight_gain > 1)
    if boosted:  # light brighter than white: clipped in the photo, it smears into bright streaks
        gain = per_image([ds[i].highlight_gain for i in boosted])
        luma = linear[boosted].mean(dim=1, keepdim=True)
        linear[boosted] = linear[boosted] * (1 + (gain - 1) * ((luma - 0.7) / 0.3).clamp(0, 1) ** 2)
        target = sharp.clone()
        target[boosted] = _from_linear(linear[boosted])
    moving = where(lambda d: d.kind == "shake" and d.mover is not None)
    if moving:  # the target shows the object where it rests, its edge mixed as the frames are (linear or sRGB)
        alpha = object_coverage([ds[i].mover for i in moving], *sharp.shape[-2:], sharp.device)
        mixed_in_linear = _from_linear(linear[moving] * (1 - alpha) + object_colour(linear[moving], alpha))
        mixed_in_srgb = target[moving] * (1 - alpha) + object_colour(target[moving], alpha)
        target = target.clone() if target is sharp else target
        target[moving] = torch.where(per_image([ds[i].linear for i in moving]) > 0, mixed_in_linear, mixed_in_srgb)
    work = linear.clone()
    in_srgb = where(lambda d: not d.linear)
    if in_srgb:  # sRGB averaging keeps the boosted values above 1
        work[in_srgb] = linear[in_srgb] ** (1 / GAMMA)
    shaken = where(lambda d: d.kind == "shake")
    if shaken:
        work[shaken] = shake(work[shaken], [ds[i].poses for i in shaken], [origins[i] for i in shaken],
                             [frame_sizes[i] for i in shaken],
                             [(ds[i].mover, ds[i].mover_path) if ds[i].mover is not None else None for i in shaken])
    kernelled = where(lambda d: d.kind in ("motion", "defocus"))
    if kernelled:
        size = max(ds[i].kernel.shape[-1] for i in kernelled)
        kernels = [np.pad(ds[i].kernel, (size - ds[i].kernel.shape[-1]) // 2) for i in kernelled]
        work[kernelled] = convolve(work[kernelled], torch.from_numpy(np.stack(kernels)[:, None]).to(work.device))
    srgb_blurred = where(lambda d: d.kind != "sharp" and not d.linear)
    if srgb_blurred:
        work[srgb_blurred] = work[srgb_blurred].clamp(min=0) ** GAMMA
    blurred = where(lambda d: d.kind != "sharp")
    linear[blurred] = work[blurred]
    linear = linear.clamp(0, 1)
    noisy = where(lambda d: d.shot_noise or d.read_noise)
    if noisy:
        shot, read = per_image([ds[i].shot_noise for i in noisy]), per_image([ds[i].read_noise for i in noisy])
        sigma = (shot * linear[noisy] + read ** 2).sqrt()
        noise = torch.randn(sigma.shape, generator=generator, device=generator.device).to(linear.device)
        linear[noisy] = (linear[noisy] + sigma * noise).clamp(0, 1)
    out = _from_linear(linear)
    compressed = where(lambda d: d.jpeg_quality is not None)
    if compressed:  # one trip to the host and back for all of them
        pixels = to_uint8(out[compressed].permute(0, 2, 3, 1).cpu().numpy())
        decoded = np.stack([jpeg(p, ds[i].jpeg_quality) for p, i in zip(pixels, compressed)])
        out[compressed] = torch.from_numpy(decoded).permute(0, 3, 1, 2).to(out) / 255
    return out, target


def scaled_region(image: torch.Tensor, scale: float, y0: int, x0: int, height: int, width: int) -> torch.Tensor:
    """Float (3, height, width) in [0, 1]: the region at (y0, x0) of a photo (3, H, W), uint8 or float, as it would
    be after resizing the whole photo by `scale` (bilinear, antialiased when shrinking): the same content at the
    same scale, placed to within about a pixel (exactly for a scale of 1/2). Only the source pixels under the region
    are resized, so a crop of a resized 12 MP photo costs what the crop costs."""
    if scale == 1:
        region = image[:, y0:y0 + height, x0:x0 + width]
    else:
        full_h, full_w = image.shape[-2:]
        top, left = int(y0 / scale), int(x0 / scale)
        bottom = min(full_h, max(top + 1, math.ceil((y0 + height) / scale)))
        right = min(full_w, max(left + 1, math.ceil((x0 + width) / scale)))
        region = F.interpolate(image[None, :, top:bottom, left:right].float(), size=(height, width),
                               mode="bilinear", antialias=True, align_corners=False)[0]
    return region / 255 if image.dtype == torch.uint8 else region.float()


def scaled_size(image: torch.Tensor, scale: float) -> tuple[int, int]:
    """(height, width) of a photo (3, H, W) resized by `scale`."""
    return int(image.shape[-2] * scale), int(image.shape[-1] * scale)


def degrade_crop(image: torch.Tensor, d: Degradation, y: int, x: int, size_h: int, size_w: int,
                 generator: torch.Generator, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(blurred, sharp) float crops at (y, x) of a sharp image (3, H, W), uint8 or float in [0, 1], blurred with
    real neighbours as context. Only the region around the crop is converted to float. With `scale` != 1 the photo is
    resized by that factor first ((y, x) are then positions in the resized photo): its content at another scale."""
    m = d.margin
    height, width = scaled_size(image, scale)
    y0, x0 = max(0, y - m), max(0, x - m)
    y1, x1 = min(height, y + size_h + m), min(width, x + size_w + m)
    region = scaled_region(image, scale, y0, x0, y1 - y0, x1 - x0)
    blurred, target = degrade(region, d, generator, (y0, x0), (height, width))
    inner = (slice(None), slice(y - y0, y - y0 + size_h), slice(x - x0, x - x0 + size_w))
    return blurred[inner], target[inner]


def blur_image(sharp: np.ndarray, kernel: np.ndarray, noise_sigma: float = 0.0,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Blur float RGB (H, W, 3) with one kernel in linear light (reflect padding), add Gaussian noise of
    `noise_sigma` in sRGB, clip to [0, 1]. Used for the app's fixed examples and the app's blur-your-own-photo."""
    image = torch.from_numpy(np.ascontiguousarray(sharp, dtype=np.float32)).permute(2, 0, 1)
    blurred = _from_linear(convolve(_to_linear(image), torch.from_numpy(kernel))).permute(1, 2, 0).numpy()
    if noise_sigma > 0:
        blurred = blurred + (rng or np.random.default_rng()).normal(0.0, noise_sigma, blurred.shape)
    return np.clip(blurred, 0, 1).astype(np.float32)

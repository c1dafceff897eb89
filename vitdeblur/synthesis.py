"""Synthetic blur that looks like real blur, for training on sharp photos (one torch implementation for the CPU data
loader and for batches made on the GPU).

A degradation is sampled once (`BlurSpec.sample`, numpy RNG: validation fixes it by the file name) and applied by
`degrade`. The mix:

* **camera shake, rendered the GoPro way**: the mean of N warped copies of the sharp photo along a smooth random
  camera trajectory (translation, roll, slight zoom), so the blur varies across the frame as real shake does. The
  sharp target is the trajectory's middle frame (GoPro) or its centroid (a centred kernel);
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


def _random_walk(rng: np.random.Generator, steps: int, dims: int) -> np.ndarray:
    """A smooth random path (velocity random walk with momentum and a weak pull back), centred on its mean."""
    velocity = rng.normal(size=dims)
    points = np.zeros((steps, dims))
    for i in range(1, steps):
        velocity = 0.8 * velocity + rng.normal(size=dims) * 0.6 - 0.02 * points[i - 1]
        points[i] = points[i - 1] + velocity
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

    @property
    def is_identity(self) -> bool:
        """True when the blurred image equals its target (no blur, noise or JPEG): a pair that measures nothing."""
        return self.kind == "sharp" and not (self.shot_noise or self.read_noise) and self.jpeg_quality is None

    @property
    def margin(self) -> int:
        """Pixels of context needed around a crop so that its border sees real neighbours."""
        return int(math.ceil(self.extent)) + 2


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
    linear_probability: float = 0.7
    highlight_probability: float = 0.4
    max_highlight_gain: float = 4.0
    noise_probability: float = 0.8
    max_shot_noise: float = 0.002
    max_read_noise: float = 0.005
    jpeg_probability: float = 0.5
    jpeg_qualities: tuple[int, int] = (60, 95)

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
        if d.kind == "shake":
            d.poses = self._trajectory(rng, d.extent)
        elif d.kind == "motion":
            d.kernel = motion_kernel(rng, max(3, int(round(d.extent)) | 1))
        elif d.kind == "defocus":
            d.kernel = defocus_kernel(max(0.5, d.extent / 2))
        if rng.random() < self.highlight_probability:
            d.highlight_gain = float(rng.uniform(1.0, self.max_highlight_gain))
        if rng.random() < self.noise_probability:
            d.shot_noise = float(rng.uniform(0, self.max_shot_noise))
            d.read_noise = float(rng.uniform(0, self.max_read_noise))
        if rng.random() < self.jpeg_probability:
            d.jpeg_quality = int(rng.integers(self.jpeg_qualities[0], self.jpeg_qualities[1] + 1))
        return d

    def _trajectory(self, rng: np.random.Generator, extent: float) -> np.ndarray:
        """Poses of a smooth random camera path whose largest displacement anywhere in the frame is `extent` px.
        Roll and zoom are given as the displacement they cause at the frame's half-diagonal (`degrade` scales them
        to the actual image), so the blur grows towards the corners as real rotational shake does."""
        # 7-13 frames like GoPro (ghosting on fast motion), else dense enough for a continuous streak
        frames = int(rng.integers(7, 14)) if rng.random() < 0.3 else int(np.clip(extent, 9, 32))
        path = _random_walk(rng, frames, 4)
        path /= np.maximum(np.abs(path).max(axis=0), 1e-6)  # each component in [-1, 1]
        shares = np.array([1.0, 1.0, rng.uniform(0, self.max_roll_share), rng.uniform(0, self.max_zoom_share)])
        shares[:2] *= rng.uniform(0.2, 1.0, 2)  # elongated paths as often as round ones
        path *= shares
        anchor = path[frames // 2] if rng.random() < self.middle_frame_probability else path.mean(axis=0)
        path -= anchor
        reach = np.hypot(path[:, 0], path[:, 1]) + np.abs(path[:, 2]) + np.abs(path[:, 3])
        return (path * extent / max(reach.max(), 1e-6)).astype(np.float32)


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
# pairs, highlights or JPEG. "mixed" draws half its pairs from each.
REALISTIC = BlurSpec()
KERNELS = BlurSpec(sharp_probability=0.0, light_probability=0.0, min_extent=7.0, max_extent=41.0,
                   shake_probability=0.0, defocus_probability=0.3, linear_probability=1.0, highlight_probability=0.0,
                   noise_probability=1.0, max_shot_noise=0.0, max_read_noise=0.01, jpeg_probability=0.0)
BLURS = {"realistic": REALISTIC, "kernels": KERNELS, "mixed": BlurMix((REALISTIC, KERNELS), (0.5, 0.5))}


def _to_linear(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1) ** GAMMA


def _from_linear(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1) ** (1 / GAMMA)


def convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate (C, H, W) with a (k, k) kernel by FFT, reflect-padded: same size out."""
    k = kernel.shape[-1]
    r = k // 2
    padded = F.pad(image[None], (r, r, r, r), mode="reflect" if r < min(image.shape[-2:]) else "replicate")[0]
    h, w = padded.shape[-2:]
    spectrum = torch.fft.rfft2(padded) * torch.fft.rfft2(kernel.flip(-1, -2), s=(h, w))
    full = torch.fft.irfft2(spectrum, s=(h, w))
    return full[:, 2 * r:, 2 * r:][:, :image.shape[1], :image.shape[2]]


def shake(image: torch.Tensor, poses: np.ndarray, origin: tuple[int, int], frame_size: tuple[int, int]) -> torch.Tensor:
    """The mean of the image warped by each pose. `image` (C, H, W) is a region at `origin` (y, x) of a frame of
    `frame_size` (H, W): roll and zoom turn about the frame's centre, so a crop gets the blur of its place."""
    c, h, w = image.shape
    half_diagonal = 0.5 * math.hypot(*frame_size)
    cy, cx = (frame_size[0] - 1) / 2, (frame_size[1] - 1) / 2
    ys = torch.arange(h, dtype=torch.float32, device=image.device) + origin[0] - cy
    xs = torch.arange(w, dtype=torch.float32, device=image.device) + origin[1] - cx
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    total = torch.zeros_like(image)
    poses_t = torch.from_numpy(np.asarray(poses, np.float32)).to(image.device)
    for chunk in poses_t.split(16):  # several frames per grid_sample call, bounded memory for large images
        dy, dx, roll_px, zoom_px = (v.view(-1, 1, 1) for v in chunk.unbind(1))
        angle, scale = roll_px / half_diagonal, 1 + zoom_px / half_diagonal
        cos, sin = torch.cos(angle), torch.sin(angle)
        # Where each output pixel comes from: the inverse of (scale, rotate about the centre, translate).
        sy, sx = yy - dy, xx - dx
        src_y = (cos * sy - sin * sx) / scale + cy - origin[0]
        src_x = (sin * sy + cos * sx) / scale + cx - origin[1]
        grid = torch.stack([2 * src_x / max(w - 1, 1) - 1, 2 * src_y / max(h - 1, 1) - 1], dim=-1)
        frames = F.grid_sample(image[None].expand(len(chunk), c, h, w), grid, mode="bilinear",
                               padding_mode="reflection", align_corners=True)
        total += frames.sum(dim=0)
    return total / len(poses)


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG round trip of (3, H, W) in [0, 1] (Pillow, 4:2:0 like most cameras and web images)."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image.permute(1, 2, 0).cpu().numpy())).save(buffer, "JPEG", quality=quality)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return torch.from_numpy(decoded.copy()).permute(2, 0, 1).to(image.device, torch.float32) / 255


def degrade(sharp: torch.Tensor, d: Degradation, generator: torch.Generator, origin: tuple[int, int] = (0, 0),
            frame_size: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a degradation to sharp RGB (3, H, W) in [0, 1]: (blurred, target), same size, in [0, 1]. The target is
    the sharp photo as the camera would have recorded it: with boosted highlights, clipped like the blurred one.

    For a crop, pass a region with `d.margin` pixels of context on every side, its `origin` in the photo and the
    photo's `frame_size`, and cut the margin off afterwards.
    """
    frame_size = frame_size or tuple(sharp.shape[-2:])
    linear = _to_linear(sharp)
    target = sharp
    if d.highlight_gain > 1:  # light brighter than white: clipped in the photo, it smears into bright streaks
        luma = linear.mean(dim=0, keepdim=True)
        linear = linear * (1 + (d.highlight_gain - 1) * ((luma - 0.7) / 0.3).clamp(0, 1) ** 2)
        target = _from_linear(linear)
    if d.kind != "sharp":
        work = linear if d.linear else linear ** (1 / GAMMA)  # sRGB averaging keeps the boosted values above 1
        if d.kind == "shake":
            work = shake(work, d.poses, origin, frame_size)
        else:
            work = convolve(work, torch.from_numpy(d.kernel).to(work.device))
        linear = work if d.linear else work.clamp(min=0) ** GAMMA
    linear = linear.clamp(0, 1)
    if d.shot_noise or d.read_noise:
        sigma = (d.shot_noise * linear + d.read_noise ** 2).sqrt()
        noise = torch.randn(linear.shape, generator=generator, device=generator.device).to(linear.device)
        linear = (linear + sigma * noise).clamp(0, 1)
    out = _from_linear(linear)
    if d.jpeg_quality is not None:
        out = jpeg(out, d.jpeg_quality)
    return out, target


def degrade_crop(image: torch.Tensor, d: Degradation, y: int, x: int, size_h: int, size_w: int,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(blurred, sharp) float crops at (y, x) of a sharp image (3, H, W), uint8 or float in [0, 1], blurred with
    real neighbours as context. Only the region around the crop is converted to float."""
    m = d.margin
    height, width = image.shape[-2:]
    y0, x0 = max(0, y - m), max(0, x - m)
    region = image[:, y0:min(height, y + size_h + m), x0:min(width, x + size_w + m)]
    region = region.float() / 255 if region.dtype == torch.uint8 else region.float()
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

"""Training batches made on the training device itself (`python -m train --device-data`).

A GPU pushes thousands of small crops per second through a ViT-Tiny-sized model, far more than CPU workers can blur.
So every training image is held in device memory (uint8), crops are cut there, and synthetic blur is applied to a
whole batch at once by FFT, with kernels drawn from a bank sampled once at start-up from the same BlurSpec as the
CPU pipeline (vitdeblur.data). Real pairs are cropped as they are.
"""

from __future__ import annotations

import numpy as np
import torch

from vitdeblur.data import GAMMA, BlurSpec, DeblurDataset


def fft_blur(images: torch.Tensor, kernels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Blur (N, 3, S, S) images in [0, 1] with (N, K, K) kernels in linear light, by FFT.

    The convolution is circular: callers cut a margin of K // 2 pixels off every side afterwards.
    """
    n, _, size, _ = images.shape
    k = kernels.shape[-1]
    padded = torch.zeros(n, size, size, device=images.device, dtype=torch.float32)
    padded[:, :k, :k] = kernels.flip(-1, -2)  # flipped: the same correlation as blur_image's
    padded = torch.roll(padded, shifts=(-(k // 2), -(k // 2)), dims=(1, 2))  # kernel centre at the origin
    linear = images.float().clamp(0, 1) ** GAMMA
    blurred = torch.fft.irfft2(torch.fft.rfft2(linear) * torch.fft.rfft2(padded)[:, None], s=(size, size))
    blurred = blurred.clamp(0, 1) ** (1 / GAMMA)
    blurred = blurred + noise.view(n, 1, 1, 1) * torch.randn(blurred.shape, device=images.device, generator=generator)
    return blurred.clamp(0, 1)


class DeviceBatches:
    """An iterable of `steps` (blurred, sharp) batches, made on `device` from the items of `datasets`.

    Items are drawn uniformly over all items of all datasets, like ConcatDataset + RandomSampler(replacement=True).
    """

    def __init__(self, datasets: list[DeblurDataset], batch_size: int, crop: int, steps: int,
                 device: torch.device, blur_spec: BlurSpec | None = None, kernel_bank: int = 2048, seed: int = 0):
        self.batch_size, self.crop, self.steps, self.device = batch_size, crop, steps, device
        spec = blur_spec or BlurSpec()
        self.sharp_only, self.pairs = [], []
        for dataset in datasets:
            for pair in dataset.pairs:
                to_device = lambda path: torch.from_numpy(dataset.read_uint8(path)).permute(2, 0, 1).to(device)  # noqa: E731
                if pair.blur is None:
                    self.sharp_only.append(to_device(pair.sharp))
                else:
                    self.pairs.append((to_device(pair.blur), to_device(pair.sharp)))
        too_small = [tuple(t.shape[1:]) for t in self.sharp_only + [p[1] for p in self.pairs] if min(t.shape[1:]) < crop]
        if too_small:
            raise ValueError(f"images smaller than the crop size {crop}: {too_small[:3]}")
        rng = np.random.default_rng(seed)
        self.kernel_size = spec.max_size | 1
        bank, noise = np.zeros((kernel_bank, self.kernel_size, self.kernel_size), np.float32), []
        for i in range(kernel_bank):
            kernel, sigma = spec.sample(rng)
            offset = (self.kernel_size - kernel.shape[0]) // 2
            bank[i, offset:offset + kernel.shape[0], offset:offset + kernel.shape[1]] = kernel
            noise.append(sigma)
        self.kernels = torch.from_numpy(bank).to(device)
        self.noise = torch.tensor(noise, device=device)
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.rng = np.random.default_rng(seed + 1)

    def __len__(self) -> int:
        return self.steps

    def _crop(self, image: torch.Tensor, size: int, y: int, x: int) -> torch.Tensor:
        return image[:, y:y + size, x:x + size]

    def _position(self, image: torch.Tensor, size: int) -> tuple[int, int]:
        return (int(self.rng.integers(0, image.shape[1] - size + 1)), int(self.rng.integers(0, image.shape[2] - size + 1)))

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        n_items = len(self.sharp_only) + len(self.pairs)
        picks = self.rng.integers(0, n_items, self.batch_size)
        synthetic = [self.sharp_only[i] for i in picks if i < len(self.sharp_only)]
        real = [self.pairs[i - len(self.sharp_only)] for i in picks if i >= len(self.sharp_only)]
        blurs, sharps = [], []
        if synthetic:
            margin = self.kernel_size // 2
            size = self.crop + 2 * margin
            regions = []
            for image in synthetic:  # images smaller than crop + margin get a reflect-padded region
                region = image if min(image.shape[1:]) >= size else torch.nn.functional.pad(
                    image[None].float(), (margin,) * 4, mode="reflect")[0].to(image.dtype)
                regions.append(self._crop(region, size, *self._position(region, size)))
            regions = torch.stack(regions).float() / 255
            chosen = torch.from_numpy(self.rng.integers(0, len(self.kernels), len(regions))).to(self.device)
            blurred = fft_blur(regions, self.kernels[chosen], self.noise[chosen], self.generator)
            inner = (slice(None), slice(None), slice(margin, margin + self.crop), slice(margin, margin + self.crop))
            blurs.append(blurred[inner])
            sharps.append(regions[inner])
        if real:
            crops = []
            for blur, sharp in real:
                y, x = self._position(sharp, self.crop)
                crops.append((self._crop(blur, self.crop, y, x), self._crop(sharp, self.crop, y, x)))
            blurs.append(torch.stack([b for b, _ in crops]).float() / 255)
            sharps.append(torch.stack([s for _, s in crops]).float() / 255)
        blur, sharp = torch.cat(blurs), torch.cat(sharps)
        if self.rng.random() < 0.5:
            blur, sharp = blur.flip(-1), sharp.flip(-1)
        if self.rng.random() < 0.5:
            blur, sharp = blur.flip(-2), sharp.flip(-2)
        return blur, sharp

    def __iter__(self):
        for _ in range(self.steps):
            yield self.batch()

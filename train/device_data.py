"""Training batches made on the training device itself (`python -m train --device-data`).

A GPU pushes thousands of small crops per second through a ViT-Tiny-sized model, more than CPU workers can blur and
ship. So every training image is held in device memory (uint8), crops are cut there, and the synthetic blur runs on
the device with the very same code and distribution as the CPU pipeline (`vitdeblur.synthesis`), all crops of a
batch at once (`degrade_batch`): per-crop calls would leave the GPU waiting on Python. Real pairs are cropped as
they are.
"""

from __future__ import annotations

import numpy as np
import torch

from vitdeblur.data import DeblurDataset
from vitdeblur.synthesis import degrade_batch, scaled_region, scaled_size


class DeviceBatches:
    """An iterable of `steps` (blurred, sharp) batches, made on `device` from the items of `datasets`.

    Items are drawn uniformly over all items of all datasets, like ConcatDataset + RandomSampler(replacement=True).
    """

    def __init__(self, datasets: list[DeblurDataset], batch_size: int, crop: int, steps: int,
                 device: torch.device, seed: int = 0):
        self.batch_size, self.crop, self.steps, self.device = batch_size, crop, steps, device
        self.sharp_only, self.datasets_of, self.pairs = [], [], []
        for dataset in datasets:
            for pair in dataset.pairs:
                if pair.blur is None:  # blurred and shrunk as its dataset says, as the CPU loader does
                    self.sharp_only.append(self._to_device(dataset, pair.sharp))
                    self.datasets_of.append(dataset)
                else:
                    self.pairs.append((self._to_device(dataset, pair.blur), self._to_device(dataset, pair.sharp)))
        too_small = [tuple(t.shape[1:]) for t in self.sharp_only + [p[1] for p in self.pairs] if min(t.shape[1:]) < crop]
        if too_small:
            raise ValueError(f"images smaller than the crop size {crop}: {too_small[:3]}")
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.rng = np.random.default_rng(seed + 1)

    def _to_device(self, dataset: DeblurDataset, path) -> torch.Tensor:
        return torch.from_numpy(dataset.read_uint8(path)).permute(2, 0, 1).to(self.device)  # uint8 (3, H, W)

    def __len__(self) -> int:
        return self.steps

    def _crop(self, image: torch.Tensor, size: int, y: int, x: int) -> torch.Tensor:
        return image[:, y:y + size, x:x + size]

    def _position(self, frame: tuple[int, int], size: int) -> tuple[int, int]:
        return int(self.rng.integers(0, frame[0] - size + 1)), int(self.rng.integers(0, frame[1] - size + 1))

    def _region(self, frame: tuple[int, int], y: int, x: int, size: tuple[int, int]) -> tuple[int, int]:
        """The corner of a `size` region of a `frame`-sized photo that holds the crop at (y, x), with the crop as
        central as the photo's borders allow (real neighbours as blur context wherever there are some)."""
        corner = []
        for start, extent, full in ((y, size[0], frame[0]), (x, size[1], frame[1])):
            low, high = max(0, start + self.crop - extent), min(start, full - extent)
            corner.append(int(np.clip(start - (extent - self.crop) // 2, low, high)))
        return corner[0], corner[1]

    def _synthesise(self, items: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Blurred and sharp crops of the given sharp photos, degraded together (`degrade_batch`): each crop is cut
        with the context its batch's widest blur needs, or as much of it as its photo has; crops whose regions come
        out the same size (all of them, unless some photos are that small) go through one call."""
        degradations = [self.datasets_of[i].blur_spec.sample(self.rng) for i in items]
        reach = self.crop + 2 * max(d.margin for d in degradations)
        groups: dict[tuple[int, int], list[int]] = {}
        regions, corners, frames, inner = [], [], [], []
        for k, i in enumerate(items):
            image = self.sharp_only[i]
            scale = self.datasets_of[i].random_scale(*image.shape[1:], self.crop, self.rng)
            frame = scaled_size(image, scale)
            size = (min(reach, frame[0]), min(reach, frame[1]))
            y, x = self._position(frame, self.crop)
            y0, x0 = self._region(frame, y, x, size)
            regions.append(scaled_region(image, scale, y0, x0, *size))
            corners.append((y0, x0))
            frames.append(frame)
            inner.append((y - y0, x - x0))
            groups.setdefault(size, []).append(k)
        blurs, sharps = [None] * len(items), [None] * len(items)
        for members in groups.values():
            blurred, target = degrade_batch(torch.stack([regions[k] for k in members]),
                                            [degradations[k] for k in members], self.generator,
                                            [corners[k] for k in members], [frames[k] for k in members])
            for k, b, t in zip(members, blurred, target):
                blurs[k], sharps[k] = self._crop(b, self.crop, *inner[k]), self._crop(t, self.crop, *inner[k])
        return torch.stack(blurs), torch.stack(sharps)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        n_items = len(self.sharp_only) + len(self.pairs)
        picks = self.rng.integers(0, n_items, self.batch_size)
        synthetic = [i for i in picks if i < len(self.sharp_only)]
        real = [self.pairs[i - len(self.sharp_only)] for i in picks if i >= len(self.sharp_only)]
        blurs, sharps = [], []
        if synthetic:
            blur, sharp = self._synthesise(synthetic)
            blurs.append(blur)
            sharps.append(sharp)
        if real:
            crops = []
            for blur, sharp in real:
                y, x = self._position(tuple(sharp.shape[1:]), self.crop)
                crops.append((self._crop(blur, self.crop, y, x), self._crop(sharp, self.crop, y, x)))
            blurs.append(torch.stack([b for b, _ in crops]).float() / 255)
            sharps.append(torch.stack([s for _, s in crops]).float() / 255)
        blur, sharp = torch.cat(blurs), torch.cat(sharps)
        if self.rng.random() < 0.5:
            blur, sharp = blur.flip(-1), sharp.flip(-1)
        if self.rng.random() < 0.5:
            blur, sharp = blur.flip(-2), sharp.flip(-2)
        if self.rng.random() < 0.5:
            blur, sharp = blur.transpose(-1, -2), sharp.transpose(-1, -2)
        return blur, sharp

    def __iter__(self):
        for _ in range(self.steps):
            yield self.batch()

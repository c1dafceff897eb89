import numpy as np
import torch
from conftest import photo

from train.device_data import DeviceBatches, fft_blur
from vitdeblur.data import blur_image, load_dataset, motion_kernel


def test_fft_blur_matches_the_cpu_blur_away_from_the_border():
    sharp = photo("astronaut", (96, 96)).astype(np.float32) / 255
    kernel = motion_kernel(np.random.default_rng(0), 15)
    expected = blur_image(sharp, kernel)
    images = torch.from_numpy(sharp).permute(2, 0, 1)[None]
    got = fft_blur(images, torch.from_numpy(kernel)[None], torch.zeros(1), torch.Generator().manual_seed(0))
    got = got[0].permute(1, 2, 0).numpy()
    inner = (slice(7, -7), slice(7, -7))
    assert np.abs(got[inner] - expected[inner]).max() < 1e-3  # float32 FFT rounding, amplified near black


def test_device_batches_mix_synthetic_and_real_pairs(sharp_folder, pairs_folder):
    datasets = [load_dataset(d, "train", train=True, crop=32) for d in (sharp_folder, pairs_folder)]
    batches = DeviceBatches(datasets, batch_size=16, crop=32, steps=3, device=torch.device("cpu"))
    assert len(batches) == 3 and len(batches.sharp_only) == 8 and len(batches.pairs) == 8
    seen = list(batches)
    assert len(seen) == 3
    for blur, sharp in seen:
        assert blur.shape == sharp.shape == (16, 3, 32, 32)
        assert 0 <= blur.min() and blur.max() <= 1
        assert (blur - sharp).abs().mean() > 0.005  # blurred inputs differ from their targets

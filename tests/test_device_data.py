import torch

from train.device_data import DeviceBatches
from vitdeblur.data import load_dataset


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

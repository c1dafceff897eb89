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


class OneDegradation:
    def __init__(self, degradation):
        self.degradation = degradation

    def sample(self, rng):
        return self.degradation


def test_device_crops_are_blurred_with_their_context_as_in_the_whole_photo(sharp_folder):
    import numpy as np

    from vitdeblur.synthesis import Degradation, degrade

    dataset = load_dataset(sharp_folder, "train", train=True, crop=32)
    shake = Degradation(kind="shake", extent=6, poses=np.array([(0, 0, 0, 0), (3, -2, 4, 0), (6, -4, 5, 2)],
                                                                 np.float32))
    dataset.blur_spec = OneDegradation(shake)
    batches = DeviceBatches([dataset], batch_size=2, crop=32, steps=1, device=torch.device("cpu"))
    photo = batches.sharp_only[0]
    batches.sharp_only.append(photo[:, :36, :36].clone())  # a photo too small for the blur's context...
    batches.datasets_of.append(dataset)
    whole, _ = degrade(photo.float() / 255, shake, torch.Generator())
    for y, x in [(0, 0), (20, 17), (photo.shape[1] - 32, photo.shape[2] - 32)]:  # corner, inside, far corner
        batches._position = lambda frame, size: (y, x) if frame == tuple(photo.shape[1:]) else (0, 0)
        blurred, sharp = batches._synthesise([0, len(batches.sharp_only) - 1])  # ...does not cut the other's
        assert torch.equal(sharp[0], photo[:, y:y + 32, x:x + 32].float() / 255)
        assert torch.allclose(blurred[0], whole[:, y:y + 32, x:x + 32], atol=1e-3)  # float32 grid rounding


def test_device_crops_are_shrunk_as_the_cpu_loaders_are(tmp_path):
    from test_data import UNBLURRED, ramp_photos, ramp_slope

    dataset = load_dataset(ramp_photos(tmp_path / "ramps"), "all", train=True, crop=32, blur_spec=UNBLURRED,
                           min_scale=0.4)
    blurred, sharp = DeviceBatches([dataset], batch_size=16, crop=32, steps=1, device=torch.device("cpu")).batch()
    assert torch.allclose(blurred, sharp, atol=1e-5)  # unblurred: only the scale changes
    slopes = [ramp_slope(crop) for crop in sharp]
    assert 1.9 < min(slopes) and max(slopes) < 2 / 0.4 + 0.2 and max(slopes) > 1.5 * min(slopes)

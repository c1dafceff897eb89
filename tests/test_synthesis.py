import re

import numpy as np
import pytest
import torch
from conftest import photo, tiny_model

from train.blur_stats import main as blur_stats
from train.degradation_gains import degraded_crops
from train.degradation_gains import main as degradation_gains
from vitdeblur import save_checkpoint
from vitdeblur.data import find_pairs
from vitdeblur.evaluate import psnr
from vitdeblur.synthesis import (BLURS, REALISTIC, BlurMix, BlurSpec, Degradation, degrade, degrade_crop,
                                 line_kernel, scaled_size, shake)


def image_tensor(name="astronaut", size=(96, 96)) -> torch.Tensor:
    return torch.from_numpy(photo(name, size).astype(np.float32) / 255).permute(2, 0, 1)


def poses(*rows) -> np.ndarray:
    return np.array(rows, np.float32)  # (dy, dx, roll_px, zoom_px) per frame


def test_shake_is_the_mean_of_the_shifted_frames():
    image = image_tensor()
    assert torch.allclose(shake(image, poses((0, 0, 0, 0)), (0, 0), (96, 96)), image, atol=1e-5)
    two = shake(image, poses((0, 0, 0, 0), (0, 4, 0, 0)), (0, 0), (96, 96))
    expected = (image + torch.roll(image, 4, dims=2)) / 2  # the scene moved 4 px right in the second frame
    assert torch.allclose(two[:, :, 8:], expected[:, :, 8:], atol=1e-4)


def test_roll_blurs_the_corners_more_than_the_centre():
    from scipy.ndimage import gaussian_filter

    texture = gaussian_filter(np.random.default_rng(0).random((160, 160)), 3)  # detail of the same scale everywhere
    image = torch.from_numpy((texture - texture.min()) / np.ptp(texture)).float().expand(3, -1, -1)
    rolled = shake(image, poses(*[(0, 0, r, 0) for r in np.linspace(-6, 6, 13)]), (0, 0), (160, 160))
    change = (rolled - image).abs().mean(dim=0)
    assert change[60:100, 60:100].mean() * 2 < change[:30, :30].mean()


def test_a_crop_with_context_is_blurred_as_in_the_whole_photo():
    image = image_tensor("coffee", (128, 160))
    d = Degradation(kind="shake", extent=6, poses=poses((0, 0, 0, 0), (3, -2, 4, 0), (5, -4, 5, 2)), linear=True)
    whole, _ = degrade(image, d, torch.Generator())
    blur, sharp = degrade_crop((image * 255).round().byte(), d, 70, 90, 32, 40, torch.Generator())
    assert torch.equal(sharp, (image * 255).round()[:, 70:102, 90:130] / 255)
    quantised_whole, _ = degrade((image * 255).round() / 255, d, torch.Generator())
    assert torch.allclose(blur, quantised_whole[:, 70:102, 90:130], atol=1e-4)
    assert (whole - image).abs().mean() > 0.01


def test_a_crop_of_a_shrunk_photo_is_that_crop_of_the_photo_shrunk_whole():
    import torch.nn.functional as F

    image = torch.from_numpy(photo("astronaut", (240, 200))).permute(2, 0, 1)  # uint8
    d = Degradation(kind="motion", extent=5, kernel=line_kernel(5, 30))
    small = F.interpolate(image[None].float() / 255, size=scaled_size(image, 0.5), mode="bilinear",
                          antialias=True, align_corners=False)[0]
    whole_blur, whole_sharp = degrade(small, d, torch.Generator())
    assert small.shape[1:] == (100, 120)
    for y, x in [(0, 0), (30, 41), (100 - 32, 120 - 40)]:  # corner, inside, far corner
        blur, sharp = degrade_crop(image, d, y, x, 32, 40, torch.Generator(), scale=0.5)
        assert torch.allclose(sharp, whole_sharp[:, y:y + 32, x:x + 40], atol=1e-5)
        assert torch.allclose(blur, whole_blur[:, y:y + 32, x:x + 40], atol=1e-3)  # float32 FFT rounding
    blur, sharp = degrade_crop(image, d, 50, 60, 32, 32, torch.Generator(), scale=0.73)  # any factor: the same size
    assert blur.shape == sharp.shape == (3, 32, 32)


def test_highlights_bloom_and_noise_and_jpeg_degrade():
    image = torch.full((3, 64, 64), 0.2)
    image[:, 30:34, 30:34] = 1.0  # a small light source
    d = Degradation(kind="motion", extent=15, kernel=np.full((1, 15), 1 / 15, np.float32).repeat(15, 0) / 15)
    plain, plain_target = degrade(image, d, torch.Generator())
    bright, bright_target = degrade(image, Degradation(**{**d.__dict__, "highlight_gain": 4.0}), torch.Generator())
    assert bright[:, 24:40, 24:40].mean() > plain[:, 24:40, 24:40].mean() + 0.05  # the streak carries more light
    assert torch.equal(plain_target, image)  # a target without boosted highlights is the photo itself...
    assert torch.allclose(bright_target, image, atol=1e-5)  # ...and a boosted white clips to white; greys stay
    grey = torch.full((3, 8, 8), 0.9)
    _, boosted_target = degrade(grey, Degradation(highlight_gain=4.0), torch.Generator())
    assert (boosted_target > 0.9).all() and boosted_target.max() <= 1  # the target saturates like the input
    noisy, _ = degrade(image, Degradation(read_noise=0.02, shot_noise=0.004), torch.Generator().manual_seed(0))
    assert 0.002 < (noisy - image).abs().mean() < 0.1
    compressed, _ = degrade(image_tensor(), Degradation(jpeg_quality=30), torch.Generator())
    assert 0 < (compressed - image_tensor()).abs().mean() < 0.05


def test_the_distribution_mixes_kinds_and_strengths():
    rng = np.random.default_rng(0)
    spec = BlurSpec()
    samples = [spec.sample(rng) for _ in range(400)]
    kinds = {s.kind for s in samples}
    assert kinds == {"sharp", "shake", "motion", "defocus"}
    extents = np.array([s.extent for s in samples if s.kind != "sharp"])
    assert extents.min() >= 0.5 and extents.max() <= spec.max_extent
    assert (extents < spec.min_extent).mean() > 0.1  # lightly blurred pairs teach the model to leave detail alone
    assert any(not s.linear for s in samples) and any(s.linear for s in samples)  # sRGB and linear-light averaging
    for s in samples:
        if s.kind == "shake":
            reach = np.hypot(s.poses[:, 0], s.poses[:, 1]) + np.abs(s.poses[:, 2:]).sum(axis=1)
            assert reach.max() == pytest.approx(s.extent, rel=1e-4) and s.margin > s.extent


def test_the_kernels_mix_only_makes_strong_uniform_kernels():
    rng = np.random.default_rng(0)
    samples = [BLURS["kernels"].sample(rng) for _ in range(200)]
    assert {s.kind for s in samples} == {"motion", "defocus"}
    assert all(7 <= s.extent <= 41 and s.linear and s.highlight_gain == 1 and s.jpeg_quality is None for s in samples)


def test_a_blur_mix_draws_from_each_of_its_distributions_by_weight():
    rng = np.random.default_rng(0)
    mix = BlurMix((BlurSpec(sharp_probability=1.0), BLURS["kernels"]), (0.25, 0.75))
    kinds = [mix.sample(rng).kind for _ in range(400)]
    assert 0.18 < kinds.count("sharp") / 400 < 0.32 and {"motion", "defocus"} <= set(kinds)


def test_validation_degradations_are_fixed_by_seed():
    a, b = BlurSpec().sample(np.random.default_rng(5)), BlurSpec().sample(np.random.default_rng(5))
    assert a.kind == b.kind and a.extent == b.extent


def test_blur_stats_prints_a_histogram(sharp_folder, pairs_folder, capsys):
    blur_stats(["--sharp", str(sharp_folder), "--real", str(pairs_folder), "--samples", "12", "--crop", "32"])
    out = capsys.readouterr().out
    assert "20-25 dB" in out and "median" in out and "synthetic" in out and "sharp fine detail" in out


def test_enlarged_photos_hold_less_fine_detail_per_pixel():
    from train.blur_stats import fine_detail

    image = photo("astronaut", (128, 128)).astype(np.float32) / 255
    enlarged = torch.nn.functional.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None], scale_factor=2,
                                               mode="bilinear")[0].permute(1, 2, 0).numpy()
    assert fine_detail(enlarged) < 0.5 * fine_detail(image)
    assert fine_detail(np.full((16, 16, 3), 0.5)) == 0


def test_a_batch_is_degraded_as_each_image_alone():
    from vitdeblur.synthesis import defocus_kernel, degrade_batch, motion_kernel

    rng = np.random.default_rng(0)
    names = ("astronaut", "coffee", "chelsea", "rocket", "camera")
    sharp = torch.stack([image_tensor(name, (64, 80)) for name in names])
    ds = [Degradation(kind="shake", extent=5, poses=poses((0, 0, 0, 0), (2, 3, 1, 0), (4, 5, 3, 1)), linear=False),
          Degradation(kind="motion", extent=9, kernel=motion_kernel(rng, 9), highlight_gain=3.0, jpeg_quality=40),
          Degradation(kind="defocus", extent=4, kernel=defocus_kernel(2.0), linear=False),
          Degradation(kind="shake", extent=3, poses=poses((0, 0, 0, 0), (1, -3, 0, 2)), highlight_gain=2.0,
                      mover=np.array([0.4, 0.6, 0.2, 0.3, 1.0], np.float32),
                      mover_path=np.array([(0, 0), (3, -6)], np.float32)),
          Degradation(jpeg_quality=80)]
    origins, frames = [(0, 0), (5, 0), (0, 7), (30, 40), (0, 0)], [(64, 80), (100, 90), (64, 120), (300, 200), (64, 80)]
    blurred, target = degrade_batch(sharp, ds, torch.Generator(), origins, frames)
    for i, d in enumerate(ds):
        alone, alone_target = degrade(sharp[i], d, torch.Generator(), origins[i], frames[i])
        assert torch.allclose(blurred[i], alone, atol=1e-4), d.kind
        assert torch.allclose(target[i], alone_target, atol=1e-6)
    assert (blurred[:4] - sharp[:4]).abs().mean() > 0.01


def test_a_moving_object_hides_and_reveals_the_background_and_rests_in_the_target():
    image = image_tensor("coffee", (96, 96))
    still = np.zeros((5, 4), np.float32)  # the camera does not move
    ellipse = np.array([0.5, 0.5, 0.15, 0.15, 0.0], np.float32)  # a disc of radius 14 px in the middle
    resting = Degradation(kind="shake", extent=1, poses=still, mover=ellipse, mover_path=np.zeros((5, 2), np.float32))
    blurred, target = degrade(image, resting, torch.Generator())
    assert torch.allclose(blurred, target, atol=2e-3)  # nothing moves: nothing blurs (grid rounding, dark pixels)
    assert torch.allclose(target[:, 44:52, 44:52], image.flip(-1, -2)[:, 44:52, 44:52], atol=1e-5)  # other inside...
    assert torch.allclose(target[:, :20], image[:, :20], atol=1e-5)  # ...the photo itself outside
    path = np.stack([np.zeros(5), np.linspace(-10, 10, 5)], 1).astype(np.float32)  # the object moves 20 px sideways
    moving = Degradation(**{**resting.__dict__, "mover_path": path})
    blurred, target = degrade(image, moving, torch.Generator())
    assert torch.allclose(blurred[:, :20], image[:, :20], atol=1e-5)  # the background stays sharp...
    assert (blurred[:, 40:56, 20:76] - target[:, 40:56, 20:76]).abs().mean() > 0.02  # ...the object smears over it
    halves = torch.full((3, 96, 96), 0.2)
    halves[:, 48:] = 0.8  # a dark top whose 180-degree turn is bright: a bright object passing over a dark ground
    high = Degradation(**{**moving.__dict__, "mover": np.array([0.25, 0.5, 0.15, 0.15, 0.0], np.float32)})
    blurred, target = degrade(halves, high, torch.Generator())
    assert torch.allclose(target[:, 24, 48], torch.tensor(0.8)) and torch.allclose(blurred[:, 24, 48], torch.tensor(0.8))
    rim = blurred[:, 24, 59:62]  # covered where the object rests, uncovered in its farther frames: revealed
    assert (0.3 < rim).all() and (rim < 0.75).all()
    assert moving.margin >= resting.margin + 10  # crops take context for how far the object moves
    samples = [BLURS["moving"].sample(np.random.default_rng(i)) for i in range(300)]
    movers = [s for s in samples if s.mover is not None]
    assert 0.05 < len(movers) / 300 < 0.2 and all(s.kind == "shake" for s in movers)
    assert all(len(s.mover_path) == len(s.poses) for s in movers)


def test_a_batch_adds_each_image_its_own_noise():
    from vitdeblur.synthesis import degrade_batch

    grey = torch.full((3, 3, 64, 64), 0.5)
    ds = [Degradation(read_noise=0.05), Degradation(), Degradation(read_noise=0.01)]
    noisy, _ = degrade_batch(grey, ds, torch.Generator().manual_seed(0), [(0, 0)] * 3, [(64, 64)] * 3)
    spread = [(n - 0.5).std().item() for n in noisy]
    assert spread[1] == 0 and spread[0] > 3 * spread[2] > 0


def test_blur_only_draws_one_blur_of_the_asked_kind_and_extent_and_nothing_else():
    for kind in ("shake", "motion", "defocus"):
        d = REALISTIC.blur_only(kind, 9, np.random.default_rng(0), linear=False)
        assert (d.kind, d.extent, d.linear) == (kind, 9.0, False)
        assert (d.poses is not None) == (kind == "shake") and (d.kernel is not None) == (kind != "shake")
        assert d.highlight_gain == 1 and not (d.shot_noise or d.read_noise) and d.jpeg_quality is None
    with pytest.raises(ValueError, match="kind must be one of"):
        REALISTIC.blur_only("sharp", 9, np.random.default_rng(0))


def test_degradation_gains_are_per_kind_fixed_by_name_and_zero_for_a_model_that_changes_nothing(
        sharp_folder, tmp_path, capsys):
    photos = find_pairs(sharp_folder)[:1]
    crops, again = degraded_crops(photos, 64), degraded_crops(photos, 64)
    blurred = {name: np.mean([psnr(b, s) for b, s in pairs]) for name, pairs in crops.items()}
    assert all(np.isfinite(v) for v in blurred.values())  # every condition changes the crops
    assert blurred["shake 24 px"] < blurred["shake 6 px"] < blurred["shake 2 px"]
    assert blurred["motion kernel 25 px"] < blurred["motion kernel 7 px"]
    assert all(np.array_equal(a[0], b[0]) for name in crops for a, b in zip(crops[name], again[name]))

    identity = save_checkpoint(tiny_model("nafnet", perturb=False), tmp_path / "identity")  # its head starts at zero
    degradation_gains(["--sharp", str(sharp_folder), "--split", "test", "-c", str(identity), "--precision", "fp32"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(tuple(crops))]
    assert len(rows) == len(crops)
    gains = [float(g) for row in rows for g in re.findall(r"[+-]\d+\.\d\d", row)]
    assert len(gains) == 2 * len(crops) and all(abs(g) < 0.01 for g in gains)


def test_smooth_camera_paths_keep_the_middle_frame_near_the_blurs_centroid():
    rng = np.random.default_rng(0)

    def middle_to_centroid(spec: BlurSpec) -> float:  # median, in units of the blur's extent
        paths = [spec.blur_only("shake", 12, rng).poses[:, :2] for _ in range(200)]
        return float(np.median([np.hypot(*(p.mean(axis=0) - p[len(p) // 2])) / 12 for p in paths]))

    assert middle_to_centroid(BlurSpec(smooth_path_probability=1.0)) < 0.5 * middle_to_centroid(BlurSpec())

import numpy as np
import pytest
import torch
from conftest import photo, save
from PIL import Image

from vitdeblur.data import (
    DeblurDataset,
    average_frames,
    detect_layout,
    find_pairs,
    BadImagesError,
    load_dataset,
    make_frame_pairs,
    split_pairs,
)
from vitdeblur.examples import EXAMPLES_DIR, list_examples
from vitdeblur.synthesis import BlurSpec, blur_image, defocus_kernel, motion_kernel


@pytest.fixture
def kaggle_folder(tmp_path):
    root = tmp_path / "blur_dataset"
    for i, name in enumerate(["astronaut", "coffee", "chelsea"]):
        sharp = photo(name, (96, 80))
        save(sharp, root / "sharp" / f"{i}_IPHONE-SE_S.JPG")
        save(sharp[::-1].copy(), root / "motion_blurred" / f"{i}_IPHONE-SE_M.JPG")
        if i != 1:  # one scene without a defocus image: it must simply be missing from the pairs
            save(sharp[:, ::-1].copy(), root / "defocused_blurred" / f"{i}_IPHONE-SE_F.JPG")
    return root


@pytest.fixture
def gopro_folder(tmp_path):
    root = tmp_path / "GOPRO"
    for split, scene in [("train", "GOPR0372_07_00"), ("train", "GOPR0374_11_00"), ("test", "GOPR0384_11_00")]:
        for j in range(2):
            sharp = photo("rocket", (64, 48))
            save(sharp, root / split / scene / "sharp" / f"{j:06d}.png")
            save(sharp, root / split / scene / "blur" / f"{j:06d}.png")
    return root


def test_layouts_are_detected(kaggle_folder, gopro_folder, pairs_folder, sharp_folder):
    assert detect_layout(kaggle_folder) == "kaggle"
    assert detect_layout(gopro_folder) == "gopro"
    assert detect_layout(pairs_folder) == "pairs"
    assert detect_layout(sharp_folder) == "sharp"


def test_the_apps_examples_with_ground_truth_are_a_dataset():
    assert detect_layout(EXAMPLES_DIR) == "examples"
    pairs = find_pairs(EXAMPLES_DIR)
    assert [(p.blur, p.sharp) for p in pairs] == [(e.blurred, e.sharp) for e in list_examples() if e.sharp]
    blur, sharp = load_dataset(EXAMPLES_DIR, "all", train=False)[0]
    assert blur.shape == sharp.shape and not torch.equal(blur, sharp)


def test_kaggle_layout_pairs_by_scene(kaggle_folder):
    both = find_pairs(kaggle_folder, "kaggle")
    assert len(both) == 5
    motion = find_pairs(kaggle_folder, "kaggle", kaggle_blur="motion")
    assert [p.blur.name for p in motion] == ["0_IPHONE-SE_M.JPG", "1_IPHONE-SE_M.JPG", "2_IPHONE-SE_M.JPG"]
    assert all(p.sharp.name.replace("_S", "_M") == p.blur.name for p in motion)
    assert len(find_pairs(kaggle_folder, "kaggle", kaggle_blur="defocus")) == 2


def test_gopro_layout_finds_every_scene(gopro_folder):
    pairs = find_pairs(gopro_folder, "gopro")
    assert len(pairs) == 6
    assert {p.group.split("/")[1] for p in pairs} == {"GOPR0372_07_00", "GOPR0374_11_00", "GOPR0384_11_00"}
    assert all(p.blur.parent.parent == p.sharp.parent.parent for p in pairs)


def test_every_layout_loads_as_a_dataset(kaggle_folder, gopro_folder, pairs_folder, sharp_folder):
    for root in (kaggle_folder, gopro_folder, pairs_folder, sharp_folder):
        dataset = load_dataset(root, "all", train=True, crop=32)
        blur, sharp = dataset[0]
        assert blur.shape == sharp.shape == (3, 32, 32)
        assert 0 <= float(blur.min()) and float(blur.max()) <= 1


def test_split_is_80_10_10_deterministic_and_disjoint(sharp_folder):
    pairs = find_pairs(sharp_folder)
    parts = {s: split_pairs(pairs, s) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    names = [p.sharp.name for s in ("train", "val", "test") for p in parts[s]]
    assert sorted(names) == sorted(p.sharp.name for p in pairs)
    assert split_pairs(find_pairs(sharp_folder), "test") == parts["test"]


def test_split_keeps_a_kaggle_scene_together(kaggle_folder):
    pairs = find_pairs(kaggle_folder, "kaggle")
    for split in ("train", "val", "test"):
        groups = {p.group for p in split_pairs(pairs, split)}
        others = {p.group for s in ("train", "val", "test") if s != split for p in split_pairs(pairs, s)}
        assert not groups & others


def test_kernels_are_normalised_and_deterministic():
    for size in (7, 21, 41):
        k1 = motion_kernel(np.random.default_rng(3), size)
        k2 = motion_kernel(np.random.default_rng(3), size)
        assert k1.shape == (size, size)
        assert np.array_equal(k1, k2)
        assert abs(k1.sum() - 1) < 1e-5 and k1.min() >= 0
        assert (k1 > 0).sum() > size // 2  # a trajectory, not a single dot
    assert not np.array_equal(motion_kernel(np.random.default_rng(1), 21), motion_kernel(np.random.default_rng(2), 21))
    disk = defocus_kernel(4.0)
    assert disk.shape == (9, 9) and abs(disk.sum() - 1) < 1e-5
    assert disk[4, 4] > disk[0, 0]  # the centre is inside the disk, the corner outside


def test_blur_keeps_size_and_flat_regions():
    flat = np.full((40, 50, 3), 0.4, np.float32)
    out = blur_image(flat, motion_kernel(np.random.default_rng(0), 15))
    assert out.shape == flat.shape
    assert np.abs(out - 0.4).max() < 1e-4  # normalised kernel: a flat image stays flat
    sharp = photo("astronaut", (64, 64)).astype(np.float32) / 255
    assert np.abs(blur_image(sharp, defocus_kernel(3.0)) - sharp).mean() > 0.01


def test_synthetic_validation_blur_never_changes(sharp_folder):
    first = load_dataset(sharp_folder, "val", train=False)[0]
    second = load_dataset(sharp_folder, "val", train=False)[0]
    assert np.array_equal(first[0].numpy(), second[0].numpy())
    assert not np.array_equal(first[0].numpy(), first[1].numpy())


def test_evaluation_pairs_always_differ_from_their_target(sharp_folder):
    # Some draws of this spec leave the photo unchanged (about one in five: no noise and no other change): evaluation
    # redraws those, training keeps them (100 draws: 20 missed them all once in a CI run, as 1% of runs would)
    spec = BlurSpec(sharp_probability=1.0, noise_probability=0.5, jpeg_probability=0.0)
    pairs = find_pairs(sharp_folder)
    evaluation = DeblurDataset(pairs, train=False, blur_spec=spec)
    assert all(not np.array_equal(*(t.numpy() for t in evaluation[i])) for i in range(len(pairs)))
    training = DeblurDataset(pairs, train=True, crop=32, blur_spec=spec)
    assert any(np.array_equal(*(t.numpy() for t in training[0])) for _ in range(100))
    unchanged_only = DeblurDataset(pairs, train=False, blur_spec=BlurSpec(sharp_probability=1.0, noise_probability=0,
                                                                          jpeg_probability=0))
    with pytest.raises(ValueError, match="only makes unchanged pairs"):
        unchanged_only[0]


def test_training_photos_are_resized_at_random_but_never_below_the_crop(sharp_folder):
    pairs = find_pairs(sharp_folder)
    for low, high in ((0, 1), (1.2, 2), (0.5, 0.9)):
        with pytest.raises(ValueError, match="min_scale"):
            DeblurDataset(pairs, train=True, crop=32, min_scale=low, max_scale=high)
    rng = np.random.default_rng(0)
    dataset = DeblurDataset(pairs, train=True, crop=32, min_scale=0.1)
    scales = [dataset.random_scale(80, 96, 32, rng) for _ in range(200)]
    assert min(scales) >= 33 / 80 and max(scales) <= 1 and np.ptp(scales) > 0.4
    assert DeblurDataset(pairs, train=True, crop=32).random_scale(80, 96, 32, rng) == 1.0
    enlarged = DeblurDataset(pairs, train=True, crop=32, max_scale=4)
    scales = np.array([enlarged.random_scale(80, 96, 32, rng) for _ in range(400)])
    assert scales.min() >= 1 and scales.max() <= 4
    assert abs(np.mean(scales < 2) - 0.5) < 0.1  # log-uniform: as many enlarged less than 2x as more


def ramp_photos(folder):
    """Photos whose brightness rises 2 levels per pixel from left to right: shrunk, the slope grows."""
    ramp = np.repeat(np.linspace(0, 238, 120)[None, :, None], 120, axis=0).repeat(3, axis=2).astype(np.uint8)
    for i in range(3):
        save(ramp, folder / f"{i}.png")
    return folder


def ramp_slope(crop) -> float:
    """Brightness change per pixel along the ramp, whichever way the crop was flipped or transposed."""
    crop = np.asarray(crop, dtype=np.float64) * 255
    return max(np.abs(np.diff(crop, axis=-1)).mean(), np.abs(np.diff(crop, axis=-2)).mean())


UNBLURRED = BlurSpec(sharp_probability=1.0, noise_probability=0, jpeg_probability=0, highlight_probability=0)


def test_resized_training_crops_show_the_photo_at_other_scales(tmp_path):
    pairs = find_pairs(ramp_photos(tmp_path / "ramps"))
    as_is = DeblurDataset(pairs, train=True, crop=32, blur_spec=UNBLURRED)
    assert {round(ramp_slope(as_is[i % 3][1]), 1) for i in range(12)} == {2.0}
    shrunk = DeblurDataset(pairs, train=True, crop=32, blur_spec=UNBLURRED, min_scale=0.4)
    slopes = [ramp_slope(shrunk[i % 3][1]) for i in range(30)]
    assert 1.9 < min(slopes) and max(slopes) < 2 / 0.4 + 0.2 and max(slopes) > 1.5 * min(slopes)
    enlarged = DeblurDataset(pairs, train=True, crop=32, blur_spec=UNBLURRED, max_scale=3)
    slopes = [ramp_slope(enlarged[i % 3][1]) for i in range(30)]
    assert 2 / 3 - 0.1 < min(slopes) and max(slopes) < 2.1 and max(slopes) > 1.5 * min(slopes)


def test_validation_variants_add_fixed_degradations_of_the_same_photos(sharp_folder, pairs_folder):
    pairs = find_pairs(sharp_folder)
    spec = BlurSpec(highlight_probability=0)  # targets stay the photo itself
    one = DeblurDataset(pairs, train=False, crop=32, blur_spec=spec)
    three = DeblurDataset(pairs, train=False, crop=32, blur_spec=spec, variants=3)
    assert len(three) == 3 * len(one)
    assert torch.equal(three[0][0], one[0][0]) and torch.equal(three[3][0], one[1][0])  # the first is the old one
    assert not torch.equal(three[0][0], three[1][0]) and torch.equal(three[0][1], three[1][1])  # same photo, other blur
    assert torch.equal(DeblurDataset(pairs, train=False, crop=32, blur_spec=spec, variants=3)[2][0], three[2][0])
    real = find_pairs(pairs_folder)
    assert len(DeblurDataset(real, train=False, variants=3)) == len(real)  # real pairs have one blur
    with pytest.raises(ValueError, match="variants"):
        DeblurDataset(pairs, train=True, crop=32, variants=2)


def test_training_crops_vary_and_flip(pairs_folder):
    dataset = DeblurDataset(find_pairs(pairs_folder), train=True, crop=32)
    crops = {dataset[0][1].numpy().tobytes() for _ in range(8)}
    assert len(crops) > 1


def test_frame_averaging_is_linear_light_and_takes_the_middle_frame(tmp_path):
    frames = [np.full((16, 16, 3), v, np.float32) for v in (0.0, 0.5, 1.0)]
    blur, sharp = average_frames(frames)
    assert np.array_equal(sharp, frames[1])
    expected = ((0.0 + 0.5 ** 2.2 + 1.0) / 3) ** (1 / 2.2)
    assert np.allclose(blur, expected, atol=1e-6)
    for i in range(9):
        shifted = np.roll(photo("coffee", (64, 48)), 2 * i, axis=1)
        save(shifted, tmp_path / "frames" / f"{i:04d}.png")
    assert make_frame_pairs(tmp_path / "frames", tmp_path / "pairs", n=3) == 3
    assert detect_layout(tmp_path / "pairs") == "pairs"
    pairs = find_pairs(tmp_path / "pairs")
    assert [p.sharp.name for p in pairs] == ["0001_n03.png", "0004_n03.png", "0007_n03.png"]


def test_unknown_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no known layout"):
        detect_layout(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        detect_layout(tmp_path / "missing")


def test_gopro_keeps_its_own_test_folder(gopro_folder):
    pairs = find_pairs(gopro_folder, "gopro")
    assert {p.group for p in split_pairs(pairs, "test")} == {"test/GOPR0384_11_00"}
    assert {p.group for p in split_pairs(pairs, "val")} == {"train/GOPR0374_11_00"}
    assert {p.group for p in split_pairs(pairs, "train")} == {"train/GOPR0372_07_00"}


def test_empty_split_and_small_images_are_clear_errors(pairs_folder, tmp_path):
    for i in range(2):
        save(photo("coffee", (64, 48)), tmp_path / "two" / f"{i}.png")
    with pytest.raises(ValueError, match="the test split is empty.*--split all"):
        load_dataset(tmp_path / "two", "test", train=False)
    with pytest.raises(ValueError, match="smaller than the 128 px crop"):
        load_dataset(pairs_folder, "train", train=True, crop=128)[0]


def test_bad_images_are_all_listed_up_front_or_skipped(pairs_folder):
    (pairs_folder / "blur" / "03.png").write_bytes(b"not an image")
    sharp = pairs_folder / "sharp" / "05.png"
    sharp.write_bytes(sharp.read_bytes()[:-300])  # truncated
    save(photo("coffee", (40, 30)), pairs_folder / "sharp" / "07.png")  # smaller than the crop, and than its blur
    with pytest.raises(BadImagesError, match="3 unusable images") as error:
        load_dataset(pairs_folder, "all", train=True, crop=48)
    message = str(error.value)
    assert "03.png: not an image" in message and "05.png: the file is corrupt or truncated" in message
    assert "07.png: 40x30 is smaller than the 48 px crop" in message and "\n" not in message
    dataset = load_dataset(pairs_folder, "all", train=True, crop=48, skip_bad_images=True)
    assert sorted(p.sharp.name for p in dataset.pairs) == ["00.png", "01.png", "02.png", "04.png", "06.png",
                                                          "08.png", "09.png"]
    for i in range(len(dataset)):
        dataset[i]  # every remaining pair reads


def test_gif_files_are_part_of_a_folder(sharp_folder):
    frames = [Image.fromarray(photo("rocket", (96, 80))), Image.fromarray(photo("coffee", (96, 80)))]
    frames[0].save(sharp_folder / "10_anim.gif", save_all=True, append_images=frames[1:])
    assert "10_anim.gif" in [p.sharp.name for p in find_pairs(sharp_folder)]

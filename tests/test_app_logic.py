"""Unit tests of the app's logic (vitdeblur.app_logic) and of app.py's handler, without a server."""

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from app_fixtures import REPO_ROOT, make_tiny_checkpoints
from conftest import exif_rotated_jpeg, photo, png_claiming, rgba_png
from PIL import Image

from vitdeblur import CheckpointError, ImageError, app_logic, load_image, loupe
from vitdeblur.evaluate import psnr
from vitdeblur.examples import find_example, list_examples
from vitdeblur.synthesis import line_kernel


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return make_tiny_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="module")
def models(checkpoints):
    return app_logic.Models("cpu", {v: str(checkpoints / v) for v in app_logic.VARIANTS})


@pytest.fixture
def examples_dir(tmp_path):
    """Two small examples like the shipped ones: a synthetic pair with ground truth, and real blur without."""
    folder = tmp_path / "examples"
    sharp = photo("astronaut", (96, 80))
    blurred = np.clip(sharp.astype(np.float32) * 0.9 + 10, 0, 255).astype(np.uint8)  # any change will do here
    (folder / "pair").mkdir(parents=True)
    Image.fromarray(sharp).save(folder / "pair" / "sharp.png")
    Image.fromarray(blurred).save(folder / "pair" / "blurred.png")
    (folder / "real").mkdir()
    Image.fromarray(photo("camera", (80, 64))).convert("L").save(folder / "real" / "blurred.png")  # grayscale
    return folder


def test_variants_for_maps_the_choices():
    assert app_logic.variants_for("both") == ["adam", "sgd"]
    assert app_logic.variants_for("adam") == ["adam"]
    assert app_logic.variants_for("sgd") == ["sgd"]
    with pytest.raises(ValueError, match="unknown variant"):
        app_logic.variants_for("rmsprop")


def test_checkpoint_spec_reads_the_environment(monkeypatch):
    monkeypatch.delenv("VITDEBLUR_ADAM", raising=False)
    monkeypatch.delenv("VITDEBLUR_SGD", raising=False)
    monkeypatch.delenv("VITDEBLUR_CHECKPOINTS", raising=False)
    assert app_logic.checkpoint_spec("adam") == "adam"  # the shipped checkpoints/adam
    monkeypatch.setenv("VITDEBLUR_CHECKPOINTS", "/elsewhere")
    assert app_logic.checkpoint_spec("sgd") == "/elsewhere/sgd"
    monkeypatch.setenv("VITDEBLUR_ADAM", "someone/vitdeblur-adam")
    assert app_logic.checkpoint_spec("adam") == "someone/vitdeblur-adam"
    assert app_logic.checkpoint_spec("sgd") == "/elsewhere/sgd"


def test_shipped_examples_have_ground_truth_and_attribution():
    examples = list_examples()
    with_truth = [e for e in examples if e.sharp]
    assert len(with_truth) >= 6
    assert any(e.sharp is None for e in examples)  # at least one real-blur photo
    readme = (REPO_ROOT / "examples" / "README.md").read_text()
    total_bytes = 0
    for e in examples:
        assert f"`{e.name}`" in readme, f"{e.name} is not documented in examples/README.md"
        total_bytes += e.blurred.stat().st_size + (e.sharp.stat().st_size if e.sharp else 0)
        if e.sharp:
            assert Image.open(e.blurred).size == Image.open(e.sharp).size
    assert total_bytes < 6_000_000


def test_find_example_matches_content_not_path(examples_dir, tmp_path):
    copy = tmp_path / "upload" / "whatever.png"
    copy.parent.mkdir()
    shutil.copyfile(examples_dir / "pair" / "blurred.png", copy)
    assert find_example(copy, examples_dir).name == "pair"
    assert find_example(examples_dir / "pair" / "sharp.png", examples_dir) is None


def test_both_variants_with_ground_truth(models, examples_dir, tmp_path):
    upload = tmp_path / "blurred.png"
    shutil.copyfile(examples_dir / "pair" / "blurred.png", upload)
    steps = []
    outcome = app_logic.deblur(upload, "both", models, None, examples_dir, progress=lambda f, m: steps.append(f))

    assert list(outcome.restored) == ["adam", "sgd"]
    assert outcome.ground_truth is not None and outcome.name == "pair"
    images = [outcome.blurred, *outcome.restored.values(), outcome.ground_truth]
    assert {img.size for img in images} == {(96, 80)}
    as_array = [np.asarray(img, dtype=np.float32) for img in images]
    assert np.abs(as_array[1] - as_array[0]).max() > 0  # the tiny models change the image...
    assert np.abs(as_array[2] - as_array[1]).max() > 0  # ...and differently from each other

    assert [row["image"] for row in outcome.metrics] == ["blurred input", "deblurred (adam)", "deblurred (sgd)"]
    blurred, sharp = load_image(upload).rgb, load_image(examples_dir / "pair" / "sharp.png").rgb
    assert outcome.metrics[0]["psnr"] == pytest.approx(psnr(blurred, sharp))
    assert all(np.isfinite(row["psnr"]) and 0 < row["ssim"] <= 1 for row in outcome.metrics)
    assert steps[0] == 0 and steps[-1] == 1 and steps == sorted(steps)

    text = app_logic.metrics_markdown(outcome)
    assert "| SGD + MSE (sgd) |" in text and "CPU" in text and "96x80" in text


def test_no_ground_truth_means_no_metrics(models, examples_dir):
    outcome = app_logic.deblur(examples_dir / "real" / "blurred.png", "adam", models, None, examples_dir)
    assert list(outcome.restored) == ["adam"]
    assert outcome.ground_truth is None and outcome.metrics == []
    assert outcome.blurred.mode == "L" and outcome.restored["adam"].mode == "L"  # grayscale stays grayscale
    assert "No ground truth" in app_logic.metrics_markdown(outcome)


def test_single_variant_gives_one_panel(models, examples_dir, tmp_path):
    outcome = app_logic.deblur(examples_dir / "pair" / "blurred.png", "sgd", models, None, examples_dir)
    paths = app_logic.save_outputs(outcome, tmp_path / "out")
    assert sorted(paths) == ["blurred", "ground_truth", "sgd"]
    assert [row["image"] for row in outcome.metrics] == ["blurred input", "deblurred (sgd)"]


def test_megapixel_limit_downscales_input_and_ground_truth(models, examples_dir):
    outcome = app_logic.deblur(examples_dir / "pair" / "blurred.png", "adam", models, 0.002, examples_dir)
    assert outcome.original_size == (96, 80)
    assert outcome.size[0] * outcome.size[1] <= 2000
    assert outcome.ground_truth.size == outcome.size and outcome.metrics
    assert "downscaled from 96x80" in app_logic.metrics_markdown(outcome)


def test_upright_and_alpha_survive(models, tmp_path):
    rotated = app_logic.deblur(exif_rotated_jpeg(tmp_path / "phone.jpg"), "adam", models)
    assert rotated.size == (72, 120) and rotated.restored["adam"].size == (72, 120)
    rgba = app_logic.deblur(rgba_png(tmp_path / "logo.png"), "adam", models)
    assert rgba.restored["adam"].mode == "RGBA"
    alpha_in = np.asarray(Image.open(tmp_path / "logo.png"))[..., 3]
    assert np.array_equal(np.asarray(rgba.restored["adam"])[..., 3], alpha_in)


def test_saved_panels_are_lossless_png(models, examples_dir, tmp_path):
    outcome = app_logic.deblur(examples_dir / "pair" / "blurred.png", "both", models, None, examples_dir)
    paths = app_logic.save_outputs(outcome, app_logic.results_folder(tmp_path / "results"))
    panels = {"blurred": outcome.blurred, "adam": outcome.restored["adam"], "ground_truth": outcome.ground_truth}
    for key, img in panels.items():
        saved = Image.open(paths[key])
        assert saved.format == "PNG"
        assert np.array_equal(np.asarray(saved), np.asarray(img))


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"GIF89a but not really", "not an image"),
    (png_claiming(20000, 9000), "megapixels"),
])
def test_bad_input_is_a_clear_image_error(models, tmp_path, content, message):
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        app_logic.deblur(path, "both", models)


@pytest.mark.parametrize("content, message", [
    (b"", "upload.png: the file is empty"),
    (b"this is a text file, not a picture\n", "upload.png: not an image"),
    (png_claiming(20000, 9000), "upload.png: the image is too large"),
])
def test_an_unusable_upload_is_named_on_upload(tmp_path, content, message):
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    assert app_logic.upload_problem(path).startswith(message)  # by its own name, not the server's temporary path


def test_a_usable_upload_has_no_problem(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(photo("coffee", (40, 30))).save(path)
    whole = path.read_bytes()
    assert app_logic.upload_problem(path) is None
    assert app_logic.upload_problem(None) is None
    assert app_logic.upload_problem("data:image/png;base64,AAAA") is None  # checked when it is read
    path.write_bytes(whole[:len(whole) // 2])
    assert "corrupt or truncated" in app_logic.upload_problem(path)


def test_an_upload_browsers_cannot_show_gets_a_lossless_png_stand_in(tmp_path):
    rgb = photo("coffee", (40, 30))
    gray16 = (np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50).astype(np.uint16)
    sources = {"rgb.tif": Image.fromarray(rgb), "gray16.tif": Image.fromarray(gray16, mode="I;16"),
               "cmyk.tif": Image.fromarray(rgb).convert("CMYK")}
    for name, img in sources.items():
        img.save(tmp_path / name)
        stand_in = app_logic.browser_preview(tmp_path / name, tmp_path / "results")
        assert stand_in.parent.parent == tmp_path / "results" and stand_in.name == f"{Path(name).stem}.png"
        assert Image.open(stand_in).format == "PNG"
        original, copy = load_image(tmp_path / name), load_image(stand_in)
        assert np.array_equal(original.rgb, copy.rgb) and original.grayscale == copy.grayscale, name
    # what browsers show, what PNG cannot hold and several frames keep their own file
    Image.fromarray(rgb).save(tmp_path / "photo.jpg")
    Image.fromarray(gray16.astype(np.float32) / 65535, mode="F").save(tmp_path / "float.tif")
    Image.fromarray(rgb).save(tmp_path / "pages.tif", save_all=True, append_images=[Image.fromarray(rgb[::-1])])
    (tmp_path / "text.tif").write_text("not a picture")
    for name in ("photo.jpg", "float.tif", "pages.tif", "text.tif"):
        assert app_logic.browser_preview(tmp_path / name, tmp_path / "kept") is None, name
    assert app_logic.browser_preview(None) is None and app_logic.browser_preview("data:image/png;base64,AAAA") is None
    assert not (tmp_path / "kept").exists()  # no folder where nothing is written


def test_missing_checkpoint_is_a_clear_error(tmp_path, examples_dir):
    models = app_logic.Models("cpu", {"adam": str(tmp_path / "no-such-checkpoint")})
    with pytest.raises(CheckpointError, match="no-such-checkpoint"):
        app_logic.deblur(examples_dir / "pair" / "blurred.png", "adam", models)


def test_app_handler_turns_errors_into_page_messages(checkpoints, monkeypatch, tmp_path):
    import gradio as gr

    import app

    assert app.MODELS.loaded == []  # importing the app loads no model
    monkeypatch.setenv("VITDEBLUR_CHECKPOINTS", str(checkpoints))
    bad = tmp_path / "notes.png"
    bad.write_text("<b>not</b> a picture")
    no_progress = lambda *args, **kwargs: None  # noqa: E731
    with pytest.raises(gr.Error, match="notes.png: not an image"):
        app.deblur(str(bad), "both", 1.0, progress=no_progress)
    with pytest.raises(gr.Error, match="Upload a photo"):
        app.deblur(None, "both", 1.0, progress=no_progress)
    with pytest.raises(gr.Error, match="unknown variant"):
        app.deblur(str(REPO_ROOT / "examples" / "chelsea-motion" / "blurred.png"), "all", 1.0, progress=no_progress)


def test_precision_comes_from_the_environment(monkeypatch, checkpoints):
    specs = {v: str(checkpoints / v) for v in app_logic.VARIANTS}
    monkeypatch.delenv("VITDEBLUR_PRECISION", raising=False)
    assert app_logic.Models("cpu", specs).precision == "auto"
    monkeypatch.setenv("VITDEBLUR_PRECISION", "fp32")
    assert app_logic.Models("cpu", specs).precision == "fp32"
    monkeypatch.setenv("VITDEBLUR_PRECISION", "half")
    with pytest.raises(ValueError, match="precision"):
        app_logic.Models("cpu", specs)


def test_cpus_without_fast_bf16_get_a_smaller_default_megapixel_cap(monkeypatch):
    from vitdeblur import inference

    monkeypatch.setattr(inference, "fast_bf16_cpu_flags", lambda: [])
    assert app_logic.Models("cpu", precision="auto").speed_kind == "cpu-fp32"
    assert app_logic.Models("cpu", precision="bf16").speed_kind == "cpu"
    monkeypatch.setattr(inference, "fast_bf16_cpu_flags", lambda: ["amx_bf16"])
    assert app_logic.Models("cpu", precision="auto").speed_kind == "cpu"
    assert app_logic.Models("cpu", precision="fp32").speed_kind == "cpu-fp32"
    caps = app_logic.DEFAULT_MAX_MEGAPIXELS
    assert caps["cpu-fp32"] < caps["cpu"] <= app_logic.MAX_MEGAPIXELS_LIMIT["cpu"]


# ----------------------------------------------------------------------------------------------------------------
# The loupe, the heat maps, blur-your-own-photo, the report and the training note


def test_panoramas_are_twice_as_wide_as_high_or_more():
    assert app_logic.is_panorama((3000, 500)) and app_logic.is_panorama((1000, 500))
    assert not app_logic.is_panorama((999, 500)) and not app_logic.is_panorama((500, 3000))


def test_loupe_goes_where_the_models_changed_the_image_most():
    blurred = np.full((120, 200, 3), 0.5, np.float32)
    adam, sgd = blurred.copy(), blurred.copy()
    adam[70:90, 140:160] += 0.2  # a strong change in one place...
    sgd[10:20, 10:20] += 0.1  # ...and a weaker one elsewhere
    x, y = loupe.most_changed_point(blurred, [adam, sgd], side=32)
    assert abs(x - 149.5) <= 1 and abs(y - 79.5) <= 1  # centred on the strong change
    x, y = loupe.most_changed_point(blurred, [sgd], side=32)
    assert x - 16 <= 10 and x + 16 >= 20 and y - 16 <= 10 and y + 16 >= 20  # a window holding the whole change


def test_transparent_pixels_count_as_unchanged_for_the_loupe_and_the_heat_maps():
    rgba = np.full((120, 200, 4), 128, np.uint8)
    rgba[:60, :100, 3] = 0  # a transparent corner, whose hidden colours the model changed the most
    restored = rgba.copy()
    restored[10:30, 10:30, :3] = 255
    restored[80:100, 150:170, :3] = 160
    blurred, deblurred = Image.fromarray(rgba), Image.fromarray(restored)
    x, y = loupe.most_changed_point(blurred, [deblurred], side=32)
    assert abs(x - 159.5) <= 1 and abs(y - 89.5) <= 1  # the visible change, not the hidden one
    (heatmap, caption), = app_logic.change_heatmaps(blurred, {"adam": deblurred})
    assert np.asarray(heatmap)[10:30, 10:30].max() == np.asarray(heatmap)[0, 0].max()  # black as unchanged pixels
    assert np.asarray(heatmap)[80:100, 150:170].mean() > 100
    # the mean change in the caption is over the visible three quarters: 400 pixels changed by 32 grey levels
    assert "mean change 0.7/255" in caption  # 400 * 32 / 18000


def test_grey_and_alpha_arrays_change_as_their_grey_does():
    grey = np.full((40, 60), 0.5, np.float32)
    restored = grey.copy()
    restored[10:20, 10:20] = 0.9
    with_alpha = [np.stack([g, np.ones_like(g)], axis=2) for g in (grey, restored)]
    np.testing.assert_allclose(loupe.change_magnitude(*with_alpha), loupe.change_magnitude(grey, restored))


def test_loupe_box_stays_inside_the_image_and_crops_line_up():
    assert app_logic.loupe_side((451, 300), 2) == 128 and app_logic.loupe_side((451, 300), 4) == 64
    assert app_logic.loupe_side((50, 40), 2) == 40  # never larger than the image
    assert loupe.loupe_box((451, 300), (450, 299), 128) == (323, 172, 451, 300)
    assert loupe.loupe_box((451, 300), (0, 0), 128) == (0, 0, 128, 128)
    image = Image.fromarray(np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3).astype(np.uint8))
    crops = loupe.loupe_crops([("blurred", image), ("sharp", image)], (8, 16, 24, 32), zoom=4)
    assert [caption for _, caption in crops] == ["blurred · 4x", "sharp · 4x"]
    enlarged = np.asarray(crops[0][0])
    assert enlarged.shape == (64, 64, 3)
    assert np.array_equal(enlarged[::4, ::4], np.asarray(image)[16:32, 8:24])  # nearest-neighbour: pixels stay


def test_heat_maps_share_one_scale_and_are_black_where_nothing_changed():
    blurred = np.full((40, 60, 3), 0.5, np.float32)
    adam, sgd = blurred.copy(), blurred.copy()
    adam[:, 30:] += 0.2
    sgd[:, 30:] += 0.1
    maps = app_logic.change_heatmaps(blurred, {"adam": adam, "sgd": sgd})
    (adam_map, adam_caption), (sgd_map, sgd_caption) = maps
    adam_map, sgd_map = np.asarray(adam_map, np.float32), np.asarray(sgd_map, np.float32)
    assert adam_map.shape == (40, 60, 3)
    assert adam_map[:, :30].max() < 10 and sgd_map[:, :30].max() < 10  # unchanged = black
    assert adam_map[:, 30:].mean() > sgd_map[:, 30:].mean() > 10  # half the change looks dimmer, not the same
    assert "Adam + L1 (adam)" in adam_caption and "mean change 25.5/255" in adam_caption
    assert app_logic.change_heatmaps(blurred, {}) == []


def test_line_kernel_is_a_normalised_segment_at_the_angle():
    horizontal = line_kernel(9, 0)
    assert horizontal.sum() == pytest.approx(1)
    rows = np.nonzero(horizontal.sum(axis=1) > 1e-6)[0]
    assert len(rows) == 1 and np.count_nonzero(horizontal) >= 9
    vertical = line_kernel(9, 90)
    assert np.allclose(vertical, horizontal.T, atol=1e-6)
    combined = app_logic.blur_kernel(app_logic.BlurSettings(motion_length=9, shake=7, defocus_radius=2))
    assert combined.sum() == pytest.approx(1) and combined.shape[0] > 9
    assert app_logic.blur_kernel(app_logic.BlurSettings()).shape == (1, 1)
    assert "what the models do to a sharp photo" in app_logic.BlurSettings().describe()  # all settings at 0
    with pytest.raises(ValueError, match="motion length"):
        app_logic.blur_kernel(app_logic.BlurSettings(motion_length=500))


def test_blur_your_own_photo_has_the_photo_as_ground_truth(models, examples_dir, tmp_path):
    settings = app_logic.BlurSettings(motion_length=7, motion_angle=45, noise=2, seed=3)
    outcome = app_logic.blur_and_deblur(examples_dir / "pair" / "sharp.png", "both", models, settings)
    sharp = np.asarray(Image.open(examples_dir / "pair" / "sharp.png"))
    assert np.array_equal(np.asarray(outcome.ground_truth), sharp)
    assert outcome.blurred.size == (96, 80) and not np.array_equal(np.asarray(outcome.blurred), sharp)
    assert [row["image"] for row in outcome.metrics] == ["blurred input", "deblurred (adam)", "deblurred (sgd)"]
    again = app_logic.blur_and_deblur(examples_dir / "pair" / "sharp.png", "adam", models, settings)
    assert np.array_equal(np.asarray(again.blurred), np.asarray(outcome.blurred))  # the seed fixes the blur
    assert "blurred here: motion 7 px at 45°, noise sigma 2/255" in app_logic.metrics_markdown(outcome)
    assert "too little of it is left" not in app_logic.metrics_markdown(outcome)
    # a blur more than half as wide or high as the photo is said to be one, with its own size
    huge = app_logic.blur_and_deblur(examples_dir / "pair" / "sharp.png", "adam", models,
                                     app_logic.BlurSettings(motion_length=60))
    report = app_logic.metrics_markdown(huge)
    assert re.search(r"the blur \(6[01]x1 px\) spans more than half of this 96x80 photo", report)
    upright = app_logic.blur_and_deblur(examples_dir / "pair" / "sharp.png", "adam", models,
                                        app_logic.BlurSettings(motion_length=45, motion_angle=90))
    assert "the blur (1x45 px) spans more than half" in app_logic.metrics_markdown(upright)
    wide = tmp_path / "wide.png"
    Image.fromarray(photo("coffee", (400, 60))).save(wide)  # a 60 px streak along a 400 px wide photo is fine
    along = app_logic.blur_and_deblur(wide, "adam", models, app_logic.BlurSettings(motion_length=60))
    assert "too little of it is left" not in app_logic.metrics_markdown(along)


def test_blur_your_own_transparent_photo_lays_it_on_white_first(models, tmp_path):
    path = rgba_png(tmp_path / "cut-out.png")  # alpha from 0 (left) to 255 (right)
    outcome = app_logic.blur_and_deblur(path, "adam", models, app_logic.BlurSettings(motion_length=3))
    truth = np.asarray(outcome.ground_truth.convert("RGB")).astype(int)
    photo_rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert truth[:, 0].min() >= 254  # the fully transparent column is white, not the colours hidden there
    assert np.abs(truth[:, -1] - photo_rgb[:, -1]).max() <= 1  # the opaque one is the photo


def test_report_shows_the_change_against_the_blurred_input_and_marks_the_best():
    outcome = app_logic.Outcome("x", Image.new("RGB", (8, 8)), {}, None, metrics=[
        {"image": "blurred input", "psnr": 30.0, "ssim": 0.80},
        {"image": "deblurred (adam)", "psnr": 31.5, "ssim": 0.79},
        {"image": "deblurred (sgd)", "psnr": 29.0, "ssim": 0.81}])
    lines = app_logic.metrics_markdown(outcome).splitlines()
    adam_row = next(line for line in lines if line.startswith("| Adam + L1 (adam)"))
    sgd_row = next(line for line in lines if line.startswith("| SGD + MSE (sgd)"))
    assert "**31.50** (best)" in adam_row and "+1.50 dB" in adam_row and "-0.0100" in adam_row
    assert "**0.8100** (best)" in sgd_row and "-1.00 dB" in sgd_row


def test_training_note_reads_the_numbers_from_the_checkpoint_files(tmp_path):
    folder = tmp_path / "adam"
    folder.mkdir()
    (folder / "train_config.json").write_text('{"backbone": "vit_tiny_patch16_224", "decoder": "residual", '
                                              '"steps": 12345, "pretrained": true, "data": ["x/sharp"]}')
    (folder / "metrics-gopro.json").write_text('{"n": 3, "psnr_blurred": 25.0, "psnr": 26.25, '
                                               '"ssim_blurred": 0.8, "ssim": 0.85}')
    note = app_logic.training_note({"adam": app_logic.checkpoint_facts(folder)})
    assert "12345 steps of batch" in note and "ImageNet-pretrained" in note
    (folder / "train_config.json").write_text('{"steps": 600, "init": "checkpoints/adam"}')
    note = app_logic.training_note({"adam": app_logic.checkpoint_facts(folder)})
    assert "its last run 600 steps of batch" in note and "continuing the previous adam." in note
    assert "random init" in note
    assert "| Adam + L1 (adam) | real blur (GoPro) (3 images) | 25.00 → 26.25 (+1.25) | 0.8000 → 0.8500 |" in note
    shipped = app_logic.training_note({v: app_logic.checkpoint_facts(REPO_ROOT / "checkpoints" / v)
                                       for v in app_logic.VARIANTS})
    gopro = app_logic.checkpoint_facts(REPO_ROOT / "checkpoints" / "adam")["metrics"]["gopro"]
    assert f"{gopro['psnr']:.2f}" in shipped  # whatever the shipped checkpoints say, the note says


def data_url(path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def test_data_url_goes_through_the_package_reader_untouched(models, tmp_path):
    ramp = np.tile(np.linspace(1000, 60000, 96).astype(np.uint16), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "gray16.png")
    outcome = app_logic.deblur(data_url(tmp_path / "gray16.png"), "adam", models)
    assert outcome.blurred.mode == "L" and outcome.name == "pasted_image"
    # 16-bit precision reaches the model: the shown input is the ramp to within 8-bit rounding
    assert np.abs(np.asarray(outcome.blurred, np.float32) - ramp / 257).max() <= 0.5 + 1e-3


@pytest.mark.parametrize("url, message", [
    ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAA", "not valid base64"),
    ("data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40).decode(), "pasted image"),
    ("data:text/plain,hello", "not a base64 data: URL"),
])
def test_bad_data_url_is_a_clear_image_error(models, url, message):
    with pytest.raises(ImageError, match=message):
        app_logic.deblur(url, "adam", models)


def test_data_url_over_the_upload_limit_is_refused(models, monkeypatch):
    monkeypatch.setenv("VITDEBLUR_MAX_FILE_MB", "0.001")
    with pytest.raises(ImageError, match="over the 0.001 MB limit"):
        app_logic.deblur("data:image/png;base64," + "A" * 4000, "adam", models)


def test_animated_gif_gets_a_note(models, tmp_path):
    frames = [Image.fromarray(photo(name, (64, 48))) for name in ("coffee", "rocket", "camera")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    outcome = app_logic.deblur(tmp_path / "anim.gif", "adam", models)
    assert "the image is animated (3 frames); only its first frame was deblurred" in outcome.notes
    assert "animated (3 frames)" in app_logic.metrics_markdown(outcome)


def test_large_photo_is_decoded_at_the_processing_size(models, tmp_path):
    Image.fromarray(photo("astronaut", (1200, 900))).save(tmp_path / "big.jpg", quality=90)
    outcome = app_logic.deblur(tmp_path / "big.jpg", "adam", models, max_megapixels=0.05)
    assert outcome.original_size == (1200, 900) and outcome.size[0] * outcome.size[1] <= 50_000
    assert "downscaled from 1200x900" in app_logic.metrics_markdown(outcome)


def test_upload_and_queue_settings(monkeypatch):
    assert app_logic.max_upload_bytes() == 50_000_000 and app_logic.queue_size() >= 64
    monkeypatch.setenv("VITDEBLUR_MAX_FILE_MB", "5")
    monkeypatch.setenv("VITDEBLUR_QUEUE_SIZE", "200")
    assert app_logic.max_upload_bytes() == 5_000_000 and app_logic.queue_size() == 200
    monkeypatch.setenv("VITDEBLUR_QUEUE_SIZE", "-3")
    with pytest.raises(ValueError, match=r"\$VITDEBLUR_QUEUE_SIZE must be a positive number, got '-3'"):
        app_logic.queue_size()


def test_blur_your_own_reads_a_data_url_too(models, examples_dir):
    outcome = app_logic.blur_and_deblur(data_url(examples_dir / "pair" / "sharp.png"), "adam", models,
                                        app_logic.BlurSettings(defocus_radius=2))
    assert outcome.name == "pasted_image" and outcome.blurred.size == (96, 80) and len(outcome.metrics) == 2


def test_app_caches_examples_apart_from_an_inherited_cache_folder(tmp_path):
    """An app started from a process that set GRADIO_EXAMPLES_CACHE (for other checkpoints) must not use that folder
    itself: its own folder, named by its checkpoints and code, goes beneath it."""
    inherited = tmp_path / "inherited"
    env = {**os.environ, "GRADIO_EXAMPLES_CACHE": str(inherited), "GRADIO_ANALYTICS_ENABLED": "False"}
    code = "import os, app; print(os.environ['GRADIO_EXAMPLES_CACHE'])"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert folder.parent == inherited and len(folder.name) == 16


def test_documents_link_the_hubs_rendered_page_on_a_space(tmp_path, monkeypatch):
    card = tmp_path / "checkpoints" / "adam" / "README.md"
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert app_logic.document_url(card, tmp_path) == f"gradio_api/file={card}"
    monkeypatch.setenv("SPACE_ID", "someone/vitdeblur")
    assert app_logic.document_url(card, tmp_path) == (
        "https://huggingface.co/spaces/someone/vitdeblur/blob/main/checkpoints/adam/README.md")
    outside = tmp_path.parent / "elsewhere.md"  # not in the Space's repository: the file itself
    assert app_logic.document_url(outside, tmp_path) == f"gradio_api/file={outside}"

"""Unit tests of the app's logic (vitdeblur.app_logic) and of app.py's handler, without a server."""

import base64
import shutil
from pathlib import Path

import numpy as np
import pytest
from app_fixtures import REPO_ROOT, make_tiny_checkpoints
from conftest import exif_rotated_jpeg, photo, png_claiming, rgba_png
from PIL import Image

from vitdeblur import CheckpointError, ImageError, app_logic, load_image
from vitdeblur.evaluate import psnr
from vitdeblur.examples import find_example, list_examples


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
    assert "| deblurred (sgd) |" in text and "CPU" in text and "96x80" in text


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

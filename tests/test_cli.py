import json

import numpy as np
import pytest
import torch
from conftest import save
from PIL import Image

from vitdeblur.__main__ import main
from vitdeblur.evaluate import psnr, ssim
from vitdeblur.hub import load_model


def test_evaluate_writes_metrics_json_and_grid(tiny_checkpoint, pairs_folder, tmp_path, capsys):
    out_json, out_grid = tmp_path / "m.json", tmp_path / "grid.png"
    main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(pairs_folder), "--split", "all",
          "--json", str(out_json), "--grid", str(out_grid), "--grid-rows", "2", "--device", "cpu"])
    metrics = json.loads(out_json.read_text())
    for key in ("n", "psnr_blurred", "ssim_blurred", "psnr", "ssim", "seconds_per_image"):
        assert key in metrics
    assert metrics["n"] == 10 and len(metrics["images"]) == 10
    assert 15 < metrics["psnr_blurred"] < 40 and 0 < metrics["ssim_blurred"] < 1
    assert metrics["psnr"] != metrics["psnr_blurred"]  # the perturbed tiny model changes the image
    grid = Image.open(out_grid)
    assert grid.height > grid.width / 6  # two rows of three panels
    assert "PSNR" in capsys.readouterr().out


def test_evaluate_on_the_test_split_only(tiny_checkpoint, pairs_folder, tmp_path):
    main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(pairs_folder),
          "--json", str(tmp_path / "m.json"), "--device", "cpu"])
    assert json.loads((tmp_path / "m.json").read_text())["n"] == 1


def test_metric_definition():
    reference = np.random.default_rng(0).random((32, 40, 3))
    noisy = np.clip(reference + 0.01, 0, 1)
    mse = np.mean((noisy - reference) ** 2)
    assert psnr(noisy, reference) == pytest.approx(10 * np.log10(1 / mse))
    assert ssim(reference, reference) == pytest.approx(1.0)
    assert psnr(reference + 5, reference) == psnr(np.ones_like(reference), reference)  # results are clipped to [0, 1]


def test_deblur_writes_same_size_pngs_and_reports_bad_files(tiny_checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.new("RGB", (123, 77), "red").save(inputs / "a.jpg")
    Image.new("L", (40, 90), 128).save(inputs / "b.png")
    (inputs / "broken.png").write_bytes(b"not an image")
    with pytest.raises(SystemExit, match="1 of 3 inputs could not be deblurred"):
        main(["deblur", str(inputs), "-o", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint)])
    assert Image.open(tmp_path / "out" / "a.png").size == (123, 77)
    assert Image.open(tmp_path / "out" / "b.png").size == (40, 90)
    assert "broken.png: not an image" in capsys.readouterr().err


def test_bad_checkpoint_is_a_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match="error: .*no such checkpoint folder"):
        main(["deblur", str(tmp_path), "-o", str(tmp_path / "out"), "--checkpoint", "runs/missing/best"])


def test_make_pairs_command(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 24), (60 * i, 0, 0)).save(frames / f"{i:03d}.png")
    main(["make-pairs", str(frames), "-o", str(tmp_path / "pairs"), "-n", "2"])
    assert len(list((tmp_path / "pairs" / "blur").iterdir())) == 2


def test_deblur_never_overwrites_inputs_or_its_own_results(tiny_checkpoint, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (40, 30), "blue").save(folder / "a.png")
    before = (folder / "a.png").read_bytes()
    with pytest.raises(SystemExit, match="would overwrite"):
        main(["deblur", str(folder), "-o", str(folder), "--checkpoint", str(tiny_checkpoint)])
    assert (folder / "a.png").read_bytes() == before
    Image.new("RGB", (40, 30), "red").save(folder / "a.jpg")
    with pytest.raises(SystemExit, match="would overwrite"):  # a.jpg and a.png would both become out/a.png
        main(["deblur", str(folder), "-o", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint)])


def test_bench_runs_end_to_end_and_writes_json(tiny_checkpoint, tmp_path, capsys):
    out_json = tmp_path / "bench.json"
    main(["bench", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--photo-size", "200x150",
          "--repeats", "1", "--json", str(out_json)])
    result = json.loads(out_json.read_text())
    for key in ("gflop_per_tile", "gemm_peak_gflops", "bf16_gemm_speedup", "auto_precision", "peak_rss_mb", "frame",
                "photo"):
        assert key in result
    frame = result["frame"]
    assert frame["size"] == [1280, 720] and frame["tiles"] * frame["tile_shape"][0] * frame["tile_shape"][1] > 1280 * 720
    assert frame["tile_overhead"] > 1 and frame["gflop"] > result["gflop_per_tile"] > 0
    assert result["gemm_peak_gflops"]["fp32"] > 0 and result["gemm_peak_gflops"]["bf16"] > 0
    timed_bf16 = "bf16" in result["timed_precisions"]
    assert "fp32" in result["timed_precisions"] and ("bf16_speedup" in result) == timed_bf16
    assert ("bf16_not_timed" in result) != timed_bf16  # the report says why
    for precision in result["timed_precisions"]:
        assert frame["seconds"][precision] > 0
    assert result["photo"]["size"] == [200, 150]
    assert "GEMM peak" in capsys.readouterr().out


def test_bench_counts_the_flops_of_every_scale(tiny_checkpoint):
    from vitdeblur.bench import image_flops, report

    model = load_model(tiny_checkpoint)
    full_size, _ = image_flops(model, 1280, 720)
    three_sizes, scales = image_flops(model, 1280, 720, scales=(1, 2, 4))
    assert [factor for factor, _, _ in scales] == [1, 2, 4]
    assert 1.2 * full_size < three_sizes < 1.45 * full_size  # about 1 + 1/4 + 1/16
    frame = {"size": [1280, 720], "scales": [1, 2, 4], "tiles": 30, "tile_shape": [64, 64], "tile_overhead": 1.4,
             "gflop": 1.0, "seconds": {}}
    result = {"device": "cpu", "threads": 2, "auto_precision": "fp32", "tile_size": 64, "tile_overlap": 16,
              "batch_size": 4, "gflop_per_tile": 0.1, "gemm_peak_gflops": {"fp32": 100.0}, "bf16_gemm_speedup": 1.0,
              "frame": frame, "photo": {**frame, "scales": [1]}, "peak_rss_mb": 500.0}
    assert "30 tiles at scales 1, 1/2, 1/4 (64x64 at the first)" in report(result)
    assert "30 tiles of 64x64," in report(result)  # the photo, at full size only


def test_bench_times_bf16_on_a_cpu_only_where_it_is_fast(monkeypatch):
    from vitdeblur import bench

    cpu = torch.device("cpu")
    monkeypatch.setattr(bench, "fast_bf16_cpu_flags", lambda: [])
    assert bench.timed_precisions(cpu) == ("fp32",)
    monkeypatch.setattr(bench, "fast_bf16_cpu_flags", lambda: ["amx_bf16"])
    assert bench.timed_precisions(cpu) == ("fp32", "bf16")


def test_bench_judges_against_the_higher_of_two_peak_readings(tiny_checkpoint, monkeypatch):
    from vitdeblur import bench

    readings = iter([100.0, 1.0, 200.0])  # fp32 and bf16 before the images, fp32 again after them
    monkeypatch.setattr(bench, "gemm_peak", lambda device, precision: next(readings))
    result = bench.bench(load_model(str(tiny_checkpoint)), precisions=("fp32",), photo=(64, 48), repeats=1)
    assert result["gemm_peak_gflops"] == {"fp32": 200.0, "bf16": 1.0}
    for name in ("frame", "photo"):
        assert result[name]["share_of_gemm_peak"]["fp32"] == pytest.approx(result[name]["gflops"]["fp32"] / 200)


def test_deblur_and_evaluate_take_a_precision(tiny_checkpoint, pairs_folder, tmp_path):
    main(["deblur", str(pairs_folder / "blur" / "00.png"), "-o", str(tmp_path / "out"), "--checkpoint",
          str(tiny_checkpoint), "--precision", "bf16"])
    assert (tmp_path / "out" / "00.png").is_file()
    main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(pairs_folder), "--precision", "fp32",
          "--json", str(tmp_path / "m.json")])
    assert json.loads((tmp_path / "m.json").read_text())["precision"] == "fp32"
    with pytest.raises(SystemExit):
        main(["deblur", str(pairs_folder / "blur" / "00.png"), "-o", str(tmp_path / "x"), "--precision", "fp8"])


def test_deblur_never_replaces_an_existing_file_unless_asked(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "ow"
    out.mkdir()
    Image.new("RGB", (40, 30), "blue").save(out / "photo.jpg")
    Image.new("RGB", (20, 10), "red").save(out / "photo.png")  # unrelated to the input, and in the way
    before = (out / "photo.png").read_bytes()
    with pytest.raises(SystemExit, match=f"exist already: {out / 'photo.png'}; add --overwrite"):
        main(["deblur", str(out / "photo.jpg"), "-o", str(out), "--checkpoint", str(tiny_checkpoint)])
    assert (out / "photo.png").read_bytes() == before
    main(["deblur", str(out / "photo.jpg"), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--overwrite"])
    assert Image.open(out / "photo.png").size == (40, 30)
    assert sorted(p.name for p in out.iterdir()) == ["photo.jpg", "photo.png"]  # no temporary file left


def test_write_errors_are_one_line_each_and_the_batch_goes_on(tiny_checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    for name in ("a", "b", "c"):
        save(np.full((30, 40, 3), 90, np.uint8), inputs / f"{name}.png")
    out = tmp_path / "out"
    (out / "b.png").mkdir(parents=True)  # a folder where a result should go
    with pytest.raises(SystemExit, match="1 of 3 inputs could not be deblurred"):
        main(["deblur", str(inputs), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--overwrite"])
    err = capsys.readouterr().err
    assert f"skipped: {inputs / 'b.png'}: cannot write {out / 'b.png'}" in err and "Traceback" not in err
    assert Image.open(out / "a.png").size == Image.open(out / "c.png").size == (40, 30)


def test_output_folder_that_is_a_file_is_a_one_line_error(tiny_checkpoint, tmp_path):
    save(np.zeros((30, 40, 3), np.uint8), tmp_path / "a.png")
    (tmp_path / "out").write_text("a file")
    with pytest.raises(SystemExit, match=f"^error: -o {tmp_path / 'out'} is a file"):
        main(["deblur", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint)])


@pytest.mark.parametrize("value", ["-1", "nan", "0"])
def test_bad_megapixel_limit_is_a_clear_error(tmp_path, capsys, value):
    with pytest.raises(SystemExit):
        main(["deblur", str(tmp_path), "-o", str(tmp_path / "out"), "--max-megapixels", value])
    assert f"--max-megapixels: must be a positive number of megapixels, got '{value}'" in capsys.readouterr().err


def test_animated_gif_in_a_folder_is_deblurred_with_a_note(tiny_checkpoint, tmp_path, capsys):
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "green")]
    (tmp_path / "in").mkdir()
    frames[0].save(tmp_path / "in" / "anim.gif", save_all=True, append_images=frames[1:])
    main(["deblur", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--checkpoint", str(tiny_checkpoint)])
    assert Image.open(tmp_path / "out" / "anim.png").size == (40, 30)
    assert "animated (2 frames); only its first frame is deblurred" in capsys.readouterr().err


def test_evaluate_checks_its_outputs_before_evaluating(tiny_checkpoint, pairs_folder, tmp_path, capsys):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(SystemExit, match="^error: cannot write .*blocker/m.json"):
        main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(pairs_folder),
              "--json", str(tmp_path / "blocker" / "m.json"), "--device", "cpu"])
    assert "PSNR" not in capsys.readouterr().out  # stopped before the evaluation ran
    with pytest.raises(SystemExit, match="is a folder"):
        main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(pairs_folder),
              "--grid", str(tmp_path), "--device", "cpu"])
    main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(pairs_folder),
          "--json", str(tmp_path / "new" / "folder" / "m.json"), "--device", "cpu"])
    assert json.loads((tmp_path / "new" / "folder" / "m.json").read_text())["n"] == 1

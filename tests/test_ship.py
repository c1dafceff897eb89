import json

from PIL import Image

from conftest import tiny_model

from train.ship import main as ship
from vitdeblur import save_checkpoint


def test_results_table_has_gains_compute_and_held_out_sets(sharp_folder, pairs_folder, tmp_path):
    runs = []
    for name, decoder in (("one", "residual"), ("two", "nafnet")):
        run = tmp_path / name
        save_checkpoint(tiny_model(decoder), run / "best")
        (run / "train_config.json").write_text(json.dumps({"name": name}))
        runs += ["--run", f"{name}={run}"]
    ship([*runs, "--test", f"synthetic={sharp_folder}", "--heldout", f"real={pairs_folder}",
          "--docs", str(tmp_path / "docs"), "--grid-rows", "1"])
    table = (tmp_path / "docs" / "results.md").read_text()
    assert ("| model | synthetic PSNR (gain) | synthetic SSIM | real PSNR (gain) | real SSIM | GFLOP per 1280x720 |"
            in table)
    assert "real: 10 images (all)" in table and "synthetic: 1 images (test)" in table
    metrics = json.loads((tmp_path / "two" / "metrics-real.json").read_text())
    assert metrics["split"] == "all" and metrics["n"] == 10
    rows = [line for line in table.splitlines() if line.startswith(("| one", "| two"))]
    assert len(rows) == 2 and all("(+" in row or "(-" in row for row in rows)
    assert Image.open(tmp_path / "docs" / "grid.jpg").format == "JPEG" and (tmp_path / "docs" / "crops.png").exists()

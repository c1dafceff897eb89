import json
import shutil

import pytest
import torch
from conftest import tiny_model
from huggingface_hub import ModelCard

from train.push import main as push_main
from vitdeblur import CheckpointError, ViTDeblur, load_model, save_checkpoint
from vitdeblur.hub import SHIPPED_DIR, model_card, resolve_checkpoint

METRICS = {"n": 2, "psnr_blurred": 27.5, "ssim_blurred": 0.81, "psnr": 28.75, "ssim": 0.85,
           "seconds_per_image": 0.4, "device": "cpu", "dataset": "tiny-pairs", "split": "test"}


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_model()
    folder = save_checkpoint(model, tmp_path / "ckpt")
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in folder.iterdir()}
    loaded = ViTDeblur.from_pretrained(folder)
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.config == model.config


def test_inference_scales_travel_in_config_json(tmp_path):
    model = tiny_model()
    model.config.inference_scales = (1, 2, 4)
    folder = save_checkpoint(model, tmp_path / "ckpt")
    assert json.loads((folder / "config.json").read_text())["inference_scales"] == [1, 2, 4]
    assert load_model(folder).config.inference_scales == (1, 2, 4)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "inference_scales": [0, 2]}))
    with pytest.raises(CheckpointError, match="distinct whole factors"):
        load_model(folder)


def test_half_precision_and_sharded_folders_load(tmp_path):
    from vitdeblur.hub import save_weights

    model = tiny_model()
    half = save_checkpoint(model, tmp_path / "half", half=True)
    assert (half / "model.safetensors").stat().st_size < 0.6 * sum(p.numel() * 4 for p in model.parameters())
    sharded = tmp_path / "sharded"
    save_weights(model, sharded, max_shard_size="200KB")
    shutil.copy(half / "config.json", sharded / "config.json")
    assert (sharded / "model.safetensors.index.json").exists()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), load_model(half)(x), atol=2e-3)
        assert torch.equal(model(x), load_model(sharded)(x))


def test_truncated_weights_fail_clearly(tiny_checkpoint):
    weights = tiny_checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_model(tiny_checkpoint)


def test_config_that_does_not_match_the_weights_fails_clearly(tiny_checkpoint):
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    config["decoder_width"] = 16
    (tiny_checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not match config.json"):
        load_model(tiny_checkpoint)


def test_config_with_unknown_fields_fails_clearly(tiny_checkpoint):
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    config["decoder"] = "transformer"
    (tiny_checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not describe a ViTDeblur model"):
        load_model(tiny_checkpoint)


def test_malformed_config_names_the_file(tiny_checkpoint):
    config = tiny_checkpoint / "config.json"
    config.write_text(config.read_text()[:40])
    with pytest.raises(CheckpointError, match=f"^{config}: not valid JSON"):
        load_model(tiny_checkpoint)


def test_pickle_weights_are_refused(tiny_checkpoint):
    state = tiny_model().state_dict()
    (tiny_checkpoint / "model.safetensors").unlink()
    torch.save(state, tiny_checkpoint / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(tiny_checkpoint)


def test_folder_without_config_fails_clearly(tiny_checkpoint):
    (tiny_checkpoint / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(tiny_checkpoint)


def test_repo_id_offline_names_the_fallback():
    with pytest.raises(CheckpointError, match="checkpoints"):
        load_model("vitdeblur/not-cached-here")


def test_variant_names_resolve_to_shipped_folders():
    assert resolve_checkpoint("adam") == str(SHIPPED_DIR / "adam")
    assert resolve_checkpoint("sgd") == str(SHIPPED_DIR / "sgd")
    assert resolve_checkpoint("owner/model") == "owner/model"


@pytest.fixture
def evaluated_run(tmp_path):
    run = tmp_path / "runs" / "tiny"
    save_checkpoint(tiny_model(), run / "best")
    (run / "metrics.json").write_text(json.dumps(METRICS))
    (run / "train_config.json").write_text(json.dumps({"name": "tiny-adam", "recipe": "adam", "loss": "l1",
                                                       "optimizer": "adam", "hardware": "CPU", "minutes": 1.5}))
    (run / "loss_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return run


def test_dry_run_writes_every_file_and_a_parseable_card(evaluated_run, tmp_path, capsys):
    out = tmp_path / "upload"
    push_main(["--run", str(evaluated_run), "--repo-id", "someone/vitdeblur-tiny", "--dry-run", str(out)])
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "README.md", "metrics.json",
                                               "train_config.json", "loss_curve.png"}
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "image-to-image"
    assert card.data.library_name == "vitdeblur" and card.data.license == "mit"
    assert "image-deblurring" in card.data.tags
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert values == {"psnr": 28.75, "ssim": 0.85}
    assert "data_range=1" in card.data.eval_results[0].metric_args["definition"]
    assert "random init" in card.text and "tiny-pairs" in card.text
    load_model(out)  # the uploaded folder is itself a loadable checkpoint


@pytest.mark.parametrize("repo_id", ["no-owner", "two//slashes", "bad name/x", "a/b/c"])
def test_push_refuses_malformed_repo_ids(evaluated_run, repo_id):
    with pytest.raises(SystemExit, match="malformed repo id"):
        push_main(["--run", str(evaluated_run), "--repo-id", repo_id])


def test_push_without_token_fails_clearly(evaluated_run, monkeypatch):
    monkeypatch.setattr("train.push.get_token", lambda: None)
    with pytest.raises(SystemExit, match="no Hugging Face token"):
        push_main(["--run", str(evaluated_run), "--repo-id", "someone/vitdeblur-tiny"])


def test_push_without_network_fails_clearly(evaluated_run, monkeypatch):
    monkeypatch.setattr("train.push.get_token", lambda: "hf_fake")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(SystemExit, match="cannot reach the Hugging Face Hub|the Hub refused"):
        push_main(["--run", str(evaluated_run), "--repo-id", "someone/vitdeblur-tiny"])


def test_push_without_metrics_says_how_to_make_them(evaluated_run, tmp_path):
    (evaluated_run / "metrics.json").unlink()
    with pytest.raises(SystemExit, match="evaluate first"):
        push_main(["--run", str(evaluated_run), "--repo-id", "someone/x", "--dry-run", str(tmp_path / "o")])


def test_push_of_a_missing_run_fails_clearly(tmp_path):
    with pytest.raises(SystemExit, match="neither a checkpoint folder"):
        push_main(["--run", str(tmp_path / "nope"), "--repo-id", "someone/x", "--dry-run", str(tmp_path / "o")])


def test_repo_id_loads_through_the_hub_download_path(tiny_checkpoint, monkeypatch):
    """Online loading, with the two download calls answered from a local folder instead of the network."""
    calls = []

    def fake_hf_hub_download(repo_id, filename, **kwargs):
        calls.append(("config", repo_id))
        return str(tiny_checkpoint / filename)

    def fake_snapshot_download(repo_id, allow_patterns=None, **kwargs):
        calls.append(("snapshot", repo_id))
        assert "*.safetensors" in allow_patterns and not any("bin" in p for p in allow_patterns)
        return str(tiny_checkpoint)

    monkeypatch.setattr("huggingface_hub.hub_mixin.hf_hub_download", fake_hf_hub_download)
    monkeypatch.setattr("vitdeblur.hub.snapshot_download", fake_snapshot_download)
    model = load_model("someone/vitdeblur-tiny")
    assert calls == [("config", "someone/vitdeblur-tiny"), ("snapshot", "someone/vitdeblur-tiny")]
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), load_model(tiny_checkpoint)(x))


def test_model_card_says_how_the_encoder_started():
    config = tiny_model().config
    assert "trained from random init" in model_card(config, training={"pretrained": False}).text
    card = model_card(config, training={"pretrained": True, "data": ["/data/blur_dataset"]})
    assert "ImageNet-pretrained" in card.text and "blur_dataset" in card.text


def test_model_card_names_the_synthetic_blur_mix():
    config = tiny_model().config
    mixed = model_card(config, training={"blur": "mixed", "data": ["photos"]}).text
    assert "- synthetic blur: mixed" in mixed and "half uniform motion and defocus kernels of 7-41 px" in mixed
    assert "kernels of 7-41 px" not in model_card(config, training={"data": ["photos"]}).text  # older runs: realistic


def test_model_card_lists_the_optimiser_options_that_were_on():
    config = tiny_model().config
    sgd = model_card(config, training={"optimizer": "sgd", "momentum": 0.9, "lars_trust": 0.2}).text
    assert "- momentum: 0.9" in sgd and "- LARS trust: 0.2" in sgd
    adam = model_card(config, training={"optimizer": "adam", "momentum": 0.0, "lars_trust": 0.0}).text
    assert "momentum" not in adam and "LARS" not in adam


@pytest.mark.parametrize("variant", ["adam", "sgd"])
def test_shipped_checkpoints_load_and_are_small(variant):
    folder = SHIPPED_DIR / variant
    assert sum(f.stat().st_size for f in folder.iterdir()) < 25e6
    model = load_model(variant)
    assert model.config.decoder in ("residual", "nafnet")  # nafnet: the default since issue #8; residual: the first
    card = ModelCard.load(folder / "README.md")
    assert {r.metric_type for r in card.data.eval_results} == {"psnr", "ssim"}
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.equal(x, y)  # trained: not the identity


def test_every_blur_mix_has_words_for_the_model_card():
    from vitdeblur.hub import BLUR_TEXT
    from vitdeblur.synthesis import BLURS

    assert set(BLUR_TEXT) == set(BLURS)

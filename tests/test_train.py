import argparse
import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY, photo

from train.recipes import RECIPES, Recipe
from train.train import (LARS, TrainingDiverged, WeightEMA, amp_dtype, build_loader, build_model, compute_loss,
                         lr_factor, main, make_optimizer, parse_args, resolve_recipe, steps_in_budget, train_step,
                         training_sets)
from vitdeblur import ViTDeblur, ViTDeblurConfig, load_model, save_checkpoint
from vitdeblur.synthesis import BLURS

TINY_FLAGS = ["--backbone", TINY["backbone"], "--decoder-width", "8", "--batch-size", "4", "--crop", "32",
              "--samples-per-epoch", "8", "--val-crop", "48", "--warmup-steps", "2"]


def run(pairs_folder, out, *extra):
    main(["--recipe", "adam", "--data", str(pairs_folder), "--out", str(out), "--device", "cpu", *TINY_FLAGS, *extra])


def read_log(out):
    with open(out / "log.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("recipe_name", ["adam", "sgd"])
def test_a_few_steps_of_each_recipe_lower_its_loss(recipe_name):
    recipe = RECIPES[recipe_name]
    sharp = torch.stack([torch.from_numpy(photo(name, (48, 48))).permute(2, 0, 1).float() / 255
                         for name in ("astronaut", "coffee", "chelsea", "rocket")])
    blur = 0.7 * F.avg_pool2d(F.pad(sharp, (2, 2, 2, 2), mode="replicate"), 5, stride=1)  # blurred and too dark
    torch.manual_seed(0)
    model = ViTDeblur(ViTDeblurConfig(decoder=recipe.decoder, layer_scale_init=recipe.layer_scale_init, **TINY))
    optimizer = make_optimizer(recipe, model.train())
    losses = [train_step(model, optimizer, recipe, blur, sharp, dtype=None) for _ in range(20)]
    assert losses[-1] < 0.75 * losses[0]


def test_relative_mse_weighs_lightly_and_strongly_blurred_images_alike():
    recipe = Recipe(name="t", loss="relative-mse")
    sharp = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    blurred = sharp + torch.tensor([0.01, 0.2]).view(2, 1, 1, 1)  # one light, one strong error
    assert compute_loss(recipe, blurred, sharp, blurred).item() == pytest.approx(1.0)  # the identity scores 1
    halve_light, halve_strong = blurred.clone(), blurred.clone()
    halve_light[0] = (sharp[0] + blurred[0]) / 2
    halve_strong[1] = (sharp[1] + blurred[1]) / 2
    # halving either image's error is worth the same, where plain MSE would care 400x more about the strong one
    assert compute_loss(recipe, halve_light, sharp, blurred).item() == pytest.approx(0.625)
    assert compute_loss(recipe, halve_strong, sharp, blurred).item() == pytest.approx(0.625)
    assert torch.isfinite(compute_loss(recipe, sharp, sharp, sharp))  # an unblurred pair does not divide by zero


def test_training_run_writes_its_outputs_and_resumes(pairs_folder, tmp_path):
    out = tmp_path / "run"
    run(pairs_folder, out, "--epochs", "1")
    assert [r["epoch"] for r in read_log(out)] == ["1"]
    for name in ("train_config.json", "loss_curve.png", "train_state.pt", "best/config.json", "last/README.md"):
        assert (out / name).exists(), name
    config = json.loads((out / "train_config.json").read_text())
    assert config["loss"] == "l1" and config["optimizer"] == "adam" and config["steps"] == 2
    load_model(out / "best")  # a Hub-format folder that loads strictly

    # "Interrupted" after epoch 1: a resumed run continues at epoch 2 and step 3, not from scratch.
    run(pairs_folder, out, "--epochs", "3", "--resume")
    rows = read_log(out)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [r["step"] for r in rows] == ["2", "4", "6"]
    state = torch.load(out / "train_state.pt", weights_only=True)
    assert state["epoch"] == 3 and state["step"] == 6
    best_step = json.loads((out / "best" / "train_config.json").read_text())["steps"]
    assert json.loads((out / "last" / "train_config.json").read_text())["steps"] == 6
    assert best_step == 2 * max(range(3), key=lambda i: float(rows[i]["val_psnr"])) + 2  # as of the best epoch


def test_resume_keeps_the_runs_own_recipe(pairs_folder, tmp_path, monkeypatch):
    out = tmp_path / "run"
    run(pairs_folder, out, "--epochs", "1", "--crop", "40", "--lr", "3e-4")
    config = json.loads((out / "train_config.json").read_text())
    (out / "train_config.json").write_text(json.dumps({**config, "pretrained": True}))  # as if it began pretrained
    built = []
    monkeypatch.setattr("train.train.ViTDeblurConfig", lambda **kw: built.append(kw) or ViTDeblurConfig(**kw))
    # resumed with none of the first call's overrides but one: the rest come from the run, not the recipe defaults
    main(["--recipe", "adam", "--data", str(pairs_folder), "--out", str(out), "--device", "cpu", "--resume",
          "--epochs", "2"])
    config = json.loads((out / "train_config.json").read_text())
    assert (config["crop"], config["lr"], config["backbone"], config["epochs"]) == (40, 3e-4, TINY["backbone"], 2)
    assert config["pretrained"] and built[0]["pretrained"] is False  # the saved state has the weights: no download
    assert [r["step"] for r in read_log(out)] == ["2", "4"]
    with pytest.raises(SystemExit, match="used --recipe adam, not sgd"):
        main(["--recipe", "sgd", "--data", str(pairs_folder), "--out", str(out), "--device", "cpu", "--resume"])


def test_init_starts_from_a_checkpoint(pairs_folder, tmp_path, tiny_checkpoint):
    out = tmp_path / "run"
    run(pairs_folder, out, "--epochs", "1", "--init", str(tiny_checkpoint), "--lr", "1e-12")
    before, after = load_model(tiny_checkpoint), load_model(out / "last")
    assert torch.allclose(before.decoder.head.weight, after.decoder.head.weight, atol=1e-6)


def test_a_continued_run_grows_the_encoder_by_blocks_that_start_as_the_identity(pairs_folder, tmp_path):
    torch.manual_seed(0)
    shallow = ViTDeblur(ViTDeblurConfig(decoder="nafnet", encoder_depth=3, layer_scale_init=0.1, **TINY)).eval()
    torch.nn.init.normal_(shallow.decoder.head.weight, std=0.01)  # a zero head would hide what the tokens are
    checkpoint = save_checkpoint(shallow, tmp_path / "shallow")
    grown = build_model(RECIPES["adam"], str(checkpoint), encoder_depth=6).eval()
    assert len(grown.encoder.blocks) == grown.config.encoder_depth == 6
    image = torch.rand(1, 3, 48, 64)
    with torch.no_grad():  # the same function as the checkpoint, its features too
        assert torch.allclose(grown.tokens(image), shallow.tokens(image), atol=1e-5)
        assert torch.allclose(grown(image), shallow(image), atol=1e-5)
        assert not torch.allclose(shallow(image), image, atol=1e-3)
    # the trained blocks are the checkpoint's; the new ones are not copies of them, and their outputs start at zero
    assert torch.equal(grown.encoder.blocks[2].attn.qkv.weight, shallow.encoder.blocks[2].attn.qkv.weight)
    assert not torch.equal(grown.encoder.blocks[3].attn.qkv.weight, shallow.encoder.blocks[2].attn.qkv.weight)
    new_outputs = [layer.weight for block in grown.encoder.blocks[3:] for layer in (block.attn.proj, block.mlp.fc2)]
    assert len(new_outputs) == 6 and not any(weight.any() for weight in new_outputs)
    # training it records the grown architecture, which a resumed run rebuilds, with or without --init given again
    out = tmp_path / "run"
    run(pairs_folder, out, "--epochs", "1", "--init", str(checkpoint), "--encoder-depth", "6")
    assert json.loads((out / "train_config.json").read_text())["encoder_depth"] == 6
    assert load_model(out / "last").config.encoder_depth == 6
    run(pairs_folder, out, "--epochs", "2", "--resume")
    run(pairs_folder, out, "--epochs", "3", "--resume", "--init", str(checkpoint))
    assert len(read_log(out)) == 3
    with pytest.raises(SystemExit, match="can add blocks but not drop"):
        build_model(RECIPES["adam"], str(checkpoint), encoder_depth=2)
    with pytest.raises(SystemExit, match="--encoder-depth 7: .*exceeds the 6 blocks"):
        build_model(RECIPES["adam"], str(checkpoint), encoder_depth=7)
    # LARS scales each step to the weights' norm: zero weights would never grow
    with pytest.raises(SystemExit, match="cannot grow a model trained with LARS"):
        build_model(RECIPES["sgd"], str(checkpoint), encoder_depth=6)


def test_a_continued_run_grows_the_middle_by_naf_blocks_that_start_as_the_identity(pairs_folder, tmp_path):
    torch.manual_seed(0)
    trained = ViTDeblur(ViTDeblurConfig(decoder="nafnet", layer_scale_init=0.1, **TINY)).eval()
    torch.nn.init.normal_(trained.decoder.head.weight, std=0.01)  # a zero head would hide what the middle does
    checkpoint = save_checkpoint(trained, tmp_path / "trained")
    grown = build_model(RECIPES["adam"], str(checkpoint), middle_blocks=5).eval()
    assert len(grown.decoder.middle) == grown.config.middle_blocks == 5
    image = torch.rand(1, 3, 48, 64)
    with torch.no_grad():  # the same function as the checkpoint
        assert torch.allclose(grown(image), trained(image), atol=1e-5)
        assert not torch.allclose(trained(image), image, atol=1e-3)
    assert torch.equal(grown.decoder.middle[1].expand.weight, trained.decoder.middle[1].expand.weight)
    assert not any(block.beta.any() or block.gamma.any() for block in grown.decoder.middle[2:])
    assert all(block.beta.all() for block in grown.decoder.middle[:2])
    # training moves the new blocks off the identity, and the grown architecture travels with the run
    out = tmp_path / "run"
    run(pairs_folder, out, "--epochs", "1", "--init", str(checkpoint), "--middle-blocks", "5", "--lr", "1e-3")
    assert json.loads((out / "train_config.json").read_text())["middle_blocks"] == 5
    assert load_model(out / "last").decoder.middle[4].beta.any()
    with pytest.raises(SystemExit, match="--middle-blocks 1: the checkpoint has 2, .*not drop"):
        build_model(RECIPES["adam"], str(checkpoint), middle_blocks=1)
    with pytest.raises(SystemExit, match="--middle-blocks cannot grow a model trained with LARS"):
        build_model(RECIPES["sgd"], str(checkpoint), middle_blocks=3)
    paper = save_checkpoint(ViTDeblur(ViTDeblurConfig(decoder="paper", **TINY)), tmp_path / "paper")
    with pytest.raises(SystemExit, match="needs the nafnet decoder"):
        build_model(RECIPES["adam"], str(paper), middle_blocks=3)


def test_the_weight_average_warms_up_from_scratch_and_starts_at_continued_weights(pairs_folder, tmp_path,
                                                                                   tiny_checkpoint):
    model = torch.nn.Linear(2, 2)
    start = model.weight.detach().clone()
    fresh, continued = WeightEMA(model, 0.999), WeightEMA(model, 0.999, warmup=False)
    with torch.no_grad():
        model.weight.add_(1.0)
    fresh.update(model)
    continued.update(model)
    assert torch.allclose(fresh.module.weight, start + 9 / 11)  # decay (1 + 1) / (10 + 1) at the first update
    assert torch.allclose(continued.module.weight, start + 0.001)
    # a run from --init saves an average that has barely left the checkpoint after two steps
    out = tmp_path / "run"
    init = load_model(tiny_checkpoint).state_dict()
    name = next(k for k in init if k.endswith("head.weight"))

    def distances_from_init() -> tuple[float, float]:  # of the raw weights and of their average
        state = torch.load(out / "train_state.pt", weights_only=True)
        return tuple((weights[name].float() - init[name]).norm()
                     for weights in (state["model"], state["ema"]["module"]))

    run(pairs_folder, out, "--epochs", "1", "--init", str(tiny_checkpoint), "--lr", "1e-3", "--ema-decay", "0.999")
    raw, average = distances_from_init()
    assert average < 0.01 * raw
    # resumed (without --init), the run keeps its average's setting
    run(pairs_folder, out, "--epochs", "2", "--lr", "1e-3", "--ema-decay", "0.999", "--resume")
    raw, average = distances_from_init()
    assert average < 0.01 * raw


def test_nan_loss_stops_with_a_clear_message(pairs_folder, tmp_path):
    with pytest.raises(TrainingDiverged, match="loss became"):
        main(["--recipe", "sgd", "--data", str(pairs_folder), "--out", str(tmp_path / "run"), "--device", "cpu",
              *TINY_FLAGS, "--epochs", "3", "--lr", "1e30", "--amp", "none"])


def test_amp_auto_uses_bf16_only_where_it_is_fast(monkeypatch):
    from vitdeblur import inference

    auto, cpu = RECIPES["adam"], torch.device("cpu")
    monkeypatch.setattr(inference, "fast_bf16_cpu_flags", lambda: ["amx_bf16"])
    assert amp_dtype(auto, cpu) == torch.bfloat16
    monkeypatch.setattr(inference, "fast_bf16_cpu_flags", lambda: [])
    assert amp_dtype(auto, cpu) is None
    assert amp_dtype(dataclasses.replace(auto, amp="bf16"), cpu) == torch.bfloat16


def test_a_scale_range_without_1_is_a_clear_error(sharp_folder, tmp_path):
    with pytest.raises(SystemExit, match="^error: need 0 < min_scale <= 1 <= max_scale, got 1.0 and 0.5"):
        main(["--recipe", "adam", "--data", str(sharp_folder), "--out", str(tmp_path / "run"), "--device", "cpu",
              *TINY_FLAGS, "--max-scale", "0.5"])


def test_resume_without_state_is_an_error(pairs_folder, tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        run(pairs_folder, tmp_path / "fresh", "--resume")


def test_schedules():
    paper = RECIPES["paper-sgd"]
    assert lr_factor(paper, 0, 10, 1000) == 1.0
    assert lr_factor(paper, 25 * 10, 10, 1000) == pytest.approx(0.1)
    assert lr_factor(paper, 50 * 10 + 3, 10, 1000) == pytest.approx(0.01)
    adam = RECIPES["adam"]
    assert lr_factor(adam, 0, 10, 1000) == pytest.approx(1 / adam.warmup_steps)
    assert lr_factor(adam, adam.warmup_steps, 10, 1000) == pytest.approx(1.0)
    assert lr_factor(adam, 1000, 10, 1000) == pytest.approx(0.0)


def test_steps_in_budget():
    assert steps_in_budget(0, 0.0, 10, 1000) == 1000  # no speed yet: the planned schedule
    assert steps_in_budget(100, 2.0, 10, 1000) == 500  # 50 steps a minute, 8 minutes left
    assert steps_in_budget(100, 2.0, 100, 1000) == 1000  # never beyond the plan
    assert steps_in_budget(100, 12.0, 10, 1000) == 100  # over time: never fewer steps than made


@pytest.mark.parametrize("fit", [False, True])
def test_a_run_stopped_by_time_anneals_only_with_fit_schedule(pairs_folder, tmp_path, monkeypatch, fit):
    clock = iter(range(0, 10**6, 6))  # every reading of the clock is 6 s later: the same run every time
    monkeypatch.setattr("train.train.time.time", lambda: next(clock))
    out = tmp_path / "run"
    run(pairs_folder, out, "--epochs", "40", "--max-minutes", "3", *(["--fit-schedule"] if fit else []))
    rows = read_log(out)
    lr = RECIPES["adam"].lr
    assert int(rows[-1]["step"]) < 80  # stopped by time, well before the 40 epochs of 2 steps
    if fit:
        assert float(rows[-1]["lr"]) < 0.05 * lr  # annealed by the end of the minutes
        assert json.loads((out / "train_config.json").read_text())["total_steps"] == int(rows[-1]["step"])
    else:
        assert float(rows[-1]["lr"]) > 0.8 * lr  # stopped near the peak of its long schedule


def test_fit_schedule_needs_max_minutes(pairs_folder, tmp_path):
    with pytest.raises(SystemExit, match="--fit-schedule fits the cosine schedule into --max-minutes"):
        run(pairs_folder, tmp_path / "run", "--fit-schedule")


def test_paper_recipes_are_the_study_hyperparameters():
    adam, sgd = RECIPES["paper-adam"], RECIPES["paper-sgd"]
    assert (adam.optimizer, adam.loss, adam.lr, adam.step_size, adam.gamma, adam.epochs, adam.batch_size) == \
        ("adam", "l1", 0.01, 25, 0.5, 100, 1)
    assert (sgd.optimizer, sgd.loss, sgd.lr, sgd.step_size, sgd.gamma, sgd.epochs, sgd.batch_size) == \
        ("sgd", "mse", 0.1, 25, 0.1, 100, 1)
    assert adam.backbone == sgd.backbone == "vit_base_patch16_224" and adam.decoder == "paper"


def test_a_new_run_never_overwrites_an_existing_one(pairs_folder, tmp_path):
    out = tmp_path / "run"
    run(pairs_folder, out, "--epochs", "1")
    best = (out / "best" / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit, match="already holds a run"):
        run(pairs_folder, out, "--epochs", "1")
    assert (out / "best" / "model.safetensors").read_bytes() == best


def test_held_out_sets_validate_and_device_batches_train(sharp_folder, pairs_folder, tmp_path):
    """--val-data folders are validated whole (never trained on), each with its own columns; the GPU path's
    on-device batches (--device-data) run on the CPU too; the EMA weights are what gets saved."""
    out = tmp_path / "run"
    main(["--recipe", "adam", "--data", str(sharp_folder), "--val-data", str(pairs_folder), "--out", str(out),
          "--device", "cpu", "--device-data", "--epochs", "2", "--ema-decay", "0.9", *TINY_FLAGS])
    rows = read_log(out)
    assert len(rows) == 2
    held_out = f"heldout_{pairs_folder.name}_psnr"
    assert float(rows[-1][held_out]) > 0 and float(rows[-1][f"val_{sharp_folder.name}_psnr"]) > 0
    assert float(rows[-1]["val_psnr"]) == pytest.approx(
        (float(rows[-1][held_out]) + float(rows[-1][f"val_{sharp_folder.name}_psnr"])) / 2, abs=1e-3)
    config = json.loads((out / "train_config.json").read_text())
    assert config["val_data"] == [str(pairs_folder)] and config["device_data"] is True
    state = torch.load(out / "train_state.pt", weights_only=True)
    saved = load_model(out / "last").state_dict()
    ema_weights = state["ema"]["module"]
    name = next(k for k in saved if k.endswith("head.weight"))
    assert torch.allclose(saved[name].float(), ema_weights[name].float())
    assert not torch.equal(ema_weights[name], state["model"][name])  # the EMA lags the raw weights


def test_the_recipes_blur_mix_reaches_both_training_paths(sharp_folder, tmp_path):
    args = parse_args(["--recipe", "adam", "--data", str(sharp_folder), "--out", str(tmp_path), "--blur", "kernels",
                       "--min-scale", "0.5", "--max-scale", "2", *TINY_FLAGS])
    recipe = resolve_recipe(args)
    sets = training_sets(args, recipe)
    assert [(s.blur_spec, s.min_scale, s.max_scale) for s in sets] == [(BLURS["kernels"], 0.5, 2.0)]
    batches = build_loader(args, recipe, sets, torch.device("cpu"), device_data=True, rank=0, distributed=False)
    assert batches.datasets_of == sets * len(batches.sharp_only) and batches.sharp_only


def test_a_bad_image_stops_the_run_before_step_1_or_is_skipped(pairs_folder, tmp_path, capsys):
    (pairs_folder / "sharp" / "02.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match="1 unusable images .*02.png.*--skip-bad-images"):
        run(pairs_folder, out, "--epochs", "1")
    assert not (out / "log.csv").exists() and not (out / "train_state.pt").exists()
    run(pairs_folder, out, "--epochs", "1", "--skip-bad-images")
    assert "warning: skipping 1 unusable images" in capsys.readouterr().err
    assert json.loads((out / "train_config.json").read_text())["train_images"] == 7  # 8 in the train split, less one


def test_corrupt_train_state_is_a_one_line_error(pairs_folder, tmp_path):
    out = tmp_path / "run"
    run(pairs_folder, out, "--epochs", "1")
    state = out / "train_state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    with pytest.raises(SystemExit, match=f"^error: cannot resume from {state}: it is corrupt") as error:
        run(pairs_folder, out, "--epochs", "2", "--resume")
    assert "\n" not in str(error.value)


def test_lars_moves_every_weight_tensor_by_the_same_share():
    big, small, zero = (torch.nn.Parameter(t) for t in (torch.full((4, 4), 3.0), torch.full((4, 4), 0.01),
                                                           torch.zeros(4, 4)))
    bias = torch.nn.Parameter(torch.ones(4))
    before = [p.detach().clone() for p in (big, small, zero, bias)]
    optimizer = LARS([big, small, zero, bias], trust=0.01, lr=0.5)
    for p, grad_scale in zip((big, small, zero, bias), (100.0, 1e-4, 1.0, 1.0)):
        p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(0)) * grad_scale
    grads = [p.grad.clone() for p in (zero, bias)]
    optimizer.step()
    for p, old in zip((big, small), before[:2]):  # a thousandfold apart in weights, a millionfold in gradients
        assert torch.isclose((p.detach() - old).norm(), torch.tensor(0.5 * 0.01) * old.norm(), rtol=1e-4)
    for p, old, grad in zip((zero, bias), before[2:], grads):  # still-zero tensors and vectors: the plain step
        assert torch.allclose(p.detach(), old - 0.5 * grad)


def test_the_gpu_calls_runs_are_valid_training_commands_on_one_budget(tmp_path):
    from train.gpu_train_all import EPOCHS, RUNS, train_command

    args = argparse.Namespace(data=["photos"], val_data=[], backbone=None, blur="moving", min_scale=0.5,
                              max_scale=2.0, val_crop=384, batch_size=16, crop=256, minutes=6.0,
                              ema_decay=0.995)
    parsed = {}
    for run in RUNS:
        command = train_command(run, args, steps_per_epoch=40, device=torch.device("cuda"), runs_dir=tmp_path)
        assert command[1:3] == ["-m", "train"]
        parsed[run.name] = parse_args(command[3:])
    recipes = {name: resolve_recipe(a) for name, a in parsed.items()}
    assert recipes["paper-ref-adam"].decoder == recipes["paper-ref-sgd"].decoder == "paper"
    assert recipes["adam-scratch"].decoder == RECIPES["adam"].decoder and recipes["sgd"].loss == RECIPES["sgd"].loss
    assert parsed["adam"].init == "checkpoints/adam" and parsed["adam-scratch"].init is None
    assert sorted(a.out for a in parsed.values()) == sorted(str(tmp_path / run.name) for run in RUNS)
    # the same steps for every run, the same blur for every run from scratch: an equal budget
    assert {(r.samples_per_epoch, r.epochs, r.batch_size, r.min_scale, r.max_scale, r.val_crop)
            for r in recipes.values()} == {(640, EPOCHS, 16, 0.5, 2.0, 384)}
    # the continued runs' weight average starts at their checkpoint: a shorter one; the others keep the recipe's
    assert {name: (a.ema_decay, recipes[name].ema_decay) for name, a in parsed.items() if a.ema_decay} == dict.fromkeys(
        ["adam", "adam-smooth", "adam-grown", "adam-grown-256", "sgd"], (0.995, 0.995))
    assert recipes["adam-scratch"].ema_decay == RECIPES["adam"].ema_decay
    # adam continues at the 128 px crops of its whole history, and grown at both sizes
    assert json.loads((Path("checkpoints") / "adam" / "train_config.json").read_text())["crop"] == 128
    assert {name: r.crop for name, r in recipes.items() if r.crop != 256} == {"adam": 128, "adam-smooth": 128,
                                                                              "adam-grown": 128}
    assert {name: a.encoder_depth for name, a in parsed.items() if a.init and a.encoder_depth} == {
        "adam-grown": 12, "adam-grown-256": 12}
    assert {name: r.blur for name, r in recipes.items() if parsed[name].init is None} == {
        **dict.fromkeys(["adam-scratch", "adam-scratch-deep", "sgd-scratch", "paper-ref-adam", "paper-ref-sgd"],
                        "moving"), "adam-scratch-smooth": "mixed-smooth"}
    # a run that names its mix trains on it, continued or not; the other continued runs keep their checkpoint's
    assert (recipes["adam-smooth"].blur, recipes["adam-smooth"].fft_loss_weight) == ("mixed-smooth", 0.1)
    assert (recipes["adam-scratch"].encoder_depth, recipes["adam-scratch-deep"].encoder_depth) == (6, 12)
    # continued runs keep the mix and loss terms their checkpoint was trained on (switching costs them epochs)
    for name in ("adam", "sgd"):
        saved = json.loads((Path("checkpoints") / name / "train_config.json").read_text())
        kept = ("blur", "fft_loss_weight", "edge_loss_weight")
        assert [getattr(recipes[name], field) for field in kept] == [saved[field] for field in kept]
    assert recipes["adam-scratch"].fft_loss_weight == RECIPES["adam"].fft_loss_weight


def test_photos_packed_for_a_gpu_trip_keep_names_format_and_split(tmp_path, capsys):
    from PIL import Image

    from train.pack_data import main as pack
    from vitdeblur.data import find_pairs, split_pairs

    source = tmp_path / "photos"
    source.mkdir()
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket", "camera"]):
        Image.fromarray(photo(name, (300, 200))).save(source / (f"{i}.jpg" if i % 2 else f"{i}.png"))
    pack([str(source), str(tmp_path / "packed"), "--max-side", "150"])
    assert "5 photos" in capsys.readouterr().out
    for original in source.iterdir():
        with Image.open(original) as a, Image.open(tmp_path / "packed" / original.name) as b:
            assert b.size == (150, 100) and a.format == b.format
    for split in ("train", "val", "test"):
        before, after = ([p.sharp.name for p in split_pairs(find_pairs(folder), split)]
                         for folder in (source, tmp_path / "packed"))
        assert before == after
    with pytest.raises(SystemExit, match="overwrite"):
        pack([str(source), str(source)])


def test_real_pairs_packed_for_a_gpu_trip_are_the_validation_crops_never_scaled(tmp_path, capsys):
    from PIL import Image

    from train.pack_data import main as pack
    from vitdeblur.data import find_pairs, load_dataset

    source = tmp_path / "gopro"
    for scene, name in (("GOPR01", "astronaut"), ("GOPR02", "coffee")):
        for kind in ("blur", "sharp"):
            (source / scene / kind).mkdir(parents=True)
            image = photo(name, (150, 100)) if kind == "sharp" else photo(name, (150, 100))[:, ::-1]
            Image.fromarray(image.copy()).save(source / scene / kind / "000001.jpg", quality=95)
    with pytest.raises(SystemExit, match="--crop"):
        pack([str(source), str(tmp_path / "packed")])
    pack([str(source), str(tmp_path / "packed"), "--crop", "64"])
    assert "2 pairs cropped to 64 px" in capsys.readouterr().out
    packed = find_pairs(tmp_path / "packed")
    assert [(p.group, p.blur.name) for p in packed] == [(p.group, "000001.png") for p in find_pairs(source)]
    original, copy = (load_dataset(folder, "all", train=False, crop=64) for folder in (source, tmp_path / "packed"))
    for (blur_a, sharp_a), (blur_b, sharp_b) in zip(original, copy):
        assert blur_b.shape == (3, 64, 64) and torch.equal(blur_a, blur_b) and torch.equal(sharp_a, sharp_b)
    with pytest.raises(SystemExit, match="inside"):
        pack([str(source), str(source / "packed"), "--crop", "64"])
    with pytest.raises(SystemExit, match="real pairs"):
        pack([str(source / "GOPR01" / "sharp"), str(tmp_path / "photos"), "--crop", "64"])
    (source / "GOPR01" / "blur" / "000001.png").write_bytes((source / "GOPR01" / "blur" / "000001.jpg").read_bytes())
    (source / "GOPR01" / "sharp" / "000001.png").write_bytes((source / "GOPR01" / "sharp" / "000001.jpg").read_bytes())
    with pytest.raises(SystemExit, match="would both be copied"):
        pack([str(source), str(tmp_path / "packed2"), "--crop", "64"])


def test_kernel_pairs_blur_only_held_out_photos_the_same_way_every_time(sharp_folder, tmp_path, capsys):
    from train.kernel_pairs import main as kernel_pairs
    from vitdeblur.data import detect_layout, find_pairs, split_pairs
    from vitdeblur.evaluate import psnr
    from vitdeblur.images import load_image

    kernel_pairs([str(sharp_folder), str(tmp_path / "a")])
    assert "2 pairs written" in capsys.readouterr().out  # the test split of ten photos is one photo, two kernels
    held_out = split_pairs(find_pairs(sharp_folder), "test")[0].sharp.stem
    pairs = find_pairs(tmp_path / "a")
    assert detect_layout(tmp_path / "a") == "pairs" and all(p.sharp.name.startswith(held_out) for p in pairs)
    for pair in pairs:
        blurred, sharp = load_image(pair.blur).rgb, load_image(pair.sharp).rgb
        assert 12 < psnr(blurred, sharp) < 35
    kernel_pairs([str(sharp_folder), str(tmp_path / "b")])
    for pair in pairs:
        assert (tmp_path / "b" / "blur" / pair.blur.name).read_bytes() == pair.blur.read_bytes()


def test_halve_pairs_keeps_neighbouring_frames_and_scenes_together(pairs_folder, tmp_path, capsys):
    from train.halve_pairs import main as halve_pairs
    from vitdeblur.data import find_pairs

    halve_pairs([str(pairs_folder), str(tmp_path / "halves")])
    assert "5 pairs to choose on" in capsys.readouterr().out
    select, compare = (find_pairs(tmp_path / "halves" / half) for half in ("select", "compare"))
    assert [p.blur.name for p in select] == [f"{i:02d}.png" for i in range(5)]  # the first half in time order
    assert [p.blur.name for p in compare] == [f"{i:02d}.png" for i in range(5, 10)]
    for pair in compare:
        assert pair.sharp.read_bytes() == (pairs_folder / "sharp" / pair.sharp.name).read_bytes()
    with pytest.raises(SystemExit, match="not empty"):
        halve_pairs([str(pairs_folder), str(tmp_path / "halves")])
    # a GoPro folder of three scenes: whole scenes go to one half
    for scene in ("GOPR01", "GOPR02", "GOPR03"):
        for kind in ("blur", "sharp"):
            (tmp_path / "gopro" / "test" / scene / kind).mkdir(parents=True)
            for frame in ("000001.png", "000002.png"):
                (tmp_path / "gopro" / "test" / scene / kind / frame).write_bytes((pairs_folder / kind / "00.png")
                                                                                .read_bytes())
    halve_pairs([str(tmp_path / "gopro"), str(tmp_path / "gopro-halves")])
    select, compare = (find_pairs(tmp_path / "gopro-halves" / half) for half in ("select", "compare"))
    assert [p.blur.name for p in select] == ["test_GOPR01_000001.png", "test_GOPR01_000002.png"]
    assert len(compare) == 4 and all("GOPR01" not in p.blur.name for p in compare)

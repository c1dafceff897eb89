import pytest
import safetensors.torch
import timm
import torch
from conftest import TINY, tiny_model

from vitdeblur import ViTDeblur, ViTDeblurConfig
from vitdeblur.model import count_parameters


@pytest.mark.parametrize("decoder", ["paper", "residual", "nafnet"])
@pytest.mark.parametrize("size", [(64, 64), (128, 96), (37, 53), (17, 200), (224, 224)])
def test_output_shape_and_finite(decoder, size):
    model = tiny_model(decoder)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("decoder", ["residual", "nafnet"])
def test_untrained_residual_models_are_the_identity(decoder):
    model = tiny_model(decoder, perturb=False)
    x = torch.rand(1, 3, 45, 70)
    with torch.no_grad():
        assert torch.equal(model(x), x)


@pytest.mark.parametrize("decoder", ["residual", "nafnet"])
def test_a_bf16_model_adds_its_residual_in_the_input_precision(decoder):
    model = tiny_model(decoder, perturb=False).to(torch.bfloat16)
    x = torch.rand(1, 3, 45, 70)
    with torch.no_grad():
        y = model(x)
    assert y.dtype == torch.float32 and torch.equal(y, x)  # a zero residual leaves fp32 pixels unrounded


@pytest.mark.parametrize("layer_scale_init", [0.0, 0.1])
def test_layer_scale_init_opens_the_blocks_to_gradients(layer_scale_init):
    torch.manual_seed(0)
    model = ViTDeblur(ViTDeblurConfig(decoder="nafnet", layer_scale_init=layer_scale_init, **TINY))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), x)  # the zero head keeps a new model the identity either way
    torch.nn.init.normal_(model.decoder.head.weight, std=0.01)  # as after a first optimiser step
    model(x).square().mean().backward()
    block_gradient = model.decoder.encoders[0][0].expand.weight.grad.abs().sum()
    assert (block_gradient > 0) == (layer_scale_init > 0)  # zero branch scales block it (what stalled plain SGD)


def test_paper_model_has_the_study_parameter_count():
    model = ViTDeblur(ViTDeblurConfig(backbone="vit_base_patch16_224", decoder="paper"))
    assert 85.4e6 <= count_parameters(model) <= 88.0e6
    # ViT-Base tokens (768) match 16x16x3 patches: the study adds them without a projection.
    assert isinstance(model.decoder.token_proj, torch.nn.Identity)


def test_residual_decoder_stays_small_with_vit_tiny():
    model = ViTDeblur(ViTDeblurConfig(backbone="vit_tiny_patch16_224", decoder="residual"))
    assert count_parameters(model.decoder) <= 3.0e6


def test_the_recipes_model_fits_the_compute_budget():
    """The shipped recipes' model: <= 100 GFLOP per 1280x720 photo, as it is tiled at inference."""
    from train.recipes import RECIPES
    from train.train import build_model
    from vitdeblur.bench import image_flops

    model = build_model(RECIPES["adam"], None)
    assert model.config.decoder == "nafnet" and len(model.encoder.blocks) == 6
    assert image_flops(model, 1280, 720)[0] / 1e9 <= 100


@pytest.mark.parametrize("variant", ["adam", "sgd"])
def test_the_shipped_checkpoints_fit_the_compute_budget_at_their_scales(variant):
    from vitdeblur.bench import image_flops
    from vitdeblur.hub import SHIPPED_DIR, load_model

    model = load_model(SHIPPED_DIR / variant)
    flops, scales = image_flops(model, 1280, 720)
    assert [factor for factor, _, _ in scales] == list(model.config.inference_scales)  # 720 / 4 is no small copy
    assert flops / 1e9 <= 100


def test_encoder_depth_beyond_the_backbone_is_refused():
    with pytest.raises(ValueError, match="exceeds"):
        ViTDeblur(ViTDeblurConfig(encoder_depth=99, **TINY))


@pytest.mark.parametrize("decoder", ["residual", "nafnet"])
def test_gradients_reach_the_encoder(decoder):
    model = tiny_model(decoder)
    model(torch.rand(1, 3, 32, 32)).mean().backward()
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0


def test_encoder_loads_a_local_timm_checkpoint(tmp_path):
    reference = timm.create_model("test_vit", num_classes=0, img_size=224)
    torch.nn.init.normal_(reference.pos_embed, std=0.5)
    path = tmp_path / "vit.safetensors"
    safetensors.torch.save_file(reference.state_dict(), path)
    model = ViTDeblur(ViTDeblurConfig(pretrained_file=str(path), **TINY))
    assert torch.equal(model.encoder.pos_embed, reference.pos_embed)
    assert torch.equal(model.encoder.blocks[0].attn.qkv.weight, reference.blocks[0].attn.qkv.weight)


def test_missing_local_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained_file not found"):
        ViTDeblur(ViTDeblurConfig(pretrained_file=str(tmp_path / "nope.pth"), **TINY))


def test_bad_decoder_name_is_refused():
    with pytest.raises(ValueError, match="decoder must be one of"):
        ViTDeblurConfig(decoder="unet")

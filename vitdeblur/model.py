"""ViTDeblur: a timm ViT encoder plus a CNN decoder that turns ViT tokens back into a sharp image.

Three decoders:

* ``paper``    -- the study's ViTDecoder, as close to its description as the text allows.
* ``residual`` -- the same idea (ViT for global context, CNN for local detail) with 3x3 convolutions, U-Net skips
  from a shallow full-resolution stem and a global residual (output = input + predicted residual) whose last
  convolution starts at zero, so an untrained model returns its input. The first shipped checkpoints used it.
* ``nafnet``   -- the default: the same global residual with NAFNet's gated, normalised blocks, a pixel-unshuffle
  stem so that most compute runs at 1/2 to 1/16 scale, and the ViT tokens entering at 1/16: about a third of the
  ``residual`` decoder's cost per pixel for more depth and receptive field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

DECODERS = ("paper", "residual", "nafnet")


@dataclass
class ViTDeblurConfig:
    """Everything needed to build a ViTDeblur model; saved as ``config.json`` beside the weights."""

    backbone: str = "vit_tiny_patch16_224"  # any timm ViT with a patch embedding, e.g. vit_base_patch16_224
    decoder: str = "nafnet"  # one of DECODERS
    decoder_width: int = 32  # channels at the decoder's finest scale (ignored by "paper")
    encoder_depth: int | None = None  # keep only the first N transformer blocks of the backbone (None: all)
    middle_blocks: int = 2  # nafnet: NAF blocks at 1/16 scale, where the ViT tokens join (cheap: a 256th of the pixels)
    # nafnet: the blocks' branch scales start here. 0 makes a new model the identity, which Adam leaves quickly;
    # plain SGD barely moves such a chain of zeros (each weight's gradient is scaled by the zeros after it).
    layer_scale_init: float = 0.0
    img_size: int = 224  # native size of the ViT position embedding; other sizes are interpolated
    pretrained: bool = False  # load timm's ImageNet weights when the model is built (needs the network)
    pretrained_file: str | None = None  # or load a timm-format ViT checkpoint (.safetensors/.pth) from disk
    tile_size: int = 384  # inference tile, a multiple of the patch size (fewer, larger tiles waste less overlap)
    tile_overlap: int = 32  # overlap between inference tiles, blended with a feathered window
    # inference also at these downscale factors, the corrections (deblurred - input) of all averaged, each upsampled to
    # full size: a blur longer than the model undoes at full size is a shorter one at half size. (1,): full size only.
    inference_scales: tuple[int, ...] = (1,)

    def __post_init__(self):
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {self.decoder!r}")
        if self.decoder_width < 4:
            raise ValueError(f"decoder_width must be at least 4, got {self.decoder_width}")
        if self.encoder_depth is not None and self.encoder_depth < 1:
            raise ValueError(f"encoder_depth must be at least 1, got {self.encoder_depth}")
        if self.middle_blocks < 0:
            raise ValueError(f"middle_blocks must be at least 0, got {self.middle_blocks}")
        self.inference_scales = check_inference_scales(self.inference_scales)


def check_inference_scales(scales) -> tuple[int, ...]:
    """The downscale factors as a tuple (config.json holds a list), or a ValueError saying what is wrong."""
    scales = tuple(scales)
    if not scales or len(set(scales)) < len(scales) or not all(isinstance(f, int) and f >= 1 for f in scales):
        raise ValueError(f"inference_scales must be distinct whole factors of at least 1, e.g. (1, 2, 4), got {scales}")
    return scales


def _conv_block(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1),
        nn.GELU(),
        nn.Conv2d(out_ch, out_ch, 3, padding=1),
        nn.GELU(),
    )


class PaperDecoder(nn.Module):
    """The study's ViTDecoder (Chapter 4, figures 19-21).

    1. The ViT tokens, as a (D, H/16, W/16) grid, are added to the blurred image cut into 16x16 patches
       (pixel_unshuffle: 3*16*16 = 768 channels). For ViT-Base D = 768, which is why the study can add them directly;
       for other widths a 1x1 convolution first maps the tokens to 768 channels (our choice, the study only used Base).
    2. Five upsampling blocks, each bilinear upscaling + a 1x1 convolution, halving the channels
       768 -> 384 -> 192 -> 96 -> 48 and ending at 3. Four doublings already give the factor 16 of the patch size, so
       the fifth block works at full resolution (scale 1); the text names five blocks but not their factors, and this
       is the reading that lands exactly on the input size. There is no activation between them, as described.
    3. The result is added to the full-scale blurred image.
    4. Decoding blocks of 1x1 convolution + GELU (3 -> 64 -> 64), then a last 1x1 convolution to RGB without GELU,
       so the output is not bounded below by GELU's minimum.
    With vit_base_patch16_224 the model has ~86.2M parameters (the study reports 86.25M).
    """

    def __init__(self, embed_dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        patch_channels = 3 * patch_size * patch_size
        self.token_proj = nn.Identity() if embed_dim == patch_channels else nn.Conv2d(embed_dim, patch_channels, 1)
        channels = [patch_channels, 384, 192, 96, 48, 3]
        self.up_scales = [2, 2, 2, 2, 1]
        self.up = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], 1) for i in range(5))
        self.decode = nn.Sequential(
            nn.Conv2d(3, 64, 1), nn.GELU(), nn.Conv2d(64, 64, 1), nn.GELU(), nn.Conv2d(64, 3, 1)
        )

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        image = image.to(tokens.dtype)
        x = self.token_proj(tokens) + F.pixel_unshuffle(image, self.patch_size)
        for scale, conv in zip(self.up_scales, self.up):
            if scale != 1:
                x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
            x = conv(x)
        return self.decode(x + image)


class ResidualDecoder(nn.Module):
    """A small U-Net around the ViT: a full-resolution CNN stem gives skips at 1, 1/2, 1/4 and 1/8 scale, the ViT
    tokens enter at 1/16, and 3x3 conv blocks upsample back. It predicts a residual added to the input; the last
    convolution is zero-initialised so that an untrained model is exactly the identity."""

    def __init__(self, embed_dim: int, patch_size: int, width: int):
        super().__init__()
        if patch_size != 16:
            raise ValueError(f"the residual decoder expects a patch size of 16, got {patch_size}")
        w1, w2, w4 = width, 2 * width, 4 * width
        self.stem = _conv_block(3, w1)  # 1/1
        self.down2 = _conv_block(w1, w2, stride=2)  # 1/2
        self.down4 = _conv_block(w2, w4, stride=2)  # 1/4
        self.down8 = _conv_block(w4, w4, stride=2)  # 1/8
        self.token_proj = nn.Conv2d(embed_dim, w4, 1)  # 1/16
        self.up8 = _conv_block(w4, w4)
        self.up4 = _conv_block(w4, w2)
        self.up2 = _conv_block(w2, w1)
        self.up1 = _conv_block(w1, w1)
        self.head = nn.Conv2d(w1, 3, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @staticmethod
    def _up(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        s1 = self.stem(image.to(tokens.dtype))
        s2 = self.down2(s1)
        s4 = self.down4(s2)
        s8 = self.down8(s4)
        x = self.up8(self._up(self.token_proj(tokens), s8))
        x = self.up4(self._up(x, s4))
        x = self.up2(self._up(x, s2))
        x = self.up1(self._up(x, s1))
        return image + self.head(x).to(image.dtype)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel (NAFNet's normalisation), for (B, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class NAFBlock(nn.Module):
    """NAFNet's block (Chen et al., 2022): norm, 1x1 expand, 3x3 depthwise, SimpleGate (a product of the two channel
    halves instead of an activation), simplified channel attention, 1x1 back; then a gated feed-forward. Both branches
    are scaled by learned per-channel factors that start at `layer_scale_init` (0: a new block is the identity)."""

    def __init__(self, channels: int, layer_scale_init: float = 0.0):
        super().__init__()
        c = channels
        self.norm1 = LayerNorm2d(c)
        self.expand = nn.Conv2d(c, 2 * c, 1)
        self.depthwise = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1))
        self.project = nn.Conv2d(c, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.ffn_expand = nn.Conv2d(c, 2 * c, 1)
        self.ffn_project = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.full((1, c, 1, 1), float(layer_scale_init)))
        self.gamma = nn.Parameter(torch.full((1, c, 1, 1), float(layer_scale_init)))

    @staticmethod
    def _gate(x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._gate(self.depthwise(self.expand(self.norm1(x))))
        x = x + self.beta * self.project(y * self.attention(y))
        return x + self.gamma * self.ffn_project(self._gate(self.ffn_expand(self.norm2(x))))


class NAFDecoder(nn.Module):
    """A NAFNet-style U-Net around the ViT, for quality per FLOP.

    The image enters at 1/2 scale by pixel-unshuffle (lossless: 2x2 pixels become 12 channels), then NAF blocks run
    at 1/2, 1/4 and 1/8 scale (width w, 2w, 4w) with 2x2 strided convolutions between them; at 1/16 the ViT tokens
    are projected to 8w channels and added to the CNN features, refined by middle blocks, and the decoder goes back up
    by pixel-shuffle with additive skips. The head predicts a residual at 1/2 scale, pixel-shuffled to full size and
    added to the input; it starts at zero, so an untrained model is exactly the identity.
    """

    ENCODER_BLOCKS = (1, 1, 2)  # at 1/2, 1/4, 1/8
    DECODER_BLOCKS = (1, 1, 1)  # at 1/8, 1/4, 1/2

    def __init__(self, embed_dim: int, patch_size: int, width: int, layer_scale_init: float = 0.0,
                 middle_blocks: int = 2):
        super().__init__()
        if patch_size != 16:
            raise ValueError(f"the nafnet decoder expects a patch size of 16, got {patch_size}")
        widths = [width, 2 * width, 4 * width]
        self.stem = nn.Conv2d(12, width, 3, padding=1)
        self.encoders = nn.ModuleList(nn.Sequential(*(NAFBlock(w, layer_scale_init) for _ in range(n)))
                                      for w, n in zip(widths, self.ENCODER_BLOCKS))
        self.downs = nn.ModuleList(nn.Conv2d(w, 2 * w, 2, stride=2) for w in widths)
        self.token_proj = nn.Conv2d(embed_dim, 8 * width, 1)
        self.middle = nn.Sequential(*(NAFBlock(8 * width, layer_scale_init) for _ in range(middle_blocks)))
        self.ups = nn.ModuleList(nn.Sequential(nn.Conv2d(2 * w, 4 * w, 1), nn.PixelShuffle(2)) for w in widths[::-1])
        self.decoders = nn.ModuleList(nn.Sequential(*(NAFBlock(w, layer_scale_init) for _ in range(n)))
                                      for w, n in zip(widths[::-1], self.DECODER_BLOCKS))
        self.head = nn.Conv2d(width, 12, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        x = self.stem(F.pixel_unshuffle(image.to(tokens.dtype), 2))
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x + self.token_proj(tokens))
        for up, decoder, skip in zip(self.ups, self.decoders, skips[::-1]):
            x = decoder(up(x) + skip)
        return image + F.pixel_shuffle(self.head(x), 2).to(image.dtype)


class ViTDeblur(nn.Module, PyTorchModelHubMixin, library_name="vitdeblur"):
    """Blurred RGB in [0, 1], shape (B, 3, H, W), any H and W -> restored RGB of the same shape (not clamped).

    Inputs whose sides are not multiples of the patch size are reflect-padded and the output cropped back.
    ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` come from the Hub mixin; :mod:`vitdeblur.hub` sets the
    checkpoint folder format they write and read, so this module knows nothing of checkpoints.
    """

    def __init__(self, config: ViTDeblurConfig):
        super().__init__()
        self.config = config
        kwargs = dict(pretrained=config.pretrained or bool(config.pretrained_file), num_classes=0,
                      img_size=config.img_size, dynamic_img_size=True)
        if config.pretrained_file:
            if not Path(config.pretrained_file).is_file():
                raise FileNotFoundError(f"pretrained_file not found: {config.pretrained_file}")
            kwargs["pretrained_cfg_overlay"] = dict(file=str(config.pretrained_file))
        self.encoder = timm.create_model(config.backbone, **kwargs)
        if config.encoder_depth is not None:  # after loading, so pretrained weights still fit the first blocks
            if config.encoder_depth > len(self.encoder.blocks):
                raise ValueError(f"encoder_depth {config.encoder_depth} exceeds the {len(self.encoder.blocks)} "
                                 f"blocks of {config.backbone}")
            self.encoder.blocks = self.encoder.blocks[:config.encoder_depth]
        self.patch_size = self.encoder.patch_embed.patch_size[0]
        data_cfg = self.encoder.pretrained_cfg
        self.register_buffer("mean", torch.tensor(data_cfg.get("mean", (0.5, 0.5, 0.5))).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data_cfg.get("std", (0.5, 0.5, 0.5))).view(1, 3, 1, 1), persistent=False)
        if config.decoder == "paper":
            self.decoder = PaperDecoder(self.encoder.embed_dim, self.patch_size)
        elif config.decoder == "residual":
            self.decoder = ResidualDecoder(self.encoder.embed_dim, self.patch_size, config.decoder_width)
        else:
            self.decoder = NAFDecoder(self.encoder.embed_dim, self.patch_size, config.decoder_width,
                                      config.layer_scale_init, config.middle_blocks)

    def tokens(self, image: torch.Tensor) -> torch.Tensor:
        """ViT features as a (B, D, H/p, W/p) grid, without class/register tokens."""
        b, _, h, w = image.shape
        features = self.encoder.forward_features((image - self.mean) / self.std)
        features = features[:, self.encoder.num_prefix_tokens:]
        return features.transpose(1, 2).reshape(b, -1, h // self.patch_size, w // self.patch_size)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        p = self.patch_size
        pad_h, pad_w = -h % p, -w % p
        if pad_h or pad_w:
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            image = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
        # A bf16 copy of the model computes in bf16; the residual decoders still add their residual to the image in
        # the input's precision, which keeps bf16 inference within 0.01 dB of fp32.
        out = self.decoder(image, self.tokens(image.to(self.mean.dtype)))
        return out[..., :h, :w]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

"""Training recipes: one dataclass, four named instances. Every field is also a command-line flag that overrides it;
the resolved recipe is written beside every checkpoint (train_config.json)."""

from __future__ import annotations

from dataclasses import dataclass

from vitdeblur.data import check_scale_range
from vitdeblur.model import DECODERS
from vitdeblur.synthesis import BLURS

LOSSES = ("l1", "mse", "relative-mse", "charbonnier")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "step")
AMP = ("auto", "bf16", "fp16", "none")


@dataclass
class Recipe:
    name: str
    # model
    backbone: str = "vit_tiny_patch16_224"
    decoder: str = "nafnet"
    decoder_width: int = 32
    encoder_depth: int | None = None  # keep the first N ViT blocks (None: all of the backbone's)
    middle_blocks: int = 2  # nafnet: NAF blocks at 1/16 scale with the ViT tokens (each 3.4 GFLOP per 1280x720)
    layer_scale_init: float = 0.0  # nafnet blocks' branch scales at the start (0: identity; SGD needs them > 0)
    pretrained: bool = False  # timm ImageNet weights for the encoder (needs the network when the run starts)
    # objective and optimiser
    loss: str = "l1"  # l1 | mse | relative-mse (per-image MSE over the blurred input's) | charbonnier
    edge_loss_weight: float = 0.0  # MPRNet's edge loss (Charbonnier of Laplacians), added with this weight
    fft_loss_weight: float = 0.0  # MIMO-UNet's frequency loss (L1 of the orthonormal 2-D FFT), added with this weight
    ema_decay: float = 0.0  # validate and save an exponential moving average of the weights (0: off)
    optimizer: str = "adam"  # adam | sgd
    lr: float = 3e-4
    momentum: float = 0.0  # SGD only
    lars_trust: float = 0.0  # SGD only: rescale each weight tensor's step to this x ||w|| / ||g|| (LARS; 0: plain SGD)
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine (with linear warmup, per step) | step (StepLR, per epoch)
    warmup_steps: int = 0
    step_size: int = 25  # StepLR: epochs between decays
    gamma: float = 0.5  # StepLR: decay factor
    grad_clip: float | None = None
    # data and length
    blur: str = "realistic"  # synthetic blur of sharp photos: vitdeblur.synthesis.BLURS: realistic, kernels, mixed, ...
    epochs: int = 100
    max_steps: int | None = None  # stop earlier than `epochs` after this many optimiser steps
    batch_size: int = 16
    crop: int = 128
    # sharp photos resized by a random factor, log-uniform in [min_scale, max_scale], before cropping (1, 1: never)
    min_scale: float = 1.0
    max_scale: float = 1.0
    samples_per_epoch: int | None = None  # crops per epoch; None = one crop per training image
    val_crop: int = 256  # validation runs on centre crops of this size each epoch (evaluate uses full images)
    val_variants: int = 4  # synthetic validation: fixed degradations per photo (one draw each was too noisy to choose by)
    amp: str = "auto"  # auto (bf16 where fast: GPUs, CPUs with AMX/AVX512-BF16) | bf16 | fp16 | none

    def __post_init__(self):
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        check_scale_range(self.min_scale, self.max_scale)


CHOICES = {"decoder": DECODERS, "blur": tuple(BLURS), "loss": LOSSES, "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
           "amp": AMP}


RECIPES = {
    # The study's hyperparameters, exactly: ViT-Base/16 at 224, its decoder, 100 epochs of batch 1.
    "paper-adam": Recipe(name="paper-adam", backbone="vit_base_patch16_224", decoder="paper", pretrained=True,
                         loss="l1", optimizer="adam", lr=0.01, schedule="step", step_size=25, gamma=0.5,
                         epochs=100, batch_size=1, crop=224, amp="none"),
    "paper-sgd": Recipe(name="paper-sgd", backbone="vit_base_patch16_224", decoder="paper", pretrained=True,
                        loss="mse", optimizer="sgd", lr=0.1, schedule="step", step_size=25, gamma=0.1,
                        epochs=100, batch_size=1, crop=224, amp="none"),
    # The study's optimiser/loss pairs with settings that train: warmup + cosine, clipping, batches of crops, a
    # NAFNet-style decoder on a 6-block ViT-Tiny (66 GFLOP per 1280x720 as tiled) and an EMA of the weights.
    "adam": Recipe(name="adam", decoder="nafnet", encoder_depth=6, loss="l1", optimizer="adam", lr=5e-4,
                   weight_decay=0.0, warmup_steps=200, grad_clip=1.0, ema_decay=0.999, epochs=40, batch_size=16,
                   crop=128, samples_per_epoch=2048),
    # SGD needs the blocks' branch scales above zero (from an exact identity its gradients are products of zeros),
    # per-tensor step sizes (LARS: its gradients differ ~1000x in scale between head and blocks) and an MSE that
    # weighs every image alike (pooled MSE sacrifices the lightly blurred images, which cost the most dB).
    "sgd": Recipe(name="sgd", decoder="nafnet", encoder_depth=6, layer_scale_init=0.1, loss="relative-mse",
                  optimizer="sgd", lr=0.01, momentum=0.9, lars_trust=0.2,
                  weight_decay=0.0, warmup_steps=200, grad_clip=1.0, ema_decay=0.999, epochs=40, batch_size=16,
                  crop=128, samples_per_epoch=2048),
}

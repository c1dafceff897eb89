"""GPU throughput check: train ViT-Base/16 with each recipe for a few hundred steps and print images/s and peak memory.

    python -m train.gpu_benchmark [--steps 300] [--batch-size 32] [--crop 224]

Uses random tensors as data so that only the model, the optimiser and autocast are measured. On a machine without
CUDA it runs a few steps on the CPU (a rehearsal) and says so.
"""

from __future__ import annotations

import argparse
import time

import torch

from train.recipes import RECIPES
from train.train import amp_dtype, make_optimizer, train_step
from vitdeblur.model import DECODERS, ViTDeblur, ViTDeblurConfig


def benchmark(recipe_name: str, decoder: str, steps: int, batch_size: int, crop: int, device: torch.device) -> dict:
    recipe = RECIPES[recipe_name]
    model = ViTDeblur(ViTDeblurConfig(backbone="vit_base_patch16_224", decoder=decoder)).to(device).train()
    optimizer = make_optimizer(recipe, model)
    dtype = amp_dtype(recipe, device) if recipe.amp != "none" else torch.bfloat16
    blur = torch.rand(batch_size, 3, crop, crop, device=device)
    sharp = torch.rand(batch_size, 3, crop, crop, device=device)
    warmup = min(10, steps // 5)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step in range(steps + warmup):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        train_step(model, optimizer, recipe, blur, sharp, dtype)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return {"recipe": recipe_name, "decoder": decoder, "images_per_s": steps * batch_size / seconds,
            "peak_gib": peak, "dtype": str(dtype).replace("torch.", "")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--crop", type=int, default=224)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        print("no CUDA GPU: CPU rehearsal with 3 steps of batch 2")
        args.steps, args.batch_size = 3, 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; vit_base_patch16_224, {args.crop}x{args.crop}, batch {args.batch_size}, "
          f"{args.steps} timed steps")
    for recipe_name in ("adam", "sgd"):
        for decoder in DECODERS:
            r = benchmark(recipe_name, decoder, args.steps, args.batch_size, args.crop, device)
            print(f"{r['recipe']:5} {r['decoder']:9} {r['dtype']:9} {r['images_per_s']:9.1f} img/s   "
                  f"peak {r['peak_gib']:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()

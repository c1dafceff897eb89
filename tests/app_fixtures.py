"""Helpers shared by the app tests: tiny adam/sgd checkpoints (the awkward upload files live in conftest)."""

from __future__ import annotations

from pathlib import Path

from conftest import tiny_model

from vitdeblur import save_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_tiny_checkpoints(folder: Path) -> Path:
    """folder/adam and folder/sgd: tiny models whose outputs differ from the input and from each other."""
    for seed, variant in enumerate(("adam", "sgd"), start=1):
        save_checkpoint(tiny_model(seed=seed), folder / variant, half=True)
    return folder

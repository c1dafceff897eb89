"""Publish a trained run (or a shipped checkpoint folder) to the Hugging Face Hub with a generated model card.

    python -m train.push --run runs/NAME --repo-id OWNER/NAME [--private] [--dry-run DIR]

--run is a run folder written by `python -m train` (its best/ checkpoint is uploaded; --checkpoint last picks last/),
or a checkpoint folder such as checkpoints/adam. Beside the weights and config.json it uploads train_config.json,
every metrics*.json written by `python -m vitdeblur evaluate --json`, loss_curve.png, grid*.png, and README.md, the
model card generated from all of them. --dry-run DIR writes exactly that folder and uploads nothing.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError
from huggingface_hub.utils import validate_repo_id
from safetensors import safe_open

from vitdeblur.hub import CheckpointError, load_model, save_checkpoint

EXTRA_PATTERNS = ("train_config.json", "metrics*.json", "loss_curve.png", "grid*.png")


class PushError(RuntimeError):
    pass


def checkpoint_folder(run: Path, which: str) -> Path:
    if (run / "config.json").is_file():
        return run
    if (run / which / "config.json").is_file():
        return run / which
    raise PushError(f"{run}: neither a checkpoint folder (config.json) nor a run folder with {which}/config.json")


def stage(run: str | Path, dest: str | Path, which: str = "best") -> Path:
    """Write the folder to upload: the checkpoint, run artefacts and a fresh model card."""
    run, dest = Path(run), Path(dest)
    checkpoint = checkpoint_folder(run, which)
    model = load_model(checkpoint)  # refuses a broken checkpoint before anything is uploaded
    metric_files = sorted(run.glob("metrics*.json"))
    if not metric_files:
        raise PushError(f"{run}: no metrics*.json; evaluate first, e.g. python -m vitdeblur evaluate --checkpoint "
                        f"{checkpoint} --data DATA --json {run}/metrics.json --grid {run}/grid.png")
    if dest.exists() and any(dest.iterdir()):
        raise PushError(f"{dest}: exists and is not empty")
    evaluations = [json.loads(f.read_text()) for f in metric_files]
    training_file = run / "train_config.json"
    training = json.loads(training_file.read_text()) if training_file.exists() else None
    extras = [f for pattern in EXTRA_PATTERNS for f in run.glob(pattern)]
    return save_checkpoint(model, dest, half=saved_in_half(checkpoint), training=training, evaluations=evaluations,
                           files=extras)


def saved_in_half(checkpoint: Path) -> bool:
    """Whether the weights are stored in fp16 (as the shipped checkpoints are), so that the upload keeps them so."""
    with safe_open(next(checkpoint.glob("*.safetensors")), "pt") as f:
        return f.get_slice(next(iter(f.keys()))).get_dtype() == "F16"


def push(folder: Path, repo_id: str, private: bool) -> str:
    token = get_token()
    if not token:
        raise PushError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="Upload ViTDeblur checkpoint")
    except httpx2.TransportError as e:
        raise PushError(f"cannot reach the Hugging Face Hub ({type(e).__name__}: {e})") from None
    except HfHubHTTPError as e:
        raise PushError(f"the Hub refused the upload: {str(e).splitlines()[0]}") from None
    return commit.commit_url


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m train.push", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run folder (runs/NAME) or checkpoint folder (checkpoints/adam)")
    parser.add_argument("--repo-id", required=True, help="OWNER/NAME on the Hugging Face Hub")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="which checkpoint of a run")
    parser.add_argument("--dry-run", metavar="DIR", help="write the folder that would be uploaded to DIR, upload nothing")
    args = parser.parse_args(argv)
    try:
        validate_repo_id(args.repo_id)
        if "/" not in args.repo_id:
            raise HFValidationError("expected OWNER/NAME")
    except HFValidationError as e:
        raise SystemExit(f"error: malformed repo id {args.repo_id!r} ({str(e).splitlines()[0]})") from None
    try:
        if args.dry_run:
            folder = stage(args.run, args.dry_run, args.checkpoint)
            print(f"dry run: wrote {folder} ({', '.join(sorted(p.name for p in folder.iterdir()))}); nothing uploaded")
            return
        with tempfile.TemporaryDirectory() as tmp:
            url = push(stage(args.run, Path(tmp) / "upload", args.checkpoint), args.repo_id, args.private)
        print(f"pushed to https://huggingface.co/{args.repo_id} ({url})")
    except (PushError, CheckpointError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()

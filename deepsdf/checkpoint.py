"""Self-contained training checkpoints, one file per snapshot, written atomically.

``EXP/Checkpoints/<epoch>.pt`` (kept snapshots) and ``EXP/Checkpoints/latest.pt`` each hold:
``format``, ``epoch`` (epochs completed), ``decoder`` (state dict), ``codes`` (tensor, one row
per training shape), ``instance_ids`` and ``split_hash`` (the row map), ``optimizer``,
``rng`` (torch generator states, for bitwise resumption), ``config`` (the resolved specs),
``library_version`` and ``git_hash``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from deepsdf import __version__
from deepsdf_preprocess.formats import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "checkpoint_path", "save_checkpoint", "load_checkpoint",
           "git_hash", "CheckpointError"]

CHECKPOINT_FORMAT = "deepsdf-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used here; the message says why."""


def checkpoint_path(experiment_dir, epoch="latest") -> Path:
    """``EXP/Checkpoints/<epoch>.pt`` (``epoch`` an int or ``"latest"``)."""
    return Path(experiment_dir) / "Checkpoints" / f"{epoch}.pt"


def git_hash() -> str | None:
    """The commit of the deepsdf source tree, when it is a git checkout."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def save_checkpoint(path, payload: dict) -> None:
    """Write ``payload`` (plus format, version and git hash) atomically to ``path``."""
    payload = dict(payload, format=CHECKPOINT_FORMAT, library_version=__version__)
    payload.setdefault("git_hash", git_hash())
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def load_checkpoint(path, *, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, onto ``map_location``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # truncated or foreign files raise many types
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a deepsdf checkpoint (for the original "
                              "release's files use deepsdf.legacy)")
    return payload

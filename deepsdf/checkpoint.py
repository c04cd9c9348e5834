"""Self-contained training checkpoints, one file per snapshot, written atomically.

``EXP/Checkpoints/<epoch>.pt`` (kept snapshots) and ``EXP/Checkpoints/latest.pt`` each hold:
``format``, ``epoch`` (epochs completed), ``decoder`` (state dict), ``codes`` (tensor, one row
per training shape), ``instance_ids`` and ``split_hash`` (the row map), ``optimizer``,
``rng`` (torch generator states, for bitwise resumption), ``config`` (the resolved specs),
``library_version``, ``git_hash`` and ``checksum``: the SHA-256 of everything else, by content
(:func:`content_digest`), verified on load, so a flipped bit in a weight or a code is refused
("damaged") instead of loading a different model without a word.

Only tensors and plain Python values (dicts, lists, strings, numbers) are stored, and every
file is read with ``torch.load(weights_only=True)`` (:func:`safe_load`): a checkpoint, code or
original-release file shared by someone else can never run code when it is loaded.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
from pathlib import Path

import torch

from deepsdf import __version__
from deepsdf.config import MAX_EPOCHS
from deepsdf_preprocess.contract import atomic_path, remove_stale_temporaries
from deepsdf_preprocess.errors import DeepSDFError

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint",
           "git_hash", "CheckpointError", "safe_load", "content_digest"]

#: The format written: version 2 carries a ``checksum``, which its reader requires.
CHECKPOINT_FORMAT = "deepsdf-checkpoint-2"
#: Formats read: version 1 (written before checksums) is read without one.
READ_FORMATS = ("deepsdf-checkpoint-1", CHECKPOINT_FORMAT)


class CheckpointError(DeepSDFError, RuntimeError):
    """A checkpoint that cannot be used here; the message says why."""


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


def content_digest(value) -> str:
    """SHA-256 hex digest of a tree of dicts, lists, tensors and plain values, by content:
    tensors by dtype, shape and bytes (wherever they live), dicts in key order, so the same
    contents give the same digest after a save and a load."""
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest, value) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, str(k))):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"V{type(value).__name__}:{value!r}".encode())


def _checksum(payload: dict) -> str:
    return content_digest({k: v for k, v in payload.items() if k != "checksum"})


def save_checkpoint(path, payload: dict) -> None:
    """Write ``payload`` (plus format, version and git hash) atomically to ``path``.

    The payload is serialized in memory first, so a full disk fails in the plain file write
    (:class:`~deepsdf_preprocess.errors.DiskFullError`, naming the file) and never leaves a
    half-written checkpoint; stale temporaries of killed writes in the folder are removed.
    """
    payload = dict(payload, format=CHECKPOINT_FORMAT, library_version=__version__)
    payload.setdefault("git_hash", git_hash())
    payload["checksum"] = _checksum(payload)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    remove_stale_temporaries(path.parent)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            stream.write(buffer.getbuffer())
            stream.flush()
            os.fsync(stream.fileno())


def safe_load(path, *, map_location="cpu", what: str = "file"):
    """``torch.load`` that can only build tensors and plain values, never run code.

    Raises
    ------
    CheckpointError
        When the file is missing, unreadable, or holds other Python objects (a pickle that
        would call functions is refused, not executed).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no {what} at {path}")
    try:
        loaded = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" not in str(error):  # not a pickle at all: corrupt or foreign
            raise CheckpointError(f"cannot read {what} {path}: not a PyTorch file, or a "
                                  "truncated one") from error
        raise CheckpointError(
            f"{path} holds Python objects other than tensors and plain values; refusing to "
            "load it (unpickling it could run code). Only load files you trust with "
            "torch.load yourself, and save tensors and plain values") from error
    except Exception as error:  # truncated or foreign files raise many types
        first_line = (str(error).splitlines() or [""])[0]
        raise CheckpointError(f"cannot read {what} {path}: {type(error).__name__}: "
                              f"{first_line}") from error
    _check_dense(loaded, path, what)
    return loaded


def _check_dense(value, path, what: str, depth: int = 0) -> None:
    """Refuse sparse, quantized or other non-dense tensors anywhere in a loaded file: every
    reader downstream assumes plain strided tensors (a sparse code would fail deep inside
    the decoder with a traceback)."""
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.is_quantized or value.is_meta \
                or getattr(value, "is_nested", False):
            kind = ("meta" if value.is_meta else "nested" if getattr(value, "is_nested", False)
                    else str(value.layout))
            raise CheckpointError(f"{what} {path} holds a {kind} tensor; only dense tensors "
                                  "with data are read")
    elif isinstance(value, dict) and depth < 8:
        for item in value.values():
            _check_dense(item, path, what, depth + 1)
    elif isinstance(value, (list, tuple)) and depth < 8:
        for item in value:
            _check_dense(item, path, what, depth + 1)


def load_checkpoint(path, *, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, onto ``map_location``."""
    path = Path(path)
    payload = safe_load(path, map_location=map_location, what="checkpoint")
    if not isinstance(payload, dict) or payload.get("format") not in READ_FORMATS:
        raise CheckpointError(f"{path} is not a deepsdf checkpoint (for the original "
                              "release's files use deepsdf.original)")
    codes, ids = payload.get("codes"), payload.get("instance_ids")
    if not (isinstance(codes, torch.Tensor) and codes.dim() == 2 and isinstance(ids, list)
            and len(codes) == len(ids) and all(isinstance(i, str) for i in ids)):
        raise CheckpointError(f"{path} is damaged: its code table and its instance names do "
                              "not match (one code per training shape)")
    epoch = payload.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCHS:
        raise CheckpointError(f"{path} is damaged: its epoch is {epoch!r}, not a count of "
                              f"epochs (0 to {MAX_EPOCHS:,})")
    if payload["format"] != READ_FORMATS[0] and payload.get("checksum") != _checksum(payload):
        raise CheckpointError(f"{path} is damaged: its contents no longer match the checksum "
                              "written with them (a changed bit, a partial copy); load another "
                              "snapshot (EXP/Checkpoints/<epoch>.pt)")
    return payload

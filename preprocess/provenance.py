"""Provenance, not existence: an output counts as done only if its record says what made it
and the file still matches the record.

A record holds, per output file, a :func:`fingerprint` (size and modification time in
nanoseconds, taken right after the file was written) and, beside it, what made the files (the
preprocessing settings, the checkpoint's epoch and fingerprint, the solver's settings).
:func:`stale_reason` compares a record with the files on disk: a file that was deleted,
replaced, truncated or touched since, or a record made by something else, is stale, and the
work is redone (or refused) with that reason.

Size and time are compared, not contents: reading every sample file again on each rerun
would cost as much as a fraction of the work it saves.  A file replaced by one of the same
size *and* the same nanosecond time is beyond what this detects.

It imports neither torch nor OpenGL.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fingerprint", "fingerprints", "stale_reason", "file_identity"]


def fingerprint(path) -> dict:
    """``{"size", "mtime_ns"}`` of the file at ``path`` (a link is described, not followed)."""
    status = os.stat(path, follow_symlinks=False)
    return {"size": int(status.st_size), "mtime_ns": int(status.st_mtime_ns)}


def fingerprints(paths: dict) -> dict:
    """``{name: fingerprint}`` of named files (all must exist)."""
    return {str(name): fingerprint(path) for name, path in paths.items()}


def file_identity(path) -> dict:
    """A file's fingerprint and its resolved path: what a record of work made *from* this file
    (a checkpoint) keeps, so that work made from an older file under the same name is told
    apart."""
    return {"path": str(Path(path).resolve()), **fingerprint(path)}


def stale_reason(recorded: dict | None, paths: dict, *, made_by: dict | None = None) -> str | None:
    """Why the outputs ``paths`` (``{name: path}``) no longer match their record, or None.

    Parameters
    ----------
    recorded : dict or None
        The record: ``{"outputs": {name: fingerprint}, ...}`` plus what made them.
    made_by : dict, optional
        Fields the record must hold with these values (the checkpoint, the settings).
    """
    if not recorded or not isinstance(recorded.get("outputs"), dict):
        return "no record of what made it"
    outputs = recorded["outputs"]
    for name, path in paths.items():
        if name not in outputs:
            return f"no record of {Path(path).name}"
        if os.path.islink(path):
            return f"{path} is a symbolic link"
        if not os.path.isfile(path):
            return f"{path} is missing"
        if fingerprint(path) != outputs[name]:
            return f"{path} changed since it was written"
    for key, value in (made_by or {}).items():
        if recorded.get(key) != value:
            return f"made from another {key}" if key in ("source", "samples", "checkpoint") \
                else f"made with other {key}"
    return None

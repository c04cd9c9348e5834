"""Provenance, not existence: an output counts as done only if its record says what made it
and the file still matches the record.

A record holds, per output file, a :func:`fingerprint`: its size, its modification time in
nanoseconds and the SHA-256 of its contents, taken right after the file was written.  Beside
them it holds what made the files (the preprocessing settings, the source mesh's
:func:`file_identity`, the checkpoint's content digest, the solver's settings).
:func:`stale_reason` compares a record with the files on disk: a file that was deleted,
replaced, truncated or edited since, or a record made by something else, is stale, and the work
is redone (or refused) with that reason.

Contents decide; size and time are only the fast path.  A file whose size and time still
match its record is taken as unchanged without being read; one whose time moved (a copy made
by ``cp -r``, a restore from a backup) is read and compared by SHA-256, so a copied folder
stays valid and an edited file of the same size does not.  Records written before contents
were hashed (no ``sha256``) are compared by size and time alone, as they were made.

It imports neither torch nor OpenGL.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["fingerprint", "fingerprints", "same_file", "stale_reason", "file_identity",
           "sha256_of"]

_CHUNK = 1 << 20
#: SHA-256 of files already read in this process, by (path, size, mtime_ns, inode).
_KNOWN: dict = {}


def sha256_of(path) -> str:
    """SHA-256 hex digest of the file at ``path`` (remembered for this process while the
    file's size, time and inode stay the same)."""
    status = os.stat(path)
    key = (os.path.abspath(path), status.st_size, status.st_mtime_ns, status.st_ino)
    if key not in _KNOWN:
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        if len(_KNOWN) > 100_000:
            _KNOWN.clear()
        _KNOWN[key] = digest.hexdigest()
    return _KNOWN[key]


def fingerprint(path, known: dict | None = None) -> dict:
    """``{"size", "mtime_ns", "sha256"}`` of the file at ``path`` (a link is described, not
    followed).  When ``known`` (an earlier fingerprint) holds the same size and time, its
    ``sha256`` is reused without reading the file."""
    status = os.stat(path, follow_symlinks=False)
    found = {"size": int(status.st_size), "mtime_ns": int(status.st_mtime_ns)}
    if (isinstance(known, dict) and isinstance(known.get("sha256"), str)
            and known.get("size") == found["size"] and known.get("mtime_ns") == found["mtime_ns"]):
        return {**found, "sha256": known["sha256"]}
    return {**found, "sha256": sha256_of(path)}


def fingerprints(paths: dict) -> dict:
    """``{name: fingerprint}`` of named files (all must exist)."""
    return {str(name): fingerprint(path) for name, path in paths.items()}


def same_file(recorded, path, *, follow: bool = False) -> bool:
    """Whether the file at ``path`` holds what ``recorded`` (a :func:`fingerprint` or
    :func:`file_identity`) describes: the same size and SHA-256 (the time is only the fast
    path); a record without ``sha256`` needs the same size and time.  A symbolic link is
    never the same output file; with ``follow`` (an input: a source mesh may be a link) the
    file it points to is compared."""
    if follow:
        path = Path(path).resolve()
    if not isinstance(recorded, dict) or not os.path.isfile(path) or os.path.islink(path):
        return False
    status = os.stat(path)
    if recorded.get("size") != int(status.st_size):
        return False
    if not isinstance(recorded.get("sha256"), str):
        return recorded.get("mtime_ns") == int(status.st_mtime_ns)
    return fingerprint(path, known=recorded)["sha256"] == recorded["sha256"]


def file_identity(path, known: dict | None = None) -> dict:
    """What a record of work made *from* a file (a source mesh, a samples file) keeps: its
    resolved path, for messages, and its :func:`fingerprint`.  Compare it with
    :func:`same_file`: by content, so the same file copied elsewhere is the same input.  A
    symbolic link is followed: the file it points to is described."""
    target = Path(path).resolve()
    return {"path": str(target), **fingerprint(target, known=known)}


def stale_reason(recorded: dict | None, paths: dict, *, made_by: dict | None = None) -> str | None:
    """Why the outputs ``paths`` (``{name: path}``) no longer match their record, or None.

    Parameters
    ----------
    recorded : dict or None
        The record: ``{"outputs": {name: fingerprint}, ...}`` plus what made them.
    made_by : dict, optional
        Fields the record must hold with these values (the checkpoint, the settings).  A value
        that is a :class:`~pathlib.Path` names the input file the record's field identifies
        (a :func:`file_identity`): it must hold the same contents, wherever it now lies.
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
        if not same_file(outputs[name], path):
            return f"{path} changed since it was written"
    for key, value in (made_by or {}).items():
        same = (same_file(recorded.get(key), value, follow=True) if isinstance(value, Path)
                else recorded.get(key) == value)
        if not same:
            return f"made from another {key}" if key in ("source", "samples", "checkpoint") \
                else f"made with other {key}"
    return None

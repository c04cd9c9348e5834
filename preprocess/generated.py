"""Writing generated files into an output folder without writing through a link or over a
file this run did not make (``deepsdf generate``: :func:`.procedural.write_shapes`,
:func:`.soup.write_soups`, :func:`.virtual_scans.write_scans`).

The rules (:func:`write_generated`):

- every path is made by the output folder's :class:`~.paths.Tree`: a link below the folder
  that leads out of it, or a path of the wrong kind, is one line;
- a file that exists at one of the run's names is left as it is when it holds exactly what
  this run would write there (re-running the same command is idempotent, and the file keeps
  its modification time, so a preprocessed tree made from it stays current); any other file
  there stops the run with one line naming it;
- all of this is checked before the first file is written: a refused run writes nothing.

Content is bytes, or a dict of arrays for an ``.npz`` (compared array by array: numpy's
archives hold the time they were written).

It imports neither torch nor OpenGL.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .contract import atomic_path
from .errors import InputError
from .paths import Tree

__all__ = ["GeneratedItem", "write_generated", "same_content"]


class GeneratedItem:
    """One generated object: the files it writes (paths relative to the output folder) and a
    function making their content (``{relative path: bytes or {name: array}}``), called only
    when a file needs comparing or writing."""

    def __init__(self, names: Sequence[str], produce: Callable[[], dict]):
        self.names = list(names)
        self.produce = produce


def write_generated(tree: Tree, items: Sequence[GeneratedItem]) -> list[Path]:
    """Write every item's files into ``tree`` under the rules of the module; returns the
    paths of every item's files (written now or found identical), in item order.

    Raises
    ------
    InputError
        Before anything is written: a link out of the folder, a path of the wrong kind, or a
        file that exists at one of the names and differs from what this run would write.
    """
    paths = {}
    for item in items:  # every path checked (links, kinds) before any work
        for name in item.names:
            paths[name] = tree.file(name)
    existing = {name for name, path in paths.items() if os.path.lexists(path)}
    identical: set = set()
    for item in items:
        found = [name for name in item.names if name in existing]
        if not found:
            continue
        content = item.produce()
        for name in found:
            if not same_content(paths[name], content[name]):
                raise InputError(f"{paths[name]} exists and differs from what this run would "
                                 "write there; refusing to replace it (choose an empty "
                                 "folder, or remove the file)")
            identical.add(name)
    for item in items:
        missing = [name for name in item.names if name not in identical]
        if not missing:
            continue
        for name in missing:
            tree.folder(*Path(name).parent.parts, create=True)
        content = item.produce()
        for name in missing:
            _write(paths[name], content[name])
    return [paths[name] for item in items for name in item.names]


def same_content(path: Path, content) -> bool:
    """Whether the regular file ``path`` holds exactly ``content`` (bytes, or the arrays of
    an ``.npz``: the same names, dtypes, shapes and values)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    if isinstance(content, (bytes, bytearray)):
        try:
            if path.stat().st_size != len(content):
                return False
            return path.read_bytes() == bytes(content)
        except OSError:
            return False
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files") or set(data.files) != set(content):
                return False
            for name, value in content.items():
                have, want = data[name], np.asarray(value)
                if have.dtype != want.dtype or have.shape != want.shape \
                        or not np.array_equal(have, want):
                    return False
    except Exception:  # not an archive, damaged, pickled: not what this run writes
        return False
    return True


def npz_bytes(arrays: dict) -> bytes:
    """``arrays`` as a compressed ``.npz``."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _write(path: Path, content) -> None:
    data = bytes(content) if isinstance(content, (bytes, bytearray)) else npz_bytes(content)
    with atomic_path(path) as temporary:
        Path(temporary).write_bytes(data)

"""The path layer: every path the tools read, write, rename or delete inside a folder they were
given (DATA_DIR, EXP_DIR, an output folder) is made by a :class:`Tree`.

A tree's promises:

- **no link followed out**: a path whose symbolic links (at any component below the root)
  resolve outside the root is refused with one line; a link that stays inside is followed;
- **the right kind**: a path that exists with the wrong kind (a file where a folder is needed,
  or the reverse) is one line naming it, not a traceback later;
- **only our own files deleted**: :meth:`Tree.remove` deletes only regular files whose names
  match a pattern this project gives its own files (never a link, never a folder).

The root itself may be a link (it is what the user named) and need not exist yet.  Checks are
made when a path is made; a link planted between the check and the write by another process is
outside what this layer defends against (it needs ``openat``-style descriptors throughout).

It imports neither torch nor OpenGL.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import InputError

__all__ = ["Tree", "FILE", "FOLDER"]

FILE, FOLDER = "file", "folder"


class Tree:
    """A folder the tools work inside.

    Parameters
    ----------
    root : path
        The folder (``DATA_DIR``, ``EXP_DIR``, ``--out``); it may not exist yet, but if it exists
        it must be a folder.
    what : str
        How errors name the root (``"DATA_DIR"``, ``"experiment folder"``).
    """

    def __init__(self, root, what: str = "folder"):
        self.root = Path(os.path.abspath(root))
        self.what = what
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"{what} {self.root} exists and is not a folder")
        self._resolved = self.root.resolve()

    def __repr__(self) -> str:
        return f"Tree({str(self.root)!r}, what={self.what!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Tree) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    # ------------------------------------------------------------------ making paths

    def path(self, *parts, kind: str = FILE) -> Path:
        """``root/parts...`` after the checks (each part may hold ``/``; none may be ``..`` or
        absolute).  ``kind`` is what the last component must be if it exists."""
        relative = Path(*[str(part) for part in parts]) if parts else Path()
        if relative.is_absolute() or ".." in relative.parts:
            raise InputError(f"{relative} is not a path inside the {self.what}")
        return self.check(self.root / relative, kind=kind)

    def file(self, *parts) -> Path:
        """A file's path (the file need not exist)."""
        return self.path(*parts, kind=FILE)

    def folder(self, *parts, create: bool = False) -> Path:
        """A folder's path; created (with its parents) when ``create``."""
        path = self.path(*parts, kind=FOLDER)
        if create:
            try:
                path.mkdir(parents=True, exist_ok=True)
            except FileExistsError as error:  # a component turned into a file meanwhile
                raise InputError(f"cannot create the folder {path}: {error}") from error
            except OSError as error:
                raise InputError(f"cannot create the folder {path}: {error.strerror}") from error
            self.check(path, kind=FOLDER)
        return path

    def check(self, path, *, kind: str = FILE) -> Path:
        """``path`` (absolute, or relative to the working directory) if it lies inside the
        root once its links are resolved and has the right kinds; else :class:`InputError`.

        Every existing component between the root and ``path`` must be a folder (or a link to
        a folder inside the root); the last one, if it exists, must be of ``kind``.
        """
        path = Path(os.path.abspath(path))
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            raise InputError(f"{path} is outside the {self.what} {self.root}") from None
        current = self.root
        for index, name in enumerate(relative.parts):
            current = current / name
            last = index == len(relative.parts) - 1
            if current.is_symlink():
                target = current.resolve()
                if not _within(target, self._resolved):
                    raise InputError(f"{current} is a symbolic link to {target}, outside the "
                                     f"{self.what} {self.root}; refusing to follow it")
            if not os.path.lexists(current):
                break
            if not last and not current.is_dir():
                raise InputError(f"{current} exists and is not a folder (a folder is needed "
                                 f"there for {path.name})")
            if last and current.exists():
                if kind == FOLDER and not current.is_dir():
                    raise InputError(f"{current} exists and is not a folder")
                if kind == FILE and current.is_dir():
                    raise InputError(f"{current} is a folder; a file is needed there")
        return path

    def contains(self, path) -> bool:
        """Whether ``path`` passes :meth:`check` (of either kind)."""
        try:
            self.check(path, kind="any")
        except InputError:
            return False
        return True

    # ------------------------------------------------------------------ deleting

    def remove(self, path, *, ours: str) -> bool:
        """Delete the file ``path`` if it is inside the tree, a regular file (not a link, not a
        folder) and its name matches the regular expression ``ours`` (the names this project
        gives the files it may delete).  Returns whether it was deleted."""
        path = self.check(path, kind=FILE)
        if not re.fullmatch(ours, path.name) or path.is_symlink() or not path.is_file():
            return False
        path.unlink()
        return True


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents

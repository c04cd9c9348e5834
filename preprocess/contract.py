"""The data contract both packages share: names, instance keys, atomic writes, split files.

The preprocessor writes a data tree and the learner reads it (and writes its experiments); both
go through this module for what is not a particular file format (those are
:mod:`~.formats`):

- names: a dataset, class or instance name is a single path component (:func:`check_name`),
  so a split entry ``"../../x"`` can never make a writer leave its folder; an instance is an
  :class:`InstanceKey`, written ``dataset/class/instance`` (a dataset's manifest keys its
  records ``class/instance``);
- writes: :func:`atomic_path` writes a temporary beside the target and renames it, so a killed
  run never leaves a partial file under the final name; files get the mode the user's umask
  gives (0644 under 022); a full disk is one line (:class:`~.errors.DiskFullError`) with the
  previous file intact; :func:`remove_stale_temporaries` clears what a killed run left;
- split files ``{dataset: {class: [instance, ...]}}`` (:func:`read_split`, :func:`write_split`)
  and JSON (:func:`write_json`).

It imports neither torch nor OpenGL.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import DiskFullError, InputError
from .validate import printable, unique_entries

__all__ = ["check_name", "split_key", "InstanceKey", "atomic_path", "remove_stale_temporaries",
           "write_json", "read_split", "write_split", "printable", "loads_strict", "sealed",
           "seal_problem"]


def check_name(name, what: str = "name") -> str:
    """Return ``name`` if it is a usable dataset, class or instance name, else raise.

    A name is one path component: a non-empty string without ``/`` or ``\\``, not ``.`` or
    ``..``, without NUL or control characters.

    Raises
    ------
    ValueError
        Naming ``what`` and the offending value.
    """
    if not isinstance(name, str):
        raise InputError(f"{what} must be a string, got {type(name).__name__} {name!r}")
    if (not name or name in (".", "..") or "/" in name or "\\" in name
            or any(ord(c) < 32 for c in name)):
        raise InputError(f"{what} {name!r} is not a single file-name component (no '/', "
                         "'\\', '..', control characters or empty names)")
    return name


def split_key(key: str) -> tuple[str, str, str]:
    """``dataset/class/instance`` -> its three checked names."""
    parts = key.split("/") if isinstance(key, str) else []
    if len(parts) != 3:
        raise InputError(f"instance key {key!r} is not of the form dataset/class/instance")
    return (check_name(parts[0], "dataset"), check_name(parts[1], "class"),
            check_name(parts[2], "instance"))


@dataclass(frozen=True, order=True)
class InstanceKey:
    """One instance of a data tree: its dataset, class and instance names, each a single path
    component (:func:`check_name`).

    Its one string form is ``dataset/class/instance`` (``str(key)``; split files, the code
    table, reports); a dataset's manifest keys its records by :attr:`local`,
    ``class/instance``.
    """

    dataset: str
    class_name: str
    instance: str

    def __post_init__(self):
        check_name(self.dataset, "dataset")
        check_name(self.class_name, "class")
        check_name(self.instance, "instance")

    @classmethod
    def parse(cls, key) -> "InstanceKey":
        """From ``dataset/class/instance`` (an InstanceKey is returned as it is)."""
        return key if isinstance(key, cls) else cls(*split_key(key))

    def __str__(self) -> str:
        return f"{self.dataset}/{self.class_name}/{self.instance}"

    @property
    def local(self) -> str:
        """``class/instance``: the key of the instance's record in its dataset's manifest."""
        return f"{self.class_name}/{self.instance}"


#: Temporary files of :func:`atomic_path` are named ``.<final name>.<random>.part``.
_PART_SUFFIX = ".part"


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask (0644 under 022)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The file gets the umask's mode (``mkstemp`` alone would leave 0600, unreadable to a
    colleague on a shared cluster).  A full disk while writing raises
    :class:`~.errors.DiskFullError` naming ``path``; the temporary is removed and a previous
    file under ``path`` is left as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; a file is needed there")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # the name is cut so that a final name near the 255-byte limit still has a temporary
        handle, temporary = tempfile.mkstemp(prefix=f".{_cut_name(path.name)}.",
                                             suffix=_PART_SUFFIX, dir=path.parent)
        os.close(handle)
    except OSError as error:
        _raise_if_disk_full(error, path)
        _raise_if_unwritable(error, path)
        raise
    try:
        yield Path(temporary)
        os.chmod(temporary, _new_file_mode())
        os.replace(temporary, path)
    except OSError as error:
        _raise_if_disk_full(error, path)
        _raise_if_unwritable(error, path)
        raise
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _cut_name(name: str, limit: int = 180) -> str:
    """``name`` cut to at most ``limit`` bytes in UTF-8 (whole characters)."""
    return name.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def _raise_if_disk_full(error: OSError, path: Path) -> None:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFullError(f"no space left on device while writing {path}"
                            + ("; the previous file there is intact" if path.exists() else "")
                            ) from error


def _raise_if_unwritable(error: OSError, path: Path) -> None:
    """One line for the everyday reasons a file cannot be written: a read-only or foreign
    folder, a file where a folder is needed, a folder where the file goes."""
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        raise InputError(f"cannot write {path}: {error.strerror} (is the folder read-only?)"
                         ) from error
    if error.errno in (errno.ENOTDIR, errno.EEXIST):
        raise InputError(f"cannot write {path}: a file stands where a folder is needed on "
                         "its path") from error
    if error.errno == errno.EISDIR:
        raise InputError(f"cannot write {path}: it is a folder") from error


def remove_stale_temporaries(folder, *, recursive: bool = False) -> list[Path]:
    """Delete the temporaries a killed :func:`atomic_path` left in ``folder``.

    Only files named as this module names them (``.<name>.<random>.part``) are touched, never
    a file under a final name, and nothing outside ``folder``.  Returns the removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = folder.rglob(f".*{_PART_SUFFIX}") if recursive else folder.glob(f".*{_PART_SUFFIX}")
    removed = []
    for stale in found:
        if stale.is_file() and not stale.is_symlink():
            stale.unlink()
            removed.append(stale)
    return removed


def write_json(path, payload) -> None:
    """Atomically write ``payload`` as indented JSON."""
    with atomic_path(path) as temporary:
        Path(temporary).write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")


def read_split(path) -> dict:
    """A split file ``{dataset: {class: [instance, ...]}}``, validated.

    Raises
    ------
    ValueError
        When the file is missing, is not JSON, or does not have that shape, and for any name
        that is not a single path component (:func:`check_name`), naming the entry.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"split file {path} is a folder; a split is a .json file")
    if not path.is_file():
        raise InputError(f"split file {path} does not exist")
    try:
        payload = json.loads(path.read_text(), object_pairs_hook=_unique_keys(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"split file {path} is not valid JSON: {error}") from error
    if not isinstance(payload, dict) or not all(
            isinstance(classes, dict) and all(isinstance(v, list) for v in classes.values())
            for classes in payload.values()):
        raise InputError(f"{path} is not a split file: expected "
                         '{"<dataset>": {"<class>": ["<instance>", ...]}}')
    for dataset, classes in payload.items():
        check_name(dataset, f"{path}: dataset")
        for class_name, instances in classes.items():
            check_name(class_name, f"{path}: class in {dataset}")
            for instance in instances:
                check_name(instance, f"{path}: instance of {dataset}/{class_name}")
            unique_entries(instances, source=f"split file {path}",
                           what=f"instance(s) in {dataset}/{class_name}")
    return payload


def _unique_keys(path, what: str = "split file"):
    """A JSON ``object_pairs_hook`` refusing a key given twice (JSON keeps the last silently,
    so a split's class listed twice would lose its first list, and a spec's ``NumEpochs``
    given twice would train with the last)."""
    def hook(pairs):
        keys = [key for key, _ in pairs]
        unique_entries(keys, source=f"{what} {path}", what="key(s)")
        return dict(pairs)
    return hook


def loads_strict(text: str, source) -> object:
    """``json.loads`` refusing an object that names a key twice (:class:`InputError` naming
    ``source`` and the key); JSON syntax errors are ``json.JSONDecodeError`` as usual."""
    return json.loads(text, object_pairs_hook=_unique_keys(source, "JSON file"))


def write_split(path, split: dict) -> None:
    """Write a split file with sorted instance lists."""
    write_json(path, {d: {c: sorted(v) for c, v in sorted(classes.items())}
                      for d, classes in sorted(split.items())})


#: The key under which :func:`sealed` records a JSON record's own digest.
SEAL = "checksum"


def _digest(payload: dict) -> str:
    import hashlib

    body = {key: value for key, value in payload.items() if key != SEAL}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     allow_nan=True).encode()).hexdigest()


def sealed(payload: dict) -> dict:
    """``payload`` with a ``checksum``: the SHA-256 of its other fields as canonical JSON
    (what the project writes of its manifests and summaries, so that a bit flipped or a value
    edited after writing is seen by :func:`seal_problem`)."""
    return {**payload, SEAL: _digest(payload)}


def seal_problem(payload, source) -> str | None:
    """Why ``payload`` (read from ``source``) no longer matches its ``checksum``, or None (also
    for a record written before checksums, which has none)."""
    if not isinstance(payload, dict) or SEAL not in payload:
        return None
    if payload[SEAL] != _digest(payload):
        return (f"{source} changed since it was written (its contents no longer match its "
                "checksum)")
    return None

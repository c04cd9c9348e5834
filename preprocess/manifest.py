"""The manifest of a preprocessed dataset, its journals, and the locks that let several
processes (shards of a cluster job array, or two runs started by mistake) share a data tree.

::

    DATA/manifests/<dataset>.json                       the manifest (merged records)
    DATA/manifests/<dataset>.journal/<host>-<pid>.jsonl one journal per preprocessing process
    DATA/manifests/<dataset>.lock                       held briefly while merging
    DATA/manifests/<dataset>.active                     held (shared) while a run works

Every finished instance's record is appended to its process's journal at once (one
``write`` on an ``O_APPEND`` descriptor per line: the worker processes of one run share it
safely), with the time it finished.  :func:`merge_journals` folds every journal into the
manifest under the lock, keeping for each instance its newest record, so a killed run, a shard
or a concurrent run never loses one; the manifest is never rewritten per instance (which is
quadratic at 50 000 meshes).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import socket
import time
from pathlib import Path

from . import contract
from .errors import DiskFullError, InputError
from .paths import Tree

__all__ = ["manifest_path", "journal_path", "append_record", "read_journals", "current_records",
           "merge_journals", "read_manifest", "manifest_mesh", "active_run", "shard_of"]

logger = logging.getLogger(__name__)


def shard_of(key: str, count: int) -> int:
    """The shard (0 .. count - 1) of an instance key ``class/instance``: a hash of the key,
    so the partition does not depend on the order in which a file system lists meshes."""
    import hashlib

    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") % count


#: The names this module gives journals (``<host>-<pid>.jsonl``): the only files it deletes.
JOURNAL_NAME = r"[^/\\]+-[0-9]+\.jsonl"


def _tree(data_dir) -> Tree:
    return Tree(data_dir, "data root")


def _manifest_file(data_dir, dataset: str, suffix: str) -> Path:
    return _tree(data_dir).file("manifests",
                                f"{contract.check_name(dataset, 'dataset')}{suffix}")


def manifest_path(data_dir, dataset: str) -> Path:
    return _manifest_file(data_dir, dataset, ".json")


def _journal_dir(data_dir, dataset: str) -> Path:
    return _tree(data_dir).folder("manifests", f"{contract.check_name(dataset, 'dataset')}"
                                  ".journal")


def journal_path(data_dir, dataset: str) -> Path:
    """This process's journal: ``<host>-<pid>.jsonl`` in the dataset's journal folder."""
    return _tree(data_dir).file("manifests", f"{contract.check_name(dataset, 'dataset')}.journal",
                                f"{socket.gethostname()}-{os.getpid()}.jsonl")


def _open_no_follow(path: Path, flags: int) -> int:
    """``os.open`` that refuses a symbolic link at ``path`` itself (the folders above were
    checked by the data root's :class:`~.paths.Tree`)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise InputError(f"{path} is a symbolic link; refusing to write through it"
                             ) from None
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"no space left on device while writing {path}") from error
        if error.errno in (errno.EACCES, errno.EROFS, errno.EISDIR, errno.ENOTDIR):
            raise InputError(f"cannot write {path}: {error.strerror}") from None
        raise


def append_record(journal: Path, key: str, record: dict) -> None:
    """Append ``{"key", "record"}`` (the record stamped with ``finished``, epoch seconds) as
    one line, in one ``write``."""
    record = dict(record, finished=time.time())
    line = (json.dumps({"key": key, "record": record}) + "\n").encode()
    journal.parent.mkdir(parents=True, exist_ok=True)
    descriptor = _open_no_follow(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line)
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"no space left on device while writing {journal}") from error
        raise
    finally:
        os.close(descriptor)


def read_journals(data_dir, dataset: str) -> tuple[dict, list[Path]]:
    """({key: newest record} over every journal of the dataset, the journal files read)."""
    records: dict = {}
    files = sorted(path for path in _journal_dir(data_dir, dataset).glob("*.jsonl")
                   if re.fullmatch(JOURNAL_NAME, path.name) and path.is_file()
                   and not path.is_symlink())
    for journal in files:
        for number, line in enumerate(journal.read_text(errors="replace").splitlines(), 1):
            try:
                entry = json.loads(line)
                key, record = entry["key"], entry["record"]
                if not (isinstance(key, str) and isinstance(record, dict)):
                    raise TypeError("not a record")
            except (json.JSONDecodeError, KeyError, TypeError):
                logger.warning("%s line %d is unreadable (cut by a kill?, or not a record); "
                               "ignored", journal, number)
                continue
            if _newer(record, records.get(key)):
                records[key] = record
    return records, files


def current_records(data_dir, dataset: str) -> dict:
    """The newest record of each instance: the manifest's, updated by any journal not merged
    yet (a killed or a concurrent run's); nothing is written."""
    records = dict(read_manifest(data_dir, dataset).get("instances", {}))
    for key, record in read_journals(data_dir, dataset)[0].items():
        if _newer(record, records.get(key)):
            records[key] = record
    return records


def _newer(record: dict, than: dict | None) -> bool:
    return than is None or record.get("finished", 0.0) >= than.get("finished", 0.0)


@contextlib.contextmanager
def _locked(path: Path, mode: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(_open_no_follow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def active_run(data_dir, dataset: str, *, when_alone=None):
    """Hold the dataset's ``.active`` lock, shared, for the duration of a run.

    If no other run holds it when this one starts, ``when_alone()`` runs first under the
    exclusive lock (the clean-up of a killed run's temporaries: with another run active
    they may be its files in progress).  Yields whether this run was alone.
    """
    path = _manifest_file(data_dir, dataset, ".active")
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(_open_no_follow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except OSError:
            alone = False
        if alone and when_alone is not None:
            when_alone()
        fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            yield alone
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _process_gone(journal: Path) -> bool:
    """True for a journal of a process of this host that no longer runs."""
    host, _, pid = journal.stem.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def merge_journals(data_dir, dataset: str, *, update: dict | None = None,
                   forget_all: bool = False) -> dict:
    """Fold every journal into the manifest (newest record per instance) and write it.

    Under the dataset's lock.  Afterwards the journals of this process and of processes of
    this host that are gone are deleted (their records are in the manifest); with
    ``forget_all`` (``deepsdf preprocess --merge``: every shard is done) all of them are.

    Parameters
    ----------
    update : dict, optional
        Top-level manifest fields to set (the run's configuration, seed, backend).

    Returns
    -------
    dict
        The manifest written.
    """
    path = manifest_path(data_dir, dataset)
    with _locked(_manifest_file(data_dir, dataset, ".lock"), fcntl.LOCK_EX):
        manifest = read_manifest(data_dir, dataset)
        manifest.update(update or {})
        records = manifest.setdefault("instances", {})
        journaled, files = read_journals(data_dir, dataset)
        for key, record in journaled.items():
            if _newer(record, records.get(key)):
                records[key] = record
        manifest["merged"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        manifest = contract.sealed(manifest)
        contract.write_json(path, manifest)
        own = journal_path(data_dir, dataset)
        tree = _tree(data_dir)
        for journal in files:
            if forget_all or journal == own or _process_gone(journal):
                tree.remove(journal, ours=JOURNAL_NAME)
    return manifest


def read_manifest(data_dir, dataset: str) -> dict:
    """The manifest ``DATA/manifests/<dataset>.json`` ({} when there is none)."""
    path = manifest_path(data_dir, dataset)
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        logger.warning("manifest %s is unreadable; its journals rebuild it", path)
        return {}
    if not isinstance(manifest, dict) or not isinstance(manifest.get("instances", {}), dict) \
            or not all(isinstance(r, dict) for r in manifest.get("instances", {}).values()):
        raise InputError(f"{path} is not a manifest (expected a JSON object whose "
                         '"instances" maps class/instance to records); move it away and rerun')
    damage = contract.seal_problem(manifest, path)
    if damage:  # no record in it can be trusted: the instances are redone, as without one
        logger.warning("%s; its records are not trusted, and its instances are redone", damage)
        return {}
    return manifest


def manifest_mesh(manifest: dict, key: str) -> Path | None:
    """The source mesh the manifest records for ``<class>/<instance>``, if it still exists."""
    recorded = manifest.get("instances", {}).get(key, {}).get("mesh")
    return Path(recorded) if recorded and Path(recorded).is_file() else None

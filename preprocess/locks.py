"""One writer per folder: an advisory lock naming the process that holds it.

:func:`writer_lock` holds ``FOLDER/.deepsdf-lock`` with ``flock`` for the duration of a run
and writes into it who holds it (process id, command, start time).  A second writer is refused
with one line naming that process.  The kernel releases the lock when its process dies, however
it dies (SIGKILL included), so a lock left by a dead process is never an obstacle: the next
writer takes it over and says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from pathlib import Path

from .errors import InputError

__all__ = ["writer_lock", "LOCK_NAME", "FolderInUseError"]

logger = logging.getLogger(__name__)

#: The lock file's name inside the folder it guards.
LOCK_NAME = ".deepsdf-lock"


class FolderInUseError(InputError):
    """Another live process is writing the folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _holder(text: str) -> dict:
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    started = holder.get("started")
    when = (time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started))
            if isinstance(started, (int, float)) else "")
    return f"process {holder.get('pid', '?')} ({holder.get('command', 'unknown command')}{when})"


@contextlib.contextmanager
def writer_lock(folder, command: str, *, what: str = "folder"):
    """Hold ``folder``'s writer lock while the block runs (the folder is created).

    Raises
    ------
    FolderInUseError
        When a live process holds it: one line naming that process.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags, 0o644)
    except OSError as error:
        raise InputError(f"cannot open the lock {path}: {error.strerror}") from None
    with os.fdopen(descriptor, "r+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(handle.read())
            raise FolderInUseError(
                f"{what} {folder} is in use by {_describe(holder)}; wait for it to finish or "
                f"stop it (one writer at a time)") from None
        previous = _holder(handle.read())
        pid = previous.get("pid")
        if isinstance(pid, int) and pid != os.getpid() and _alive(pid) is False:
            logger.warning("%s %s: took over the lock of %s, which is gone", what, folder,
                           _describe(previous))
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": command,
                                 "started": time.time()}))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()  # released: nobody holds it now
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)

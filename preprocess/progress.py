"""One progress-bar helper for every long loop of both packages.

A bar is a ``tqdm`` bar on standard error, unless it is switched off by the caller
(``--no-progress``) or for the whole process by ``DEEPSDF_NO_PROGRESS=1`` (CI, batch jobs);
then a silent stand-in takes the same calls, and ``write`` goes to the given logger.
"""

from __future__ import annotations

import logging
import os

__all__ = ["progress_bar", "NO_PROGRESS_VARIABLE"]

#: Set to 1 to switch every progress bar off.
NO_PROGRESS_VARIABLE = "DEEPSDF_NO_PROGRESS"


class _Silent:
    """What a bar offers, doing nothing (``write`` logs a warning)."""

    def __init__(self, log: logging.Logger):
        self.log = log

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def write(self, message: str) -> None:
        self.log.warning("%s", message)

    def close(self) -> None:
        pass


def progress_bar(total: int, *, desc: str, unit: str, enabled: bool = True, initial: int = 0,
                 log: logging.Logger | None = None):
    """A progress bar over ``total`` items (``update``, ``set_postfix``, ``write``, ``close``).

    Parameters
    ----------
    enabled : bool
        False gives the silent stand-in; so does ``DEEPSDF_NO_PROGRESS=1``.
    log : logging.Logger, optional
        Where the silent stand-in's ``write`` goes (default this module's logger).
    """
    if not enabled or os.environ.get(NO_PROGRESS_VARIABLE) == "1":
        return _Silent(log or logging.getLogger(__name__))
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True)

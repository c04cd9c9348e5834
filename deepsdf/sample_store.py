"""A split's samples resident on the training device, and batches drawn there.

On a fast GPU the memory-mapped path (:class:`~deepsdf.data.SceneBatches`: ~1 M random rows
gathered by numpy on the host, then copied) sets the pace, not the decoder.  When the packed
samples fit in a memory budget on the device, :class:`DeviceSamples` uploads them once and
every batch is drawn on the device: no per-batch host gather, no host-to-device copy.

The sampling law is the memory-mapped path's: for each scene of a batch, ``count / 2``
positive rows then ``count / 2`` negative rows, drawn uniformly with replacement.  The random
stream is a ``torch.Generator`` on the device seeded from ``(seed, epoch, batch)``; every
process draws the numbers of the whole global batch and gathers only its own scenes' rows, so
the draws do not depend on the number of processes (N processes follow one process with the
same global batch, as on the memory-mapped path), a run is deterministic for a seed on a given
device, and it resumes exactly at an epoch boundary.  The streams differ from the
memory-mapped path's (same law, other draws).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch

from deepsdf_preprocess.errors import InputError

from .config import SAMPLE_STORES
from .data import PackedSamples

__all__ = ["DeviceSamples", "choose_store", "StoreChoice", "free_memory", "STORE_KINDS",
           "batch_generator"]

logger = logging.getLogger(__name__)

#: ``SampleStore`` values: ``auto`` (device when it fits the budget), ``device``, ``mmap``.
STORE_KINDS = SAMPLE_STORES

#: Rows copied per upload step (64 MiB of float32 rows).
_UPLOAD_ROWS = 1 << 22


@dataclass(frozen=True)
class StoreChoice:
    """Which sample path runs, and why (logged at the start of training)."""

    kind: str  # "device" or "mmap"
    reason: str


def free_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` (CUDA: ``mem_get_info``; CPU: ``MemAvailable``), or None."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as stream:
                for line in stream:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def choose_store(packed: PackedSamples, device: torch.device, *, kind: str = "auto",
                 fraction: float = 0.5) -> StoreChoice:
    """Decide between the device-resident and the memory-mapped path.

    Parameters
    ----------
    kind : {"auto", "device", "mmap"}
        ``auto`` uploads when the samples take at most ``fraction`` of the device's free
        memory; ``device`` insists (an error is raised when the upload fails, not hidden).
    fraction : float
        Share of the free memory the samples may take (``SampleStoreMemory``).
    """
    if kind not in STORE_KINDS:
        raise InputError(f"sample store must be one of {STORE_KINDS}, got {kind!r}")
    size = packed.total_rows * 16
    if kind == "mmap":
        return StoreChoice("mmap", "asked for (SampleStore mmap)")
    if kind == "device":
        return StoreChoice("device", "asked for (SampleStore device)")
    free = free_memory(device)
    if free is None:
        return StoreChoice("mmap", f"the free memory of {device} is unknown")
    budget = fraction * free
    if size <= budget:
        return StoreChoice("device", f"{size / 2**30:.2f} GiB of samples fit {fraction:g} of "
                                     f"the {free / 2**30:.1f} GiB free on {device}")
    return StoreChoice("mmap", f"{size / 2**30:.2f} GiB of samples exceed {fraction:g} of the "
                               f"{free / 2**30:.1f} GiB free on {device}")


def batch_generator(device: torch.device, *, seed: int, epoch: int,
                    batch: int) -> torch.Generator:
    """A generator on ``device`` seeded from ``(seed, epoch, batch)`` (a stable hash)."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{batch}".encode()).digest()
    generator = torch.Generator(device=device)
    generator.manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return generator


class DeviceSamples:
    """A split's packed rows on one device, with per-scene row ranges.

    Parameters
    ----------
    packed : PackedSamples
        The memory-mapped cache; it is read once, in chunks (the host never holds the whole
        split at once beyond the page cache).
    device : torch.device
    """

    def __init__(self, packed: PackedSamples, device: torch.device):
        self.device = torch.device(device)
        total = packed.total_rows
        self.rows = torch.empty((total, 4), dtype=torch.float32, device=self.device)
        source = packed.rows
        for start in range(0, total, _UPLOAD_ROWS):
            chunk = np.array(source[start:start + _UPLOAD_ROWS], dtype=np.float32)
            self.rows[start:start + len(chunk)].copy_(torch.from_numpy(chunk))
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.int64,  # noqa: E731
                                              device=self.device)
        self.pos_start, self.pos_count = as_tensor(packed.pos_start), as_tensor(packed.pos_count)
        self.neg_start, self.neg_count = as_tensor(packed.neg_start), as_tensor(packed.neg_count)

    def __len__(self) -> int:
        return len(self.pos_start)

    def draw(self, scenes, count: int, generator: torch.Generator, *,
             part: slice | None = None) -> torch.Tensor:
        """Rows of a batch: per scene ``count / 2`` positive then ``count / 2`` negative rows,
        uniform with replacement, scenes in the given order.

        Parameters
        ----------
        scenes : (s,) int sequence or tensor
            The whole (global) batch's scenes: the random numbers of all are drawn.
        count : int, even
        generator : torch.Generator on the store's device
        part : slice, keyword-only
            The scenes whose rows are gathered (this process's share); default all.

        Returns
        -------
        (len(scenes[part]) * count, 4) float32 tensor on the store's device.
        """
        half = count // 2
        scenes = torch.as_tensor(np.asarray(scenes), dtype=torch.int64, device=self.device)
        picks = []
        for start, size in ((self.pos_start, self.pos_count), (self.neg_start, self.neg_count)):
            uniform = torch.rand((len(scenes), half), generator=generator, device=self.device,
                                 dtype=torch.float64)
            offset = (uniform * size[scenes, None]).long()
            offset = torch.minimum(offset, size[scenes, None] - 1)
            picks.append(start[scenes, None] + offset)
        index = torch.cat(picks, dim=1)
        if part is not None:
            index = index[part]
        return self.rows[index.reshape(-1)]

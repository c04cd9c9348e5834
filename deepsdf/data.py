"""Training data: a packed, memory-mapped cache of a split's SdfSamples, and scene batches.

The paper's categories do not fit in memory (chairs: 3281 shapes x 500k samples x 16 B ~
26 GB), and the original re-reads an npz from disk at every access.  Here a split's samples are
packed once into one float32 file (``CACHE/<split-hash>-<data-hash>/samples.f32``, rows
``[x, y, z, sdf]``, each shape's positive rows then its negative rows) with an index; every
worker and process maps it read-only, so the operating system's page cache holds one copy.
The cache never goes into the data tree (shared data trees are often read-only or someone
else's): see :func:`cache_folder`.

Each training item is one shape's subsample: ``samples_per_scene / 2`` positive and as many
negative rows, drawn with replacement (as the original) from a generator keyed by
``(seed, epoch, scene)``.  Results therefore do not depend on the number of loader workers or
processes, nor on resuming.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deepsdf_preprocess import contract, formats, provenance
from deepsdf_preprocess.errors import DeepSDFError, InputError

from .latents import split_hash, split_instances

__all__ = ["DataError", "PackedSamples", "pack_split", "scene_samples", "epoch_batches",
           "SceneBatches", "cache_folder", "samples_digest", "CACHE_VARIABLE"]

#: Environment variable naming the folder of packed caches (shared between experiments).
CACHE_VARIABLE = "DEEPSDF_CACHE"


def cache_folder(cache=None, *, experiment=None) -> Path:
    """The folder of packed sample caches.

    ``cache`` if given, else ``$DEEPSDF_CACHE``, else the experiment's
    (:attr:`Experiment.packed_cache <deepsdf.experiment.Experiment.packed_cache>`) when one is
    given, else the user's cache folder (``$XDG_CACHE_HOME/deepsdf/PackedSamples``,
    ``~/.cache/...`` by default).  Never the data root.
    """
    if cache is not None:
        return _a_folder(Path(cache), "--cache")
    if os.environ.get(CACHE_VARIABLE):
        return _a_folder(Path(os.environ[CACHE_VARIABLE]), f"${CACHE_VARIABLE}")
    if experiment is not None:
        return experiment.packed_cache
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deepsdf" / "PackedSamples"


def _a_folder(path: Path, what: str) -> Path:
    """``path`` when it is a folder or nothing yet; else one line naming it."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path} is a file, not a folder: give the folder the packed "
                         "sample caches go in")
    return path


logger = logging.getLogger(__name__)

_CACHE_FORMAT = 1


class DataError(DeepSDFError, RuntimeError):
    """The training data cannot be used; the message names every problem found."""


@dataclass
class PackedSamples:
    """A split's samples, memory-mapped.

    Attributes
    ----------
    path : Path
        The cache folder.
    instance_ids : list of str
        ``dataset/class/instance``, in split order (the code-table rows).
    pos_start, pos_count, neg_start, neg_count : (n,) int64
        Row ranges of each shape's positive and negative samples.
    """

    path: Path
    instance_ids: list
    pos_start: np.ndarray
    pos_count: np.ndarray
    neg_start: np.ndarray
    neg_count: np.ndarray
    unusable: dict = field(default_factory=dict)  # instance -> why it was left out
    samples_digest: str | None = None  # :func:`samples_digest` of the sources packed
    _rows: np.ndarray | None = None

    @property
    def total_rows(self) -> int:
        """Rows in the packed file."""
        return int(self.neg_start[-1] + self.neg_count[-1]) if len(self.neg_start) else 0

    @property
    def rows(self) -> np.ndarray:
        """(total, 4) float32 memory map (opened lazily, once per process)."""
        if self._rows is None:
            problem = _samples_problem(self.path, self.total_rows)
            if problem is not None:  # replaced or truncated since it was packed
                raise DataError(f"the packed cache {self.path} cannot be used: {problem}; "
                                "delete the folder to rebuild it")
            self._rows = np.memmap(self.path / "samples.f32", dtype=np.float32, mode="r",
                                   shape=(self.total_rows, 4))
        return self._rows

    def positive_rows(self, scene: int) -> np.ndarray:
        """(pos_count, 4) ``[x, y, z, sdf]`` rows of shape ``scene`` with sdf >= 0 (a view of
        the memory map)."""
        start = int(self.pos_start[scene])
        return self.rows[start:start + int(self.pos_count[scene])]

    def __getstate__(self):  # worker processes map the file themselves
        state = dict(self.__dict__)
        state["_rows"] = None
        return state

    def __len__(self) -> int:
        return len(self.instance_ids)


def _missing_message(data_dir: Path, files: list, unusable: dict) -> str:
    """One line: how many SdfSamples files are missing, three of them, and what the data root
    does hold (a DataSource pointing at another dataset's tree is the usual cause)."""
    missing = [key for key, _ in files if key in unusable]
    held = formats.DataTree(data_dir).datasets()
    wanted = sorted({key.split("/")[0] for key in missing})
    hint = (f"the data root {data_dir} holds SdfSamples of {', '.join(held)}"
            if held else f"the data root {data_dir} holds no SdfSamples folder")
    if held and not set(wanted) & set(held):
        hint += f", not of {', '.join(wanted)}: is DataSource (or --data) the right tree?"
    return (f"{len(missing)} of {len(files)} SdfSamples files are missing (e.g. "
            f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}); {hint}")


def _source_files(data_dir: Path, split: dict) -> list[tuple[str, Path]]:
    data = formats.DataTree(data_dir)
    return [(key, data.instance(key).sdf_samples) for key in split_instances(split)]


def _fingerprint(files, known=None) -> list:
    """``[[key, size, mtime_ns, sha256], ...]`` of the source files; a file whose size and
    time match its row in ``known`` (the cache index's) is not read again."""
    rows = {row[0]: row for row in known or []
            if isinstance(row, list) and len(row) == 4 and isinstance(row[0], str)}
    result = []
    for key, path in files:
        row = rows.get(key)
        found = provenance.fingerprint(path, known=None if row is None else dict(
            size=row[1], mtime_ns=row[2], sha256=row[3]))
        result.append([key, found["size"], found["mtime_ns"], found["sha256"]])
    return result


def _by_content(fingerprint) -> list | None:
    """The rows of :func:`_fingerprint` without their times (what the cache's reuse and a
    checkpoint's record of its samples compare)."""
    if not isinstance(fingerprint, list):
        return None
    return [[row[0], row[1], row[3]] if isinstance(row, list) and len(row) == 4 else None
            for row in fingerprint]


def samples_digest(fingerprint) -> str:
    """SHA-256 over the split's SdfSamples by name, size and contents: what a checkpoint
    records of the data it was trained on, so that resuming on other samples is refused."""
    return hashlib.sha256(json.dumps(_by_content(fingerprint)).encode()).hexdigest()


#: Rows with a coordinate or distance beyond this (normalized frame: samples lie within about
#: 2 of the origin) or not finite are dropped at packing, with a count per file.
ROW_LIMIT = 10.0


def pack_split(data_dir, split: dict, *, cache_root=None, skip_unusable: bool = False
               ) -> PackedSamples:
    """Build (once) or open the packed cache of a split.

    Every listed ``SdfSamples`` file is checked before the cache is used: missing files,
    unreadable files, files without positive or negative samples are all named in one
    :class:`DataError`.  The cache is rebuilt when a source file's contents changed (its size
    and time are the fast path: a file whose time moved is read and compared by SHA-256).  Rows that are not finite or lie beyond :data:`ROW_LIMIT` are dropped, and each
    file's count of dropped rows is logged.  Each file is read once.

    Parameters
    ----------
    data_dir : path
        The data root.
    split : dict
        ``{dataset: {class: [instance, ...]}}``.
    cache_root : path, optional
        Folder of the caches (default: :func:`cache_folder`, never the data root).  Each
        cache is named by the split and the data root, so one folder serves many.
    skip_unusable : bool, keyword-only
        Leave out the unusable instances (logged; :attr:`PackedSamples.unusable` names them
        with their reasons) instead of raising, as long as one is usable (reconstruction
        goes on with the rest; training needs every shape).
    """
    data_dir = Path(data_dir)
    files = _source_files(data_dir, split)
    if not files:
        raise DataError("the split lists no instances")
    unusable = {key: f"SdfSamples file missing ({path})" for key, path in files
                if not path.is_file()}
    if unusable and not skip_unusable:
        raise DataError(_missing_message(data_dir, files, unusable))
    present = [(key, path) for key, path in files if key not in unusable]
    root_digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    folder = cache_folder(cache_root) / f"{split_hash(split)}-{root_digest}"
    index_path = folder / "index.json"
    index = {}
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text())
        except (OSError, json.JSONDecodeError):
            index = {}
    fingerprint = _fingerprint(present, known=index.get("sources") if isinstance(index, dict)
                               else None)
    if index_path.is_file() and isinstance(index, dict):
        if index.get("format") == _CACHE_FORMAT \
                and _by_content(index.get("sources")) == _by_content(fingerprint):
            stale = _stale_samples(folder, index)
            if stale is None:
                if index["sources"] != fingerprint:  # same contents, new times (a copy)
                    index["sources"] = fingerprint
                    contract.write_json(index_path, index)
                return _open(folder, index, unusable)
            logger.warning("the packed cache %s is stale (%s); rebuilding it from the data",
                           folder, stale)
        else:
            logger.info("sources of %s changed; rebuilding the packed cache", folder)
    index = _build(folder, present, fingerprint, unusable, skip_unusable)
    if not index["instances"]:
        raise DataError("no usable SdfSamples file in the split: "
                        + "; ".join(f"{k}: {r}" for k, r in list(unusable.items())[:20]))
    return _open(folder, index, unusable)


#: Bytes per packed row (x, y, z, sdf as float32).
_ROW_BYTES = 16


def _samples_problem(folder: Path, rows: int, record: dict | None = None) -> str | None:
    """Why ``folder/samples.f32`` cannot be mapped as ``rows`` packed rows (a link or any
    non-regular file, another size, or another size or modification time than ``record``
    says), or None when it can."""
    path = folder / "samples.f32"
    try:
        status = os.lstat(path)
    except OSError as error:
        return f"samples.f32 cannot be read ({error.strerror or error})"
    if stat.S_ISLNK(status.st_mode):
        return "samples.f32 is a symbolic link"
    if not stat.S_ISREG(status.st_mode):
        return "samples.f32 is not a regular file"
    if status.st_size != rows * _ROW_BYTES:
        return (f"samples.f32 holds {status.st_size} bytes; the index needs "
                f"{rows * _ROW_BYTES}")
    if record is not None and (record.get("size"), record.get("mtime_ns")) != (
            status.st_size, status.st_mtime_ns):
        return "samples.f32 was modified after packing (size or modification time differs)"
    return None


def _stale_samples(folder: Path, index: dict) -> str | None:
    """Why a cache entry must be rebuilt rather than read, or None when it can be reused."""
    record = index.get("samples")
    if not isinstance(record, dict):
        return "index.json records no size and modification time of samples.f32"
    try:
        rows = int(index["neg_start"][-1]) + int(index["neg_count"][-1]) \
            if index.get("neg_start") else 0
    except (KeyError, IndexError, TypeError, ValueError):
        return "index.json is malformed"
    return _samples_problem(folder, rows, record)


def _usable_rows(array: np.ndarray) -> np.ndarray:
    """The rows of an (n, 4) array that are finite and within :data:`ROW_LIMIT`."""
    with np.errstate(invalid="ignore"):
        return array[np.all(np.abs(array) <= ROW_LIMIT, axis=1)]


def _build(folder: Path, files, fingerprint, unusable: dict, skip_unusable: bool) -> dict:
    """Read every file once, validating it and appending its rows to the packed file."""
    folder.mkdir(parents=True, exist_ok=True)
    problems, keys, pos_start, pos_count, neg_start, neg_count = [], [], [], [], [], []
    offset = 0
    with contract.atomic_path(folder / "samples.f32") as temporary:
        with open(temporary, "wb") as stream:
            for key, path in files:
                try:
                    raw = formats.read_sdf_samples(path, keep_nan=True)
                except Exception as error:  # corrupt zip, pickles, wrong keys: unreadable
                    problems.append((key, f"unreadable ({type(error).__name__}: {error})"))
                    continue
                pos, neg = (_usable_rows(array) for array in raw)
                dropped = sum(len(a) for a in raw) - len(pos) - len(neg)
                if dropped:
                    logger.warning("%s: dropped %d of %d rows that are not finite or lie "
                                   "beyond %g of the origin", key, dropped,
                                   sum(len(a) for a in raw), ROW_LIMIT)
                if len(pos) == 0 or len(neg) == 0:
                    sign = "positive" if len(pos) == 0 else "negative"
                    problems.append((key, f"no {sign} samples (after dropping unusable rows)"))
                    continue
                stream.write(np.ascontiguousarray(pos, dtype="<f4").tobytes())
                stream.write(np.ascontiguousarray(neg, dtype="<f4").tobytes())
                keys.append(key)
                pos_start.append(offset)
                pos_count.append(len(pos))
                neg_start.append(offset + len(pos))
                neg_count.append(len(neg))
                offset += len(pos) + len(neg)
            if problems and not skip_unusable:
                raise DataError(f"{len(problems)} SdfSamples file(s) cannot be used: "
                                + "; ".join(f"{k}: {r}" for k, r in problems[:20])
                                + (" ..." if len(problems) > 20 else ""))
    unusable.update(problems)
    index = {"format": _CACHE_FORMAT, "instances": keys, "pos_start": pos_start,
             "pos_count": pos_count, "neg_start": neg_start, "neg_count": neg_count,
             "sources": fingerprint if not problems else None,
             # the cache is this project's own and can be large: size and time only
             "samples": _size_and_time(folder / "samples.f32")}
    contract.write_json(folder / "index.json", index)
    logger.info("packed %d shapes (%d rows) into %s", len(keys), offset, folder)
    return index


def _size_and_time(path: Path) -> dict:
    status = os.stat(path)
    return {"size": int(status.st_size), "mtime_ns": int(status.st_mtime_ns)}


def _open(folder: Path, index: dict, unusable: dict) -> PackedSamples:
    sources = index.get("sources")
    return PackedSamples(path=folder, instance_ids=list(index["instances"]),
                         unusable=dict(unusable),
                         samples_digest=samples_digest(sources) if sources else None,
                         pos_start=np.asarray(index["pos_start"], np.int64),
                         pos_count=np.asarray(index["pos_count"], np.int64),
                         neg_start=np.asarray(index["neg_start"], np.int64),
                         neg_count=np.asarray(index["neg_count"], np.int64))


def scene_samples(packed: PackedSamples, scene: int, count: int, *, seed: int,
                  epoch: int) -> np.ndarray:
    """(count, 4) float32 subsample of one shape: ``count / 2`` positive rows, then negative.

    Drawn with replacement from ``numpy.random.default_rng([seed, epoch, scene])``.
    """
    rng = np.random.default_rng([seed, epoch, scene])
    half = count // 2
    pos = packed.pos_start[scene] + rng.integers(0, packed.pos_count[scene], half)
    neg = packed.neg_start[scene] + rng.integers(0, packed.neg_count[scene], half)
    index = np.concatenate([pos, neg])
    order = np.argsort(index)  # sequential reads from the map, then back to draw order
    rows = np.empty((len(index), 4), dtype=np.float32)
    rows[order] = packed.rows[index[order]]
    return rows


def epoch_batches(scene_count: int, scenes_per_batch: int, *, seed: int, epoch: int,
                  rank: int = 0, world: int = 1, fill_last: bool = False) -> list[np.ndarray]:
    """The scenes of each batch of an epoch, for one process.

    The epoch's order is a permutation from ``default_rng([seed, epoch])`` (the same on every
    process); it is cut into global batches of ``scenes_per_batch`` and process ``rank`` takes
    the ``rank``-th contiguous ``1/world`` of each.  An incomplete last batch is dropped (the
    reference's rule: those shapes sit the epoch out), or with ``fill_last`` completed with
    the epoch's first shapes, so that every shape is in every epoch (a few twice).
    """
    if scene_count < scenes_per_batch:
        raise DataError(f"the split has {scene_count} shapes but ScenesPerBatch is "
                        f"{scenes_per_batch}: no batch can be formed (lower ScenesPerBatch)")
    if scenes_per_batch % world:
        raise DataError(f"ScenesPerBatch {scenes_per_batch} is not divisible by the "
                        f"{world} processes")
    order = np.random.default_rng([seed, epoch]).permutation(scene_count)
    local = scenes_per_batch // world
    batches = []
    for start in range(0, scene_count - scenes_per_batch + 1, scenes_per_batch):
        batch = order[start:start + scenes_per_batch]
        batches.append(batch[rank * local:(rank + 1) * local])
    left = scene_count % scenes_per_batch
    if fill_last and left:
        batch = np.concatenate([order[scene_count - left:], order[:scenes_per_batch - left]])
        batches.append(batch[rank * local:(rank + 1) * local])
    return batches


class SceneBatches(torch.utils.data.Dataset):
    """Map-style dataset whose items are whole local batches ``(epoch, batch_index)``.

    Returns ``(samples (scenes * count, 4) float32 tensor, scenes (scenes,) int64 tensor)``;
    usable with any number of DataLoader workers (each maps the cache itself).
    """

    def __init__(self, packed: PackedSamples, count: int, *, seed: int, epoch: int,
                 batches: list):
        self.packed, self.count, self.seed, self.epoch = packed, count, seed, epoch
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int):
        scenes = self.batches[index]
        samples = np.concatenate([scene_samples(self.packed, int(s), self.count, seed=self.seed,
                                                epoch=self.epoch) for s in scenes])
        return torch.from_numpy(samples), torch.from_numpy(np.asarray(scenes, np.int64))


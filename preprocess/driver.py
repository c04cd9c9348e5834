"""Preprocess a folder of meshes into a DeepSDF data tree: discovery, workers, resume, manifest."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from . import contract, formats, validate
from .errors import DiskFullError, InputError, PreprocessError
from .manifest import (active_run, append_record, current_records, journal_path, manifest_mesh,
                       manifest_path, merge_journals, read_manifest, shard_of)
from .mesh_io import MESH_SUFFIXES
from .paths import Tree
from .pipeline import PreprocessConfig, instance_seed, make_scanner, preprocess_instance
from .progress import progress_bar
from .provenance import file_identity, stale_reason
from .splits import check_split_out

__all__ = ["MeshJob", "discover_meshes", "preprocess_dataset", "merge_dataset",
           "DatasetReport", "read_manifest", "manifest_mesh", "WORKER_DIED"]

logger = logging.getLogger(__name__)

SHAPENET_MESH = Path("models") / "model_normalized.obj"

#: The files every instance of a data tree has, whatever made it.
REQUIRED_OUTPUTS = (formats.SDF_SAMPLES, formats.SURFACE_SAMPLES,
                    formats.NORMALIZATION_PARAMETERS)

#: The reason recorded for an instance whose worker process died (the OOM killer, a crash).
WORKER_DIED = "worker died while processing this mesh (out of memory? a crash in a library?)"


@dataclass(frozen=True)
class MeshJob:
    """One instance to preprocess."""

    class_name: str
    instance: str
    mesh_path: Path | None  # None when a split names an instance with no mesh
    problem: str | None = None  # why this instance cannot be processed, found at discovery

    @property
    def key(self) -> str:
        return f"{self.class_name}/{self.instance}"


@dataclass
class DatasetReport:
    """Outcome of :func:`preprocess_dataset`."""

    succeeded: list  # instance keys written or already complete
    failed: dict  # key -> one-line reason
    skipped: list  # keys already complete before this run
    manifest_path: Path
    split_path: Path | None  # None for a shard (the merge writes it)
    journal: Path | None = None  # this run's journal (a shard's records until the merge)


def discover_meshes(mesh_dir, *, split: dict | None = None, dataset: str | None = None):
    """Find ``<class>/<instance>.<ext>`` and ``<class>/<instance>/models/model_normalized.obj``.

    Nothing is skipped without a word: a mesh-suffixed entry that is a dangling symbolic link
    or a link loop, two files with the same stem in one class (``dup.obj`` beside
    ``dup.ply``: which is the instance?) and names that are not single path components each
    become a job with a ``problem`` (recorded as a failure with that reason).  Mesh files at
    the top of ``mesh_dir``, outside any class folder, are ignored with a warning.

    Parameters
    ----------
    mesh_dir : path
    split : dict, optional
        A split ``{dataset: {class: [instance, ...]}}``; only its instances (of ``dataset``)
        are returned, listed instances without a mesh get ``mesh_path=None``.
    dataset : str, optional
        Which dataset of the split to use (required with ``split``).

    Returns
    -------
    list of MeshJob, sorted by key.  Mesh paths are absolute.
    """
    root = Path(mesh_dir)
    if not root.is_dir():
        raise InputError(f"mesh folder {root} does not exist")
    found: dict[tuple[str, str], Path] = {}
    problems: dict[tuple[str, str], str] = {}
    # files (a folder named like a mesh, `tables.obj/`, is a class folder, processed below)
    loose = [p.name for p in root.iterdir() if p.suffix.lower() in MESH_SUFFIXES
             and not p.is_dir()]
    if loose:
        logger.warning("%d mesh file(s) at the top of %s are ignored (%s): meshes go in "
                       "class folders, <class>/<instance>.<ext>", len(loose), root,
                       ", ".join(sorted(loose)[:3]) + (" ..." if len(loose) > 3 else ""))
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for entry in sorted(class_dir.iterdir()):
            key = (class_dir.name, entry.stem if entry.suffix else entry.name)
            if entry.suffix.lower() in MESH_SUFFIXES:
                if not entry.is_file():
                    problems[key] = _link_problem(entry)
                    continue
                path = Path(os.path.abspath(entry))
            elif entry.is_dir() and (entry / SHAPENET_MESH).is_file():
                key = (class_dir.name, entry.name)
                path = Path(os.path.abspath(entry / SHAPENET_MESH))
            else:
                continue
            if key in found:
                first, second = (os.path.relpath(p, os.path.abspath(class_dir))
                                 for p in (found[key], path))
                problems[key] = (f"ambiguous instance: both {first} and {second} are named "
                                 f"{key[1]!r} in {class_dir}; rename or remove one")
                continue
            found[key] = path
    for key in list(found) + list(problems):
        for name, what in ((key[0], "class"), (key[1], "instance")):
            try:
                contract.check_name(name, what)
            except ValueError as error:
                problems.setdefault(key, str(error))
    if split is None:
        keys = sorted(set(found) | set(problems))
    else:
        if dataset not in split:
            raise InputError(f"the split has no dataset {dataset!r} (it has {sorted(split)}); "
                             "give the matching dataset name")
        keys = sorted((c, i) for c, instances in split[dataset].items() for i in instances)
    return [MeshJob(c, i, found.get((c, i)), problems.get((c, i))) for c, i in keys]


def _link_problem(entry: Path) -> str:
    """Why a mesh-named entry that is not a regular file cannot be read."""
    if entry.is_symlink():
        try:
            entry.resolve(strict=True)
        except RuntimeError:
            return f"{entry.name} is a symbolic link loop"
        except OSError:
            return f"{entry.name} is a dangling symbolic link (to {os.readlink(entry)})"
    return f"{entry.name} is not a regular file"


# Worker-process state: one scanner (one OpenGL context) per process, made by the initializer.
_WORKER: dict = {}


def _init_worker(backend: str, config: PreprocessConfig, parent: int | None = None) -> None:
    if parent is not None:
        _exit_with_parent(parent)
    _WORKER["scanner"] = make_scanner(backend, config.rig)
    _WORKER["config"] = config
    _WORKER["backend"] = backend


def settings_digest(config: PreprocessConfig, backend: str, seed: int) -> str:
    """A short digest of what decides an instance's files (settings, scanner, run seed): each
    record carries it, and a rerun with other settings redoes the instance."""
    import hashlib
    import json

    text = json.dumps({"config": config.to_dict(), "backend": backend, "seed": seed},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _exit_with_parent(parent: int) -> None:
    """Make this worker process end when the driver (process ``parent``) is gone.

    On Linux the kernel kills it at once (``PR_SET_PDEATHSIG``); everywhere a daemon thread
    checks every second whether the parent changed.  A killed driver therefore never leaves
    workers writing into the data tree behind the next run's back.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _run_job(job: MeshJob, outputs: dict, seed: int,
             journal: Path) -> tuple[str, dict | None, str | None]:
    """Process one instance and append its record to the journal; returns (key, record,
    error).  Never raises for a bad mesh; a full disk stops the run."""
    if job.problem is not None:
        result = job.key, None, job.problem
    elif job.mesh_path is None:
        result = job.key, None, "listed in the split but no mesh was found"
    else:
        try:
            record = preprocess_instance(job.mesh_path, outputs, _WORKER["config"],
                                         _WORKER["scanner"], instance_seed(job.key, seed))
            record["settings"] = settings_digest(_WORKER["config"], _WORKER["backend"], seed)
            record["source"] = file_identity(job.mesh_path)  # a changed mesh is redone
            result = job.key, record, None
        except DiskFullError:
            raise
        except PreprocessError as error:
            result = job.key, None, str(error)
        except Exception as error:  # one broken mesh must not stop a batch of thousands
            logger.debug("instance %s failed", job.key, exc_info=True)
            result = job.key, None, f"{type(error).__name__}: {error}"
    append_record(journal, job.key, _record(job, *result[1:]))
    return result


def _record(job: MeshJob, record: dict | None, error: str | None) -> dict:
    """The manifest record; a mesh reached through a symbolic link (a subset of a dataset
    made of links, say) also names the file it was read from, ``mesh_file``."""
    mesh = None if job.mesh_path is None else str(job.mesh_path)
    where = {"mesh": mesh}
    if job.mesh_path is not None and Path(job.mesh_path).is_symlink():
        where["mesh_file"] = os.path.realpath(job.mesh_path)
    if error is None:
        return {"status": "ok", **where, **record}
    return {"status": "failed", **where, "reason": error}


def preprocess_dataset(mesh_dir, data_dir, dataset: str, *, config: PreprocessConfig,
                       split: dict | None = None, workers: int = 1, seed: int = 0,
                       backend: str = "pyrender", split_out=None, progress: bool = True,
                       shard: tuple[int, int] | None = None,
                       split_source=None) -> DatasetReport:
    """Preprocess every mesh of ``mesh_dir`` (or of ``split``) into ``data_dir``.

    Resumable: instances whose files all exist are skipped.  Every finished instance's record
    is appended to this process's journal (see :mod:`.manifest`) by the process that made it,
    the moment its files are written, and the journals are merged into the manifest
    (``data_dir/manifests/<dataset>.json``) at the end: a killed run (driver or worker) keeps
    the records of what it finished.  Bad meshes are recorded with a one-line reason and do
    not stop the run; a worker that dies (the out-of-memory killer) fails the instance it was
    processing, and the run goes on in a fresh pool.

    Parameters
    ----------
    workers : int
        Worker processes (spawned, one scanner each); 1 runs in this process.
    seed : int
        Run seed; each instance's generator is seeded from it and the instance key, so the
        output does not depend on the worker count, the order or the sharding.
    split_out : path, optional
        Where to write the split of the instances that succeeded (default
        ``data_dir/splits/<dataset>.json``): an existing file there must be a split file, and
        not ``split_source`` (:func:`.splits.check_split_out`, checked before any work).
    split_source : path, optional
        The file ``split`` was read from (``--split``).
    shard : (index, count), optional
        Process only the instances of shard ``index`` of ``count`` (:func:`.manifest.shard_of`:
        a hash of the key).  A shard writes its files and its journal only; the manifest and
        the split are written by :func:`merge_dataset` (``deepsdf preprocess --merge``) or the
        next unsharded run.

    Raises
    ------
    DiskFullError
        When the device fills up (what was written before is intact).
    """
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise InputError(f"shard {shard[0]}/{shard[1]}: the index must lie in 0..count-1")
    contract.check_name(dataset, "dataset")
    data_dir = Tree(data_dir, "data root").root
    _check_memory(config, workers)
    if split_out is None:  # fail on a link or a folder there now, not after the work
        formats.split_path(data_dir, dataset)
    else:
        check_split_out(split_out, source=split_source)
    jobs = _discover(mesh_dir, split, dataset)
    listed = {job.key for job in jobs}
    if shard is not None:
        jobs = [job for job in jobs if shard_of(job.key, shard[1]) == shard[0]]
    journal = journal_path(data_dir, dataset)
    run_fields = {"dataset": dataset, "mesh_dir": str(Path(mesh_dir).resolve()),
                  "seed": seed, "backend": backend, "config": config.to_dict()}
    settings = settings_digest(config, backend, seed)
    failed: dict[str, str] = {}
    skipped: list = []
    with active_run(data_dir, dataset,
                    when_alone=lambda: _remove_stale_parts(data_dir, dataset)):
        pending, redone = [], {}
        recorded = current_records(data_dir, dataset)
        for job in jobs:
            if job.problem is not None:
                pending.append((job, {}))
                continue
            outputs = formats.instance_outputs(
                data_dir, formats.InstanceKey(dataset, job.class_name, job.instance),
                partial_scans=config.partial_scan is not None)
            record = recorded.get(job.key)
            made_by = {"settings": settings, "source": None if job.mesh_path is None
                       else Path(job.mesh_path)}  # by content: a copied mesh is the same
            stale = (stale_reason(record, outputs, made_by=made_by)
                     if record is not None and record.get("status") == "ok" else None)
            if record is not None and record.get("status") == "ok" and stale is None:
                skipped.append(job.key)
            else:
                if stale is not None or any(path.exists() for path in outputs.values()):
                    redone[job.key] = stale or "files without a record of what made them"
                pending.append((job, outputs))
        if redone:
            key, reason = next(iter(redone.items()))
            logger.warning("redoing %d instance(s) whose files are not those recorded (e.g. "
                           "%s: %s)", len(redone), key, reason)
        jobs_by_key = {job.key: job for job, _ in pending}
        bar = progress_bar(len(pending), desc="preprocess", unit="mesh", enabled=progress,
                           log=logger)
        for key, record, error in _execute(pending, workers, seed, backend, config, journal):
            if error == WORKER_DIED:
                append_record(journal, key, _record(jobs_by_key[key], None, error))
            if error is not None:
                failed[key] = error
                bar.write(f"FAILED {key}: {error}")
            bar.update(1)
        bar.close()
        if shard is not None:
            done = {job.key for job, _ in pending} - set(failed)
            return DatasetReport(succeeded=sorted(done | set(skipped)), failed=failed,
                                 skipped=skipped,
                                 manifest_path=manifest_path(data_dir, dataset),
                                 split_path=None, journal=journal)
        report = merge_dataset(data_dir, dataset, listed, run_fields=run_fields,
                               split_out=split_out, split_source=split_source)
    return DatasetReport(succeeded=report.succeeded, failed=failed, skipped=skipped,
                         manifest_path=report.manifest_path, split_path=report.split_path)


def _check_memory(config: PreprocessConfig, workers: int) -> None:
    """Refuse settings whose per-mesh work cannot fit in memory, before any work: a lower
    bound of the scans (8 bytes a pixel and view) and of the samples (100 bytes each through
    distances and the vote), per worker."""
    rig, samples = config.rig, config.sampling.count
    per_worker = 8 * rig.resolution ** 2 * rig.count + 100 * samples
    validate.require_memory(per_worker * workers,
                            what=f"{workers} worker(s) scanning at {rig.resolution} px x "
                            f"{rig.count} views and drawing {samples:,} samples",
                            hint="lower --resolution, --views, --samples or --workers")


def _discover(mesh_dir, split, dataset):
    jobs = discover_meshes(mesh_dir, split=split, dataset=dataset)
    if not jobs:
        raise InputError(f"no meshes found under {mesh_dir} (expected "
                         f"<class>/<instance>.<{'|'.join(s[1:] for s in MESH_SUFFIXES)}> "
                         "or <class>/<instance>/models/model_normalized.obj)")
    return jobs


def merge_dataset(data_dir, dataset: str, listed, *, run_fields: dict | None = None,
                  split_out=None, forget_all: bool = False,
                  split_source=None) -> DatasetReport:
    """Merge the journals into the manifest and write the split of the listed instances that
    succeeded (what an unsharded run does at its end; ``deepsdf preprocess --merge`` after
    the shards of a job array).

    Parameters
    ----------
    listed : iterable of str
        The instance keys ``class/instance`` the split may hold: those whose record is ``ok``
        and whose files still match it (:func:`~.provenance.stale_reason`).
    forget_all : bool
        Delete every journal after merging (all shards are done).
    split_out, split_source : path, optional
        As for :func:`preprocess_dataset` (checked before the journals are merged).
    """
    data_dir = Path(data_dir)
    if split_out:
        check_split_out(split_out, source=split_source)
    listed = set(listed)
    manifest = merge_journals(data_dir, dataset, update=run_fields, forget_all=forget_all)
    records = manifest.get("instances", {})
    changed = {}
    for key in sorted(k for k, r in records.items() if r.get("status") == "ok" and k in listed):
        class_name, instance = key.split("/", 1)
        recorded_outputs = records[key].get("outputs") or {}
        paths = formats.instance_outputs(data_dir, formats.InstanceKey(dataset, class_name,
                                                                       instance),
                                         partial_scans=True)
        # What the record says was written (an instance made from scans has no
        # OccupancySamples; one from a mesh has PartialScans only on request), never less
        # than the files training and evaluation read.
        paths = {name: path for name, path in paths.items()
                 if name in recorded_outputs or name in REQUIRED_OUTPUTS}
        reason = stale_reason(records[key], paths)
        if reason is not None:
            changed[key] = reason
    if changed:
        key, reason = next(iter(changed.items()))
        logger.warning("%d instance(s) left out of the split: their files are not those "
                       "recorded (e.g. %s: %s); rerun preprocess to redo them", len(changed),
                       key, reason)
    split_path = (Path(split_out) if split_out
                  else formats.split_path(data_dir, dataset))
    succeeded = sorted(k for k, r in records.items()
                       if r.get("status") == "ok" and k in listed and k not in changed)
    split_result: dict = {dataset: {}}
    for key in succeeded:
        class_name, instance = key.split("/", 1)
        split_result[dataset].setdefault(class_name, []).append(instance)
    split_path = _split_keeping_earlier(data_dir, dataset, split_path, split_result,
                                        in_tree=not split_out)
    contract.write_split(split_path, split_result)
    _warn_quality(records, listed)
    return DatasetReport(succeeded=succeeded,
                         failed={k: r.get("reason", "") for k, r in records.items()
                                 if r.get("status") == "failed" and k in listed},
                         skipped=[], manifest_path=manifest_path(data_dir, dataset),
                         split_path=split_path)


def _same_split(first: dict, second: dict) -> bool:
    def listed(split):
        return {d: {c: sorted(v) for c, v in classes.items() if v}
                for d, classes in split.items()}
    return listed(first) == listed(second)


def _split_keeping_earlier(data_dir, dataset: str, path: Path, split: dict, *,
                           in_tree: bool = True) -> Path:
    """Where this run's split goes without losing an earlier one: ``path`` when there is
    none there, or when this split holds every instance of the one there (a resumed or
    extended run); else the first free ``<name>-<n>.json`` beside it, with a line saying so
    (a second run into the same tree, the test shapes, say, must not shrink the split the
    training shapes were listed in; a ``split_out`` that names a train split must not gain
    the test shapes).  ``in_tree``: ``path`` is the data root's default split."""
    if not path.is_file():
        return path
    try:
        earlier = contract.read_split(path)
    except InputError:
        earlier = None
    ours = {(c, i) for c, items in split.get(dataset, {}).items() for i in items}
    theirs = None if earlier is None else {
        (c, i) for c, items in earlier.get(dataset, {}).items() for i in items}
    # The default split may grow (a resumed or extended run); a split file the user named
    # is replaced only by the same list (it may be a train split the test shapes must not
    # join).
    if theirs is not None and set(earlier) <= {dataset} and (
            theirs <= ours if in_tree else theirs == ours):
        return path
    number = 2
    while True:
        candidate = (formats.split_path(data_dir, f"{dataset}-{number}") if in_tree
                     else path.with_name(f"{path.stem}-{number}{path.suffix}"))
        if not candidate.exists():
            break
        try:
            if _same_split(contract.read_split(candidate), split):  # an earlier rerun's
                logger.info("kept the earlier split %s; this run's split is %s, as before",
                            path, candidate)
                return candidate
        except InputError:
            pass
        number += 1
    logger.warning("kept the earlier split %s (it lists instances this run does not); this "
                   "run's split is %s", path, candidate)
    return candidate


def _warn_quality(records: dict, keys: set) -> None:
    """One console line summing up the mesh-quality warnings of this run's instances."""
    warned = sorted(k for k in keys if records.get(k, {}).get("warnings"))
    if warned:
        logger.warning("%d instance(s) have mesh-quality warnings (open surfaces, two-sided "
                       "triangles; e.g. %s); see the manifest", len(warned), warned[0])


def _execute(pending, workers, seed, backend, config, journal):
    """Yield ``(key, record, error)`` per job, in this process (``workers == 1``) or in
    spawned worker processes.

    At most ``workers`` jobs are in flight.  When a worker dies, every job in flight is a
    suspect: a lone suspect is failed with :data:`WORKER_DIED`; several are rerun one at a
    time, each in a fresh single-worker pool, so only the mesh that kills its worker again is
    failed.  The remaining jobs go on in a fresh pool.
    """
    if not pending:
        return
    if min(workers, len(pending)) == 1:  # one worker: no second interpreter to start
        _init_worker(backend, config)
        try:
            for job, outputs in pending:
                yield _run_job(job, outputs, seed, journal)
        finally:
            _WORKER.pop("scanner").close()
        return
    queue = deque(pending)
    while queue:
        suspects = yield from _run_pool(queue, min(workers, len(queue)), seed, backend,
                                        config, journal)
        if len(suspects) == 1:
            yield suspects[0][0].key, None, WORKER_DIED
        else:
            for suspect in suspects:
                if (yield from _run_pool(deque([suspect]), 1, seed, backend, config, journal)):
                    yield suspect[0].key, None, WORKER_DIED


def _run_pool(queue: deque, workers: int, seed, backend, config, journal):
    """Run jobs from ``queue`` in one pool until it is empty (returns []) or a worker dies
    (returns the jobs that were in flight)."""
    context = multiprocessing.get_context("spawn")
    in_flight = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=_init_worker,
                             initargs=(backend, config, os.getpid())) as pool:
        while queue or in_flight:
            while queue and len(in_flight) < workers:
                job, outputs = queue.popleft()
                in_flight[pool.submit(_run_job, job, outputs, seed, journal)] = (job, outputs)
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    result = future.result()
                except BrokenProcessPool:
                    return list(in_flight.values())
                del in_flight[future]
                yield result
    return []


def _remove_stale_parts(data_dir: Path, dataset: str) -> None:
    """Delete temporaries a killed run left (only this writer's ``.<name>.*.part`` files,
    only under this dataset's folders; never a file under a final name)."""
    for kind in (formats.SDF_SAMPLES, formats.SURFACE_SAMPLES,
                 formats.NORMALIZATION_PARAMETERS, formats.OCCUPANCY_SAMPLES,
                 formats.PARTIAL_SCANS):
        folder = Tree(data_dir, "data root").folder(kind, dataset)
        for stale in contract.remove_stale_temporaries(folder, recursive=True):
            logger.info("removed %s, left by an interrupted run", stale)

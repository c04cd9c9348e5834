"""Preprocess a folder of meshes into a DeepSDF data tree: discovery, workers, resume, manifest."""

from __future__ import annotations

import ctypes
import json
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

from . import formats
from .errors import DiskFullError, PreprocessError
from .mesh_io import MESH_SUFFIXES
from .pipeline import PreprocessConfig, instance_seed, make_scanner, preprocess_instance

__all__ = ["MeshJob", "discover_meshes", "preprocess_dataset", "DatasetReport",
           "read_manifest", "manifest_mesh", "WORKER_DIED"]

logger = logging.getLogger(__name__)

SHAPENET_MESH = Path("models") / "model_normalized.obj"

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
    split_path: Path


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
        raise ValueError(f"mesh folder {root} does not exist")
    found: dict[tuple[str, str], Path] = {}
    problems: dict[tuple[str, str], str] = {}
    loose = [p.name for p in root.iterdir() if p.suffix.lower() in MESH_SUFFIXES]
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
                formats.check_name(name, what)
            except ValueError as error:
                problems.setdefault(key, str(error))
    if split is None:
        keys = sorted(set(found) | set(problems))
    else:
        if dataset not in split:
            raise ValueError(f"the split has no dataset {dataset!r} (it has {sorted(split)}); "
                             "pass the matching --dataset")
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
            result = job.key, record, None
        except DiskFullError:
            raise
        except PreprocessError as error:
            result = job.key, None, str(error)
        except Exception as error:  # one broken mesh must not stop a batch of thousands
            logger.debug("instance %s failed", job.key, exc_info=True)
            result = job.key, None, f"{type(error).__name__}: {error}"
    _append_journal(journal, _record(job, *result[1:]), key=job.key)
    return result


def _record(job: MeshJob, record: dict | None, error: str | None) -> dict:
    mesh = None if job.mesh_path is None else str(job.mesh_path)
    if error is None:
        return {"status": "ok", "mesh": mesh, **record}
    return {"status": "failed", "mesh": mesh, "reason": error}


def _append_journal(journal: Path, record: dict, *, key: str) -> None:
    """Append one ``{"key", "record"}`` line; one ``write`` on an ``O_APPEND`` descriptor, so
    lines of concurrent workers never interleave."""
    line = (json.dumps({"key": key, "record": record}) + "\n").encode()
    journal.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(descriptor, line)
    except OSError as error:
        if error.errno == 28:  # ENOSPC
            raise DiskFullError(f"no space left on device while writing {journal}") from error
        raise
    finally:
        os.close(descriptor)


def _replay_journal(journal: Path, records: dict) -> None:
    """Apply a journal's records (a killed run's finished instances) onto ``records``."""
    if not journal.is_file():
        return
    for number, line in enumerate(journal.read_text(errors="replace").splitlines(), 1):
        try:
            entry = json.loads(line)
            records[entry["key"]] = entry["record"]
        except (json.JSONDecodeError, KeyError, TypeError):
            logger.warning("%s line %d is unreadable (cut by a kill?); ignored", journal,
                           number)


def preprocess_dataset(mesh_dir, data_dir, dataset: str, *, config: PreprocessConfig,
                       split: dict | None = None, workers: int = 1, seed: int = 0,
                       backend: str = "pyrender", split_out=None, progress: bool = True
                       ) -> DatasetReport:
    """Preprocess every mesh of ``mesh_dir`` (or of ``split``) into ``data_dir``.

    Resumable: instances whose files all exist are skipped.  Every finished instance's record
    is appended to a journal (``data_dir/manifests/<dataset>.journal.jsonl``) by the process
    that made it, the moment its files are written, and the journal is folded into the
    manifest (``data_dir/manifests/<dataset>.json``) at the end: a killed run (driver or
    worker) keeps the records of what it finished.  Bad meshes are recorded with a one-line
    reason and do not stop the run; a worker that dies (the out-of-memory killer) fails the
    instance it was processing, and the run goes on in a fresh pool.

    Parameters
    ----------
    workers : int
        Worker processes (spawned, one scanner each); 1 runs in this process.
    seed : int
        Run seed; each instance's generator is seeded from it and the instance key, so the
        output does not depend on the worker count or order.
    split_out : path, optional
        Where to write the split of the instances that succeeded (default
        ``data_dir/splits/<dataset>.json``).

    Raises
    ------
    DiskFullError
        When the device fills up (what was written before is intact).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    formats.check_name(dataset, "dataset")
    data_dir = Path(data_dir)
    jobs = discover_meshes(mesh_dir, split=split, dataset=dataset)
    if not jobs:
        raise ValueError(f"no meshes found under {mesh_dir} (expected "
                         f"<class>/<instance>.<{'|'.join(s[1:] for s in MESH_SUFFIXES)}> "
                         "or <class>/<instance>/models/model_normalized.obj)")
    manifest_path = data_dir / "manifests" / f"{dataset}.json"
    journal = manifest_path.with_suffix(".journal.jsonl")
    split_path = Path(split_out) if split_out else data_dir / "splits" / f"{dataset}.json"
    manifest = _load_manifest(manifest_path)
    manifest.update({"dataset": dataset, "mesh_dir": str(Path(mesh_dir).resolve()),
                     "seed": seed, "backend": backend, "config": config.to_dict()})
    records = manifest.setdefault("instances", {})
    _replay_journal(journal, records)

    _remove_stale_parts(data_dir, dataset)
    pending, skipped = [], []
    for job in jobs:
        if job.problem is not None:
            pending.append((job, {}))
            continue
        outputs = formats.instance_paths(data_dir, dataset, job.class_name, job.instance,
                                         partial_scans=config.partial_scan is not None)
        if all(path.exists() for path in outputs.values()):
            skipped.append(job.key)
            records.setdefault(job.key, {"status": "ok", "mesh": str(job.mesh_path)})
        else:
            pending.append((job, outputs))

    failed: dict[str, str] = {}
    jobs_by_key = {job.key: job for job, _ in pending}
    bar = _progress(len(pending), progress)
    for key, record, error in _execute(pending, workers, seed, backend, config, journal):
        if error == WORKER_DIED:
            _append_journal(journal, _record(jobs_by_key[key], None, error), key=key)
        records[key] = _record(jobs_by_key[key], record, error)
        if error is not None:
            failed[key] = error
            bar.write(f"FAILED {key}: {error}")
        bar.update(1)
    bar.close()
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    formats.write_json(manifest_path, manifest)
    journal.unlink(missing_ok=True)  # folded into the manifest just written

    listed = {j.key for j in jobs}
    succeeded = sorted(k for k, r in records.items() if r.get("status") == "ok" and k in listed)
    split_result: dict = {dataset: {}}
    for key in succeeded:
        class_name, instance = key.split("/", 1)
        split_result[dataset].setdefault(class_name, []).append(instance)
    formats.write_split(split_path, split_result)
    _warn_quality(records, listed)
    return DatasetReport(succeeded=succeeded, failed=failed, skipped=skipped,
                         manifest_path=manifest_path, split_path=split_path)


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
    if workers == 1:
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
        for stale in formats.remove_stale_temporaries(data_dir / kind / dataset,
                                                      recursive=True):
            logger.info("removed %s, left by an interrupted run", stale)


def read_manifest(data_dir, dataset: str) -> dict:
    """The manifest ``DATA/manifests/<dataset>.json`` ({} when there is none)."""
    return _load_manifest(Path(data_dir) / "manifests" / f"{dataset}.json")


def manifest_mesh(manifest: dict, key: str) -> Path | None:
    """The source mesh the manifest records for ``<class>/<instance>``, if it still exists."""
    recorded = manifest.get("instances", {}).get(key, {}).get("mesh")
    return Path(recorded) if recorded and Path(recorded).is_file() else None


def _load_manifest(path: Path) -> dict:
    if path.exists():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            logger.warning("manifest %s is unreadable; starting a new one", path)
    return {}


class _NoBar:
    def update(self, n):
        pass

    def write(self, message):
        logger.warning(message)

    def close(self):
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="mesh", desc="preprocess", dynamic_ncols=True,
                disable=os.environ.get("DEEPSDF_NO_PROGRESS") == "1")

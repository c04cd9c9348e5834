"""Preprocess a folder of meshes into a DeepSDF data tree: discovery, workers, resume, manifest."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from . import formats
from .errors import PreprocessError
from .mesh_io import MESH_SUFFIXES
from .pipeline import PreprocessConfig, instance_seed, make_scanner, preprocess_instance

__all__ = ["MeshJob", "discover_meshes", "preprocess_dataset", "DatasetReport"]

logger = logging.getLogger(__name__)

SHAPENET_MESH = Path("models") / "model_normalized.obj"


@dataclass(frozen=True)
class MeshJob:
    """One instance to preprocess."""

    class_name: str
    instance: str
    mesh_path: Path | None  # None when a split names an instance with no mesh

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
    list of MeshJob, sorted by key.
    """
    root = Path(mesh_dir)
    if not root.is_dir():
        raise ValueError(f"mesh folder {root} does not exist")
    found: dict[tuple[str, str], Path] = {}
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for entry in sorted(class_dir.iterdir()):
            if entry.is_file() and entry.suffix.lower() in MESH_SUFFIXES:
                found.setdefault((class_dir.name, entry.stem), entry)
            elif entry.is_dir() and (entry / SHAPENET_MESH).is_file():
                found.setdefault((class_dir.name, entry.name), entry / SHAPENET_MESH)
    if split is None:
        return [MeshJob(c, i, p) for (c, i), p in sorted(found.items())]
    if dataset not in split:
        raise ValueError(f"the split has no dataset {dataset!r} (it has {sorted(split)}); "
                         "pass the matching --dataset")
    jobs = [MeshJob(c, i, found.get((c, i))) for c, instances in split[dataset].items()
            for i in instances]
    return sorted(jobs, key=lambda job: job.key)


# Worker-process state: one scanner (one OpenGL context) per process, made by the initializer.
_WORKER: dict = {}


def _init_worker(backend: str, config: PreprocessConfig) -> None:
    _WORKER["scanner"] = make_scanner(backend, config.rig)
    _WORKER["config"] = config


def _run_job(job: MeshJob, outputs: dict, seed: int) -> tuple[str, dict | None, str | None]:
    """Returns (key, record, error); never raises for a bad mesh."""
    if job.mesh_path is None:
        return job.key, None, "listed in the split but no mesh was found"
    try:
        record = preprocess_instance(job.mesh_path, outputs, _WORKER["config"],
                                     _WORKER["scanner"], instance_seed(job.key, seed))
    except PreprocessError as error:
        return job.key, None, str(error)
    except Exception as error:  # one broken mesh must not stop a batch of thousands
        logger.debug("instance %s failed", job.key, exc_info=True)
        return job.key, None, f"{type(error).__name__}: {error}"
    return job.key, record, None


def preprocess_dataset(mesh_dir, data_dir, dataset: str, *, config: PreprocessConfig,
                       split: dict | None = None, workers: int = 1, seed: int = 0,
                       backend: str = "pyrender", split_out=None, progress: bool = True
                       ) -> DatasetReport:
    """Preprocess every mesh of ``mesh_dir`` (or of ``split``) into ``data_dir``.

    Resumable: instances whose files all exist are skipped.  The manifest
    (``data_dir/manifests/<dataset>.json``) is rewritten atomically after every instance, so a
    killed run keeps the records of what it finished.  Bad meshes are recorded with a
    one-line reason and do not stop the run.

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
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    data_dir = Path(data_dir)
    jobs = discover_meshes(mesh_dir, split=split, dataset=dataset)
    if not jobs:
        raise ValueError(f"no meshes found under {mesh_dir} (expected <class>/<instance>.obj "
                         "or <class>/<instance>/models/model_normalized.obj)")
    manifest_path = data_dir / "manifests" / f"{dataset}.json"
    split_path = Path(split_out) if split_out else data_dir / "splits" / f"{dataset}.json"
    manifest = _load_manifest(manifest_path)
    manifest.update({"dataset": dataset, "mesh_dir": str(Path(mesh_dir).resolve()),
                     "seed": seed, "backend": backend, "config": config.to_dict()})
    records = manifest.setdefault("instances", {})

    _remove_stale_parts(data_dir, dataset)
    pending, skipped = [], []
    for job in jobs:
        outputs = formats.instance_paths(data_dir, dataset, job.class_name, job.instance,
                                         partial_scans=config.partial_scan is not None)
        if all(path.exists() for path in outputs.values()):
            skipped.append(job.key)
            records.setdefault(job.key, {"status": "ok", "mesh": str(job.mesh_path)})
        else:
            pending.append((job, outputs))

    failed: dict[str, str] = {}
    paths = {job.key: job.mesh_path for job, _ in pending}
    bar = _progress(len(pending), progress)
    for key, record, error in _execute(pending, workers, seed, backend, config):
        if error is None:
            records[key] = {"status": "ok", "mesh": str(paths[key]), **record}
        else:
            failed[key] = error
            records[key] = {"status": "failed", "mesh": str(paths[key]), "reason": error}
            bar.write(f"FAILED {key}: {error}")
        formats.write_json(manifest_path, manifest)
        bar.update(1)
    bar.close()
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    formats.write_json(manifest_path, manifest)

    succeeded = sorted(k for k, r in records.items()
                       if r.get("status") == "ok" and k in {j.key for j in jobs})
    split_result: dict = {dataset: {}}
    for key in succeeded:
        class_name, instance = key.split("/", 1)
        split_result[dataset].setdefault(class_name, []).append(instance)
    formats.write_split(split_path, split_result)
    return DatasetReport(succeeded=succeeded, failed=failed, skipped=skipped,
                         manifest_path=manifest_path, split_path=split_path)


def _execute(pending, workers, seed, backend, config):
    """Yield job results, in this process (workers == 1) or in spawned worker processes."""
    if not pending:
        return
    if workers == 1:
        _init_worker(backend, config)
        try:
            for job, outputs in pending:
                yield _run_job(job, outputs, seed)
        finally:
            _WORKER.pop("scanner").close()
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=context,
                             initializer=_init_worker, initargs=(backend, config)) as pool:
        futures = [pool.submit(_run_job, job, outputs, seed) for job, outputs in pending]
        for future in as_completed(futures):
            yield future.result()


def _remove_stale_parts(data_dir: Path, dataset: str) -> None:
    """Delete temporary ``*.part`` files a killed run left (never a file under a final name)."""
    for kind in (formats.SDF_SAMPLES, formats.SURFACE_SAMPLES,
                 formats.NORMALIZATION_PARAMETERS, formats.OCCUPANCY_SAMPLES,
                 formats.PARTIAL_SCANS):
        for stale in (data_dir / kind / dataset).rglob("*.part"):
            logger.info("removing %s, left by an interrupted run", stale)
            stale.unlink()


def read_manifest(data_dir, dataset: str) -> dict:
    """The manifest ``DATA/manifests/<dataset>.json`` ({} when there is none)."""
    return _load_manifest(Path(data_dir) / "manifests" / f"{dataset}.json")


def manifest_mesh(manifest: dict, key: str) -> Path | None:
    """The source mesh the manifest records for ``<class>/<instance>``, if it still exists."""
    recorded = manifest.get("instances", {}).get(key, {}).get("mesh")
    return Path(recorded) if recorded and Path(recorded).is_file() else None


def _load_manifest(path: Path) -> dict:
    import json

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

"""A folder of scanned objects -> the data tree a folder of meshes would give
(``deepsdf preprocess-scans``).

Per instance (:mod:`.scan_io` reads the views, :mod:`.scan_sdf` signs the samples):
``NormalizationParameters`` from the fused cloud, ``SurfaceSamples`` from the fused points
(original frame, with their sensor-facing normals), ``PartialScans`` the first view as it was
measured (so ``deepsdf complete --virtual-scan`` completes from a real view), and
``SdfSamples`` last.  No ``OccupancySamples``: without a closed surface there is no inside to
label uniformly (evaluation leaves the IoU column empty).

The manifest, journals, split files and provenance are the mesh preprocessor's: a rerun skips
an instance whose files match their record, whose settings are the same and whose scan files
are unchanged; a bad instance fails with a one-line reason and the others go on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from . import contract, formats
from .driver import DatasetReport, merge_dataset
from .errors import DiskFullError, InputError, PreprocessError
from .manifest import active_run, append_record, current_records, journal_path
from .paths import Tree
from .pipeline import instance_seed
from .pinhole import to_opencv_pose
from .progress import progress_bar
from .provenance import fingerprint, fingerprints, stale_reason
from .contract import printable
from .scan_io import ScanJob, discover_scans, read_views
from .scan_sdf import ScanSamplingConfig, sample_views
from .splits import check_split_out

__all__ = ["preprocess_scans", "scans_identity"]

logger = logging.getLogger(__name__)


def scans_identity(job: ScanJob) -> dict:
    """What a record of an instance made from scans keeps of them: the folder and a digest
    of its files' names, sizes and contents (a changed view redoes the instance; a copied
    folder is the same scans)."""
    files = [(p.name, record["size"], record["sha256"])
             for p in job.files() for record in [fingerprint(p)]]
    digest = hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]
    return {"path": str(job.folder.resolve()), "files": len(files), "digest": digest}


def _settings(config: ScanSamplingConfig, seed: int) -> str:
    payload = json.dumps({"scans": config.to_dict(), "seed": seed}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _preprocess_instance(job: ScanJob, outputs: dict, config: ScanSamplingConfig,
                         seed: int) -> dict:
    start = time.perf_counter()
    views = read_views(job.folder)
    samples = sample_views(views, config, np.random.default_rng(seed))
    formats.write_normalization(outputs[formats.NORMALIZATION_PARAMETERS], samples.offset,
                                samples.scale)
    formats.write_surface_samples(outputs[formats.SURFACE_SAMPLES], samples.surface_points,
                                  samples.surface_normals)
    first = views[0]
    formats.write_partial_scan(outputs[formats.PARTIAL_SCANS],
                               depth=first.depth.astype(np.float32), K=first.camera.K,
                               pose=to_opencv_pose(first.camera.pose))
    positive, negative = formats.write_sdf_samples(outputs[formats.SDF_SAMPLES],
                                                   samples.points, samples.sdf)
    stats = dict(samples.stats, positive=positive, negative=negative)
    stats["seconds"] = round(time.perf_counter() - start, 3)
    stats["outputs"] = fingerprints(outputs)
    return stats


def _outputs(data_dir: Path, dataset: str, job: ScanJob) -> dict:
    outputs = formats.instance_outputs(data_dir, formats.InstanceKey(dataset, job.class_name,
                                                                     job.instance),
                                       partial_scans=True)
    outputs.pop(formats.OCCUPANCY_SAMPLES, None)
    return outputs


def preprocess_scans(scan_dir, data_dir, dataset: str, *,
                     config: ScanSamplingConfig = ScanSamplingConfig(),
                     split: dict | None = None, seed: int = 0, split_out=None,
                     progress: bool = True, split_source=None) -> DatasetReport:
    """Preprocess every scanned instance of ``scan_dir`` (or of ``split``) into ``data_dir``.

    ``split_out`` (default ``data_dir/splits/<dataset>.json``) is checked before any work: an
    existing file there must be a split file and not ``split_source``, the file ``split``
    was read from (:func:`.splits.check_split_out`).

    Raises
    ------
    DiskFullError
        When the device fills up (what was written before is intact).
    """
    contract.check_name(dataset, "dataset")
    data_dir = Tree(data_dir, "data root").root
    if split_out is None:
        formats.split_path(data_dir, dataset)
    else:
        check_split_out(split_out, source=split_source)
    scan_root = Path(scan_dir).resolve()
    if scan_root == data_dir.resolve() or scan_root in data_dir.resolve().parents:
        raise InputError(f"the data root {data_dir} lies inside the scan folder {scan_dir}: "
                         "its folders would be read as scans; choose another")
    jobs = discover_scans(scan_dir, split=split, dataset=dataset)
    if not jobs:
        raise InputError(f"{scan_dir} holds no <class>/<instance>/ scan folders")
    journal = journal_path(data_dir, dataset)
    settings = _settings(config, seed)
    run_fields = {"dataset": dataset, "scan_dir": str(Path(scan_dir).resolve()),
                  "seed": seed, "scans": config.to_dict()}
    failed = {}
    skipped = []
    with active_run(data_dir, dataset):
        recorded = current_records(data_dir, dataset)
        bar = progress_bar(len(jobs), desc="preprocess-scans", unit="object",
                           enabled=progress, log=logger)
        for job in jobs:
            outputs = _outputs(data_dir, dataset, job) if job.problem is None else {}
            record = recorded.get(job.key)
            if job.problem is None and record is not None and record.get("status") == "ok" \
                    and stale_reason(record, outputs, made_by={
                        "settings": settings, "source": scans_identity(job)}) is None:
                skipped.append(job.key)
                bar.update(1)
                continue
            try:
                if job.problem is not None:
                    raise PreprocessError(job.problem)
                stats = _preprocess_instance(job, outputs, config,
                                             instance_seed(job.key, seed))
                entry = {"status": "ok", "mesh": None, "scans": str(job.folder), **stats,
                         "settings": settings, "source": scans_identity(job)}
            except DiskFullError:
                raise
            except Exception as error:  # one bad object must not stop the others
                known = isinstance(error, (InputError, PreprocessError))
                if not known:
                    logger.debug("instance %s failed", job.key, exc_info=True)
                reason = (str(error) if known else f"{type(error).__name__}: {error}")
                entry = {"status": "failed", "mesh": None, "scans": str(job.folder),
                         "reason": (reason.splitlines() or [type(error).__name__])[0]}
                failed[job.key] = entry["reason"]
                bar.write(f"FAILED {printable(job.key)}: {entry['reason']}")
            append_record(journal, job.key, entry)
            bar.update(1)
        bar.close()
        report = merge_dataset(data_dir, dataset, {job.key for job in jobs},
                               run_fields=run_fields, split_out=split_out,
                               split_source=split_source)
    return DatasetReport(succeeded=report.succeeded, failed=failed, skipped=skipped,
                         manifest_path=report.manifest_path, split_path=report.split_path)

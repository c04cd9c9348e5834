"""Shape completion: fit a code to a partial observation, extract the whole shape.

:func:`complete_observations` fits codes (decoder frozen, batched, the reconstruction solvers
of :mod:`deepsdf.reconstruct`) to model-frame observations (:mod:`deepsdf.observations`).
:func:`complete_split` runs the paper's completion experiment on a dataset: every shape of a
split completed from one depth view, written in its original frame, and a report of the
completions against the full shapes beside the retrieval baseline.

Output of :func:`complete_split` under ``OUT``::

    OUT/Meshes/<dataset>/<class>/<instance>.ply   completed mesh, original frame
    OUT/Codes/<dataset>/<class>/<instance>.pth    (1, d) fitted code
    OUT/completion.csv                            one row per shape (metrics, baseline)
    OUT/summary.json                              mean / median of every metric
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepsdf_preprocess import formats
from deepsdf_preprocess.normalize import to_normalized, to_original
from deepsdf_preprocess.pinhole import PinholeCamera

from .evaluate import summarize, write_table
from .inference import load_trained, write_code, write_mesh
from .latents import split_instances
from .mesh import NoSurfaceError, code_mesh
from .metrics import (CHAMFER_POINTS, chamfer, chamfer_l1, chamfer_unseen, f_score,
                      surface_points)
from .observations import (ConstraintConfig, Observation, Similarity, observe_depth,
                           sdf_constraints)
from .reconstruct import GAUSS_NEWTON, Reconstruction, SolverConfig, reconstruct_codes

__all__ = ["complete_observations", "complete_scans", "complete_split", "scan_observation",
           "CompletionReport", "COMPLETION_METRICS", "UNSEEN_RADIUS"]

logger = logging.getLogger(__name__)

COMPLETION_METRICS = ("chamfer", "chamfer_l1", "f_score", "chamfer_unseen")

#: Ground-truth points farther than this (normalized units) from every observed point count
#: as unseen in ``chamfer_unseen``.
UNSEEN_RADIUS = 0.03


def complete_observations(decoder, observations, *, clamp: float,
                          latent_size: int | None = None,
                          solver: SolverConfig = GAUSS_NEWTON,
                          constraints: ConstraintConfig = ConstraintConfig(), seeds=None,
                          device="cpu") -> Reconstruction:
    """Fit one code per model-frame :class:`~deepsdf.observations.Observation`.

    ``seeds`` (one int per observation; default its position) key each shape's constraint
    sampling, so a shape's result does not depend on its batch.
    """
    seeds = range(len(observations)) if seeds is None else seeds
    rows = [sdf_constraints(o, constraints, rng=np.random.default_rng([solver.seed, s]))
            for o, s in zip(observations, seeds)]
    return reconstruct_codes(decoder, rows, range(len(rows)), solver, clamp=clamp,
                             latent_size=latent_size, device=device)


def scan_observation(scan: dict) -> Observation:
    """The world-frame observation of a ``PartialScans``-style dict (depth, K, pose)."""
    depth = np.asarray(scan["depth"])
    camera = PinholeCamera.create(scan["K"], scan["pose"], depth.shape[1], depth.shape[0],
                                  convention=scan.get("convention", "opencv"))
    return observe_depth(depth, camera)


def complete_scans(experiment_dir, observation: Observation, similarity: Similarity, *,
                   out_dir, solver: SolverConfig = GAUSS_NEWTON,
                   constraints: ConstraintConfig = ConstraintConfig(), checkpoint="latest",
                   resolution: int = 256, truth=None, device="cpu") -> dict:
    """Complete one shape from a world-frame observation (real depth images, a point cloud).

    ``similarity`` maps the world frame to the model frame.  Writes ``OUT/code.pth``,
    ``OUT/completed_normalized.ply`` (model frame), ``OUT/completed.ply`` (world frame) and,
    when ``truth`` (a mesh file in the world frame) is given, ``OUT/metrics.json``.

    Returns a summary dict (paths, observed point count, metrics if any).
    """
    decoder, config, _ = load_trained(experiment_dir, checkpoint, device=device)
    if len(observation) == 0:
        raise ValueError("no usable observed point (check the depth scale, K and the pose)")
    model = observation.transformed(similarity)
    outside = np.linalg.norm(model.points, axis=1) > 1.0
    if outside.mean() > 0.5:
        logger.warning("%.0f%% of the observed points lie outside the model's unit sphere: "
                       "is the world -> model transform right?", 100 * outside.mean())
    result = complete_observations(decoder, [model], clamp=config.trained_clamp,
                                   latent_size=config.decoder.latent_size, solver=solver,
                                   constraints=constraints, device=device)
    out_dir = Path(out_dir)
    code = result.codes[0]
    write_code(out_dir / "code.pth", code)
    mesh = code_mesh(decoder, code, resolution, clamp=config.trained_clamp)
    write_mesh(out_dir / "completed_normalized.ply", mesh)
    mesh.vertices = similarity.inverse_points(mesh.vertices)
    write_mesh(out_dir / "completed.ply", mesh)
    summary = {"mesh": str(out_dir / "completed.ply"), "observed_points": len(observation),
               "loss": float(result.loss[0])}
    if truth is not None:
        import trimesh

        reference = trimesh.load(truth, force="mesh", process=False)
        summary["metrics"] = _metrics(surface_points(mesh, CHAMFER_POINTS)[0],
                                      surface_points(reference, CHAMFER_POINTS)[0],
                                      observation.points, similarity.scale)
        formats.write_json(out_dir / "metrics.json", summary)
    return summary


class _ScanSource:
    """Finds the single-view scan of an instance: its ``PartialScans`` file, or a scan rendered
    now from its source mesh (``meshes_dir``, else the path the data's manifest records), with
    the seed and settings the preprocessor would have used."""

    def __init__(self, data_dir: Path, dataset: str, meshes_dir=None):
        from deepsdf_preprocess.manifest import read_manifest

        self.data_dir, self.dataset = Path(data_dir), dataset
        self.manifest = read_manifest(self.data_dir, dataset)
        self.meshes = None
        if meshes_dir is not None:
            from deepsdf_preprocess.driver import discover_meshes

            self.meshes = {job.key: job.mesh_path for job in discover_meshes(meshes_dir)}

    def __call__(self, key: str, offset, scale) -> dict:
        path = formats.key_paths(self.data_dir, key)[formats.PARTIAL_SCANS]
        if path.is_file() and self.meshes is None:
            return formats.read_partial_scan(path)
        from deepsdf_preprocess.manifest import manifest_mesh
        from deepsdf_preprocess.mesh_io import load_mesh
        from deepsdf_preprocess.partial_scan import VirtualScanConfig, instance_scan
        from deepsdf_preprocess.pipeline import instance_seed

        local = key.split("/", 1)[1]  # class/instance, the preprocessor's key
        mesh_path = (self.meshes.get(local) if self.meshes is not None
                     else manifest_mesh(self.manifest, local))
        if mesh_path is None:
            raise ValueError(f"{key}: no PartialScans file and no source mesh to scan (rerun "
                             "`deepsdf preprocess --partial-scans`, or pass --meshes DIR)")
        settings = (self.manifest.get("config") or {}).get("partial_scan")
        config = VirtualScanConfig(**{**settings, "elevation": tuple(settings["elevation"])}) \
            if settings else VirtualScanConfig()
        seed = instance_seed(local, int(self.manifest.get("seed", 0)))
        return instance_scan(load_mesh(mesh_path), offset, scale, seed, config)


@dataclass
class CompletionReport:
    rows: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    no_surface: list = field(default_factory=list)


def _metrics(points, truth, observed, scale) -> dict:
    """Completion metrics in the original frame (``scale``: the shape's normalization)."""
    side = float(np.max(truth.max(axis=0) - truth.min(axis=0)))
    return {"chamfer": chamfer(points, truth), "chamfer_l1": chamfer_l1(points, truth),
            "f_score": f_score(points, truth, 0.01 * side),
            "chamfer_unseen": chamfer_unseen(points, truth, observed, UNSEEN_RADIUS / scale)}


def _training_clouds(data_dir, train_ids, points: int = 4000):
    """Each training shape's SurfaceSamples in its normalized frame (subsampled)."""
    clouds = []
    for index, key in enumerate(train_ids):
        paths = formats.key_paths(data_dir, key)
        cloud = formats.read_surface_samples(paths[formats.SURFACE_SAMPLES])["points"]
        rng = np.random.default_rng([0, index])
        cloud = cloud[rng.choice(len(cloud), min(points, len(cloud)), replace=False)]
        clouds.append(to_normalized(cloud, *formats.read_normalization(
            paths[formats.NORMALIZATION_PARAMETERS])))
    return clouds


def complete_split(experiment_dir, split: dict, *, data_dir, out_dir, meshes_dir=None,
                   solver: SolverConfig = GAUSS_NEWTON,
                   constraints: ConstraintConfig = ConstraintConfig(), checkpoint="latest",
                   resolution: int = 256, batch: int = 16, retrieval: bool = True,
                   device="cpu", progress: bool = True) -> CompletionReport:
    """Complete every shape of ``split`` from its single-view scan and evaluate.

    Each shape's scan is mapped to the model frame with its ``NormalizationParameters``; the
    completed mesh is mapped back to the original frame and compared with the shape's
    ``SurfaceSamples`` (Chamfer as the paper, Chamfer-L1, F-score at 1% of the bounding-box
    side, and ``chamfer_unseen``: Chamfer on what the scan did not see).  With ``retrieval``,
    the training shape nearest to the observed points (normalized frame) answers each shape
    too, with the same metrics.
    """
    from deepsdf_preprocess.pipeline import instance_seed

    decoder, config, payload = load_trained(experiment_dir, checkpoint, device=device)
    out_dir, data_dir = Path(out_dir), Path(data_dir)
    keys = split_instances(split)
    if not keys:
        raise ValueError("the split lists no instance")
    sources = {}
    report = CompletionReport()
    train_clouds = None
    if retrieval:
        train_clouds = _training_clouds(data_dir, payload["instance_ids"])
    from deepsdf_preprocess.progress import progress_bar

    bar = progress_bar(len(keys), desc="complete", unit="shape", enabled=progress, log=logger)
    for start in range(0, len(keys), batch):
        chunk = keys[start:start + batch]
        observed, normalizations = [], []
        for key in chunk:
            dataset = key.split("/", 1)[0]
            if dataset not in sources:
                sources[dataset] = _ScanSource(data_dir, dataset, meshes_dir)
            paths = formats.key_paths(data_dir, key)
            offset, scale = formats.read_normalization(paths[formats.NORMALIZATION_PARAMETERS])
            normalizations.append((offset, scale))
            world = scan_observation(sources[dataset](key, offset, scale))
            observed.append(world.transformed(Similarity.from_normalization(offset, scale)))
        result = complete_observations(
            decoder, observed, clamp=config.trained_clamp, latent_size=config.decoder.latent_size,
            solver=solver, constraints=constraints,
            seeds=[instance_seed(key, solver.seed) for key in chunk], device=device)
        for row_index, key in enumerate(chunk):
            offset, scale = normalizations[row_index]
            row = _complete_one(key, result.codes[row_index], observed[row_index], offset,
                                scale, decoder, data_dir, out_dir, resolution, train_clouds,
                                payload["instance_ids"], report, clamp=config.trained_clamp)
            if row is not None:
                report.rows.append(row)
            bar.update(1)
    bar.close()
    report.summary = _write_report(out_dir, report, retrieval)
    return report


def _complete_one(key, code, observed, offset, scale, decoder, data_dir, out_dir, resolution,
                  train_clouds, train_ids, report, *, clamp: float):
    dataset, class_name, instance = formats.split_key(key)
    tail = Path(dataset) / class_name
    write_code(out_dir / "Codes" / tail / f"{instance}.pth", code)
    try:
        mesh = code_mesh(decoder, code, resolution, clamp=clamp)
    except NoSurfaceError as error:
        logger.warning("%s: the completed code has no surface (%s)", key, error)
        report.no_surface.append(key)
        return None
    mesh.vertices = to_original(mesh.vertices, offset, scale)
    write_mesh(out_dir / "Meshes" / tail / f"{instance}.ply", mesh)
    truth = formats.read_surface_samples(
        formats.key_paths(data_dir, key)[formats.SURFACE_SAMPLES])["points"]
    seen = to_original(observed.points, offset, scale)
    points = surface_points(mesh, CHAMFER_POINTS)[0]
    row = {"instance": key, "observed_points": len(observed), **_metrics(points, truth, seen,
                                                                          scale)}
    if train_clouds is not None:
        from .retrieval import nearest_by_observation

        index = nearest_by_observation(observed.points, train_clouds)
        answer = to_original(train_clouds[index], offset, scale)
        row["retrieval_instance"] = train_ids[index]
        row.update({f"retrieval_{k}": v
                    for k, v in _metrics(answer, truth, seen, scale).items()})
    return row


def _write_report(out_dir: Path, report: CompletionReport, retrieval: bool) -> dict:
    columns = ["instance", "observed_points", *COMPLETION_METRICS]
    if retrieval:
        columns += ["retrieval_instance"] + [f"retrieval_{k}" for k in COMPLETION_METRICS]
    write_table(out_dir / "completion.csv", report.rows, columns)
    summary = {"shapes": len(report.rows), "no_surface": report.no_surface}
    for prefix, section in [("", "completion")] + ([("retrieval_", "retrieval")]
                                                   if retrieval else []):
        summary[section] = summarize(report.rows, COMPLETION_METRICS, prefix)
    if retrieval and report.rows:
        summary["beats_retrieval_on_mean_chamfer"] = bool(
            summary["completion"]["chamfer"]["mean"] < summary["retrieval"]["chamfer"]["mean"])
    formats.write_json(out_dir / "summary.json", summary)
    return summary

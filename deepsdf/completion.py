"""Shape completion: fit a code to a partial observation, extract the whole shape.

:func:`complete_observations` fits codes (decoder frozen, batched, the reconstruction solvers
of :mod:`deepsdf.reconstruct`) to model-frame observations (:mod:`deepsdf.observations`).
:func:`complete_split` runs the paper's completion experiment on a dataset: every shape of a
split completed from one depth view, written in its original frame, and a report of the
completions against the full shapes beside the retrieval baseline.

Output of :func:`complete_split` under ``OUT`` (its layout: :class:`deepsdf.outputs.CompletionFolder`)::

    OUT/Meshes/<dataset>/<class>/<instance>.ply   completed mesh, original frame
    OUT/Codes/<dataset>/<class>/<instance>.pth    (1, d) fitted code
    OUT/completion.csv                            one row per shape (metrics, baseline)
    OUT/summary.json                              mean / median of every metric
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from deepsdf_preprocess import contract, provenance
from deepsdf_preprocess.formats import DataTree, InstanceFiles
from deepsdf_preprocess.normalize import to_normalized, to_original
from deepsdf_preprocess.pinhole import PinholeCamera
from deepsdf_preprocess.errors import InputError

from .device import module_device
from .experiment import (Experiment, summarize, write_code, write_decoder, write_mesh,
                         write_table)
from .latents import split_instances
from .mesh import NoSurfaceError, check_grid_memory, code_mesh
from .metrics import (CHAMFER_POINTS, COMPLETION_METRICS, chamfer_unseen, surface_metrics,
                      surface_points, verdict)
from .outputs import CompletionFolder, ScanCompletionFolder
from .observations import (ConstraintConfig, Observation, Similarity, observe_depth,
                           sdf_constraints)
from .pruning import drop_seen_empty_parts
from .reconstruct import GAUSS_NEWTON, RankedFits, SolverConfig, fit_from_starts
from .settings import COMPLETE_BATCH, MESH_RESOLUTION, PRUNE, SINGLE_START, MultiStart

__all__ = ["complete_observations", "complete_scans", "complete_split", "scan_observation",
           "first_surface", "completion_metrics", "Completion", "CompletionReport",
           "MultiStart", "SINGLE_START", "COMPLETION_METRICS", "UNSEEN_RADIUS"]

logger = logging.getLogger(__name__)


#: Ground-truth points farther than this (normalized units) from every observed point count
#: as unseen in ``chamfer_unseen``.
UNSEEN_RADIUS = 0.03


#: Completion's fits from several starts (the class was born here; it is the reconstruction's
#: :class:`~deepsdf.reconstruct.RankedFits`).
Completion = RankedFits


def constraint_rows(observations, constraints: ConstraintConfig, seed: int, seeds) -> list:
    """Each observation's constraint rows (n, 5), drawn from a generator keyed (``seed``,
    its entry of ``seeds``; default its position): what its fit, and its refinement, read."""
    seeds = list(range(len(observations)) if seeds is None else seeds)
    return [sdf_constraints(o, constraints, rng=np.random.default_rng([seed, s]))
            for o, s in zip(observations, seeds)]


def _refined(decoder, rows, code, refine, config, resolution: int, paths: dict):
    """Refine ``decoder`` and ``code`` on one shape's constraint ``rows``; write its code and
    decoder to ``paths``; its normalized-frame mesh, or None (with a warning) when the refined
    field has no surface."""
    from .refine import refine_shape

    refined = refine_shape(decoder, [np.asarray(rows, dtype=np.float32)], 0,
                           code.to(module_device(decoder)), refine, clamp=config.clamp)
    write_code(paths["code"], refined.code)
    write_decoder(paths["decoder"], refined.decoder)
    try:
        return code_mesh(refined.decoder, refined.code, resolution, clamp=config.trained_clamp)
    except NoSurfaceError as error:
        logger.warning("the refined field has no surface (%s): only the latent result is "
                       "written", error)
        return None


def complete_observations(decoder, observations, *, clamp: float,
                          latent_size: int | None = None,
                          solver: SolverConfig = GAUSS_NEWTON,
                          constraints: ConstraintConfig = ConstraintConfig(), seeds=None,
                          starts: MultiStart = MultiStart(), train_codes=None,
                          device=None) -> Completion:
    """Fit codes to model-frame :class:`~deepsdf.observations.Observation` s from several
    starts each (:class:`MultiStart`), ranked by their data term.

    ``seeds`` (one int per observation; default its position) key each shape's constraint
    sampling and random starts, so a shape's result does not depend on its batch.
    ``train_codes`` (n, d): the trained code table, for the nearest and mean starts.
    """
    seeds = list(range(len(observations)) if seeds is None else seeds)
    rows = constraint_rows(observations, constraints, solver.seed, seeds)
    return fit_from_starts(decoder, rows, range(len(rows)), solver, clamp=clamp,
                           starts=starts, train_codes=train_codes,
                           latent_size=latent_size or decoder.config.latent_size, seeds=seeds,
                           device=device)


def _pruned(mesh, observation: Observation, prune, name: str):
    """``mesh`` (model frame) without the pieces ``observation`` saw as empty space."""
    pruned = drop_seen_empty_parts(mesh, observation, prune)
    if pruned.kept_all:
        logger.warning("%s: most of the completed surface lies in what the scan saw as empty "
                       "space (mesh kept whole): is the world -> model transform right?", name)
    return pruned


def first_surface(decoder, completion: Completion, index: int, resolution: int, *,
                  clamp: float):
    """``(mesh, rank)`` of shape ``index``'s best-ranked fit whose SDF has a surface: the
    fallback when the winning code's decoded field never crosses zero.

    Raises
    ------
    NoSurfaceError
        When no fit of the shape has a surface (then every start failed).
    """
    failures = []
    for rank, code in enumerate(completion.ranked[index]):
        try:
            return code_mesh(decoder, code, resolution, clamp=clamp), rank
        except NoSurfaceError as error:
            failures.append(str(error))
    raise NoSurfaceError(f"none of the {len(failures)} fits has a surface ({failures[0]})")


def scan_observation(scan: dict) -> Observation:
    """The world-frame observation of a ``PartialScans``-style dict (depth, K, pose)."""
    depth = np.asarray(scan["depth"])
    camera = PinholeCamera.create(scan["K"], scan["pose"], depth.shape[1], depth.shape[0],
                                  convention=scan.get("convention", "opencv"))
    return observe_depth(depth, camera)


def complete_scans(experiment, observation: Observation, similarity: Similarity, *,
                   out_dir, solver: SolverConfig = GAUSS_NEWTON,
                   constraints: ConstraintConfig = ConstraintConfig(),
                   starts: MultiStart = MultiStart(), checkpoint=None,
                   resolution: int = MESH_RESOLUTION, truth=None, device=None,
                   refine=None, prune=PRUNE) -> dict:
    """Complete one shape from a world-frame observation (real depth images, a point cloud).

    ``similarity`` maps the world frame to the model frame.  Writes ``OUT/code.pth``,
    ``OUT/completed_normalized.ply`` (model frame), ``OUT/completed.ply`` (world frame) and,
    when ``truth`` (a mesh file in the world frame) is given, ``OUT/metrics.json``.

    With ``refine`` (a :class:`~deepsdf.settings.RefineConfig`), the refined result
    (:mod:`deepsdf.refine`) is written beside, under ``OUT/Refined/``, and its metrics are
    ``refined_metrics``.  ``prune``: as :func:`complete_split` (the pieces in what the
    observation saw as empty space are dropped; None keeps every piece).

    Returns a summary dict (paths, observed point count, metrics if any).
    """
    check_grid_memory(resolution)
    reference = None if truth is None else _truth_mesh(truth)
    out = ScanCompletionFolder(out_dir)
    out.start_run(with_metrics=truth is not None)  # every output path checked before the fit
    experiment = Experiment.of(experiment, checkpoint=checkpoint, device=device)
    decoder, config = experiment.model.decoder, experiment.config
    if len(observation) == 0:
        raise InputError("no usable observed point (check the depth scale, K and the pose)")
    model = observation.transformed(similarity)
    outside = np.linalg.norm(model.points, axis=1) > 1.0
    if outside.mean() > 0.5:
        logger.warning("%.0f%% of the observed points lie outside the model's unit sphere: "
                       "is the world -> model transform right?", 100 * outside.mean())
    result = complete_observations(decoder, [model], clamp=config.clamp,
                                   solver=solver, constraints=constraints, starts=starts,
                                   train_codes=experiment.model.codes, device=experiment.device)
    mesh, rank = first_surface(decoder, result, 0, resolution, clamp=config.trained_clamp)
    pruned = _pruned(mesh, model, prune, "the completion")
    mesh = pruned.mesh
    code = result.ranked[0, rank]
    write_code(out.code, code)
    write_mesh(out.normalized_mesh, mesh)
    mesh.vertices = similarity.inverse_points(mesh.vertices)
    write_mesh(out.mesh, mesh)
    summary = {"mesh": str(out.mesh), "observed_points": len(observation),
               "loss": float(result.data[0, rank]), "start": result.start_kind[0][rank],
               "fallback_rank": rank, "dropped_parts": pruned.dropped}
    refined = None
    if refine is not None:
        rows = constraint_rows([model], constraints, solver.seed, None)[0]
        refined = _refined(decoder, rows, code, refine, config, resolution, out.refined)
        if refined is not None:
            refined = _pruned(refined, model, prune, "the refined completion").mesh
            write_mesh(out.refined["normalized_mesh"], refined)
            refined.vertices = similarity.inverse_points(refined.vertices)
            write_mesh(out.refined["mesh"], refined)
            summary["refined_mesh"] = str(out.refined["mesh"])
    if reference is not None:
        truth_points = surface_points(reference, CHAMFER_POINTS)[0]
        summary["metrics"] = completion_metrics(surface_points(mesh, CHAMFER_POINTS)[0],
                                                truth_points, observation.points,
                                                similarity.scale)
        if refined is not None:
            summary["refined_metrics"] = completion_metrics(
                surface_points(refined, CHAMFER_POINTS)[0], truth_points, observation.points,
                similarity.scale)
        contract.write_json(out.metrics, summary)
    return summary


def _truth_mesh(path):
    """The true mesh of a completion (world frame), read through the mesh door; one line
    naming the file when it is missing, a folder or not a mesh."""
    from deepsdf_preprocess.errors import MeshError
    from deepsdf_preprocess.mesh_io import load_mesh

    try:
        return load_mesh(path)
    except MeshError as error:
        raise InputError(f"the true mesh {path}: {error}") from None


class _ScanSource:
    """Finds the single-view scan of an instance: its ``PartialScans`` file, or a scan rendered
    now from its source mesh (``meshes_dir``, else the path the data's manifest records), with
    the seed and settings the preprocessor would have used.  ``view > 0`` renders another
    seeded view (seed ``instance_seed + view``) from the source mesh."""

    def __init__(self, data: DataTree, meshes_dir=None, view: int = 0):
        self.data, self.view = data, view
        self.meshes = None
        if meshes_dir is not None:
            from deepsdf_preprocess.driver import discover_meshes

            self.meshes = {job.key: job.mesh_path for job in discover_meshes(meshes_dir)}

    def __call__(self, files: InstanceFiles, offset, scale) -> dict:
        key = files.key
        if files.partial_scan.is_file() and self.meshes is None and not self.view:
            return files.scan()
        from deepsdf_preprocess.mesh_io import load_mesh
        from deepsdf_preprocess.pipeline import recorded_scan

        mesh_path = (self.meshes.get(key.local) if self.meshes is not None
                     else self.data.source_mesh(key))
        if mesh_path is None:
            raise InputError(f"{key}: no PartialScans file and no source mesh to scan (rerun "
                             "the preprocessor with partial scans, or give meshes_dir)")
        return recorded_scan(self.data.manifest(key.dataset), key.local, load_mesh(mesh_path),
                             offset, scale, view=self.view)


@dataclass(frozen=True)
class _Shape:
    """One shape of a split being completed: its files, its normalization (``normalized =
    (original + offset) * scale``) and its observation in the model (normalized) frame."""

    key: str
    files: InstanceFiles
    offset: np.ndarray
    scale: float
    observed: Observation


@dataclass(frozen=True)
class _Run:
    """What every shape of one :func:`complete_split` call shares."""

    decoder: torch.nn.Module
    out: CompletionFolder
    resolution: int
    clamp: float
    train_clouds: list | None
    train_ids: list
    refine: object = None  # a RefineConfig, or None
    config: object = None  # the experiment's ModelConfig (clamps), for refinement
    prune: object = None  # a PruneConfig, or None to keep every piece


@dataclass
class CompletionReport:
    rows: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    no_surface: list = field(default_factory=list)


def completion_metrics(points, truth, observed, scale) -> dict:
    """:data:`COMPLETION_METRICS` of completed surface points (n, 3) against the truth's (m, 3),
    given the observed points (k, 3), all in the original frame (``scale``: the shape's
    normalization, which sets the unseen radius)."""
    return {**surface_metrics(points, truth),
            "chamfer_unseen": chamfer_unseen(points, truth, observed, UNSEEN_RADIUS / scale)}


def _training_clouds(data: DataTree, train_ids, points: int = 4000):
    """Each training shape's SurfaceSamples in its normalized frame (subsampled)."""
    clouds = []
    for index, key in enumerate(train_ids):
        files = data.instance(key)
        cloud = files.surface()["points"]
        rng = np.random.default_rng([0, index])
        cloud = cloud[rng.choice(len(cloud), min(points, len(cloud)), replace=False)]
        clouds.append(to_normalized(cloud, *files.normalization()))
    return clouds


def complete_split(experiment, split: dict, *, out_dir, data_dir=None, meshes_dir=None,
                   solver: SolverConfig = GAUSS_NEWTON,
                   constraints: ConstraintConfig = ConstraintConfig(),
                   starts: MultiStart = MultiStart(), checkpoint=None,
                   resolution: int = MESH_RESOLUTION, batch: int = COMPLETE_BATCH,
                   retrieval: bool = True,
                   view: int = 0, device=None, progress: bool = True,
                   refine=None, prune=PRUNE) -> CompletionReport:
    """Complete every shape of ``split`` from its single-view scan and evaluate.

    Each shape's scan is mapped to the model frame with its ``NormalizationParameters``; the
    completed mesh is mapped back to the original frame and compared with the shape's
    ``SurfaceSamples`` (Chamfer as the paper, Chamfer-L1, F-score at 1% of the bounding-box
    side, and ``chamfer_unseen``: Chamfer on what the scan did not see).  With ``retrieval``,
    the training shape nearest to the observed points (normalized frame) answers each shape
    too, with the same metrics.  Each shape is fitted from ``starts``; about ``batch``
    fits (shapes times starts) run together.  ``view`` 0 is the preprocessor's scan; another
    ``view`` is a further seeded viewpoint, rendered from the source mesh.  ``prune`` (a
    :class:`~deepsdf.settings.PruneConfig`; None keeps every piece): the pieces of each mesh
    lying in what the scan saw as empty space are dropped
    (:func:`~deepsdf.pruning.drop_seen_empty_parts`); unseen space keeps what the model put
    there.
    """
    from deepsdf_preprocess.pipeline import instance_seed

    check_grid_memory(resolution)
    experiment = Experiment.of(experiment, checkpoint=checkpoint, data=data_dir, device=device)
    model, config = experiment.model, experiment.config
    decoder, device = model.decoder, experiment.device
    out, data = CompletionFolder(out_dir), experiment.data
    # files of a completion run it did not write are refused; the marker names the model
    out.claim(checkpoint=experiment.checkpoint_identity, experiment=str(experiment.folder))
    keys = split_instances(split)
    if not keys:
        raise InputError("the split lists no instance")
    run = _Run(decoder, out, resolution, config.trained_clamp,
               _training_clouds(data, model.instance_ids) if retrieval else None,
               model.instance_ids, refine, config, prune)
    source = _ScanSource(data, meshes_dir, view)
    report = CompletionReport()
    from deepsdf_preprocess.progress import progress_bar

    bar = progress_bar(len(keys), desc="complete", unit="shape", enabled=progress, log=logger)
    per_chunk = max(1, batch // len(starts.kinds(len(model.codes))))
    for start in range(0, len(keys), per_chunk):
        shapes = [_shape(key, data, source) for key in keys[start:start + per_chunk]]
        seeds = [instance_seed(shape.key, solver.seed) for shape in shapes]
        result = complete_observations(
            decoder, [shape.observed for shape in shapes], clamp=config.clamp, solver=solver,
            constraints=constraints, starts=starts, train_codes=model.codes, seeds=seeds,
            device=device)
        rows = (constraint_rows([shape.observed for shape in shapes], constraints, solver.seed,
                                seeds) if refine is not None else [None] * len(shapes))
        for index, shape in enumerate(shapes):
            row = _complete_one(shape, result, index, run, report, rows[index])
            if row is not None:
                report.rows.append(row)
            bar.update(1)
    bar.close()
    report.summary = _write_report(out, report, retrieval)
    return report


def _shape(key: str, data: DataTree, source: _ScanSource) -> _Shape:
    """A shape's record: its files, normalization and scan in the model frame."""
    files = data.instance(key)
    offset, scale = files.normalization()
    world = scan_observation(source(files, offset, scale))
    return _Shape(key, files, offset, scale,
                  world.transformed(Similarity.from_normalization(offset, scale)))


def _complete_one(shape: _Shape, result: Completion, index: int, run: _Run,
                  report: CompletionReport, constraint_rows=None):
    paths = run.out.shape(shape.key)
    try:
        mesh, rank = first_surface(run.decoder, result, index, run.resolution, clamp=run.clamp)
    except NoSurfaceError as error:
        logger.warning("%s: no completed code has a surface (%s)", shape.key, error)
        report.no_surface.append(shape.key)
        return None
    if rank:
        logger.info("%s: the best fit has no surface; kept fit %d (from the %s start)",
                    shape.key, rank, result.start_kind[index][rank])
    pruned = _pruned(mesh, shape.observed, run.prune, shape.key)
    mesh = pruned.mesh
    write_code(paths["code"], result.ranked[index, rank])
    mesh.vertices = to_original(mesh.vertices, shape.offset, shape.scale)
    write_mesh(paths["mesh"], mesh)  # the completion's Meshes are in the original frame
    truth = shape.files.surface()["points"]
    seen = to_original(shape.observed.points, shape.offset, shape.scale)
    points = surface_points(mesh, CHAMFER_POINTS)[0]
    row = {"instance": shape.key, "observed_points": len(shape.observed),
           "start": result.start_kind[index][rank], "fallback_rank": rank,
           "dropped_parts": pruned.dropped,
           **completion_metrics(points, truth, seen, shape.scale)}
    if run.refine is not None:
        refined_paths = run.out.refined(shape.key)
        refined = _refined(run.decoder, constraint_rows, result.ranked[index, rank], run.refine,
                           run.config, run.resolution, refined_paths)
        if refined is not None:
            refined = _pruned(refined, shape.observed, run.prune, shape.key).mesh
            refined.vertices = to_original(refined.vertices, shape.offset, shape.scale)
            write_mesh(refined_paths["mesh"], refined)
            row.update({f"refined_{k}": v for k, v in completion_metrics(
                surface_points(refined, CHAMFER_POINTS)[0], truth, seen, shape.scale).items()})
    if run.train_clouds is not None:
        from .retrieval import nearest_by_observation

        nearest = nearest_by_observation(shape.observed.points, run.train_clouds)
        answer = to_original(run.train_clouds[nearest], shape.offset, shape.scale)
        row["retrieval_instance"] = run.train_ids[nearest]
        row.update({f"retrieval_{k}": v for k, v in completion_metrics(
            answer, truth, seen, shape.scale).items()})
    return row


def _write_report(out: CompletionFolder, report: CompletionReport, retrieval: bool) -> dict:
    columns = ["instance", "observed_points", "start", "fallback_rank", "dropped_parts",
               *COMPLETION_METRICS]
    refined = any("refined_chamfer" in row for row in report.rows)
    if refined:
        columns += [f"refined_{k}" for k in COMPLETION_METRICS]
    if retrieval:
        columns += ["retrieval_instance"] + [f"retrieval_{k}" for k in COMPLETION_METRICS]
    write_table(out.table, report.rows, columns)
    summary = {"shapes": len(report.rows), "no_surface": report.no_surface}
    for prefix, section in ([("", "completion")] + ([("refined_", "refined")] if refined else [])
                            + ([("retrieval_", "retrieval")] if retrieval else [])):
        summary[section] = summarize(report.rows, COMPLETION_METRICS, prefix)
    judged = verdict([row.get("chamfer") for row in report.rows],
                     [row.get("retrieval_chamfer") for row in report.rows]) if retrieval else None
    if judged is not None:  # mean, median and shapes won, never the mean alone
        summary["versus_retrieval"] = judged.to_dict()
    summary["table_sha256"] = provenance.sha256_of(out.table)  # vouches for the table
    summary = contract.sealed(summary)
    contract.write_json(out.summary, summary)
    return summary

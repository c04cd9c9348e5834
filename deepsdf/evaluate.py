"""Evaluating reconstructed meshes against the ground truth's SurfaceSamples.

Per shape: Chamfer (the original protocol), Chamfer-L1, F-score at 1% of the ground truth's
bounding-box side, normal consistency, and the Earth Mover's distance on 1000-point
subsamples, in the original frame; volumetric IoU at the shape's OccupancySamples (normalized
frame, the normalized-frame mesh); and the same metrics for the retrieval baseline (its IoU
from the retrieved training shape's source mesh, when the data's manifest points to one that
exists).  Writes
``EXP/Evaluation/<checkpoint>/metrics.csv`` (one row per shape) and ``summary.json`` (mean and
median of each metric).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import trimesh

from deepsdf_preprocess import contract, provenance
from deepsdf_preprocess.normalize import to_normalized, to_original
from deepsdf_preprocess.errors import InputError

from .experiment import Experiment, read_code, summarize, write_table
from .latents import split_instances
from .metrics import (CHAMFER_POINTS, EVALUATION_METRICS, F_SCORE_FRACTION, METRIC_TABLE,
                      earth_movers, normal_consistency, surface_metrics, surface_points,
                      verdict, volumetric_iou)

__all__ = ["evaluate_points", "evaluate_shape", "evaluate_split", "METRICS", "summary_table"]

#: The columns of an evaluation (:data:`~deepsdf.metrics.EVALUATION_METRICS`).
METRICS = EVALUATION_METRICS

logger = logging.getLogger(__name__)


def evaluate_points(points, normals, truth_points, truth_normals, *,
                    f_fraction: float = F_SCORE_FRACTION) -> dict:
    """The metrics of (n, 3) points with normals against the ground truth's, same frame.

    ``normal_consistency`` is left out when either side has no normals (``None``: the
    original release's SurfaceSamples carry none).
    """
    metrics = surface_metrics(points, truth_points, f_fraction=f_fraction)
    metrics["emd"] = earth_movers(points, truth_points)
    if normals is not None and truth_normals is not None:
        metrics["normal_consistency"] = normal_consistency(points, normals, truth_points,
                                                           truth_normals)
    return metrics


def evaluate_shape(mesh: trimesh.Trimesh, truth_points, truth_normals, *, seed: int = 0) -> dict:
    """The metrics of a reconstructed mesh (original frame): 30000 points sampled on it."""
    points, normals = surface_points(mesh, CHAMFER_POINTS, seed=seed)
    return evaluate_points(points, normals, truth_points, truth_normals)


def _surface(files):
    """(points, normals or None) of an instance's SurfaceSamples."""
    truth = files.surface()
    return truth["points"], truth.get("normals")


def _normalized_surface(files):
    """(points in the normalized frame, normals or None) of an instance's SurfaceSamples."""
    points, normals = _surface(files)
    return to_normalized(points, *files.normalization()), normals


def _reconstruction(paths: dict, files):
    """The reconstructed mesh in the original frame: ours from ``MeshesOriginalFrame``, the
    original release's from ``Meshes`` (normalized frame) mapped through the shape's
    NormalizationParameters; None when there is neither."""
    if paths["original"].is_file():
        return trimesh.load(paths["original"], force="mesh", process=False)
    if not paths["mesh"].is_file():
        return None
    mesh = trimesh.load(paths["mesh"], force="mesh", process=False)
    mesh.vertices = to_original(mesh.vertices, *files.normalization())
    return mesh


@dataclass
class _Scored:
    """The shapes of a split scored so far: one row per reconstruction found (and current),
    with each row's truth (points, normals) and code file, and the shapes left out."""

    rows: list = field(default_factory=list)
    truths: list = field(default_factory=list)
    codes: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    stale: dict = field(default_factory=dict)
    unrecorded: list = field(default_factory=list)
    without_normals: list = field(default_factory=list)


def evaluate_split(experiment, split: dict, *, data_dir=None, checkpoint=None,
                   retrieval: bool = True) -> dict:
    """Evaluate every reconstructed shape of ``split``; returns the summary (also written to
    :attr:`Experiment.evaluation <deepsdf.experiment.Experiment.evaluation>`).

    ``experiment`` is an :class:`~deepsdf.experiment.Experiment` or a folder (opened at
    ``checkpoint``, its data at ``data_dir`` or the spec's ``DataSource``).  With
    ``retrieval``, each test shape is also answered by the training shape nearest by fitted
    code and by the oracle nearest by Chamfer (their SurfaceSamples), with the same metrics,
    in the same rows.
    """
    experiment = Experiment.of(experiment, checkpoint=checkpoint, data=data_dir)
    scored = _score_reconstructions(experiment, split)
    if scored.stale:
        key, reason = next(iter(scored.stale.items()))
        logger.warning("%d reconstruction(s) left out: they cannot be trusted as this "
                       "checkpoint's (e.g. %s: %s); rerun `deepsdf reconstruct --skip` to redo "
                       "them", len(scored.stale), key, reason)
    if scored.unrecorded:
        logger.warning("%d reconstruction(s) have no record of what made them (the original "
                       "release's, or files put there by hand): evaluated as found, e.g. %s",
                       len(scored.unrecorded), scored.unrecorded[0])
    if not scored.rows:
        raise InputError("no reconstructed mesh found: run `deepsdf reconstruct` first"
                         + (f" ({len(scored.stale)} are stale: "
                            f"{next(iter(scored.stale.values()))})" if scored.stale else ""))
    if retrieval:
        _answer_by_retrieval(experiment, scored)
    return _write_evaluation(experiment, scored, retrieval)


def _score_reconstructions(experiment: Experiment, split: dict) -> _Scored:
    """Score each current reconstruction of ``split`` against its shape's truth."""
    data, scored = experiment.data, _Scored()
    for key in split_instances(split):
        try:
            paths = experiment.reconstruction(key)
            reason = experiment.reconstruction_stale(key)
        except InputError as error:  # a record or output that is a folder, a link, ...:
            scored.stale[key] = str(error)  # that one shape is left out, the rest scored
            continue
        if reason == "no record of what made it":
            if any(p.is_file() for p in paths.values()):
                scored.unrecorded.append(key)
        elif reason is not None:
            scored.stale[key] = reason
            continue
        files = data.instance(key)
        mesh = _reconstruction(paths, files)
        if mesh is None:
            scored.missing.append(key)
            continue
        truth = _surface(files)
        if truth[1] is None:
            scored.without_normals.append(key)
        row = {"instance": key, **evaluate_shape(mesh, *truth)}
        occupancy = files.occupancy()
        if occupancy is not None and paths["mesh"].is_file():
            normalized = trimesh.load(paths["mesh"], force="mesh", process=False)
            row["iou"] = volumetric_iou(normalized, *occupancy)
        scored.rows.append(row)
        scored.truths.append(truth)
        scored.codes.append(paths["code"] if paths["code"].is_file() else None)
    return scored


def _answer_by_retrieval(experiment: Experiment, scored: _Scored) -> None:
    """Add to each row the metrics of the training shape nearest by fitted code
    (``retrieval_code_*``) and of the oracle nearest by Chamfer (``retrieval_oracle_*``)."""
    import torch

    from .retrieval import nearest_by_code, oracle_nearest

    data, model = experiment.data, experiment.model
    codes = [None if path is None else read_code(path, model.codes.shape[1])
             for path in scored.codes]
    train_ids = model.instance_ids
    # Shapes are compared in the normalized frame (their own original frames need not be
    # shared: real meshes come in any position and unit), and a retrieved shape is mapped
    # into the test shape's original frame through both normalizations.
    train = [_normalized_surface(data.instance(key)) for key in train_ids]
    test_frames = [data.instance(row["instance"]).normalization() for row in scored.rows]
    truths_normalized = [to_normalized(t[0], *frame)
                         for t, frame in zip(scored.truths, test_frames)]
    by_oracle = oracle_nearest(truths_normalized, [t[0] for t in train])
    have_code = [i for i, c in enumerate(codes) if c is not None]
    by_code = dict(zip(have_code, nearest_by_code(torch.stack([codes[i] for i in have_code]),
                                                  model.codes))) if have_code else {}
    for i, row in enumerate(scored.rows):
        occupancy = data.instance(row["instance"]).occupancy()
        for name, index in (("retrieval_code", by_code.get(i)),
                            ("retrieval_oracle", by_oracle[i])):
            if index is None:
                continue
            row[f"{name}_instance"] = train_ids[index]
            retrieved = to_original(train[index][0], *test_frames[i])
            metrics = evaluate_points(retrieved, train[index][1], *scored.truths[i])
            row.update({f"{name}_{k}": v for k, v in metrics.items()})
            solid = data.normalized_source_mesh(train_ids[index])
            if solid is not None and occupancy is not None:
                row[f"{name}_iou"] = volumetric_iou(solid, *occupancy)


def _write_evaluation(experiment: Experiment, scored: _Scored, retrieval: bool) -> dict:
    """Write the per-shape table and the summary (mean, median, verdicts); returns it."""
    rows, columns = scored.rows, ["instance", *METRICS, "iou"]
    if retrieval:
        for name in ("retrieval_code", "retrieval_oracle"):
            columns += [f"{name}_instance"] + [f"{name}_{k}" for k in (*METRICS, "iou")]
    write_table(experiment.evaluation_table, rows, columns)
    summary = {"shapes": len(rows), "missing": scored.missing, "stale": sorted(scored.stale),
               "unrecorded": scored.unrecorded,
               # what the evaluation was made from: a report checks it is still the model's
               "checkpoint": (experiment.checkpoint_identity
                              if experiment.model_file.is_file() else None)}
    if scored.without_normals:
        summary["note"] = (f"{len(scored.without_normals)} shape(s) have SurfaceSamples "
                           "without normals (as the original release writes them): normal "
                           "consistency is left empty for them")
        logger.warning("%s", summary["note"])
    prefixes = [("", "reconstruction")] + ([("retrieval_code_", "retrieval_code"),
                                            ("retrieval_oracle_", "retrieval_oracle")]
                                           if retrieval else [])
    for prefix, section in prefixes:
        summary[section] = summarize(rows, (*METRICS, "iou"), prefix)
    if retrieval:  # mean, median and shapes won: a verdict never rests on the mean alone
        for name in ("retrieval_code", "retrieval_oracle"):
            judged = verdict([row.get("chamfer") for row in rows],
                             [row.get(f"{name}_chamfer") for row in rows])
            if judged is not None:
                summary[f"versus_{name}"] = judged.to_dict()
    # the summary vouches for the table it was made with, and for itself
    summary["table_sha256"] = provenance.sha256_of(experiment.evaluation_table)
    summary = contract.sealed(summary)
    contract.write_json(experiment.evaluation_summary, summary)
    return summary


def summary_table(summary: dict) -> str:
    """A short text table of a summary: mean / median of each metric per section."""
    sections = [name for name in ("reconstruction", "retrieval_code", "retrieval_oracle")
                if summary.get(name)]
    names = [m for m in (*METRICS, "iou") if any(m in summary[s] for s in sections)]
    header = f"{'metric (mean / median)':24s}" + "".join(f"{s:>24s}" for s in sections)
    lines = [header + "  better"]
    for name in names:
        cells = []
        for section in sections:
            value = summary[section].get(name)
            cells.append(f"{value['mean']:.3g} / {value['median']:.3g}" if value else "-")
        lines.append(f"{METRIC_TABLE[name].label:24s}" + "".join(f"{c:>24s}" for c in cells)
                     + f"  {METRIC_TABLE[name].better}")
    return "\n".join(lines)

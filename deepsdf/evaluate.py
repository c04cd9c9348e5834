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

import trimesh

from deepsdf_preprocess import contract, formats
from deepsdf_preprocess.normalize import to_normalized, to_original
from deepsdf_preprocess.errors import InputError

from .experiment import Experiment, SourceMeshes, read_code, summarize, write_table
from .latents import split_instances
from .metrics import (CHAMFER_POINTS, F_SCORE_FRACTION, earth_movers, normal_consistency,
                      surface_metrics, surface_points, volumetric_iou)

__all__ = ["evaluate_points", "evaluate_shape", "evaluate_split", "METRICS", "summary_table"]

#: Which direction is better, per metric, for the printed table.
BETTER = {"chamfer": "lower", "chamfer_l1": "lower", "f_score": "higher",
          "normal_consistency": "higher", "emd": "lower", "iou": "higher"}

METRICS = ("chamfer", "chamfer_l1", "f_score", "normal_consistency", "emd")

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


def _surface(data_dir, key):
    """(points, normals or None) of an instance's SurfaceSamples."""
    truth = formats.read_surface_samples(formats.key_paths(data_dir,
                                                           key)[formats.SURFACE_SAMPLES])
    return truth["points"], truth.get("normals")


def _normalization(data_dir, key):
    """(offset, scale) of an instance."""
    return formats.read_normalization(
        formats.key_paths(data_dir, key)[formats.NORMALIZATION_PARAMETERS])


def _normalized_surface(data_dir, key):
    """(points in the normalized frame, normals or None) of an instance's SurfaceSamples."""
    points, normals = _surface(data_dir, key)
    return to_normalized(points, *_normalization(data_dir, key)), normals


def _reconstruction(paths: dict, data_dir, key):
    """The reconstructed mesh in the original frame: ours from ``MeshesOriginalFrame``, the
    original release's from ``Meshes`` (normalized frame) mapped through the shape's
    NormalizationParameters; None when there is neither."""
    if paths["original"].is_file():
        return trimesh.load(paths["original"], force="mesh", process=False)
    if not paths["mesh"].is_file():
        return None
    mesh = trimesh.load(paths["mesh"], force="mesh", process=False)
    mesh.vertices = to_original(mesh.vertices, *_normalization(data_dir, key))
    return mesh


def evaluate_split(experiment, split: dict, *, data_dir=None, checkpoint="latest",
                   retrieval: bool = True) -> dict:
    """Evaluate every reconstructed shape of ``split``; returns the summary (also written to
    :attr:`Experiment.evaluation <deepsdf.experiment.Experiment.evaluation>`).

    ``experiment`` is an :class:`~deepsdf.experiment.Experiment` or a folder (opened at
    ``checkpoint``, its data at ``data_dir`` or the spec's ``DataSource``).  With
    ``retrieval``, each test shape is also answered by the training shape nearest by fitted
    code and by the oracle nearest by Chamfer (their SurfaceSamples), with the same metrics,
    in the same rows.
    """
    import torch

    experiment = Experiment.of(experiment, checkpoint=checkpoint, data=data_dir)
    data_dir = experiment.data_dir
    rows, missing, truths, codes, without_normals = [], [], [], [], []
    stale, unrecorded = {}, []
    for key in split_instances(split):
        paths = experiment.reconstruction(key)
        reason = experiment.reconstruction_stale(key)
        if reason == "no record of what made it":
            if any(p.is_file() for p in paths.values()):
                unrecorded.append(key)
        elif reason is not None:
            stale[key] = reason
            continue
        mesh = _reconstruction(paths, data_dir, key)
        if mesh is None:
            missing.append(key)
            continue
        truth = _surface(data_dir, key)
        if truth[1] is None:
            without_normals.append(key)
        row = {"instance": key, **evaluate_shape(mesh, *truth)}
        occupancy = formats.key_paths(data_dir, key)[formats.OCCUPANCY_SAMPLES]
        if occupancy.is_file() and paths["mesh"].is_file():
            normalized = trimesh.load(paths["mesh"], force="mesh", process=False)
            row["iou"] = volumetric_iou(normalized, *formats.read_occupancy(occupancy))
        rows.append(row)
        truths.append(truth)
        codes.append(paths["code"] if paths["code"].is_file() else None)
    if stale:
        key, reason = next(iter(stale.items()))
        logger.warning("%d reconstruction(s) left out: not this checkpoint's (e.g. %s: %s); "
                       "rerun `deepsdf reconstruct --skip` to redo them", len(stale), key,
                       reason)
    if unrecorded:
        logger.warning("%d reconstruction(s) have no record of what made them (the original "
                       "release's, or files put there by hand): evaluated as found, e.g. %s",
                       len(unrecorded), unrecorded[0])
    if not rows:
        raise InputError("no reconstructed mesh found: run `deepsdf reconstruct` first"
                         + (f" ({len(stale)} are stale: {next(iter(stale.values()))})"
                            if stale else ""))
    columns = ["instance", *METRICS, "iou"]
    if retrieval:
        from .retrieval import nearest_by_code, oracle_nearest

        model = experiment.model
        codes = [None if path is None else read_code(path, model.codes.shape[1])
                 for path in codes]
        train_ids = model.instance_ids
        # Shapes are compared in the normalized frame (their own original frames need not be
        # shared: real meshes come in any position and unit), and a retrieved shape is
        # mapped into the test shape's original frame through both normalizations.
        train = [_normalized_surface(data_dir, key) for key in train_ids]
        test_frames = [_normalization(data_dir, row["instance"]) for row in rows]
        truths_normalized = [to_normalized(t[0], *frame) for t, frame in zip(truths,
                                                                             test_frames)]
        by_oracle = oracle_nearest(truths_normalized, [t[0] for t in train])
        have_code = [i for i, c in enumerate(codes) if c is not None]
        by_code = dict(zip(have_code, nearest_by_code(torch.stack([codes[i] for i in have_code]),
                                                      model.codes))) if have_code else {}
        sources = SourceMeshes(data_dir)
        for i, row in enumerate(rows):
            occupancy = formats.key_paths(data_dir, row["instance"])[formats.OCCUPANCY_SAMPLES]
            for name, index in (("retrieval_code", by_code.get(i)),
                                ("retrieval_oracle", by_oracle[i])):
                if index is None:
                    continue
                row[f"{name}_instance"] = train_ids[index]
                retrieved = to_original(train[index][0], *test_frames[i])
                metrics = evaluate_points(retrieved, train[index][1], *truths[i])
                row.update({f"{name}_{k}": v for k, v in metrics.items()})
                solid = sources.normalized(train_ids[index])
                if solid is not None and occupancy.is_file():
                    row[f"{name}_iou"] = volumetric_iou(solid, *formats.read_occupancy(occupancy))
        for name in ("retrieval_code", "retrieval_oracle"):
            columns += [f"{name}_instance"] + [f"{name}_{k}" for k in (*METRICS, "iou")]
    out = experiment.evaluation
    write_table(out / "metrics.csv", rows, columns)
    summary = {"shapes": len(rows), "missing": missing, "stale": sorted(stale),
               "unrecorded": unrecorded}
    if without_normals:
        summary["note"] = (f"{len(without_normals)} shape(s) have SurfaceSamples without "
                           "normals (as the original release writes them): normal consistency "
                           "is left empty for them")
        logger.warning("%s", summary["note"])
    prefixes = [("", "reconstruction")] + ([("retrieval_code_", "retrieval_code"),
                                            ("retrieval_oracle_", "retrieval_oracle")]
                                           if retrieval else [])
    for prefix, section in prefixes:
        summary[section] = summarize(rows, (*METRICS, "iou"), prefix)
    contract.write_json(out / "summary.json", summary)
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
        lines.append(f"{name:24s}" + "".join(f"{c:>24s}" for c in cells)
                     + f"  {BETTER.get(name, '')}")
    return "\n".join(lines)

"""Evaluating reconstructed meshes against the ground truth's SurfaceSamples.

Per shape: Chamfer (the original protocol), Chamfer-L1, F-score at 1% of the ground truth's
bounding-box side, and normal consistency; in the original frame.  Writes
``EXP/Evaluation/<checkpoint>/metrics.csv`` (one row per shape) and ``summary.json`` (mean and
median of each metric).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import trimesh

from deepsdf_preprocess import formats

from .inference import output_paths
from .latents import split_instances
from .metrics import (CHAMFER_POINTS, chamfer, chamfer_l1, f_score, normal_consistency,
                      surface_points)

__all__ = ["evaluate_shape", "evaluate_split", "METRICS"]

METRICS = ("chamfer", "chamfer_l1", "f_score", "normal_consistency")


def evaluate_shape(mesh: trimesh.Trimesh, truth_points, truth_normals, *,
                   f_fraction: float = 0.01, seed: int = 0) -> dict:
    """The metrics of one reconstructed mesh (original frame) against (n, 3) surface samples
    and their normals."""
    points, normals = surface_points(mesh, CHAMFER_POINTS, seed=seed)
    side = float(np.max(truth_points.max(axis=0) - truth_points.min(axis=0)))
    return {"chamfer": chamfer(points, truth_points),
            "chamfer_l1": chamfer_l1(points, truth_points),
            "f_score": f_score(points, truth_points, f_fraction * side),
            "normal_consistency": normal_consistency(points, normals, truth_points,
                                                     truth_normals)}


def evaluate_split(experiment_dir, split: dict, *, data_dir, checkpoint="latest") -> dict:
    """Evaluate every reconstructed shape of ``split``; returns the summary (also written)."""
    experiment_dir = Path(experiment_dir)
    out = experiment_dir / "Evaluation" / str(checkpoint)
    rows, missing = [], []
    for key in split_instances(split):
        mesh_path = output_paths(experiment_dir, checkpoint, key)["original"]
        if not mesh_path.is_file():
            missing.append(key)
            continue
        dataset, class_name, instance = key.split("/", 2)
        truth = formats.read_surface_samples(formats.instance_paths(
            data_dir, dataset, class_name, instance)[formats.SURFACE_SAMPLES])
        if "normals" not in truth:
            raise ValueError(f"{key}: SurfaceSamples without normals; re-run preprocessing")
        mesh = trimesh.load(mesh_path, force="mesh", process=False)
        rows.append({"instance": key, **evaluate_shape(mesh, truth["points"], truth["normals"])})
    if not rows:
        raise ValueError("no reconstructed mesh found: run `deepsdf reconstruct` first")
    out.mkdir(parents=True, exist_ok=True)
    with formats.atomic_path(out / "metrics.csv") as temporary:
        with open(temporary, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=["instance", *METRICS])
            writer.writeheader()
            writer.writerows(rows)
    summary = {"shapes": len(rows), "missing": missing}
    for name in METRICS:
        values = np.array([row[name] for row in rows])
        summary[name] = {"mean": float(values.mean()), "median": float(np.median(values))}
    formats.write_json(out / "summary.json", summary)
    return summary

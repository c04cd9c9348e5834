"""How smooth is the shape space? Interpolation quality against held-out quality for the
demo recipe and variants of its code initialisation and prior (CodeInitStdDev c gives codes a per-component
standard deviation of c / sqrt(CodeLength) at the start and in the prior) and batch.

For each variant, trains the demo spec (experiments/demo/specs.json, 2520 steps) with the
variant's changes on a demo run's data root, then

- walks ``--pairs`` paths between training codes (chair to table, chair to chair, table to
  table; slerp, as ``deepsdf interpolate``), meshes the ``--steps`` - 2 frames strictly between
  the ends at 128^3 and measures (the ends, training shapes, measured alike as the yardstick)
  - **one piece**: the share of frames whose largest connected piece holds >= 99% of the
    surface area (a frame without surface counts as not one piece),
  - **pieces**: the mean number of pieces holding >= 1% of the area,
  - **to nearest**: the mean over frames of the Chamfer distance (metrics.chamfer, normalized
    frame) to the nearest training shape's SurfaceSamples: how far in-between shapes stray
    from anything the category holds;
- reconstructs the held-out shapes (the fast preset: short Gauss-Newton, 128^3) and prints
  their Chamfer mean and median against retrieval's (the nearest training shape).

    python benchmarks/shape_space.py OUT --data demo_output/data [--variants demo,std1/16]

The table in docs/benchmarks.md "The shape space" was measured this way (2-core CPU).
Resumes: a variant with a checkpoint in ``OUT/<variant>`` is not trained again.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: Each variant: the demo spec's keys it changes.
VARIANTS = {
    "demo": {},
    "std1/16": {"CodeInitStdDev": 1 / 16},
    "std1/16,lambda1e-3": {"CodeInitStdDev": 1 / 16, "CodeRegularizationLambda": 1e-3},
    "std1/4": {"CodeInitStdDev": 1 / 4},
    "std1/2": {"CodeInitStdDev": 1 / 2},
    "lambda1e-3": {"CodeRegularizationLambda": 1e-3},
    # What `deepsdf new` writes for the demo's 54 shapes: every shape in every epoch, the
    # same 2520 steps.
    "divisor9": {"ScenesPerBatch": 9, "SamplesPerScene": 2730, "NumEpochs": 420},
    "divisor9,std1/2": {"ScenesPerBatch": 9, "SamplesPerScene": 2730, "NumEpochs": 420,
                        "CodeInitStdDev": 1 / 2},
}
ONE_PIECE = 0.99  # share of the area in the largest piece for a frame to count as whole
PIECE = 0.01  # share of the area for a piece to count
NEAREST_POINTS = 5000  # surface points per shape for the Chamfer to the nearest training shape


def piece_areas(mesh) -> np.ndarray:
    """Areas of a mesh's face-connected pieces, largest first."""
    import trimesh

    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency,
                                                      node_count=len(mesh.faces))
    areas = np.bincount(labels, weights=mesh.area_faces)
    return np.sort(areas)[::-1]


def frame_figures(mesh, training_surfaces: list) -> dict:
    """one_piece (bool), pieces (int), to_nearest (float or nan) of one interpolated mesh."""
    from deepsdf.metrics import chamfer, surface_points

    if mesh is None or len(mesh.faces) == 0:
        return {"one_piece": False, "pieces": 0, "to_nearest": float("nan")}
    areas = piece_areas(mesh)
    total = areas.sum()
    points, _ = surface_points(mesh, NEAREST_POINTS)
    nearest = min(chamfer(points, surface) for surface in training_surfaces)
    return {"one_piece": bool(areas[0] >= ONE_PIECE * total),
            "pieces": int((areas >= PIECE * total).sum()), "to_nearest": nearest}


def pairs_of(instance_ids: list, count: int) -> list:
    """``count`` (a, b) row pairs: chair-table first, then chair-chair and table-table."""
    chairs = [i for i, name in enumerate(instance_ids) if "/chairs/" in name]
    tables = [i for i, name in enumerate(instance_ids) if "/tables/" in name]
    mixed = list(zip(chairs, tables))
    same = [(chairs[2 * k], chairs[2 * k + 1]) for k in range(len(chairs) // 2)]
    same += [(tables[2 * k], tables[2 * k + 1]) for k in range(len(tables) // 2)]
    half = (count + 1) // 2
    return mixed[:half] + same[:count - len(mixed[:half])]


def specs_for(data: Path, changes: dict) -> dict:
    from deepsdf.config import specs_with_epochs

    specs = json.loads((ROOT / "experiments" / "demo" / "specs.json").read_text())
    changes = dict(changes)
    epochs = changes.pop("NumEpochs", None)
    specs.update(changes)
    if epochs:  # the learning-rate cuts at the same share of the run
        specs = specs_with_epochs(specs, epochs)
    splits = data / "splits"
    specs.update(DataSource=str(data), TrainSplit=str(splits / "procedural_train.json"),
                 TestSplit=str(splits / "procedural_test.json"))
    return specs


def run_variant(out: Path, data: Path, name: str, pairs: int, steps: int) -> dict:
    import torch

    from deepsdf.evaluate import evaluate_split
    from deepsdf.experiment import Experiment, load_specs
    from deepsdf.inference import load_trained, reconstruct_split
    from deepsdf.interpolate import code_meshes, slerp
    from deepsdf.settings import QUALITIES
    from deepsdf.train import Trainer
    from deepsdf_preprocess.contract import InstanceKey
    from deepsdf_preprocess.formats import DataTree
    from deepsdf_preprocess.normalize import to_normalized

    folder = out / name.replace("/", "_").replace(",", "+")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "specs.json").write_text(json.dumps(specs_for(data, VARIANTS[name]), indent=2))
    experiment = Experiment(folder)
    figures = {"variant": name}
    if not experiment.checkpoint_file().is_file():
        started = time.perf_counter()
        Trainer(experiment, load_specs(folder), device="cpu", progress=False).train()
        figures["train_s"] = round(time.perf_counter() - started, 1)
    decoder, config, payload = load_trained(folder)
    ids = list(payload["instance_ids"])
    tree = DataTree(data)
    surfaces = []
    for instance in ids:
        files = tree.instance(InstanceKey.parse(instance))
        points = files.surface()["points"][:NEAREST_POINTS]  # SurfaceSamples are in no order
        surfaces.append(to_normalized(points, *files.normalization()))
    codes = payload["codes"].detach().float()
    frames = []
    started = time.perf_counter()
    ends = []
    for a, b in pairs_of(ids, pairs):
        path = slerp(codes[a], codes[b], steps)
        with torch.no_grad():
            meshes = code_meshes(decoder, path, resolution=128, clamp=config.clamp)
        figures_of = [frame_figures(mesh, surfaces) for mesh in meshes]
        frames += figures_of[1:-1]
        ends += [figures_of[0], figures_of[-1]]
    figures["interpolate_s"] = round(time.perf_counter() - started, 1)
    figures["frames"] = len(frames)
    figures["one_piece"] = float(np.mean([f["one_piece"] for f in frames]))
    figures["pieces"] = float(np.mean([f["pieces"] for f in frames]))
    figures["to_nearest"] = float(np.nanmean([f["to_nearest"] for f in frames]))
    figures["ends_one_piece"] = float(np.mean([f["one_piece"] for f in ends]))
    figures["ends_to_nearest"] = float(np.nanmean([f["to_nearest"] for f in ends]))
    figures["code_norm"] = float(codes.norm(dim=1).mean())
    quality = QUALITIES["fast"]
    held_out = experiment.split(None)
    reconstruct_split(experiment, held_out, solver=quality.reconstruct,
                      resolution=quality.resolution, skip=True, progress=False)
    summary = evaluate_split(experiment, held_out)
    versus = summary["versus_retrieval_code"]  # the demo's baseline: nearest by code
    figures.update(chamfer_mean=versus["mean"][0], chamfer_median=versus["median"][0],
                   retrieval_mean=versus["mean"][1], retrieval_median=versus["median"][1],
                   won=f"{versus['won']}/{versus['shapes']}", verdict=versus["verdict"])
    (folder / "shape_space.json").write_text(json.dumps(figures, indent=2))
    return figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("out", type=Path, help="working folder (resumed)")
    parser.add_argument("--data", type=Path, required=True,
                        help="a demo run's data root (with splits/procedural_*.json)")
    parser.add_argument("--variants", default=",".join(["demo", "std1/16"]),
                        help=f"comma-separated names of {sorted(VARIANTS)} ('+' joins a "
                             "name's own commas)")
    parser.add_argument("--pairs", type=int, default=8, help="interpolation paths")
    parser.add_argument("--steps", type=int, default=8, help="frames per path, ends included")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("DEEPSDF_NO_PROGRESS", "1")
    names = [name.replace("+", ",") for name in args.variants.split(",")]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    rows = [run_variant(args.out.resolve(), args.data.resolve(), name, args.pairs, args.steps)
            for name in names]
    print(f"\n{'variant':<20} {'ends whole':>10} {'one piece':>9} {'pieces':>6} {'to nearest':>10} "
          f"{'held-out mean / median':>23} {'retrieval mean / median':>24} {'won':>5} "
          f"{'|code|':>6}")
    for row in rows:
        print(f"{row['variant']:<20} {row['ends_one_piece']:>10.0%} {row['one_piece']:>9.0%} {row['pieces']:>6.2f} "
              f"{row['to_nearest']:>10.2e} "
              f"{row['chamfer_mean']:>11.2e} / {row['chamfer_median']:.2e} "
              f"{row['retrieval_mean']:>12.2e} / {row['retrieval_median']:.2e} "
              f"{row['won']:>5} {row['code_norm']:>6.2f}")


if __name__ == "__main__":
    main()

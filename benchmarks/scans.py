"""Training data from depth scans, measured against truth.

1. **Signs and distances** (``--signs``): the embedded shapes (a sphere, a box, 3 chairs,
   3 tables, 3 vessels) captured by :mod:`deepsdf_preprocess.virtual_scans` with its sensor
   model (depth noise 0.5 mm + 1.5 mm/m^2 z^2, dropouts at grazing angles and at random, 1 mm
   quantisation) from 4, 8 and 20 views, around the object (-30/10/45 degrees) and on a
   turntable (15/45 degrees: never from below); the samples of ``preprocess-scans`` against
   each mesh's exact signed distance: the share of samples farther than 0.01 from the
   surface with the wrong sign, the median and 95th percentile distance error within the
   clamp band (0.1), the samples kept and the coverage.
2. **A model from scans** (``--model``, after ``./scripts/demo.sh``): the demo's 54 training
   meshes captured from ``--views`` views, preprocessed from the scans alone, and the demo's
   spec trained on them (the same 2520 steps); then the demo's 6 held-out shapes
   reconstructed from their mesh samples (the standard protocol; the fast preset) by this
   model and by the demo's own, both judged against the truth beside retrieval.

    python benchmarks/scans.py --signs
    python benchmarks/scans.py --model OUT --demo demo_output [--views 8]

The tables in docs/benchmarks.md "Training from scans" were measured this way (2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = {"around": (-30.0, 10.0, 45.0), "turntable": (15.0, 45.0)}


def shapes(work: Path) -> dict:
    """name -> closed mesh: a sphere, a box and three of each embedded category."""
    import trimesh

    from deepsdf_preprocess.procedural import write_shapes

    result = {"sphere": trimesh.creation.icosphere(subdivisions=5),
              "box": trimesh.creation.box(extents=(1.0, 0.6, 0.4))}
    for category in ("chairs", "tables", "vessels"):
        for path in write_shapes(work, category, 3, seed=7):
            result[path.stem] = trimesh.load(path, force="mesh", process=False)
    return result


def sign_figures(mesh, views: int, elevations, seed: int = 0) -> dict:
    import igl

    from deepsdf_preprocess.errors import PreprocessError
    from deepsdf_preprocess.normalize import to_original
    from deepsdf_preprocess.scan_io import DepthView
    from deepsdf_preprocess.pinhole import PinholeCamera
    from deepsdf_preprocess.scan_sdf import ScanSamplingConfig, sample_views
    from deepsdf_preprocess.virtual_scans import CaptureConfig, capture_views, object_scale

    capture = CaptureConfig(views=views, elevations=elevations)
    raw = capture_views(mesh, capture, np.random.default_rng(seed))
    depth_views = [DepthView(str(i), v["depth"].astype(np.float64),
                             PinholeCamera.create(v["K"], v["pose"], capture.width,
                                                  capture.height)) for i, v in enumerate(raw)]
    try:
        samples = sample_views(depth_views, ScanSamplingConfig(), np.random.default_rng(seed))
    except PreprocessError as error:
        return {"failed": str(error)}
    centre, metres = object_scale(mesh, capture)
    points = to_original(samples.points, samples.offset, samples.scale) / metres + centre
    true = igl.signed_distance(points, np.asarray(mesh.vertices, np.float64),
                               np.asarray(mesh.faces, np.int64))[0] * metres * samples.scale
    decided = np.abs(true) > 0.01
    wrong = decided & (np.sign(true) != np.sign(samples.sdf))
    band = (np.abs(true) < 0.1) & ~wrong
    error = np.abs(np.abs(samples.sdf) - np.abs(true))[band]
    return {"wrong": float(wrong.sum() / max(decided.sum(), 1)),
            "median_error": float(np.median(error)), "p95_error": float(np.percentile(error, 95)),
            "kept": len(samples.sdf), "coverage": samples.stats["coverage"]}


def run_signs(work: Path) -> None:
    meshes = shapes(work / "meshes")
    print(f"{'capture':<10} {'views':>5} {'shape':<14} {'wrong >0.01':>11} {'dist med':>9} "
          f"{'p95':>7} {'kept':>7} {'coverage':>8}")
    summary = {}
    for capture, elevations in CAPTURES.items():
        for views in (4, 8, 20):
            rows = []
            for name, mesh in meshes.items():
                figures = sign_figures(mesh, views, elevations)
                rows.append(figures)
                if "failed" in figures:
                    print(f"{capture:<10} {views:>5} {name:<14} failed: {figures['failed']}")
                    continue
                print(f"{capture:<10} {views:>5} {name:<14} {figures['wrong']:>11.3%} "
                      f"{figures['median_error']:>9.4f} {figures['p95_error']:>7.4f} "
                      f"{figures['kept']:>7} {figures['coverage']:>8.3f}")
            done = [r for r in rows if "failed" not in r]
            summary[(capture, views)] = (
                len(rows) - len(done), max(r["wrong"] for r in done) if done else None,
                float(np.mean([r["wrong"] for r in done])) if done else None)
    print("\ncapture    views  failed  worst wrong  mean wrong")
    for (capture, views), (failed, worst, mean) in summary.items():
        print(f"{capture:<10} {views:>5} {failed:>7}  {worst:>11.3%}  {mean:>10.3%}"
              if worst is not None else f"{capture:<10} {views:>5} {failed:>7}")


def run_model(out: Path, demo: Path, views: int) -> None:
    import trimesh

    from deepsdf.evaluate import evaluate_split
    from deepsdf.experiment import Experiment, load_specs
    from deepsdf.inference import reconstruct_split
    from deepsdf.settings import QUALITIES
    from deepsdf.train import Trainer
    from deepsdf_preprocess.contract import read_split
    from deepsdf_preprocess.scan_driver import preprocess_scans
    from deepsdf_preprocess.virtual_scans import CaptureConfig, capture_views, write_views

    data = (demo / "data").resolve()
    train_split = data / "splits" / "procedural_train.json"
    test_split = data / "splits" / "procedural_test.json"
    scans, scan_data = out / "scans", out / "scan_data"
    started = time.perf_counter()
    train = read_split(train_split)["procedural"]
    for category, names in train.items():
        for index, name in enumerate(names):
            folder = scans / category / name
            if folder.is_dir():
                continue
            mesh = trimesh.load(demo / "meshes" / category / f"{name}.obj", force="mesh",
                                process=False)
            write_views(folder, capture_views(mesh, CaptureConfig(views=views),
                                              np.random.default_rng([index, len(category)])))
    print(f"captured {sum(map(len, train.values()))} shapes x {views} views in "
          f"{time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    report = preprocess_scans(scans, scan_data, "procedural", progress=False)
    print(f"preprocessed the scans in {time.perf_counter() - started:.0f} s: "
          f"{len(report.succeeded)} ok, {len(report.failed)} failed {report.failed}")
    rows = {}
    for name, experiment_dir in (("meshes (the demo's model)", demo / "experiment"),
                                 ("scans", out / "experiment")):
        if name == "scans":
            specs = json.loads((ROOT / "experiments" / "demo" / "specs.json").read_text())
            specs.update(DataSource=str(scan_data.resolve()),
                         TrainSplit=str(report.split_path.resolve()),
                         TestSplit=str(test_split))
            experiment_dir.mkdir(parents=True, exist_ok=True)
            (experiment_dir / "specs.json").write_text(json.dumps(specs, indent=2))
            if not (experiment_dir / "Checkpoints" / "latest.pt").is_file():
                started = time.perf_counter()
                Trainer(experiment_dir, load_specs(experiment_dir), device="cpu",
                        progress=False).train()
                print(f"trained from scans in {time.perf_counter() - started:.0f} s")
        experiment = Experiment(experiment_dir, data=data)
        held_out = read_split(test_split)
        quality = QUALITIES["fast"]
        reconstruct_split(experiment, held_out, solver=quality.reconstruct,
                          resolution=quality.resolution, skip=True, progress=False)
        summary = evaluate_split(experiment, held_out)
        rows[name] = summary
    print(f"\n{'trained from':<28} {'held-out Chamfer mean / median':>31} "
          f"{'retrieval mean / median':>25} {'won':>5} verdict")
    for name, summary in rows.items():
        versus = summary["versus_retrieval_code"]
        print(f"{name:<28} {versus['mean'][0]:>16.3e} / {versus['median'][0]:.3e} "
              f"{versus['mean'][1]:>13.3e} / {versus['median'][1]:.3e} "
              f"{versus['won']:>3}/{versus['shapes']} {versus['verdict']}")
    meshes, scanned = (rows[k]["reconstruction"]["chamfer"] for k in rows)
    print(f"\nscans / meshes: mean {scanned['mean'] / meshes['mean']:.2f}x, median "
          f"{scanned['median'] / meshes['median']:.2f}x (target: within 1.5x)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signs", action="store_true", help="the sign and distance table")
    parser.add_argument("--model", type=Path, metavar="OUT",
                        help="train from scans into OUT and compare with the demo's model")
    parser.add_argument("--demo", type=Path, default=ROOT / "demo_output",
                        help="a finished demo run (its meshes, data and experiment)")
    parser.add_argument("--views", type=int, default=8, help="views per training shape")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("DEEPSDF_NO_PROGRESS", "1")
    if not (args.signs or args.model):
        parser.error("give --signs, --model OUT, or both")
    if args.signs:
        import tempfile

        with tempfile.TemporaryDirectory() as work:
            run_signs(Path(work))
    if args.model:
        run_model(args.model.resolve(), args.demo.resolve(), args.views)


if __name__ == "__main__":
    main()

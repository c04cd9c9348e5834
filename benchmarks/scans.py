"""Training data from depth scans, measured against truth.

1. **Signs and distances** (``--signs``): the embedded shapes (a sphere, a box, 3 chairs,
   3 tables, 3 vessels, and two hard ones the categories lack: a shelf of thin boards and a
   deep narrow cup) captured by :mod:`deepsdf_preprocess.virtual_scans` through the physical
   Kinect-v1 model of :mod:`deepsdf_preprocess.sensor_model` (Nguyen et al.'s axial and
   lateral noise, no return beyond 75 degrees of incidence, projector shadows, flying pixels,
   1/8-pixel disparity steps; docs/scans.md), 0.3 m objects 0.8 m away at 160 x 120, in the
   setups of ``--setups``:

   - ``around8``: 8 views all around, elevations 10 and 40 degrees alternating;
   - ``turntable4``: 4 views, elevations 15 and 45 degrees alternating;
   - ``around8-tof``: ``around8`` through the time-of-flight variant;
   - ``around8-320``: ``around8`` at 320 x 240 (at 160 x 120 a 0.3 m object 0.8 m away is
     about 55 pixels across, and a chair's legs are a pixel wide);
   - ``toy``: the earlier toy noise model's setups (around -30/10/45 and turntable 15/45
     degrees, 4, 8 and 20 views, 320 x 240 at 0.7 m), for comparison.

   The views go through their files (``write_views`` / ``read_views``, masks included) to
   ``sample_views``, the library call of ``deepsdf preprocess-scans``; each sample against
   the mesh's exact signed distance: per object the share of samples farther than 0.01 from
   the surface with the wrong sign, the median and 95th percentile distance error within the
   clamp band (0.1), the samples kept and the coverage.
2. **A model from scans** (``--model``, after ``./scripts/demo.sh``): the demo's 54 training
   meshes captured from ``--views`` views (the toy model), preprocessed from the scans alone,
   and the demo's spec trained on them (the same 2520 steps); then the demo's 6 held-out
   shapes reconstructed from their mesh samples (the standard protocol; the fast preset) by
   this model and by the demo's own, both judged against the truth beside retrieval.

    python benchmarks/scans.py --signs [--setups around8,turntable4] [--shapes chairs_0000,cup]
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


def _setups() -> dict:
    """name -> [(label, CaptureConfig)]: the capture setups of the module docstring."""
    from dataclasses import replace

    from deepsdf_preprocess.sensor_model import KINECT_V1, KINECT_V2
    from deepsdf_preprocess.virtual_scans import CaptureConfig

    physical = CaptureConfig(distance=0.8, width=160, height=120, sensor=KINECT_V1)
    return {
        "around8": [("around8", replace(physical, views=8, elevations=(10.0, 40.0)))],
        "turntable4": [("turntable4", replace(physical, views=4, elevations=(15.0, 45.0)))],
        "around8-tof": [("around8-tof", replace(physical, views=8, elevations=(10.0, 40.0),
                                                sensor=KINECT_V2))],
        "around8-320": [("around8-320", replace(physical, views=8, elevations=(10.0, 40.0),
                                                width=320, height=240))],
        "toy": [(f"toy-{name}{views}", CaptureConfig(views=views, elevations=elevations))
                for name, elevations in (("around", (-30.0, 10.0, 45.0)),
                                         ("turntable", (15.0, 45.0)))
                for views in (4, 8, 20)],
    }


def shelf():
    """A bookshelf of 1.8 cm boards (0.8 m tall, 0.6 m wide, 0.3 m deep): two sides, top,
    bottom, two shelves and a thin back, one closed mesh."""
    import trimesh

    t, width, height, depth = 0.018, 0.6, 0.8, 0.3
    boards = [((t, height, depth), (-(width - t) / 2, height / 2, 0.0)),
              ((t, height, depth), ((width - t) / 2, height / 2, 0.0)),
              ((width, t, depth), (0.0, t / 2, 0.0)),
              ((width, t, depth), (0.0, height - t / 2, 0.0)),
              ((width - 2 * t, t, depth - 0.006), (0.0, height / 3, 0.003)),
              ((width - 2 * t, t, depth - 0.006), (0.0, 2 * height / 3, 0.003)),
              ((width, height, 0.006), (0.0, height / 2, -(depth - 0.006) / 2))]
    parts = [trimesh.creation.box(extents=extents,
                                  transform=trimesh.transformations.translation_matrix(at))
             for extents, at in boards]
    return trimesh.boolean.union(parts, engine="manifold")


def deep_cup():
    """A deep narrow cup: 14 cm tall, 3 cm outer radius, 3 mm walls, a 6 mm bottom (its
    inside is 13.4 cm deep and 5.4 cm across): a revolved wall section, one closed mesh."""
    from deepsdf_preprocess.procedural import RevolvedProfile

    outer, wall, height, bottom = 0.03, 0.003, 0.14, 0.006
    profile = np.array([[outer, 0.0], [outer, height], [outer - wall, height],
                        [outer - wall, bottom]])
    return RevolvedProfile(profile).mesh()


def shapes(work: Path) -> dict:
    """name -> closed mesh: a sphere, a box, three of each embedded category, a shelf and a
    deep narrow cup."""
    import trimesh

    from deepsdf_preprocess.procedural import write_shapes

    result = {"sphere": trimesh.creation.icosphere(subdivisions=5),
              "box": trimesh.creation.box(extents=(1.0, 0.6, 0.4))}
    for category in ("chairs", "tables", "vessels"):
        for path in write_shapes(work, category, 3, seed=7):
            result[path.stem] = trimesh.load(path, force="mesh", process=False)
    result["shelf"] = shelf()
    result["cup"] = deep_cup()
    for name, mesh in result.items():
        if not mesh.is_watertight:
            raise RuntimeError(f"benchmark shape {name} is not closed")
    return result


def sign_figures(mesh, capture, work: Path, seed: int = 0) -> dict:
    import igl

    from deepsdf_preprocess.errors import InputError, PreprocessError
    from deepsdf_preprocess.normalize import to_original
    from deepsdf_preprocess.scan_io import read_views
    from deepsdf_preprocess.scan_sdf import ScanSamplingConfig, sample_views
    from deepsdf_preprocess.virtual_scans import capture_views, object_scale, write_views

    raw = capture_views(mesh, capture, np.random.default_rng(seed))
    write_views(work, raw)  # through the files, as preprocess-scans reads them
    try:
        samples = sample_views(read_views(work), ScanSamplingConfig(),
                               np.random.default_rng(seed))
    except (PreprocessError, InputError) as error:
        return {"failed": str(error)}
    centre, metres = object_scale(mesh, capture)
    points = to_original(samples.points, samples.offset, samples.scale) / metres + centre
    true = igl.signed_distance(points, np.asarray(mesh.vertices, np.float64),
                               np.asarray(mesh.faces, np.int64))[0] * metres * samples.scale
    decided = np.abs(true) > 0.01
    wrong = decided & (np.sign(true) != np.sign(samples.sdf))
    band = (np.abs(true) < 0.1) & ~wrong
    error = np.abs(np.abs(samples.sdf) - np.abs(true))[band]
    measured = sum(int((v["depth"] > 0).sum()) for v in raw)
    masked = sum(int(v["mask"].sum()) for v in raw if "mask" in v)
    return {"wrong": float(wrong.sum() / max(decided.sum(), 1)),
            "median_error": float(np.median(error)) if len(error) else float("nan"),
            "p95_error": float(np.percentile(error, 95)) if len(error) else float("nan"),
            "kept": len(samples.sdf), "coverage": samples.stats["coverage"],
            "returned": measured / masked if masked else float("nan")}


def run_signs(work: Path, setups: list, names: list | None = None) -> None:
    meshes = shapes(work / "meshes")
    if names:
        unknown = sorted(set(names) - set(meshes))
        if unknown:
            raise SystemExit(f"unknown shapes {unknown}; choose from {sorted(meshes)}")
        meshes = {name: meshes[name] for name in names}
    known = _setups()
    captures = [entry for setup in setups for entry in known[setup]]
    print(f"{'capture':<18} {'shape':<14} {'wrong >0.01':>11} {'dist med':>9} {'p95':>7} "
          f"{'kept':>7} {'coverage':>8} {'returned':>8} {'s':>5}")
    summary = {}
    for label, capture in captures:
        rows = []
        for name, mesh in meshes.items():
            started = time.perf_counter()
            figures = sign_figures(mesh, capture, work / "views" / label / name)
            seconds = time.perf_counter() - started
            rows.append(figures)
            if "failed" in figures:
                print(f"{label:<18} {name:<14} failed: {figures['failed']}")
                continue
            print(f"{label:<18} {name:<14} {figures['wrong']:>11.3%} "
                  f"{figures['median_error']:>9.4f} {figures['p95_error']:>7.4f} "
                  f"{figures['kept']:>7} {figures['coverage']:>8.3f} "
                  f"{figures['returned']:>8.2f} {seconds:>5.1f}", flush=True)
        done = [r for r in rows if "failed" not in r]
        summary[label] = (
            len(rows) - len(done), max(r["wrong"] for r in done) if done else None,
            float(np.mean([r["wrong"] for r in done])) if done else None)
    print(f"\n{'capture':<18} failed  worst wrong  mean wrong")
    for label, (failed, worst, mean) in summary.items():
        print(f"{label:<18} {failed:>6}  {worst:>11.3%}  {mean:>10.3%}"
              if worst is not None else f"{label:<18} {failed:>6}")


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
    parser.add_argument("--setups", default="around8,turntable4",
                        help="with --signs: comma-separated capture setups, of around8, "
                             "turntable4, around8-tof, around8-320, toy (default: "
                             "around8,turntable4)")
    parser.add_argument("--shapes", default="",
                        help="with --signs: comma-separated shape names (default: all)")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("DEEPSDF_NO_PROGRESS", "1")
    if not (args.signs or args.model):
        parser.error("give --signs, --model OUT, or both")
    if args.signs:
        import tempfile

        setups = [name for name in args.setups.split(",") if name]
        unknown = sorted(set(setups) - set(_setups()))
        if unknown:
            parser.error(f"unknown setups {unknown}; choose from {sorted(_setups())}")
        with tempfile.TemporaryDirectory() as work:
            run_signs(Path(work), setups, [n for n in args.shapes.split(",") if n] or None)
    if args.model:
        run_model(args.model.resolve(), args.demo.resolve(), args.views)


if __name__ == "__main__":
    main()

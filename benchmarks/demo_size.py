"""The demo's size: how held-out quality moves with the number of training shapes, the steps,
the batch shape and the share of uniform samples, on fixed held-out shapes.

Generates ``--count`` chairs and tables (seeded as the demo's), preprocesses them as the demo
does (one virtual scan each; ``--near-fraction``), holds out the shapes of ``--held-out`` (a
split file, e.g. a demo run's ``data/splits/procedural_test.json``, so that every row of a
comparison is judged on the same shapes) and trains the demo spec (experiments/demo/specs.json)
on all the others for ``--steps`` optimizer steps (the learning-rate cuts kept at the spec's
share of the run), then reconstructs the held-out shapes (Gauss-Newton preset, 128^3) and
prints Chamfer mean/median, F-score at 1% and IoU with the per-shape figures.  Resumes from
``OUT``; another data setting needs another ``OUT`` (or ``--data`` of a matching run).

    python benchmarks/demo_size.py OUT --held-out demo_output/data/splits/procedural_test.json \
        --count 30 --steps 2520 --near-fraction 0.8 [--scenes 12 --samples-per-scene 2048]

The rows of docs/benchmarks.md "The demo's size" were measured this way (2-core CPU).
"""

from __future__ import annotations

from deepsdf.experiment import load_specs
import argparse
import csv
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prepare(out: Path, count: int, near_fraction: float | None, held_out: dict) -> Path:
    """Generate and preprocess once; the data root, with splits/train.json and test.json."""
    from deepsdf_preprocess.contract import read_split, write_split
    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.partial_scan import VirtualScanConfig
    from deepsdf_preprocess.pipeline import PreprocessConfig
    from deepsdf_preprocess.procedural import write_shapes
    from deepsdf_preprocess.sampling import PRESETS

    data = out / "data"
    if (data / "splits" / "train.json").is_file():
        return data
    for category in ("chairs", "tables"):
        write_shapes(out / "meshes", category, count, 0)
    config = PreprocessConfig(sampling=PRESETS["train"].overridden(near_fraction=near_fraction),
                              partial_scan=VirtualScanConfig())
    started = time.perf_counter()
    report = preprocess_dataset(out / "meshes", data, "procedural", config=config,
                                workers=os.cpu_count() or 1, seed=0, backend="pyrender")
    if report.failed:
        raise SystemExit(f"{len(report.failed)} shapes failed; see {report.manifest_path}")
    print(f"preprocessed {len(report.succeeded)} shapes in {time.perf_counter() - started:.0f} s")
    test = {(c, i) for classes in held_out.values() for c, names in classes.items()
            for i in names}
    train = {d: {c: [i for i in names if (c, i) not in test] for c, names in classes.items()}
             for d, classes in read_split(report.split_path).items()}
    write_split(data / "splits" / "train.json", train)
    write_split(data / "splits" / "test.json", held_out)
    return data


def specs_for(data: Path, steps: int, changes: dict) -> dict:
    """The demo spec with ``changes``, trained ``steps`` steps on the data's training split."""
    from deepsdf.config import specs_with_epochs
    from deepsdf.latents import split_instances
    from deepsdf_preprocess.contract import read_split

    specs = json.loads((ROOT / "experiments" / "demo" / "specs.json").read_text())
    specs.update(changes)
    train = data / "splits" / "train.json"
    batches = len(split_instances(read_split(train))) // specs["ScenesPerBatch"]
    specs = specs_with_epochs(specs, max(1, round(steps / batches)))
    specs.update(DataSource=str(data.resolve()), TrainSplit=str(train.resolve()),
                 TestSplit=str((data / "splits" / "test.json").resolve()))
    return specs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("out", type=Path, help="working folder (resumed)")
    parser.add_argument("--held-out", type=Path, required=True,
                        help="split file of the shapes to hold out and judge")
    parser.add_argument("--count", type=int, default=30, help="shapes per category")
    parser.add_argument("--steps", type=int, default=2520, help="optimizer steps")
    parser.add_argument("--near-fraction", type=float, default=None,
                        help="share of samples near the surface (default: the reference's)")
    parser.add_argument("--scenes", type=int, help="ScenesPerBatch (default: the spec's)")
    parser.add_argument("--samples-per-scene", type=int,
                        help="SamplesPerScene (default: the spec's)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--data", type=Path,
                        help="the data root of an earlier run with the same data settings")
    args = parser.parse_args(argv)
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("DEEPSDF_NO_PROGRESS", "1")

    from deepsdf.evaluate import evaluate_split
    from deepsdf.inference import reconstruct_split
    from deepsdf.reconstruct import GAUSS_NEWTON
    from deepsdf.train import Trainer
    from deepsdf_preprocess.contract import read_split

    held_out = read_split(args.held_out)
    out = args.out.resolve()
    data = args.data.resolve() if args.data else prepare(out, args.count, args.near_fraction,
                                                         held_out)
    changes = {"Seed": args.seed}
    if args.scenes:
        changes["ScenesPerBatch"] = args.scenes
    if args.samples_per_scene:
        changes["SamplesPerScene"] = args.samples_per_scene
    experiment = out / "experiment"
    experiment.mkdir(parents=True, exist_ok=True)
    specs = specs_for(data, args.steps, changes)
    (experiment / "specs.json").write_text(json.dumps(specs, indent=2))
    if not (experiment / "Checkpoints" / "latest.pt").is_file():
        started = time.perf_counter()
        Trainer(experiment, load_specs(experiment), device="cpu", progress=False).train()
        print(f"trained {specs['NumEpochs']} epochs in {time.perf_counter() - started:.0f} s")
    reconstruct_split(experiment, held_out, data_dir=data, solver=GAUSS_NEWTON,
                      resolution=128, skip=True, progress=False)
    summary = evaluate_split(experiment, held_out, data_dir=data)["reconstruction"]
    print(f"held-out Chamfer mean {summary['chamfer']['mean']:.3g} median "
          f"{summary['chamfer']['median']:.3g}, F@1% {summary['f_score']['mean']:.3f}, "
          f"IoU {summary['iou']['mean']:.3f}")
    with open(experiment / "Evaluation" / "latest" / "metrics.csv", newline="") as stream:
        for row in csv.DictReader(stream):
            print(f"  {row['instance']}: Chamfer {float(row['chamfer']):.3g}, "
                  f"F@1% {float(row['f_score']):.3f}")


if __name__ == "__main__":
    main()

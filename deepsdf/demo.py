"""The end-to-end demo on the embedded procedural category (``deepsdf demo``).

generate chairs and tables -> preprocess (with one virtual partial scan per shape) -> split ->
train the small CPU model -> reconstruct the held-out shapes -> evaluate beside the retrieval
baseline -> complete every held-out shape from a single-view scan -> interpolate between a
chair and a table -> ``OUT/report/index.html`` (see :mod:`deepsdf.experiment_report`) and
``OUT/report/summary.json``.  Every step resumes on a rerun.

The demo's size was measured on the 2-core test machine (docs/benchmarks.md): held-out shapes
generalize from enough training shapes (30 per category, 3 of them held out) trained for
enough steps (the spec's 630 epochs of 12 scenes x 2048 samples: 2 520 steps), with a fifth of
the samples uniform (``near_fraction`` 0.8, against stray blobs); completion fits its several
starts with the short Gauss-Newton preset so that the whole run stays within 5 minutes.

``quick`` is the reduced mode CI runs: 4 shapes per category (1 held out), fewer samples, 300
epochs, 64^3 meshes, small pictures.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from deepsdf_preprocess.errors import InputError


__all__ = ["DemoSettings", "run_demo"]


@dataclass(frozen=True)
class DemoSettings:
    count: int = 30  # shapes per category
    held_out: int = 3  # of them, per category, held out of training
    samples: int | None = None  # SDF samples per shape (default: the train preset, 500k)
    near_fraction: float = 0.8  # of the samples near the surface (the train preset: 0.94)
    epochs: int | None = None  # training epochs (default: the demo spec's 630)
    resolution: int = 128  # mesh grid of reconstructions, completion, interpolation
    picture_size: int = 256
    steps: int = 8  # interpolation steps

    def __post_init__(self):
        if not 1 <= self.held_out < self.count:
            raise InputError(f"held_out must lie in [1, count), got {self.held_out} of "
                             f"{self.count} shapes per category")


QUICK = DemoSettings(count=4, held_out=1, samples=100_000, epochs=300, resolution=64,
                     picture_size=160, steps=5)


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


#: Worker processes of the demo's preprocessing (the machine CI runs on has two cores).
DEMO_WORKERS = 2


def run_demo(out: Path, settings: DemoSettings = DemoSettings(), *, workers: int = DEMO_WORKERS,
             backend: str = "pyrender", seed: int = 0, device: str = "auto",
             max_epochs: int | None = None) -> dict:
    """Run every step; returns the report summary (also written to ``OUT/report``)."""
    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.contract import read_split, write_split
    from deepsdf_preprocess.formats import split_path
    from deepsdf_preprocess.partial_scan import VirtualScanConfig
    from deepsdf_preprocess.pipeline import PreprocessConfig
    from deepsdf_preprocess.procedural import write_shapes
    from deepsdf_preprocess.sampling import PRESETS
    from deepsdf_preprocess.splits import make_split

    out = Path(out)
    meshes, data = out / "meshes", out / "data"
    timings, clock = {}, time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now

    for category in ("chairs", "tables"):
        write_shapes(meshes, category, settings.count, seed)
    _say(f"1/7 generated {settings.count} chairs and {settings.count} tables under {meshes}")
    lap("generate")
    sampling = PRESETS["train"].overridden(count=settings.samples,
                                           near_fraction=settings.near_fraction)
    config = PreprocessConfig(sampling=sampling, partial_scan=VirtualScanConfig())
    report = preprocess_dataset(meshes, data, "procedural", config=config, workers=workers,
                                seed=seed, backend=backend)
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} shapes failed to preprocess; see "
                           f"{report.manifest_path}")
    train, test = make_split(read_split(report.split_path),
                             test_fraction=settings.held_out / settings.count, seed=seed)
    train_path, test_path = (split_path(data, f"procedural_{n}") for n in ("train", "test"))
    write_split(train_path, train)
    write_split(test_path, test)
    _say(f"2/7 preprocessed {len(report.succeeded)} shapes into {data}; manifest "
         f"{report.manifest_path}")
    lap("preprocess")

    trainer = _train(out, data, train_path, test_path, settings, device, max_epochs)
    lap("train")

    from deepsdf.evaluate import evaluate_split
    from deepsdf.experiment import Experiment
    from deepsdf.inference import reconstruct_split
    from deepsdf.reconstruct import SHORT_GAUSS_NEWTON
    from deepsdf.settings import QUALITIES

    experiment = Experiment(out / "experiment", data=data, device=trainer.device)
    test_split = read_split(test_path)
    reconstruct_split(experiment, test_split, solver=QUALITIES["fast"].reconstruct,
                      resolution=settings.resolution, skip=True)
    evaluation = evaluate_split(experiment, test_split)
    from deepsdf.metrics import Verdict

    judged = evaluation.get("versus_retrieval_code")
    _say(f"4/7 reconstructed and evaluated the {evaluation['shapes']} held-out shapes: "
         + (Verdict.from_dict(judged).line("retrieval by code") if judged else "no baseline"))
    lap("reconstruct and evaluate")

    from deepsdf.completion import complete_split
    from deepsdf.latents import split_instances

    completion = complete_split(experiment, test_split, out_dir=out / "completion",
                                solver=SHORT_GAUSS_NEWTON, resolution=settings.resolution)
    judged = completion.summary.get("versus_retrieval")
    _say(f"5/7 completed the {len(completion.rows)} held-out shapes from one depth view each: "
         + (Verdict.from_dict(judged).line("the training shape nearest to each scan")
            if judged else "no baseline"))
    lap("complete")

    from deepsdf.interpolate import interpolation_pictures

    train_ids = split_instances(read_split(train_path))
    chair = next(k for k in train_ids if "/chairs/" in k)
    table = next(k for k in train_ids if "/tables/" in k)
    interpolation_pictures(experiment, out / "report" / "interpolation", start=chair,
                           end=table, steps=settings.steps, resolution=settings.resolution,
                           size=settings.picture_size)
    _say(f"6/7 interpolated from {chair} to {table}")
    lap("interpolate")

    from deepsdf.experiment_report import write_report

    summary = write_report(out / "report", experiment, evaluation=evaluation,
                           completion=out / "completion",
                           interpolation=out / "report" / "interpolation",
                           title="deepsdf demo: procedural chairs and tables",
                           timings=timings, picture_size=settings.picture_size,
                           replace=True, ends=(chair, table))
    _say(f"7/7 report: {out / 'report' / 'index.html'}")
    return summary


def _train(out, data, train_path, test_path, settings, device, max_epochs):
    from deepsdf.config import parse_specs, specs_with_epochs, template_specs
    from deepsdf.experiment import Experiment
    from deepsdf.latents import split_instances
    from deepsdf.train import Trainer
    from deepsdf_preprocess import contract

    template = template_specs("demo")
    if not template.is_file():
        raise InputError(f"the demo spec {template} is missing (run from a source checkout)")
    specs = json.loads(template.read_text())
    folder = Experiment(out / "experiment")
    experiment = folder.tree.folder(create=True)
    # SpecsVersion 2: paths relative to the spec's folder, so the run works from anywhere.
    relative = {name: os.path.relpath(Path(path).resolve(), experiment.resolve())
                for name, path in (("DataSource", data), ("TrainSplit", train_path),
                                   ("TestSplit", test_path))}
    specs.update(relative)
    if settings.epochs:  # the learning rates keep their cuts at the same share of the run
        specs = specs_with_epochs(specs, settings.epochs)
    shapes = len(split_instances(contract.read_split(train_path)))
    if specs["ScenesPerBatch"] > shapes:  # a small --count: fewer scenes, as many samples
        specs["SamplesPerScene"] = specs["SamplesPerScene"] * specs["ScenesPerBatch"] // shapes
        specs["ScenesPerBatch"] = shapes
    contract.write_json(folder.specs_file, specs)
    trainer = Trainer(folder, parse_specs(specs, base=experiment), device=device)
    result = trainer.train(resume=True, epochs=max_epochs)
    loss = result.history[-1][1] if result.history else float("nan")
    _say(f"3/7 trained the demo model to epoch {result.epochs_done} (loss {loss:.4g}); "
         f"checkpoint {result.checkpoint}")
    return trainer

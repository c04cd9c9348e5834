"""Shape quality per training recipe at a fixed budget: reconstruction and one-view completion
of held-out shapes, one table per recipe.

Data: the embedded procedural categories (chairs, tables, vessels), ``--per-category`` shapes
each, preprocessed once (with the preprocessor's virtual partial scan), half of every category
held out (24 held-out shapes at the default 16 per category).  Every recipe trains the same
number of optimizer steps on the same samples per step (``--steps``; ``NumEpochs`` follows from
the training-set size), then:

- reconstructs every held-out shape (Gauss-Newton preset, ``--resolution`` meshes) and
  evaluates it (Chamfer, F-score at 1%, normal consistency, IoU) beside retrieval by code;
- completes every held-out shape from ``--views`` seeded single views (view 0: the
  preprocessor's scan; others rendered from the source mesh), with several starts, and
  reports Chamfer, F-score, ``chamfer_unseen`` and the count of failed fits (no surface),
  beside the training shape nearest to each scan.

Completion costs more than training here (every shape, every view, several starts, each a
Gauss-Newton fit), so it runs for the recipes named by ``--complete`` (default: the first);
the first of those is also completed with one random start (``single-start``), with one start
and without free-space rows, and with the shorter Gauss-Newton preset: the gain of each part
of completion, and what the shorter solver costs.

``--shapes`` picks the data: ``easy`` (the above), ``hard`` (the hard generated categories:
airplanes, lamps, humans, quadrupeds, mugs, frames) or ``real-dev`` (the real meshes in
``../shared/real-dev``, read in place, never copied).  For ``hard`` and ``real-dev``,
``--per-category`` shapes per category (default 20) are split 16 / 4 per category, each
recipe also gets a table per category against **oracle retrieval** (the training shape nearest
to the truth by Chamfer): mean and median Chamfer in each true shape's unit-sphere frame, F@1%,
and shapes won, for reconstruction and for one-view completion (the preprocessor's view).
The recipe ``new`` is what ``deepsdf new --budget MINUTES`` writes for the data (``--minutes``,
timed on this machine).  ``--refine`` also refines every held-out reconstruction and
completes view 0 again with refinement (``reconstruct``/``complete --refine``), and prints what
it buys, the unseen side of completion included.  Reconstruction uses the default fit (several
starts), or
``--solver gauss-newton`` (one start, the figures before several starts became the default).

Every stage resumes from what ``--work`` holds.  Usage::

    python benchmarks/quality.py                          # every recipe (about 40 min, 2 cores)
    python benchmarks/quality.py --recipes demo,fourier   # some of them
    python benchmarks/quality.py --list                   # the recipes and what they change
    python benchmarks/quality.py --shapes hard --recipes new --minutes 30 --work W

Prints one block per recipe and a final table; writes ``WORK/results.json``.
"""

from __future__ import annotations

from deepsdf.experiment import checkpoint_path, load_specs
import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ("chairs", "tables", "vessels")
HARD = ("airplanes", "lamps", "humans", "quadrupeds", "mugs", "frames")
#: Where the real development meshes are read from (never copied into the project).
REAL_DEV = ROOT.parent / "shared" / "real-dev"
#: Held-out share per category of each shape set.
HELD_OUT = {"easy": 0.5, "hard": 0.2, "real-dev": 0.2}


#: The recipes' common base, pinned here (not read from experiments/demo, which took the
#: winner): the demo recipe this benchmark was first run against.
BASE_SPECS = {
    "SpecsVersion": 2, "NetworkArch": "deep_sdf_decoder",
    "NetworkSpecs": {"dims": [128] * 4, "dropout": [], "dropout_prob": 0.0, "norm_layers": [],
                     "latent_in": [2], "xyz_in_all": False, "use_tanh": True,
                     "latent_dropout": False, "weight_norm": False},
    "CodeLength": 64, "NumEpochs": 500, "SnapshotFrequency": 250, "AdditionalSnapshots": [],
    "LearningRateSchedule": [{"Type": "Step", "Initial": 0.005, "Interval": 200,
                              "Factor": 0.3}] * 2,
    "SamplesPerScene": 4096, "ScenesPerBatch": 6, "DataLoaderThreads": 0,
    "ClampingDistance": 0.1, "CodeRegularization": True, "CodeRegularizationLambda": 1e-4,
    "CodeBound": 1.0, "CodeInitStdDev": 1.0, "LogFrequency": 10, "CodePrior": "paper",
    "Seed": 0, "SampleStore": "mmap"}


def _demo_specs() -> dict:
    return json.loads(json.dumps(BASE_SPECS))


def _network(**changes):
    def change(specs, epochs):
        specs["NetworkSpecs"].update(changes)
        return specs
    return change


def _curriculum(specs, epochs):
    specs["Curriculum"] = [{"Epoch": int(0.4 * epochs), "Clamp": 0.05, "HardWeight": 0.1},
                           {"Epoch": int(0.7 * epochs), "Clamp": 0.025, "HardWeight": 0.2}]
    return specs


def _eikonal(specs, epochs):
    specs["EikonalWeight"] = 0.1
    return specs


def _batch_shape(specs, epochs):
    specs["ScenesPerBatch"], specs["SamplesPerScene"] = 12, 2048
    return specs


def _wide(specs, epochs):
    specs["NetworkSpecs"].update(dims=[256] * 4)
    return specs


def _learning_rate(factor):
    def change(specs, epochs):
        for schedule in specs["LearningRateSchedule"]:
            schedule["Initial"] *= factor
        return specs
    return change


def _both(*changes):
    def change(specs, epochs):
        for one in changes:
            specs = one(specs, epochs)
        return specs
    return change


#: name -> (what it changes against the demo recipe, the change)
RECIPES = {
    "demo": ("the demo recipe before this benchmark (BASE_SPECS): 4 x 128, 64-d codes, "
             "clamp 0.1, learning rates 5e-3", lambda s, e: s),
    "curriculum": ("Curriculum: clamp 0.1 -> 0.05 (hard weight 0.1) at 40% -> 0.025 (0.2) at "
                   "70%", _curriculum),
    # At the demo's learning rates (5e-3) the Fourier-encoded decoder collapsed to a constant
    # within 20 epochs (every held-out fit without surface): measured at 0.3 of them.
    "fourier4": ("fourier_frequencies 4 (xyz + 24 sin/cos features), learning rates x0.3",
                 _both(_network(fourier_frequencies=4), _learning_rate(0.3))),
    "eikonal": ("EikonalWeight 0.1 on the samples within the clamp band", _eikonal),
    "batch12x2048": ("12 scenes x 2048 samples per step instead of 6 x 4096", _batch_shape),
    "wide": ("4 x 256 hidden layers", _wide),
    "lr2x": ("learning rates x2", _learning_rate(2.0)),
    "fourier4+curriculum": ("fourier_frequencies 4 (learning rates x0.3) and the curriculum",
                            _both(_network(fourier_frequencies=4), _learning_rate(0.3),
                                  _curriculum)),
    "fourier4+batch12x2048": ("the two winners: fourier_frequencies 4 (learning rates x0.3) "
                              "and 12 scenes x 2048 samples per step",
                              _both(_network(fourier_frequencies=4), _learning_rate(0.3),
                                    _batch_shape)),
    "deep6x128": ("6 x 128 hidden layers (latent_in at the 4th)",
                  _network(dims=[128] * 6, latent_in=[3])),
    "codes32": ("32-d codes instead of 64", lambda s, e: {**s, "CodeLength": 32}),
    "new": ("what `deepsdf new --budget MINUTES` writes for the data (--minutes; its steps "
            "timed on this machine, --steps ignored)", None),
}


def say(message: str) -> None:
    print(f"[quality] {message}", flush=True)


def prepare_data(work: Path, per_category: int, samples: int, seed: int,
                 near_fraction: float | None = None, variances: tuple | None = None,
                 shapes: str = "easy", real_dev: Path = REAL_DEV):
    """Generate (or, for ``real-dev``, read in place) and preprocess the shapes once; (data
    dir, train split, test split).

    ``near_fraction`` and ``variances`` override the sampling preset's (the reference's 47/50
    and 0.005 / 0.0005); a work folder whose data was drawn otherwise is refused (use another
    ``--work``)."""
    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.formats import read_split, write_split
    from deepsdf_preprocess.manifest import read_manifest
    from deepsdf_preprocess.partial_scan import VirtualScanConfig
    from deepsdf_preprocess.pipeline import PreprocessConfig
    from deepsdf_preprocess.procedural import write_shapes
    from deepsdf_preprocess.sampling import PRESETS
    from deepsdf_preprocess.splits import make_split

    data = work / "data"
    train_path, test_path = data / "splits" / "train.json", data / "splits" / "test.json"
    sampling = PRESETS["train"].overridden(count=samples, near_fraction=near_fraction,
                                           variances=variances)
    config = PreprocessConfig(sampling=sampling, partial_scan=VirtualScanConfig())
    if train_path.is_file() and test_path.is_file():
        recorded = read_manifest(data, "procedural")["config"]["sampling"]
        wanted = {"near_fraction": sampling.near_fraction, "variances": list(sampling.variances)}
        drawn = {name: recorded[name] for name in wanted}
        if drawn != wanted:
            raise SystemExit(f"{data} was drawn with {drawn}, not {wanted}: give another "
                             "--work")
        return data, train_path, test_path
    if shapes == "real-dev":
        if not real_dev.is_dir():
            raise SystemExit(f"{real_dev} is missing: --shapes real-dev reads the real "
                             "development meshes there (give --real-dev)")
        meshes = real_dev
    else:
        meshes = work / "meshes"
        for category in (CATEGORIES if shapes == "easy" else HARD):
            write_shapes(meshes, category, per_category, seed)
    started = time.perf_counter()
    report = preprocess_dataset(meshes, data, "procedural", config=config,
                                workers=os.cpu_count() or 1, seed=seed, backend="pyrender")
    if report.failed and shapes != "real-dev":
        raise SystemExit(f"{len(report.failed)} shapes failed; see {report.manifest_path}")
    for key in report.failed:  # real meshes: the split holds those that were written
        say(f"not preprocessed: {key} (see {report.manifest_path})")
    everything = read_split(report.split_path)
    if shapes == "real-dev":  # the first --per-category of each class, by name
        everything = {dataset: {name: sorted(items)[:per_category]
                                for name, items in classes.items()}
                      for dataset, classes in everything.items()}
    train, test = make_split(everything, test_fraction=HELD_OUT[shapes], seed=seed)
    write_split(train_path, train)
    write_split(test_path, test)
    say(f"preprocessed {len(report.succeeded)} shapes in {time.perf_counter() - started:.0f} s")
    return data, train_path, test_path


def recipe_specs(name: str, data: Path, train: Path, test: Path, steps_or_minutes) -> dict:
    """The spec of recipe ``name``; ``steps_or_minutes``: (optimizer steps, budget minutes
    for ``new``)."""
    from deepsdf.latents import split_instances
    from deepsdf_preprocess.formats import read_split

    if name == "new":
        from deepsdf.recipe import plan_recipe

        recipe = plan_recipe(data=data, train=train, test=test, kind="cpu",
                             budget_minutes=steps_or_minutes[1])
        specs = dict(recipe.specs, DataSource=str(data), TrainSplit=str(train),
                     TestSplit=str(test))
        specs["Description"] = (f"benchmarks/quality.py recipe new ({steps_or_minutes[1]:g} "
                                f"min): {specs.get('Description', '')}")
        return specs
    steps = steps_or_minutes[0]
    specs = _demo_specs()
    shapes = len(split_instances(read_split(train)))
    specs = RECIPES[name][1](specs, 1)  # to learn the batch shape
    epochs = max(1, round(steps * specs["ScenesPerBatch"] / shapes))
    specs = RECIPES[name][1](_demo_specs(), epochs)
    for schedule in specs["LearningRateSchedule"]:
        schedule["Interval"] = max(1, round(0.4 * epochs))  # the demo's 200 of 500
    specs.update(NumEpochs=epochs, SnapshotFrequency=epochs, DataSource=str(data),
                 TrainSplit=str(train), TestSplit=str(test),
                 Description=f"benchmarks/quality.py recipe {name}: {RECIPES[name][0]}")
    return specs


def train_recipe(folder: Path, specs: dict) -> float:
    """Train (or resume) the recipe; seconds spent training in this call."""
    from deepsdf.checkpoint import load_checkpoint

    from deepsdf.train import Trainer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "specs.json").write_text(json.dumps(specs, indent=2))
    latest = checkpoint_path(folder)
    if latest.is_file() and load_checkpoint(latest)["epoch"] >= specs["NumEpochs"]:
        return float(json.loads((folder / "train_seconds.json").read_text()))
    started = time.perf_counter()
    Trainer(folder, load_specs(folder), device="cpu", progress=False).train(
        resume=latest.is_file())
    seconds = time.perf_counter() - started
    (folder / "train_seconds.json").write_text(json.dumps(seconds))
    return seconds


def complete_views(folder: Path, data: Path, test_split: dict, views: int, resolution: int,
                   name: str, **options) -> dict:
    """One-view completion of every held-out shape from each of ``views`` views, pooled."""
    from deepsdf.completion import COMPLETION_METRICS, complete_split
    from deepsdf.experiment import summarize

    rows, failed, seconds = [], [], 0.0
    for view in range(views):
        out = folder / name / f"view{view}"
        cached = out / "rows.json"
        if cached.is_file():
            report = json.loads(cached.read_text())
        else:
            started = time.perf_counter()
            result = complete_split(folder, test_split, data_dir=data, out_dir=out,
                                    resolution=resolution, view=view, progress=False,
                                    **options)
            report = {"rows": result.rows, "no_surface": result.no_surface,
                      "seconds": time.perf_counter() - started}
            cached.write_text(json.dumps(report))
        rows += report["rows"]
        failed += report["no_surface"]
        seconds += report.get("seconds", float("nan"))
    fallbacks = sum(1 for row in rows if row.get("fallback_rank"))
    return {"fits": len(rows) + len(failed), "failed": len(failed), "fallbacks": fallbacks,
            "seconds": seconds,
            "completion": summarize(rows, COMPLETION_METRICS),
            "retrieval": summarize(rows, COMPLETION_METRICS, "retrieval_"),
            "beats_retrieval_mean_chamfer": bool(rows) and
            summarize(rows, ["chamfer"])["chamfer"]["mean"]
            < summarize(rows, ["chamfer"], "retrieval_")["chamfer"]["mean"]}


def run_recipe(name: str, work: Path, data: Path, train: Path, test: Path, args,
               complete: bool, ablation: bool) -> dict:
    from deepsdf.completion import SINGLE_START
    from deepsdf.evaluate import evaluate_split
    from deepsdf.inference import reconstruct_split
    from deepsdf.latents import split_instances
    from deepsdf.observations import ConstraintConfig
    from deepsdf.reconstruct import GAUSS_NEWTON, SHORT_GAUSS_NEWTON
    from deepsdf_preprocess.formats import read_split

    folder = work / "recipes" / name
    written = folder / "specs.json"
    if name == "new" and written.is_file():  # timed once: a resumed run keeps its steps
        specs = json.loads(written.read_text())
    else:
        specs = recipe_specs(name, data, train, test, (args.steps, args.minutes))
    seconds = train_recipe(folder, specs)
    test_split = read_split(test)
    started = time.perf_counter()
    fit = {"solver": GAUSS_NEWTON} if args.solver == "gauss-newton" else {}
    prune = {"prune": None} if args.keep_all_parts else {}
    reconstruct_split(folder, test_split, data_dir=data, resolution=args.resolution,
                      skip=True, progress=False, **fit, **prune)
    try:
        evaluation = evaluate_split(folder, test_split, data_dir=data)
    except ValueError:  # not one mesh: every held-out shape failed
        evaluation = {"shapes": 0, "missing": split_instances(test_split),
                      "reconstruction": {}, "retrieval_code": {}}
    reconstruct_seconds = time.perf_counter() - started
    started = time.perf_counter()
    completion = {}
    variants = {"multi-start": {}}
    if ablation:
        surface_only = ConstraintConfig(free_space=0, empty_rays=0)
        variants.update({
            "single-start": {"starts": SINGLE_START},
            "single-start, no free space": {"starts": SINGLE_START,
                                            "constraints": surface_only},
            "multi-start, short solver": {"solver": SHORT_GAUSS_NEWTON}})
    for variant, options in (variants.items() if complete else ()):
        folder_name = "completion-" + "".join(c if c.isalnum() else "-" for c in variant)
        completion[variant] = complete_views(folder, data, test_split, args.views,
                                             args.resolution, folder_name, **options,
                                             **prune)
    steps = specs["NumEpochs"] * _steps_per_epoch(specs, train)
    result = {"recipe": name, "changes": RECIPES[name][0], "epochs": specs["NumEpochs"],
              "steps": steps, "samples_per_step": specs["ScenesPerBatch"]
              * specs["SamplesPerScene"], "train_seconds": seconds,
              "reconstruct_seconds": reconstruct_seconds,
              "complete_seconds": time.perf_counter() - started,
              "held_out": evaluation["shapes"], "no_surface": len(evaluation["missing"]),
              "reconstruction": evaluation["reconstruction"],
              "retrieval_code": evaluation["retrieval_code"], "completion": completion}
    if args.refine:
        result["refine"] = measure_refinement(folder, data, test_split, args, fit)
    if args.shapes != "easy":
        result["categories"] = against_oracle(folder, data, completion.get("multi-start"),
                                              refined=args.refine)
    (folder / "result.json").write_text(json.dumps(result, indent=2))
    return result


def measure_refinement(folder: Path, data: Path, test_split: dict, args, fit: dict) -> dict:
    """Refine every held-out reconstruction (the latent fits kept) and complete view 0 again
    with refinement; the seconds each took."""
    from deepsdf.inference import reconstruct_split
    from deepsdf.settings import REFINE

    started = time.perf_counter()
    prune = {"prune": None} if args.keep_all_parts else {}
    reconstruct_split(folder, test_split, data_dir=data, resolution=args.resolution, skip=True,
                      progress=False, refine=REFINE, **fit, **prune)
    seconds = time.perf_counter() - started
    completion = complete_views(folder, data, test_split, 1, args.resolution,
                                "completion-refined", refine=REFINE, **prune)
    return {"reconstruct_refine_seconds": seconds, "completion_seconds": completion["seconds"],
            "settings": {k: getattr(REFINE, k) for k in REFINE.__dataclass_fields__}}


def _steps_per_epoch(specs: dict, train: Path) -> int:
    from deepsdf.latents import split_instances
    from deepsdf_preprocess.formats import read_split

    shapes = len(split_instances(read_split(train)))
    whole, rest = divmod(shapes, specs["ScenesPerBatch"])
    return whole + (1 if rest and specs.get("FillLastBatch", False) else 0)


def _table_rows(path: Path) -> list:
    import csv

    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def _refined_reconstruction(folder: Path, data: Path, key: str):
    """(Chamfer in the original frame, F@1%) of a shape's refined reconstruction, or None."""
    import trimesh

    from deepsdf.evaluate import evaluate_shape
    from deepsdf.experiment import Experiment
    from deepsdf.inference import refined_outputs
    from deepsdf_preprocess.formats import DataTree

    path = refined_outputs(Experiment(folder), key)["original"]
    if not path.is_file():
        return None
    truth = DataTree(data).instance(key).surface()
    metrics = evaluate_shape(trimesh.load(path, force="mesh", process=False), truth["points"],
                             truth.get("normals"))
    return metrics["chamfer"], metrics["f_score"]


def against_oracle(folder: Path, data: Path, completion: dict | None,
                   refined: bool = False) -> dict:
    """Per category and overall: reconstruction and completion against oracle retrieval.

    Chamfer (squared distances, both ways) is taken to each true shape's unit-sphere frame
    (times its normalization scale squared), so that categories of other units weigh alike;
    F@1% is frame-free.  ``won``: shapes whose Chamfer is below the oracle's."""
    from deepsdf_preprocess.formats import DataTree
    from deepsdf.experiment import Experiment

    tree = DataTree(data)
    evaluation = {row["instance"]: row for row in _table_rows(
        Experiment(folder).evaluation_table)}
    def view0(name):
        path = folder / name / "view0" / "rows.json"
        return ({row["instance"]: row for row in json.loads(path.read_text())["rows"]}
                if path.is_file() else {})

    completed = view0("completion-multi-start") if completion else {}
    completed_refined = view0("completion-refined") if refined else {}

    def number(row, key):
        value = (row or {}).get(key)
        return None if value in (None, "") else float(value)

    per = {}
    for key, row in evaluation.items():
        category = key.split("/")[1]
        scale = float(tree.instance(key).normalization()[1])
        unit = scale ** 2
        oracle = number(row, "retrieval_oracle_chamfer")
        entry = {"instance": key, "oracle": None if oracle is None else oracle * unit,
                 "oracle_f": number(row, "retrieval_oracle_f_score"),
                 "reconstruction": None if number(row, "chamfer") is None
                 else number(row, "chamfer") * unit,
                 "reconstruction_f": number(row, "f_score")}
        done = completed.get(key)
        entry["completion"] = (None if number(done, "chamfer") is None
                               else number(done, "chamfer") * unit)
        entry["completion_f"] = number(done, "f_score")
        if refined:
            again = _refined_reconstruction(folder, data, key)
            entry["refined"] = None if again is None else again[0] * unit
            entry["refined_f"] = None if again is None else again[1]
            done = completed_refined.get(key)
            entry["completion_refined"] = (None if number(done, "refined_chamfer") is None
                                           else number(done, "refined_chamfer") * unit)
            entry["completion_refined_f"] = number(done, "refined_f_score")
            entry["unseen"] = number(done, "chamfer_unseen")
            entry["unseen_refined"] = number(done, "refined_chamfer_unseen")
            for name in ("unseen", "unseen_refined"):
                entry[name] = None if entry[name] is None else entry[name] * unit
                entry[name + "_f"] = None
        per.setdefault(category, []).append(entry)
    per["all"] = [entry for entries in list(per.values()) for entry in entries]
    table = {}
    for category, entries in per.items():
        block = {"shapes": len(entries)}
        kinds = ("oracle", "reconstruction", "completion") + (
            ("refined", "completion_refined", "unseen", "unseen_refined") if refined else ())
        for what in kinds:
            values = [e[what] for e in entries if e[what] is not None]
            fs = [e[what + "_f"] for e in entries if e[what + "_f"] is not None]
            block[what] = {"mean": float(np.mean(values)) if values else None,
                           "median": float(np.median(values)) if values else None,
                           "f_score": float(np.mean(fs)) if fs else None,
                           "fits": len(values)}
            if what not in ("oracle", "unseen", "unseen_refined"):
                block[what]["won"] = sum(1 for e in entries if e[what] is not None
                                         and e["oracle"] is not None and e[what] < e["oracle"])
        table[category] = block
    return table


def print_oracle_table(result: dict) -> None:
    """The per-category table of :func:`against_oracle`."""
    table = result.get("categories")
    if not table:
        return
    print(f"\n{result['recipe']}: against oracle retrieval (Chamfer x1e3 in each shape's unit "
          "frame, mean / median; F@1%; shapes won)")
    print("| category | shapes | reconstruction | F@1% | won | completion | F@1% | won | "
          "oracle | F@1% |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def pair(block):
        if block["mean"] is None:
            return "-"
        return f"{1e3 * block['mean']:.2f} / {1e3 * block['median']:.2f}"

    def f(block):
        return "-" if block["f_score"] is None else f"{block['f_score']:.2f}"

    for category, block in table.items():
        rec, done, oracle = block["reconstruction"], block["completion"], block["oracle"]
        print(f"| {category} | {block['shapes']} | {pair(rec)} | {f(rec)} | "
              f"{rec['won']}/{block['shapes']} | {pair(done)} | {f(done)} | "
              f"{done['won']}/{done['fits']} | {pair(oracle)} | {f(oracle)} |")
    if "refined" not in table.get("all", {}):
        return
    print(f"\n{result['recipe']}: what --refine buys (same units; completion on view 0, its "
          "latent fit redone with the refinement)")
    print("| category | reconstruction | refined | F@1% | won | completion refined | F@1% | "
          "won | unseen: latent | refined |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for category, block in table.items():
        rec, ref, done = block["reconstruction"], block["refined"], block["completion_refined"]
        print(f"| {category} | {pair(rec)} | {pair(ref)} | {f(ref)} | "
              f"{ref['won']}/{ref['fits']} | {pair(done)} | {f(done)} | "
              f"{done['won']}/{done['fits']} | {pair(block['unseen'])} | "
              f"{pair(block['unseen_refined'])} |")


def _cell(section: dict, metric: str, which: str = "mean") -> str:
    value = section.get(metric, {}).get(which)
    return "-" if value is None else f"{value:.3g}"


def print_recipe(result: dict) -> None:
    rec, ret = result["reconstruction"], result["retrieval_code"]
    say(f"{result['recipe']}: {result['changes']}")
    print(f"  budget {result['steps']} steps x {result['samples_per_step']} samples "
          f"({result['epochs']} epochs), trained in {result['train_seconds']:.0f} s")
    print(f"  reconstruction of {result['held_out']} held-out shapes "
          f"({result['no_surface']} without surface): Chamfer mean {_cell(rec, 'chamfer')} "
          f"median {_cell(rec, 'chamfer', 'median')}, F@1% {_cell(rec, 'f_score')}, normal "
          f"consistency {_cell(rec, 'normal_consistency')}, IoU {_cell(rec, 'iou')}; "
          f"retrieval by code: Chamfer {_cell(ret, 'chamfer')}, F {_cell(ret, 'f_score')}")
    for variant, block in result["completion"].items():
        done, near = block["completion"], block["retrieval"]
        print(f"  completion ({variant}, {block['fits']} fits in {block['seconds']:.0f} s, "
              f"{block['failed']} failed, {block['fallbacks']} fell back): Chamfer mean {_cell(done, 'chamfer')} median "
              f"{_cell(done, 'chamfer', 'median')}, F@1% {_cell(done, 'f_score')}, unseen "
              f"{_cell(done, 'chamfer_unseen')}; nearest training shape: Chamfer "
              f"{_cell(near, 'chamfer')}, F {_cell(near, 'f_score')}")


def print_table(results: list) -> None:
    print()
    print("| recipe | train s | Chamfer mean | median | F@1% | NC | IoU | completion Chamfer | "
          "unseen | F@1% | failed | retrieval Chamfer |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rec = r["reconstruction"]
        done = r["completion"].get("multi-start")
        tail = (f"{_cell(done['completion'], 'chamfer')} | "
                f"{_cell(done['completion'], 'chamfer_unseen')} | "
                f"{_cell(done['completion'], 'f_score')} | {done['failed']}/{done['fits']} | "
                f"{_cell(done['retrieval'], 'chamfer')} |" if done else "- | - | - | - | - |")
        print(f"| {r['recipe']} | {r['train_seconds']:.0f} | {_cell(rec, 'chamfer')} | "
              f"{_cell(rec, 'chamfer', 'median')} | {_cell(rec, 'f_score')} | "
              f"{_cell(rec, 'normal_consistency')} | {_cell(rec, 'iou')} | {tail}")


def _floats(text: str) -> tuple:
    return tuple(float(value) for value in text.split(","))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmark_output" / "quality",
                        help="working folder (resumed)")
    parser.add_argument("--recipes", default=",".join(RECIPES),
                        help="comma-separated recipe names (--list shows them)")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    parser.add_argument("--complete", default=None,
                        help="comma-separated recipes to run completion for (default: the "
                             "first recipe; the first of these also gets the ablation)")
    parser.add_argument("--per-category", type=int, default=None,
                        help="shapes per category (easy: 16, half held out; hard and real-dev: "
                             "20, a fifth held out)")
    parser.add_argument("--samples", type=int, default=250_000, help="SDF samples per shape")
    parser.add_argument("--near-fraction", type=float, default=None,
                        help="share of the samples near the surface (default: the reference's "
                             "0.94; another value needs its own --work)")
    parser.add_argument("--variances", type=_floats, default=None,
                        help="near-surface noise variances, comma-separated (default: the "
                             "reference's 0.005,0.0005; others need their own --work)")
    parser.add_argument("--steps", type=int, default=1200, help="optimizer steps per recipe")
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="the training budget of recipe `new` (deepsdf new --budget)")
    parser.add_argument("--shapes", choices=("easy", "hard", "real-dev"), default="easy",
                        help="the shape set (see above); each needs its own --work")
    parser.add_argument("--real-dev", type=Path, default=REAL_DEV,
                        help="where --shapes real-dev reads its meshes")
    parser.add_argument("--solver", choices=("default", "gauss-newton"), default="default",
                        help="the reconstruction fit: the default (several starts) or one "
                             "Gauss-Newton start")
    parser.add_argument("--views", type=int, default=None,
                        help="completion views per shape (default: 2 for easy, 1 otherwise)")
    parser.add_argument("--resolution", type=int, default=128, help="mesh grid")
    parser.add_argument("--refine", action="store_true",
                        help="also measure test-time refinement (reconstruct/complete "
                             "--refine) on every held-out shape")
    parser.add_argument("--keep-all-parts", action="store_true",
                        help="reconstruct and complete without dropping the pieces the "
                             "observations rule out (the fits before pruning; its own --work)")
    parser.add_argument("--no-ablation", action="store_true",
                        help="complete with several starts only (no single-start, "
                             "surface-only or short-solver variants)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.list:
        for name, (changes, _) in RECIPES.items():
            print(f"{name:22s} {changes}")
        return
    names = [n for n in args.recipes.split(",") if n]
    unknown = [n for n in names + (args.complete or "").split(",") if n and n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; --list shows them")
    os.environ.setdefault("DEEPSDF_NO_PROGRESS", "1")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    say(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads")
    work = args.work.resolve()  # the specs name their data by absolute paths
    work.mkdir(parents=True, exist_ok=True)
    if args.per_category is None:
        args.per_category = 16 if args.shapes == "easy" else 20
    if args.views is None:
        args.views = 2 if args.shapes == "easy" else 1
    data, train, test = prepare_data(work, args.per_category, args.samples, args.seed,
                                     args.near_fraction, args.variances, args.shapes,
                                     args.real_dev)
    completed = names[:1] if args.complete is None else [
        n for n in args.complete.split(",") if n]
    results = []
    for name in names:
        result = run_recipe(name, work, data, train, test, args,
                            complete=name in completed,
                            ablation=bool(completed) and name == completed[0]
                            and not args.no_ablation)
        print_recipe(result)
        print_oracle_table(result)
        results.append(result)
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print_table(results)


if __name__ == "__main__":
    main()

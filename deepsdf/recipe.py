"""A training recipe sized to a data set and a machine (``deepsdf new``).

Given a data root, a train split, a test split, a device and a time budget, writes a
``specs.json`` (SpecsVersion 2, paths relative to its folder) that

- takes its model from a template: on a CPU the demo's small Fourier decoder
  (experiments/demo/specs.json, 4 x 128, codes of 64), on a GPU the paper's
  (experiments/chairs/specs.json, 8 x 512 with weight norm and dropout, codes of 256);
- sizes the batch to the number of training shapes so that no shape sits an epoch out:
  ``ScenesPerBatch`` a divisor of the shape count near the template's, its samples per scene
  scaled to keep the points per step; ``FillLastBatch`` where no divisor is near;
- sizes the run to the budget: the seconds of one optimizer step are measured on the device
  (a few steps of the real decoder at the real batch size), and the steps the budget buys
  become ``NumEpochs``, with the template's learning-rate cuts at the same share of the run;
- says all of this, with the figures, in its ``Description``.

:func:`plan_recipe` decides (no torch needed when ``step_seconds`` is given);
:func:`time_step` measures; :func:`write_recipe` writes.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from deepsdf_preprocess import contract
from deepsdf_preprocess.errors import InputError

from .config import MAX_EPOCHS, template_specs

__all__ = ["Recipe", "plan_batches", "plan_recipe", "time_step", "write_recipe", "TEMPLATES"]

#: The model template per kind of device: (shipped spec name, the run it was tuned for); the
#: spec file is :func:`~deepsdf.config.template_specs` of the name, found when it is used.
TEMPLATES = {
    "cpu": ("demo",
            "the demo's small decoder: 4 x 128 with a Fourier encoding of xyz, codes of 64 "
            "(tuned on the 2-core CPU machine: docs/benchmarks.md)"),
    "gpu": ("chairs",
            "the paper's decoder: 8 x 512 with weight norm and dropout 0.2, codes of 256"),
}
#: The model of each template kind, as ``deepsdf new --model`` names it.
MODELS = {"cpu": "small", "gpu": "reference"}
#: Share of the budget left for start-up, checkpoints and the end of the run.
BUDGET_SHARE = 0.9
#: Data path and bookkeeping on top of a bare step (measured 4% on the CPU machine:
#: docs/benchmarks.md "Training throughput"; 10% leaves room).
BOOKKEEPING = 1.10
#: Fewer steps than this: the recipe warns (the demo's quality took 2520).
FEW_STEPS = 1000


@dataclass(frozen=True)
class Recipe:
    """What :func:`plan_recipe` chose, and why."""

    specs: dict  # the specs.json to write (paths still absolute)
    shapes: int
    scenes_per_batch: int
    samples_per_scene: int
    fill_last_batch: bool
    batches_per_epoch: int
    epochs: int
    steps: int
    step_seconds: float
    kind: str  # "cpu" or "gpu"
    warnings: tuple = ()

    @property
    def minutes(self) -> float:
        """The run's expected length (optimizer steps only)."""
        return self.steps * self.step_seconds / 60


def plan_batches(shapes: int, target: int, samples_per_step: int) -> tuple[int, int, bool]:
    """(ScenesPerBatch, SamplesPerScene, FillLastBatch) for ``shapes`` training shapes.

    ``target`` is the template's ScenesPerBatch and ``samples_per_step`` its points per step.
    With no more shapes than ``target``, one batch holds them all; otherwise the divisor of
    ``shapes`` nearest to ``target`` (by ratio) within [target / 2, 2 * target]; without one,
    ``target`` with the last batch filled.  SamplesPerScene keeps the points per step (an even
    number, as the samples are half positive, half negative)."""
    if shapes < 1:
        raise InputError("the train split holds no shapes")
    if shapes <= target:
        scenes, fill = shapes, False
    else:
        divisors = [d for d in range(max(1, math.ceil(target / 2)), 2 * target + 1)
                    if shapes % d == 0]
        if divisors:
            scenes = min(divisors, key=lambda d: abs(math.log(d / target)))
            fill = False
        else:
            scenes, fill = target, True
    per_scene = max(2, samples_per_step // scenes // 2 * 2)
    return scenes, per_scene, fill


def _schedules(template: dict, epochs: int) -> list:
    """The template's learning-rate schedules with their cuts at the same share of a run of
    ``epochs`` epochs."""
    from .config import specs_with_epochs

    return specs_with_epochs(template, epochs)["LearningRateSchedule"]


def time_step(specs: dict, shapes: int, device, *, steps: int = 6, warmup: int = 2) -> float:
    """Seconds of one bare optimizer step (forward, clamped L1, backward, Adam) of the spec's
    decoder on ``device`` at the spec's batch (ScenesPerBatch x SamplesPerScene random points
    and codes of ``shapes`` shapes): the median of ``steps`` after ``warmup``."""
    import torch

    from .config import parse_specs
    from .decoder import Decoder
    from .device import resolve_device
    from .loss import clamped_l1

    from deepsdf_preprocess.validate import require_memory

    device = resolve_device(device)
    config = parse_specs(specs, base=Path.cwd())
    count = config.scenes_per_batch * config.samples_per_scene
    # Activations kept for the backward pass: every layer's output per point, and its
    # gradient, in float32 (a lower bound).
    features = sum(config.decoder.dims) + config.decoder.latent_size + 3
    require_memory(count * features * 4 * 3, what=f"timing a step of {count:,} points",
                   hint="give --steps instead of --budget (nothing is timed), or run `new` "
                        "on the machine that will train")
    generator = torch.Generator().manual_seed(0)
    decoder = Decoder(config.decoder).to(device)
    codes = torch.nn.Embedding(shapes, config.decoder.latent_size).to(device)
    optimizer = torch.optim.Adam([*decoder.parameters(), *codes.parameters()], lr=1e-4)
    points = (torch.rand(count, 3, generator=generator) * 2 - 1).to(device)
    truth = (torch.rand(count, generator=generator) * 0.2 - 0.1).to(device)
    rows = torch.arange(count, device=device) // config.samples_per_scene % shapes
    times = []
    for index in range(warmup + steps):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        predicted = decoder(codes(rows), points).squeeze(1)
        clamped_l1(predicted, truth, config.clamp).backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index >= warmup:
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def plan_recipe(*, data: Path, train: Path, test: Path | None, kind: str,
                budget_minutes: float | None = None, steps: int | None = None,
                step_seconds: float | None = None, device="cpu") -> Recipe:
    """Choose a spec for ``data``'s ``train`` split on a device of ``kind`` ("cpu"/"gpu").

    Exactly one of ``budget_minutes`` (the steps measured to fit it, with
    :func:`time_step` on ``device`` unless ``step_seconds`` is given) and ``steps``."""
    from .latents import split_instances

    if kind not in TEMPLATES:
        raise InputError(f"unknown device kind {kind!r}; use one of {sorted(TEMPLATES)}")
    if (budget_minutes is None) == (steps is None):
        raise InputError("give a time budget (minutes) or a number of steps, not both")
    template_name, template_note = TEMPLATES[kind]
    template_path = template_specs(template_name)  # a ConfigError names a missing one
    template = json.loads(template_path.read_text())
    train_ids = split_instances(contract.read_split(train))
    test_ids = split_instances(contract.read_split(test)) if test else []
    shared = sorted(set(train_ids) & set(test_ids))
    if shared:
        raise InputError(f"{len(shared)} shape(s) are in both the train and the test split "
                         f"(e.g. {shared[0]}): a held-out shape must not be trained on")
    _check_samples(data, train_ids, "training")
    _check_samples(data, test_ids, "test")
    shapes = len(train_ids)
    samples_per_step = template["ScenesPerBatch"] * template["SamplesPerScene"]
    scenes, per_scene, fill = plan_batches(shapes, template["ScenesPerBatch"],
                                           samples_per_step)
    batches = math.ceil(shapes / scenes) if fill else shapes // scenes
    specs = dict(template, SpecsVersion=2, DataSource=str(data), TrainSplit=str(train),
                 ScenesPerBatch=scenes, SamplesPerScene=per_scene, Seed=0)
    if test:
        specs["TestSplit"] = str(test)
    else:
        specs.pop("TestSplit", None)
    specs.pop("FillLastBatch", None)  # the template's choice was for its own shapes
    if fill:
        specs["FillLastBatch"] = True
    if steps is None:
        if step_seconds is None:
            step_seconds = time_step(specs, shapes, device) * BOOKKEEPING
        steps = int(budget_minutes * 60 * BUDGET_SHARE / step_seconds)
    elif step_seconds is None:
        step_seconds = float("nan")
    epochs = max(1, round(steps / batches))
    if epochs > MAX_EPOCHS:
        raise InputError(f"that many {'minutes' if budget_minutes is not None else 'steps'} "
                         f"make {epochs:.3g} epochs; a spec holds at most {MAX_EPOCHS:g}")
    steps = epochs * batches
    specs = _sized(specs, template, epochs)
    warnings = []
    if steps < FEW_STEPS:
        warnings.append(f"the run has {steps} optimizer steps; the demo's quality took 2520 "
                        "(expect blurry shapes; give more minutes or steps)")
    recipe = Recipe(specs=specs, shapes=shapes, scenes_per_batch=scenes,
                    samples_per_scene=per_scene, fill_last_batch=fill,
                    batches_per_epoch=batches, epochs=epochs, steps=steps,
                    step_seconds=step_seconds, kind=kind, warnings=tuple(warnings))
    specs["Description"] = _description(recipe, template_note, budget_minutes)
    return recipe


def _sized(specs: dict, template: dict, epochs: int) -> dict:
    """``specs`` trained ``epochs`` epochs: schedules, snapshots and checkpoint cadence."""
    specs = dict(specs, NumEpochs=epochs, LearningRateSchedule=_schedules(template, epochs),
                 SnapshotFrequency=max(1, epochs // 2), AdditionalSnapshots=[],
                 LatestEvery=max(1, min(10, epochs // 20)))
    specs["LogFrequency"] = max(1, min(10, epochs // 50))
    return specs


def _check_samples(data: Path, instances: list, what: str) -> None:
    """Every shape of ``instances`` has its SdfSamples under ``data``."""
    from deepsdf_preprocess.formats import DataTree

    if Path(data).exists() and not Path(data).is_dir():
        raise InputError(f"the data root {data} is a file; give the folder `deepsdf "
                         "preprocess` wrote (it holds SdfSamples/)")
    if not Path(data).is_dir():
        raise InputError(f"the data root {data} does not exist (run deepsdf preprocess first)")
    tree = DataTree(data)
    missing = [key for key in instances if not tree.instance(key).sdf_samples.is_file()]
    if missing:
        raise InputError(f"{len(missing)} of {len(instances)} {what} shapes have no "
                         f"SdfSamples under {data} (e.g. {missing[0]}); preprocess them first "
                         f"or use the split preprocess wrote")


def _description(recipe: Recipe, template_note: str, budget_minutes) -> str:
    batch = (f"ScenesPerBatch {recipe.scenes_per_batch} divides the {recipe.shapes} training "
             f"shapes ({recipe.batches_per_epoch} batches per epoch, every shape in every "
             "epoch)" if not recipe.fill_last_batch else
             f"No divisor of {recipe.shapes} lies near the template's batch, so "
             f"ScenesPerBatch {recipe.scenes_per_batch} with FillLastBatch (the last of "
             f"{recipe.batches_per_epoch} batches completed with the epoch's first shapes: "
             "every shape in every epoch)")
    timing = (f"One step measured at {recipe.step_seconds * 1000:.0f} ms on this machine as it "
              f"was then (bare steps x {BOOKKEEPING} for data and bookkeeping), so {budget_minutes:g} "
              f"minutes ({BUDGET_SHARE:.0%} of them for steps) buy {recipe.steps} steps"
              if budget_minutes is not None else f"{recipe.steps} steps as asked")
    return (f"Written by `deepsdf new` on {datetime.date.today().isoformat()} for "
            f"{recipe.shapes} training shapes, the {MODELS[recipe.kind]} model: "
            f"{template_note}. "
            f"{batch}; SamplesPerScene {recipe.samples_per_scene} keeps the template's points "
            f"per step. {timing}: "
            f"NumEpochs {recipe.epochs}, the learning-rate cuts at the template's share of the "
            "run. Edit freely; docs/training.md explains every key.")


def write_recipe(folder, recipe: Recipe, *, overwrite: bool = False) -> Path:
    """Write ``folder/specs.json`` (paths relative to ``folder``); refuses to replace one
    without ``overwrite``."""
    from .experiment import Experiment

    experiment = Experiment(folder)
    folder = experiment.tree.folder(create=True)
    path = experiment.specs_file
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; choose another folder or give --overwrite")
    if experiment.checkpoint_files():
        raise InputError(f"{folder} holds a trained model (Checkpoints/); a new recipe needs "
                         "a new folder")
    specs = dict(recipe.specs)
    for key in ("DataSource", "TrainSplit", "TestSplit"):
        if key in specs:
            specs[key] = os.path.relpath(Path(specs[key]).resolve(), folder.resolve())
    contract.write_json(path, specs)
    return path

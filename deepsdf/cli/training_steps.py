"""The training steps: ``new`` (a spec sized to the data), ``train`` and ``export``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from deepsdf.cli.options import DEVICE_HELP, checkpoint_name, int_at_least, number_in
from deepsdf.config import SAMPLE_STORES
from deepsdf_preprocess.errors import InputError

logger = logging.getLogger("deepsdf")


def add_new(commands):
    parser = commands.add_parser(
        "new", help="write a specs.json sized to the data, the machine and a time budget",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Write EXP_DIR/specs.json for training on your own preprocessed shapes: the demo's small
Fourier decoder on a CPU, the paper's 8 x 512 decoder on a CUDA GPU; ScenesPerBatch chosen so
that every training shape is in every epoch (a divisor of their count near the template's, or
FillLastBatch); NumEpochs and the learning-rate cuts sized to --budget minutes from optimizer
steps timed on DEVICE now (or to --steps). The reasoning and the figures go into the spec's
Description. Then: deepsdf train EXP_DIR.""")
    parser.add_argument("experiment_dir", type=Path, help="experiment folder to create")
    parser.add_argument("--data", type=Path, required=True,
                        help="data root that `deepsdf preprocess` wrote")
    parser.add_argument("--train", type=Path, required=True, help="train split file")
    parser.add_argument("--test", type=Path,
                        help="test split file (held-out shapes: reconstruct, evaluate and "
                             "complete read it as TestSplit)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP + "; its kind picks the "
                        "model (cuda: the paper's, otherwise the small one) and the steps "
                        "are timed on it")
    parser.add_argument("--model", choices=("small", "reference"),
                        help="the model regardless of the device: small (the demo's) or "
                             "reference (the paper's)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--budget", type=number_in(positive=True, high=525_600), metavar="MINUTES",
                        help="minutes of training to size the run to (default: 15)")
    amount.add_argument("--steps", type=int_at_least(1),
                        help="optimizer steps instead of a budget (nothing is timed, and "
                             "--device only picks the model: e.g. --device cuda --steps N "
                             "for a GPU machine other than this one)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing specs.json (never one beside checkpoints)")
    parser.set_defaults(run=_run_new)


def _run_new(args) -> int:
    from deepsdf.recipe import plan_recipe, write_recipe

    device = None
    if args.steps is not None:  # nothing is timed: the device need not be this machine's
        named = args.device if args.device != "auto" else None
        kind = ("gpu" if args.model == "reference" or (not args.model and named
                                                        and named.startswith("cuda"))
                else "cpu")
    else:
        from deepsdf.device import resolve_device

        device = resolve_device(args.device)
        kind = ({"small": "cpu", "reference": "gpu"}[args.model] if args.model
                else "gpu" if device.type == "cuda" else "cpu")
    budget = None if args.steps is not None else (args.budget or 15.0)
    recipe = plan_recipe(data=args.data.resolve(), train=args.train.resolve(),
                         test=args.test.resolve() if args.test else None, kind=kind,
                         budget_minutes=budget, steps=args.steps, device=device)
    path = write_recipe(args.experiment_dir, recipe, overwrite=args.overwrite)
    for warning in recipe.warnings:
        logger.warning("%s", warning)
    batch = (f"{recipe.scenes_per_batch} shapes x {recipe.samples_per_scene} samples per "
             f"step, {recipe.batches_per_epoch} step(s) per epoch"
             + (" (last batch filled)" if recipe.fill_last_batch else ""))
    timing = (f", about {recipe.minutes:.1f} min of steps on {device} "
              f"({recipe.step_seconds * 1000:.0f} ms each)" if budget is not None else "")
    print(f"wrote {path}: {recipe.shapes} training shapes, {batch}; {recipe.epochs} epochs "
          f"= {recipe.steps} steps{timing}\nnext: deepsdf train {args.experiment_dir}")
    return 0


def add_train(commands):
    parser = commands.add_parser(
        "train", help="train the auto-decoder of an experiment folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Train the decoder and one latent code per training shape of EXP_DIR/specs.json (an original
DeepSDF specs.json works as it is). Writes EXP_DIR/specs.resolved.json, checkpoints under
EXP_DIR/Checkpoints/ (latest.pt and the snapshot epochs) and TensorBoard curves under
EXP_DIR/TensorBoard/. Several processes or machines:
  torchrun --nproc_per_node=N -m deepsdf train EXP_DIR""")
    parser.add_argument("experiment_dir", type=Path, help="folder holding specs.json")
    parser.add_argument("--data", type=Path,
                        help="data root (default: the spec's DataSource)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from EXP_DIR/Checkpoints/latest.pt")
    parser.add_argument("--resume-from", type=int_at_least(1), metavar="EPOCH",
                        help="continue from the snapshot EXP_DIR/Checkpoints/EPOCH.pt (e.g. "
                             "after a corrupt latest.pt)")
    parser.add_argument("--cache", type=Path,
                        help="folder of the packed sample cache (default $DEEPSDF_CACHE, else "
                             "EXP_DIR/PackedSamples; never the data root)")
    parser.add_argument("--sample-store", choices=SAMPLE_STORES,
                        help="where batches are drawn: device (samples uploaded once to the "
                             "training device), mmap (gathered from the memory-mapped cache "
                             "per batch) or auto (device when the samples fit "
                             "SampleStoreMemory of its free memory); default: the spec's "
                             "SampleStore, auto")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the decoder (the spec's Compile)")
    parser.add_argument("--overwrite", action="store_true",
                        help="train afresh in a folder that holds checkpoints, replacing them "
                             "(without --resume or this, such a folder is refused)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--epochs", type=int_at_least(1),
                        help="train at most this many epochs in this run (default: up to "
                             "NumEpochs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_train)


def _run_train(args) -> int:
    from deepsdf.experiment import Experiment
    from deepsdf.train import Trainer

    experiment = Experiment(args.experiment_dir)
    config = experiment.load_specs()
    if args.sample_store or args.compile:
        from dataclasses import replace

        config = replace(config, sample_store=args.sample_store or config.sample_store,
                         compile=config.compile or args.compile)
    trainer = Trainer(experiment, config, data_dir=args.data, device=args.device,
                      progress=not args.no_progress, cache=args.cache)
    if args.overwrite and (args.resume or args.resume_from):
        raise InputError("--overwrite starts afresh; it cannot be combined with --resume or "
                         "--resume-from")
    result = trainer.train(resume=args.resume, epochs=args.epochs, overwrite=args.overwrite,
                           resume_from=args.resume_from)
    if trainer.rank == 0:
        if not result.trained:
            print(f"nothing to train: {args.experiment_dir} is at epoch {result.epochs_done} "
                  f"(NumEpochs {config.epochs}); checkpoint {result.checkpoint}")
        else:
            print(f"trained to epoch {result.epochs_done} (last epoch's loss "
                  f"{result.last_loss:.6f}); checkpoint {result.checkpoint}")
    return 0


def add_export(commands):
    parser = commands.add_parser(
        "export", help="write an experiment in the original release's layout",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Write EXP_DIR's checkpoints in the original DeepSDF release's layout, which its
reconstruct.py, plot_log.py and deep_sdf.workspace loaders read:
  OUT/ModelParameters/<epoch>.pth      decoder (module.lin<i>.*, module.bn<i>.*)
  OUT/LatentCodes/<epoch>.pth          training codes {"weight": (n, d)}
  OUT/OptimizerParameters/<epoch>.pth  Adam state, the original's parameter order
  OUT/Logs.pth                         loss per batch, learning rates, timing, magnitudes
  OUT/specs.json                       a legacy spec building the same decoder (absolute paths)
(latest.pth beside the snapshots). OUT defaults to EXP_DIR/original; an existing
OUT/specs.json must describe the same decoder. `deepsdf train OUT --resume` continues such a
folder.""")
    parser.add_argument("experiment_dir", type=Path, help="the experiment folder")
    parser.add_argument("--original", action="store_true", required=True,
                        help="the original release's layout (the only export format)")
    parser.add_argument("--checkpoint", action="append", metavar="N", type=checkpoint_name,
                        help="a snapshot epoch or latest (repeatable; default: every snapshot "
                             "and latest)")
    parser.add_argument("--out", type=Path, help="output folder (default EXP_DIR/original)")
    parser.set_defaults(run=_run_export)


def _run_export(args) -> int:
    from deepsdf.experiment import Experiment
    from deepsdf.export import export_original

    experiment = Experiment(args.experiment_dir)
    written = export_original(experiment, out=args.out, checkpoints=args.checkpoint)
    print(f"wrote {len(written)} files of the original layout into "
          f"{experiment.export_layout(args.out).root}")
    return 0

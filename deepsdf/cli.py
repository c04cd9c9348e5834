"""The ``deepsdf`` command line: one command, one subcommand per pipeline step.

Subcommands import their modules lazily, so ``deepsdf --help`` and the preprocessing steps
never load torch, and nothing but ``preprocess --backend pyrender`` loads OpenGL.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

from deepsdf import __version__
from deepsdf.config import SAMPLE_STORES
from deepsdf.constraints import ConstraintConfig
from deepsdf.settings import (GAUSS_NEWTON, INTERPOLATION_RESOLUTION, INTERPOLATION_STEPS,
                              MESH_RESOLUTION, PICTURE_SIZE, QUALITIES, RECONSTRUCT_BATCH,
                              SOLVER_PRESETS, MultiStart)
from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess.pinhole import CONVENTIONS
from deepsdf_preprocess.sampling import PRESETS

logger = logging.getLogger("deepsdf")

SOLVERS = tuple(SOLVER_PRESETS)  # the first is the default
BACKENDS = ("pyrender", "raycast")
DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written, and every option's default after its help (unless the help
    already says it, or there is none to say: flags, options that default to the spec)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)

    def _fill_text(self, text, width, indent):
        if "\n" in text:  # laid out by hand
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)

DESCRIPTION = """\
DeepSDF made practical: meshes -> signed-distance training data -> shape models.

Pipeline steps:
  generate    write the embedded example categories (procedural chairs, tables, vessels)
  preprocess  turn a folder of meshes into DeepSDF training data (100 depth cameras)
  preprocess-scans  the same from depth scans of objects, without meshes
  split       make a seeded train/test split file
  new         write an experiment's specs.json sized to your shapes, machine and budget
  train       train a decoder and its latent codes (specs.json)
  reconstruct fit codes of unseen shapes, write meshes
  mesh        extract one mesh from a code
  evaluate    metrics of reconstructions beside the retrieval baseline
  report      an HTML page of an evaluated experiment: tables, pictures, 3D view
  complete    complete shapes from partial depth scans
  interpolate meshes, pictures and a GIF along a path in the shape space
  export      write an experiment in the original release's layout
  demo        the main job on the embedded data: generate, preprocess, split, train,
              reconstruct, evaluate and complete (one depth view each) the held-out
              shapes, interpolate, write an HTML report

Run `deepsdf <step> --help` for the options of a step.
"""


def _int_at_least(least: int):
    """An argparse type: an integer >= ``least`` (a one-line usage error otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value
    parse.__name__ = f"integer >= {least}"
    return parse


def _number_in(low: float | None = None, high: float | None = None, *,
               positive: bool = False):
    """An argparse type: a finite number in ``[low, high]`` (``positive``: above 0), through
    the one validator of numbers (:func:`deepsdf_preprocess.validate.number`)."""
    from deepsdf_preprocess.errors import InputError
    from deepsdf_preprocess.validate import number

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            return number(value, what="the value", minimum=low, maximum=high,
                          positive=positive)
        except InputError as error:
            raise argparse.ArgumentTypeError(str(error).replace("the value ", "")) from None
    parse.__name__ = "number"
    return parse


def _usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _shard(text: str) -> tuple[int, int]:
    """An argparse type: ``I/N`` with 0 <= I < N."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 0 <= int(index) < int(count):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return int(index), int(count)


def _checkpoint_name(text: str):
    """An argparse type: ``latest`` or a snapshot epoch (an int)."""
    if text == "latest":
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected an epoch number or latest, got {text!r}")


#: argparse reads "-6.27e-01" as an option unless told that it is a number.
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _add_generate(commands):
    parser = commands.add_parser(
        "generate", help="write procedural example meshes",
        description="Write seeded procedural meshes (chairs and tables built from boxes, "
                    "vessels revolved from a profile) to OUT_DIR/<category>/<category>_<i>.obj, "
                    "each with a .json of its parameters.  --style closed (default) writes "
                    "closed manifolds; --style soup writes the same shapes the way ShapeNet "
                    "ships meshes (un-welded overlapping parts, faces wound at random, "
                    "single-sided sheets, doubled faces, open feet...; OBJ groups, every third "
                    "a GLB with node transforms), the .json naming the defects of each part "
                    "(see docs/preprocessing.md, 'Triangle soups').")
    parser.add_argument("out_dir", type=Path, help="folder to write the meshes into")
    parser.add_argument("--category", choices=("chairs", "tables", "vessels"),
                        default="chairs",
                        help="which procedural category (vessels: vases, bottles and cups, "
                             "surfaces of revolution)")
    parser.add_argument("--count", type=_int_at_least(1), default=16, help="number of shapes")
    parser.add_argument("--seed", type=_int_at_least(0), default=0, help="generator seed")
    parser.add_argument("--style", choices=("closed", "soup", "scans"), default="closed",
                        help="closed manifolds, ShapeNet-style triangle soups of the same "
                             "shapes, or scans: noisy virtual depth views of them, in the "
                             "layout `deepsdf preprocess-scans` reads (default: closed)")
    parser.add_argument("--views", type=_int_at_least(1), default=8,
                        help="with --style scans: depth views per shape (around it, from "
                             "-30, 10 and 45 degrees elevation; docs/scans.md's noise model)")
    parser.set_defaults(run=_run_generate)


def _run_generate(args) -> int:
    from deepsdf_preprocess.procedural import write_shapes
    from deepsdf_preprocess.soup import write_soups

    if args.style == "scans":
        from deepsdf_preprocess.virtual_scans import CaptureConfig, write_scans

        folders = write_scans(args.out_dir, args.category, args.count, args.seed,
                              CaptureConfig(views=args.views))
        print(f"wrote {len(folders)} scanned {args.category} ({args.views} depth views each) "
              f"to {args.out_dir / args.category}")
        return 0
    write = write_soups if args.style == "soup" else write_shapes
    paths = write(args.out_dir, args.category, args.count, args.seed)
    style = " (triangle soups)" if args.style == "soup" else ""
    print(f"wrote {len(paths)} {args.category}{style} to {args.out_dir / args.category}")
    return 0


def _add_preprocess(commands):
    parser = commands.add_parser(
        "preprocess", help="meshes -> SdfSamples / SurfaceSamples / NormalizationParameters",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Turn MESH_DIR/<class>/<instance>.<obj|off|ply|stl|glb> (or ShapeNet's
<class>/<instance>/models/model_normalized.obj) into the DeepSDF data tree under DATA_DIR:
  SdfSamples/<dataset>/<class>/<instance>.npz              pos/neg (n, 4) [x, y, z, sdf]
  SurfaceSamples/<dataset>/<class>/<instance>.ply          30000 visible-surface points
  NormalizationParameters/<dataset>/<class>/<instance>.npz offset, scale
  OccupancySamples/<dataset>/<class>/<instance>.npz        uniform points, inside flags
  PartialScans/<dataset>/<class>/<instance>.npz            with --partial-scans: one
                                                           depth image, K, pose
Each mesh is normalized to the unit sphere, scanned by 100 orthographic 400x400 depth
cameras, sampled near its visible surface (and uniformly), and signed by exact rules where
they hold and the reference 11-neighbour unanimous vote elsewhere; an independent ray check
judges the signs before anything is written.  ShapeNet-style triangle soups (un-welded,
overlapping parts, faces wound at random, single-sided sheets) are judged per pixel-sized
piece of surface: see docs/preprocessing.md.  Reruns skip instances whose recorded files
are unchanged and were made with the same settings (and redo the others); the manifest
DATA_DIR/manifests/<dataset>.json records each instance's status, statistics and timing; the
instances that succeeded are written as a split file.  Exits 1 if any instance failed.""")
    parser.add_argument("mesh_dir", type=Path, help="folder of <class>/<instance> meshes")
    parser.add_argument("data_dir", type=Path, help="data root to write into")
    parser.add_argument("--dataset", required=True,
                        help="dataset name in the data tree and split files (e.g. ShapeNetV2)")
    parser.add_argument("--split", type=Path,
                        help="only preprocess the instances this split file lists")
    parser.add_argument("--split-out", type=Path,
                        help="where to write the split of succeeded instances (default "
                             "DATA_DIR/splits/<dataset>.json; when that file lists instances "
                             "this run does not, it is kept and this run's split goes to "
                             "<dataset>-2.json, -3, ..., with a line saying so)")
    parser.add_argument("--test", action="store_true",
                        help="test-shape preset: 250k samples, variances 0.05 / 0.0005")
    parser.add_argument("--preset", choices=tuple(PRESETS),
                        help="sampling preset: train (500k, variances 0.005 / 0.0005; the "
                             "default), test (same as --test), paper (500k, the paper's "
                             "variances 0.0025 / 0.00025)")
    parser.add_argument("--samples", type=_int_at_least(1),
                        help="override the preset's sample count")
    parser.add_argument("--near-fraction", type=_number_in(0, 1), metavar="F",
                        help="override the preset's fraction of samples near the surface "
                             "(0.94; the rest are uniform in the unit cube; the demo uses 0.8: "
                             "fewer stray blobs on held-out shapes, see docs/training.md)")
    parser.add_argument("--sign", choices=("vote", "winding"), default="vote",
                        help="sign method: vote (reference 11-neighbour unanimous vote over "
                             "the scan; works on open meshes) or winding "
                             "(generalized winding number of the whole mesh; keeps every "
                             "sample; for closed meshes)")
    parser.add_argument("--backend", choices=BACKENDS, default="pyrender",
                        help="scanner: pyrender (OpenGL through EGL, headless) or raycast (no "
                             "OpenGL; Embree where it is installed)")
    parser.add_argument("--partial-scans", action="store_true",
                        help="also write one seeded virtual depth scan per instance "
                             "(perspective 256x256, 60 degree field of view, random viewpoint "
                             "10-50 degrees above the horizon, original frame) for "
                             "`deepsdf complete --virtual-scan`")
    parser.add_argument("--views", type=_int_at_least(1), default=100,
                        help="number of cameras")
    parser.add_argument("--resolution", type=_int_at_least(2), default=400,
                        help="camera resolution in pixels")
    parser.add_argument("--workers", type=_int_at_least(1), default=_usable_cores(),
                        help="worker processes, one rendering context each; 1 runs in this "
                             "process (default: the cores this process may use)")
    parser.add_argument("--shard", type=_shard, metavar="I/N",
                        help="process only shard I of N (0-based; a hash of each instance "
                             "name, stable under file-system order): one per task of a "
                             "cluster job array, all into one data tree; then run --merge")
    parser.add_argument("--merge", action="store_true",
                        help="process nothing: merge the shards' journals into the manifest "
                             "and write the split of the instances that succeeded")
    parser.add_argument("--seed", type=_int_at_least(0), default=0,
                        help="run seed; per-instance seeds derive from it and the instance")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_preprocess)


def _preprocess_config(args):
    from deepsdf_preprocess.cameras import CameraRig
    from deepsdf_preprocess.pipeline import PreprocessConfig
    from deepsdf_preprocess.sampling import PRESETS

    preset = args.preset or ("test" if args.test else "train")
    if args.test and args.preset not in (None, "test"):
        raise InputError("--test and --preset disagree; give one of them")
    sampling = PRESETS[preset].overridden(count=args.samples, near_fraction=args.near_fraction)
    rig = CameraRig(count=args.views, resolution=args.resolution)
    from deepsdf_preprocess.partial_scan import VirtualScanConfig

    return PreprocessConfig(sampling=sampling, rig=rig, sign_method=args.sign,
                            partial_scan=VirtualScanConfig() if args.partial_scans else None)


def _run_preprocess(args) -> int:
    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.contract import read_split

    config = _preprocess_config(args)
    split = read_split(args.split) if args.split else None
    if args.merge:
        from deepsdf_preprocess.driver import discover_meshes, merge_dataset

        if args.shard:
            raise InputError("--merge runs after the shards; do not give --shard with it")
        jobs = discover_meshes(args.mesh_dir, split=split, dataset=args.dataset)
        report = merge_dataset(args.data_dir, args.dataset, {job.key for job in jobs},
                               split_out=args.split_out, forget_all=True)
        print(f"merged: {len(report.succeeded)} instance(s) ready, {len(report.failed)} failed;"
              f" manifest {report.manifest_path}; split {report.split_path}")
        return _listed(report.failed, "failed")
    report = preprocess_dataset(args.mesh_dir, args.data_dir, args.dataset, config=config,
                                split=split, workers=args.workers, seed=args.seed,
                                backend=args.backend, split_out=args.split_out,
                                progress=not args.no_progress, shard=args.shard)
    if args.shard:
        print(f"shard {args.shard[0]}/{args.shard[1]}: {len(report.succeeded)} instance(s) "
              f"ready, {len(report.failed)} failed; records in {report.journal}; run "
              "--merge when every shard is done")
        return _listed(report.failed, "failed")
    print(f"{len(report.succeeded)} instance(s) ready ({len(report.skipped)} already done), "
          f"{len(report.failed)} failed; manifest {report.manifest_path}; "
          f"split {report.split_path}")
    return _listed(report.failed, "failed")


def _add_preprocess_scans(commands):
    parser = commands.add_parser(
        "preprocess-scans", help="turn a folder of depth scans into training data (no mesh)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Turn SCAN_DIR/<class>/<instance>/ folders of depth views into the data tree a folder of meshes
would give (SdfSamples, SurfaceSamples from the fused points, NormalizationParameters of the
fused cloud, PartialScans the first view; no OccupancySamples), so train, reconstruct,
evaluate, complete and interpolate work unchanged. A view is <view>.npz (depth, K, pose
camera-to-world; optional mask, convention, depth_scale) or a 16-bit <view>.png with
<view>.json; SCAN_DIR/<class>/<instance>/cameras.json may hold defaults (K, convention,
depth_scale). Signs come from what the sensors saw: space in front of a measurement is
outside, samples near the fused surface are signed by the reference vote of its
sensor-facing normals, far samples behind the surface in several views are inside, and
samples no view constrains are dropped. An instance whose views cover too little of its
surface fails with a reason. The layout and the rules: docs/scans.md.""")
    parser.add_argument("scan_dir", type=Path, help="folder of <class>/<instance>/ views")
    parser.add_argument("data_dir", type=Path, help="data root to write into")
    parser.add_argument("--dataset", required=True, help="dataset name in the data tree")
    parser.add_argument("--split", type=Path, help="only the instances this split lists")
    parser.add_argument("--split-out", type=Path,
                        help="where to write the split of succeeded instances (default "
                             "DATA_DIR/splits/<dataset>.json, an earlier one kept)")
    parser.add_argument("--samples", type=_int_at_least(2), default=250_000,
                        help="samples drawn per instance (those no view constrains are "
                             "dropped)")
    parser.add_argument("--near-fraction", type=_number_in(0, 1), default=0.8,
                        help="share of the samples near the fused surface")
    parser.add_argument("--margin", type=_number_in(0, 1), default=0.01,
                        help="normalized units a sample must lie in front of (behind) a "
                             "measurement to count as free (occluded): above the depth noise")
    parser.add_argument("--min-coverage", type=_number_in(0, 1), default=0.5,
                        help="an instance whose views cover less of its surface fails")
    parser.add_argument("--no-background", action="store_true",
                        help="pixels without a measurement are sensor dropouts, not free "
                             "space (for depth images that were not segmented)")
    parser.add_argument("--seed", type=_int_at_least(0), default=0, help="run seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_preprocess_scans)


def _run_preprocess_scans(args) -> int:
    from deepsdf_preprocess.contract import read_split
    from deepsdf_preprocess.scan_driver import preprocess_scans
    from deepsdf_preprocess.scan_sdf import ScanSamplingConfig

    config = ScanSamplingConfig(count=args.samples, near_fraction=args.near_fraction,
                                margin=args.margin, min_coverage=args.min_coverage,
                                background=not args.no_background)
    report = preprocess_scans(args.scan_dir, args.data_dir, args.dataset, config=config,
                              split=read_split(args.split) if args.split else None,
                              seed=args.seed, split_out=args.split_out,
                              progress=not args.no_progress)
    print(f"{len(report.succeeded)} instance(s) ready ({len(report.skipped)} already done), "
          f"{len(report.failed)} failed; manifest {report.manifest_path}; "
          f"split {report.split_path}")
    return _listed(report.failed, "failed")


def _listed(problems: dict, what: str) -> int:
    """Print one stderr line per instance of ``problems`` (key -> reason); the exit status:
    1 when there is any, else 0."""
    from deepsdf_preprocess.contract import printable

    for key, reason in sorted(problems.items()):
        print(f"  {what} {printable(key)}: {printable(reason)}", file=sys.stderr)
    return 1 if problems else 0


def _add_split(commands):
    parser = commands.add_parser(
        "split", help="make a seeded train/test split",
        description="Split the instances of SOURCE (a mesh folder, or a split file such as "
                    "the one `deepsdf preprocess` writes) into train and test split files, "
                    "per class, reproducibly for a given seed.")
    parser.add_argument("source", type=Path, help="mesh folder or split .json")
    parser.add_argument("--dataset", required=True, help="dataset name in the split files")
    parser.add_argument("--train", type=Path, required=True, help="train split to write")
    parser.add_argument("--test", type=Path, required=True, help="test split to write")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing split files that hold other splits (refused "
                             "without it; --train and --test may never be one file or the "
                             "source)")
    parser.add_argument("--test-fraction", type=_number_in(0, 1), default=0.2,
                        help="fraction of each class for testing")
    parser.add_argument("--seed", type=_int_at_least(0), default=0, help="shuffle seed")
    parser.set_defaults(run=_run_split)


def _run_split(args) -> int:
    from deepsdf_preprocess.driver import discover_meshes
    from deepsdf_preprocess.contract import check_name, read_split
    from deepsdf_preprocess.splits import make_split, write_split_pair

    check_name(args.dataset, "--dataset")
    if args.source.is_file():
        instances = read_split(args.source)
        if args.dataset not in instances:
            raise InputError(f"{args.source} has no dataset {args.dataset!r} "
                             f"(it has {sorted(instances)})")
        instances = {args.dataset: instances[args.dataset]}
    else:
        instances = {args.dataset: {}}
        for job in discover_meshes(args.source):
            instances[args.dataset].setdefault(job.class_name, []).append(job.instance)
    train, test = make_split(instances, test_fraction=args.test_fraction, seed=args.seed)
    write_split_pair(args.train, args.test, train, test,
                     source=args.source if args.source.is_file() else None,
                     overwrite=args.overwrite)
    count = lambda split: sum(len(v) for c in split.values() for v in c.values())  # noqa: E731
    print(f"train {count(train)} -> {args.train}; test {count(test)} -> {args.test}")
    return 0


def _add_new(commands):
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
    amount.add_argument("--budget", type=_number_in(positive=True), metavar="MINUTES",
                        help="minutes of training to size the run to (default: 15)")
    amount.add_argument("--steps", type=_int_at_least(1),
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


def _add_train(commands):
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
    parser.add_argument("--resume-from", type=_int_at_least(1), metavar="EPOCH",
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
    parser.add_argument("--epochs", type=_int_at_least(1),
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


def _add_reconstruct(commands):
    parser = commands.add_parser(
        "reconstruct", help="fit latent codes of unseen shapes (decoder frozen)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Fit one latent code per shape of a split to its SdfSamples with the trained decoder frozen,
and write, in the original release's layout:
  EXP_DIR/Reconstructions/<checkpoint>/Codes/<dataset>/<class>/<instance>.pth
  EXP_DIR/Reconstructions/<checkpoint>/Meshes/<dataset>/<class>/<instance>.ply  (normalized)
  EXP_DIR/Reconstructions/<checkpoint>/MeshesOriginalFrame/...                   (original)
Solvers: gauss-newton (the default: Levenberg-Marquardt with per-shape damping, {gn.steps}
iterations on {gn.samples} samples; 0.11 of the reference's decoder work, and lower Chamfer on
held-out shapes) and adam (the paper's protocol: {adam.steps} steps, lr {adam.lr:g} / 10 at
half-way, {adam.samples} samples per step).""".format(gn=GAUSS_NEWTON, adam=SOLVER_PRESETS["adam"]))
    parser.add_argument("experiment_dir", type=Path, help="the experiment folder")
    parser.add_argument("--split", type=Path, help="split file (default: the spec's TestSplit)")
    parser.add_argument("--data", type=Path, help="data root (default: the spec's DataSource)")
    _add_fit_options(parser, solver_help="gauss-newton (about a ninth of the reference's "
                     "decoder work, lower Chamfer on held-out shapes) or adam (the paper's "
                     "protocol)")
    parser.add_argument("--screen", type=_int_at_least(0), metavar="N",
                        help="start each shape from the best of its random code and the "
                             "training codes, judged on N of its samples (costs (codes + 1) x N "
                             "point-passes per shape; default: the solver's, 0 for adam)")
    parser.add_argument("--batch", type=_int_at_least(1), default=RECONSTRUCT_BATCH,
                        help="shapes fitted together")
    parser.add_argument("--skip", action="store_true",
                        help="skip instances whose record says they were made from this very "
                             "checkpoint file with these settings and are unchanged since; "
                             "redo the others")
    parser.add_argument("--cache", type=Path,
                        help="folder of the packed sample cache (default $DEEPSDF_CACHE, else "
                             "EXP_DIR/PackedSamples)")
    parser.set_defaults(run=_run_reconstruct)


def _add_fit_options(parser, *, solver_help: str) -> None:
    """The options of the commands that fit codes (reconstruct, complete)."""
    parser.add_argument("--checkpoint", default="latest",
                        help="checkpoint: a snapshot epoch or latest")
    parser.add_argument("--quality", choices=tuple(QUALITIES), default="fast",
                        help="preset of the grid and the solver: "
                             + "; ".join(f"{q.name}: {q.description}"
                                         for q in QUALITIES.values())
                             + "; --resolution, --solver and --steps override it (default: "
                             "fast)")
    parser.add_argument("--solver", choices=SOLVERS,
                        help=solver_help + "; every quality uses gauss-newton, in its length "
                        "(default: gauss-newton)")
    parser.add_argument("--steps", type=_int_at_least(1),
                        help="steps (adam) or iterations (gauss-newton) (default: the solver's)")
    parser.add_argument("--resolution", type=_int_at_least(2),
                        help="mesh grid points per axis (default: the quality's, "
                             + ", ".join(f"{q.resolution} {q.name}" for q in QUALITIES.values())
                             + ")")
    parser.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed of the fit")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _experiment_and_solver(args, **changes):
    """The Experiment and the SolverConfig of a fitting command's options (the --quality
    preset's, unless --solver or --steps say otherwise); sets ``args.resolution`` from the
    preset when not given."""
    from dataclasses import replace

    from deepsdf.device import resolve_device
    from deepsdf.experiment import Experiment
    experiment = Experiment(args.experiment_dir, checkpoint=args.checkpoint, data=args.data,
                            device=resolve_device(args.device))
    quality = QUALITIES[args.quality]
    solver = (SOLVER_PRESETS[args.solver] if args.solver
              else getattr(quality, args.command))
    if args.resolution is None:
        args.resolution = quality.resolution
    if args.steps:
        changes["steps"] = args.steps
    return experiment, replace(solver, seed=args.seed, **changes)


def _run_reconstruct(args) -> int:
    from deepsdf.inference import reconstruct_split

    started = time.perf_counter()
    experiment, solver = _experiment_and_solver(
        args, **({"screen": args.screen} if args.screen is not None else {}))
    report = reconstruct_split(experiment, experiment.split(args.split), solver=solver,
                               resolution=args.resolution, batch=args.batch, skip=args.skip,
                               progress=not args.no_progress, cache=args.cache)
    print(f"reconstructed {len(report.written)} shapes ({len(report.skipped)} skipped, "
          f"{len(report.no_surface)} without a surface); {report.point_passes:,} point-passes; "
          f"{time.perf_counter() - started:.0f} s ({args.quality} quality, {solver.method} "
          f"{solver.steps} steps, {args.resolution}^3)")
    return _listed(report.unusable, "not reconstructed")


def _add_mesh(commands):
    parser = commands.add_parser(
        "mesh", help="extract a mesh from a trained or reconstructed code",
        description="Evaluate the decoder on the grid linspace(-1, 1, N)^3 (coarse-to-fine "
                    "unless --dense) and run marching cubes. The code is a training shape's "
                    "row (--instance dataset/class/instance) or a reconstructed code file "
                    "(--code). Writes PLY or OBJ (by the suffix of OUT), normalized frame "
                    "unless --normalization gives a NormalizationParameters file.")
    parser.add_argument("experiment_dir", type=Path, help="the experiment folder")
    parser.add_argument("out", type=Path, help="mesh file to write (.ply or .obj)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--instance",
                        help="a training instance: dataset/class/instance, or an unambiguous "
                             "class/instance or instance")
    source.add_argument("--code", type=Path, help="a code .pth file")
    parser.add_argument("--checkpoint", default="latest",
                        help="checkpoint: a snapshot epoch or latest")
    parser.add_argument("--resolution", type=_int_at_least(2), default=MESH_RESOLUTION,
                        help="grid points per axis")
    parser.add_argument("--dense", action="store_true", help="evaluate every grid point")
    parser.add_argument("--normalization", type=Path,
                        help="NormalizationParameters .npz: write in the original frame")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.set_defaults(run=_run_mesh)


def _run_mesh(args) -> int:
    from deepsdf.device import resolve_device
    from deepsdf.experiment import Experiment, check_mesh_format, read_code, write_mesh
    from deepsdf.mesh import code_mesh
    from deepsdf_preprocess.formats import read_normalization

    check_mesh_format(args.out)  # before the work, not after
    device = resolve_device(args.device)
    model = Experiment(args.experiment_dir, checkpoint=args.checkpoint, device=device).model
    decoder = model.decoder
    if args.instance:
        from deepsdf.latents import find_instance

        code = model.codes[find_instance(model.instance_ids, args.instance)]
    else:
        code = read_code(args.code, model.config.decoder.latent_size)
    offset = scale = None
    if args.normalization:
        offset, scale = read_normalization(args.normalization)
    mesh = code_mesh(decoder, code.to(device), args.resolution,
                     clamp=model.config.trained_clamp, dense=args.dense, offset=offset,
                     scale=scale)
    write_mesh(args.out, mesh)
    print(f"wrote {args.out}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces")
    return 0


def _add_evaluate(commands):
    parser = commands.add_parser(
        "evaluate", help="metrics of reconstructed meshes",
        description="Compare EXP_DIR/Reconstructions/<checkpoint>/MeshesOriginalFrame with the "
                    "shapes' SurfaceSamples (original frame): Chamfer as the original "
                    "protocol (30000 points each, squared distances, both means summed), "
                    "Chamfer-L1, F-score at 1% of the bounding-box side, normal consistency, "
                    "Earth Mover's distance on 1000-point subsamples, volumetric IoU at the "
                    "OccupancySamples; and the retrieval "
                    "baseline (the training shape nearest by fitted code, and the oracle "
                    "nearest by Chamfer) with the same metrics. Writes "
                    "EXP_DIR/Evaluation/<checkpoint>/metrics.csv and summary.json.")
    parser.add_argument("experiment_dir", type=Path, help="the experiment folder")
    parser.add_argument("--split", type=Path, help="split file (default: the spec's TestSplit)")
    parser.add_argument("--data", type=Path, help="data root (default: the spec's DataSource)")
    parser.add_argument("--checkpoint", default="latest",
                        help="checkpoint: a snapshot epoch or latest")
    parser.add_argument("--no-retrieval", action="store_true", help="skip the baseline")
    parser.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> int:
    from deepsdf.evaluate import evaluate_split, summary_table
    from deepsdf.experiment import Experiment

    experiment = Experiment(args.experiment_dir, checkpoint=args.checkpoint, data=args.data)
    summary = evaluate_split(experiment, experiment.split(args.split),
                             retrieval=not args.no_retrieval)
    from deepsdf.metrics import Verdict

    print(summary_table(summary))
    if "versus_retrieval_code" in summary:
        print("reconstruction " + Verdict.from_dict(summary["versus_retrieval_code"]).line(
            "retrieval by code"))
    print(f"{summary['shapes']} shapes evaluated"
          + (f", {len(summary['missing'])} without a reconstruction" if summary["missing"]
             else "") + f"; per shape: {experiment.evaluation_table}; summary: "
          f"{experiment.evaluation_summary}")
    if summary.get("note"):
        print(f"note: {summary['note']}")
    return 0


def _add_report(commands):
    parser = commands.add_parser(
        "report", help="an HTML report of an evaluated experiment",
        description="Write an HTML page (index.html, with summary.json, pictures and an "
                    "offline 3D view beside it) of an experiment that `deepsdf reconstruct` "
                    "and `deepsdf evaluate` ran on: the verdict against retrieval on mean, "
                    "median and shapes won, the summary and per-shape tables with retrieval "
                    "beside each shape, a picture strip per shape (truth, reconstruction, "
                    "retrieved shape; with --completion the depth view and the completion "
                    "too), each shape's meshes side by side at one scale, the interpolation "
                    "strip with --interpolation, the training curve and the settings.")
    parser.add_argument("experiment_dir", type=Path, help="the experiment folder")
    parser.add_argument("--out", type=Path,
                        help="folder of the page: new, empty, or an earlier report's "
                             "(default: EXP_DIR/Report/<checkpoint>)")
    parser.add_argument("--completion", type=Path,
                        help="the --out folder of `deepsdf complete --virtual-scan` on the "
                             "same shapes")
    parser.add_argument("--interpolation", type=Path,
                        help="the --out folder of `deepsdf interpolate`")
    parser.add_argument("--data", type=Path, help="data root (default: the spec's DataSource)")
    parser.add_argument("--checkpoint", default="latest",
                        help="checkpoint: a snapshot epoch or latest")
    parser.add_argument("--size", type=_int_at_least(16), default=PICTURE_SIZE,
                        help="picture size in pixels")
    parser.add_argument("--no-progress", action="store_true",
                        help="accepted by every step (this one shows none)")
    parser.set_defaults(run=_run_report)


def _run_report(args) -> int:
    from deepsdf.experiment import Experiment
    from deepsdf.experiment_report import write_report

    if not args.experiment_dir.is_dir():
        raise InputError(f"experiment folder {args.experiment_dir} does not exist")
    experiment = Experiment(args.experiment_dir, checkpoint=args.checkpoint, data=args.data)
    out = args.out or experiment.report_folder
    for name, folder in (("--completion", args.completion),
                         ("--interpolation", args.interpolation)):
        if folder is not None and not folder.is_dir():
            raise InputError(f"{name} {folder} is not a folder")
    summary = write_report(out, experiment, completion=args.completion,
                           interpolation=args.interpolation, picture_size=args.size)
    print(f"wrote {summary['report']}")
    return 0


def _add_complete(commands):
    parser = commands.add_parser(
        "complete", help="complete shapes from partial depth scans",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Fit a latent code to a partial observation (decoder frozen) and extract the whole shape.
Observed points give two samples each at +-eta along the normal estimated from the depth
image (SDF +-eta); points on the camera ray in front of them, and on the rays of pixels
without a measurement (background), are free space (a one-sided "outside" constraint).
Mask everything but the object to 0 in real depth images (or pass --no-background).

The completion experiment on a dataset (one view per shape):
  deepsdf complete EXP_DIR --virtual-scan [--split FILE] [--data DATA] [--meshes DIR] --out OUT
Scans come from DATA/PartialScans (`deepsdf preprocess --partial-scans`), else are rendered
now from the source meshes DATA's manifest records (or --meshes DIR). Writes
OUT/Meshes/<dataset>/<class>/<instance>.ply (original frame), OUT/Codes/..., and a report
OUT/completion.csv + OUT/summary.json: Chamfer, Chamfer-L1, F-score and Chamfer on the unseen
part, beside the retrieval baseline (the training shape nearest to the observed points).

Real scans (depth in metres from .npy/.npz, or a 16-bit PNG with --depth-scale):
  deepsdf complete EXP_DIR --depth D.png --K K.txt --pose P.txt --depth-scale 1000 \\
      (--normalization N.npz | --transform T.txt) --out OUT
  deepsdf complete EXP_DIR --points CLOUD.ply --sensor X Y Z \\
      (--normalization N.npz | --transform T.txt) --out OUT
K: 3x3 intrinsics; P: 4x4 camera-to-world pose in the --convention (opencv: x right, y down,
z forward; opengl: x right, y up, z backward). T: 4x4 similarity world -> model frame
(x_model = s R x + t); N: NormalizationParameters of the object's frame. Repeat --depth and
--pose (and --K) for several views. Writes OUT/completed.ply (world frame),
OUT/completed_normalized.ply, OUT/code.pth; with --truth MESH also OUT/metrics.json.""")
    parser._negative_number_matcher = _NEGATIVE_NUMBER  # --sensor 1e+00 -6.2e-01 2.0
    parser.add_argument("experiment_dir", type=Path, help="the experiment folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--virtual-scan", action="store_true",
                        help="run the completion experiment on a split's shapes")
    parser.add_argument("--split", type=Path, help="split file (default: the spec's TestSplit)")
    parser.add_argument("--data", type=Path, help="data root (default: the spec's DataSource)")
    parser.add_argument("--meshes", type=Path, help="source meshes to scan (virtual scans)")
    parser.add_argument("--depth", type=Path, action="append", help="a depth image")
    parser.add_argument("--K", type=Path, action="append", help="3x3 intrinsics (text/.npy)")
    parser.add_argument("--pose", type=Path, action="append",
                        help="4x4 camera-to-world pose (text/.npy)")
    parser.add_argument("--convention", choices=CONVENTIONS, default=CONVENTIONS[0],
                        help="camera axes of --pose (see below)")
    parser.add_argument("--depth-scale", type=_number_in(positive=True),
                        help="depth units per metre (e.g. 1000 for millimetres): required for "
                             "16-bit PNGs; .npy/.npz depths are divided by it too when given "
                             "(metres otherwise)")
    parser.add_argument("--points", type=Path, help="a partial point cloud (.ply/.npy/.xyz)")
    parser.add_argument("--sensor", type=_number_in(), nargs=3, metavar=("X", "Y", "Z"),
                        help="the point cloud's sensor position (world frame)")
    frame = parser.add_mutually_exclusive_group()
    frame.add_argument("--transform", type=Path, help="4x4 similarity world -> model frame")
    frame.add_argument("--normalization", type=Path,
                       help="NormalizationParameters .npz of the world frame")
    parser.add_argument("--truth", type=Path, help="full ground-truth mesh (world frame)")
    defaults = ConstraintConfig()
    parser.add_argument("--eta", type=_number_in(positive=True), default=defaults.eta,
                        help="surface sample offset along the normal, model units")
    parser.add_argument("--free-space", type=_int_at_least(0), default=defaults.free_space,
                        help="free-space samples on each observed point's ray (0 disables "
                             "free space)")
    parser.add_argument("--empty-rays", type=_number_in(0), default=defaults.empty_rays,
                        help="free-space samples on rays of pixels without a measurement, per "
                             "observed point")
    parser.add_argument("--no-background", action="store_true",
                        help="pixels without a measurement are sensor dropouts, not background "
                             "(do not use their rays as free space)")
    parser.add_argument("--no-retrieval", action="store_true", help="skip the baseline")
    parser.add_argument("--single-start", action="store_true",
                        help="fit each shape from one random code, as the reference does "
                             "(default: several starts fitted together, the best kept: the "
                             f"{MultiStart().nearest} training codes that best explain the "
                             "scan, the mean code and a random one)")
    _add_fit_options(parser, solver_help="gauss-newton or adam (the reference)")
    parser.set_defaults(run=_run_complete)


def _run_complete(args) -> int:
    from deepsdf.settings import SINGLE_START

    started = time.perf_counter()
    experiment, solver = _experiment_and_solver(args)
    settings = (f"{args.quality} quality, {solver.method} {solver.steps} steps, "
                f"{args.resolution}^3")
    starts = SINGLE_START if args.single_start else MultiStart()
    constraints = ConstraintConfig(eta=args.eta, free_space=args.free_space,
                                   empty_rays=0.0 if args.no_background else args.empty_rays)
    if args.virtual_scan:
        if args.depth or args.points:
            raise InputError("--virtual-scan completes a split; do not also give --depth or "
                             "--points")
        from deepsdf.completion import complete_split

        report = complete_split(experiment, experiment.split(args.split), out_dir=args.out,
                                meshes_dir=args.meshes, solver=solver, starts=starts,
                                constraints=constraints, resolution=args.resolution,
                                retrieval=not args.no_retrieval,
                                progress=not args.no_progress)
        summary = report.summary
        from deepsdf.metrics import Verdict

        line = f"completed {summary['shapes']} shapes into {args.out}"
        if "versus_retrieval" in summary:
            line += "; completion " + Verdict.from_dict(summary["versus_retrieval"]).line(
                "retrieval")
        elif "completion" in summary and summary["shapes"]:
            line += f"; mean Chamfer {summary['completion']['chamfer']['mean']:.3g}"
        print(line + f"; report {args.out / 'summary.json'}; "
              f"{time.perf_counter() - started:.0f} s ({settings})")
        return 0
    from deepsdf.completion import complete_scans

    summary = complete_scans(experiment, _observation_from_args(args),
                             _similarity_from_args(args), out_dir=args.out, solver=solver,
                             starts=starts, constraints=constraints,
                             resolution=args.resolution, truth=args.truth)
    print(f"wrote {summary['mesh']} ({summary['observed_points']} observed points); "
          f"{time.perf_counter() - started:.0f} s ({settings})")
    return 0


def _observation_from_args(args):
    """The world-frame observation of --depth/--K/--pose or --points/--sensor."""
    import numpy as np

    from deepsdf.observations import observe_depth_files, observe_points, read_point_cloud

    if bool(args.depth) == bool(args.points):
        raise InputError("give either --depth (with --K and --pose) or --points (with "
                         "--sensor), or --virtual-scan")
    if args.points:
        if args.sensor is None:
            raise InputError("--points needs --sensor X Y Z (where the scanner was)")
        return observe_points(read_point_cloud(args.points), np.asarray(args.sensor))
    poses, intrinsics = args.pose or [], args.K or []
    if len(poses) != len(args.depth) or len(intrinsics) not in (1, len(args.depth)):
        raise InputError("give one --pose per --depth, and one --K (shared) or one per --depth")
    return observe_depth_files(args.depth, intrinsics, poses, depth_scale=args.depth_scale,
                               convention=args.convention)


def _similarity_from_args(args):
    from deepsdf.frames import Similarity, read_similarity
    from deepsdf_preprocess.formats import read_normalization

    if args.transform:
        return read_similarity(args.transform)
    if args.normalization:
        return Similarity.from_normalization(*read_normalization(args.normalization))
    raise InputError("give the object's frame: --normalization N.npz or --transform T.txt "
                     "(world -> model similarity)")


def _add_interpolate(commands):
    parser = commands.add_parser(
        "interpolate", help="meshes and pictures along a path between two codes",
        description="Interpolate between two codes (training instance ids such as "
                    "dataset/class/instance, or .pth code files of reconstructed or completed "
                    "shapes) with slerp (great-circle direction, linear norm; default) or "
                    "linear interpolation, or draw --random codes from the Gaussian fitted to "
                    "the training codes. Writes OUT/step_XX.ply (normalized frame), "
                    "OUT/strip.png (all steps from one camera) and OUT/interpolation.gif "
                    "(random mode: OUT/sample_XX.ply and OUT/grid.png).")
    parser.add_argument("experiment_dir", type=Path, help="the experiment folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--from", dest="start",
                        help="first code: a training instance (as mesh --instance) or a .pth")
    parser.add_argument("--to", dest="end",
                        help="last code: a training instance (as mesh --instance) or a .pth")
    parser.add_argument("--steps", type=_int_at_least(2), default=INTERPOLATION_STEPS,
                        help="codes on the path")
    parser.add_argument("--mode", choices=("slerp", "linear"), default="slerp",
                        help="slerp (great-circle direction, linear norm) or linear")
    parser.add_argument("--random", type=_int_at_least(1), metavar="N",
                        help="instead: N codes from the Gaussian of the training codes")
    parser.add_argument("--resolution", type=_int_at_least(2), default=INTERPOLATION_RESOLUTION,
                        help="mesh grid points per axis")
    parser.add_argument("--size", type=_int_at_least(16), default=PICTURE_SIZE,
                        help="picture size in pixels")
    parser.add_argument("--renderer", choices=("auto", "pyrender", "raycast"), default="auto",
                        help="pictures: pyrender (OpenGL/EGL), raycast (no OpenGL) or auto")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (accepted by every step; interpolate prints "
                             "none)")
    parser.add_argument("--checkpoint", default="latest",
                        help="checkpoint: a snapshot epoch or latest")
    parser.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed of the fit")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.set_defaults(run=_run_interpolate)


def _run_interpolate(args) -> int:
    from deepsdf.interpolate import interpolation_pictures
    from deepsdf.device import resolve_device

    if args.random is None and not (args.start and args.end):
        raise InputError("give --from and --to (or --random N)")
    if args.random is not None and args.random < 1:
        raise InputError(f"--random needs a positive count, got {args.random}")
    written = interpolation_pictures(
        args.experiment_dir, args.out, start=args.start, end=args.end, steps=args.steps,
        mode=args.mode, random=args.random, resolution=args.resolution, size=args.size,
        renderer=args.renderer, checkpoint=args.checkpoint, seed=args.seed,
        device=resolve_device(args.device))
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _add_export(commands):
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
    parser.add_argument("--checkpoint", action="append", metavar="N", type=_checkpoint_name,
                        help="a snapshot epoch or latest (repeatable; default: every snapshot "
                             "and latest)")
    parser.add_argument("--out", type=Path, help="output folder (default EXP_DIR/original)")
    parser.set_defaults(run=_run_export)


def _run_export(args) -> int:
    from deepsdf.export import export_original

    from deepsdf.experiment import Experiment

    experiment = Experiment(args.experiment_dir)
    written = export_original(experiment, out=args.out, checkpoints=args.checkpoint)
    print(f"wrote {len(written)} files of the original layout into "
          f"{experiment.export_layout(args.out).root}")
    return 0


def _add_demo(commands):
    parser = commands.add_parser(
        "demo", help="the main job on the embedded example data",
        description="Generate 30 procedural chairs and 30 tables, preprocess them with the "
                    "reference settings except a fifth of the samples uniform (near fraction "
                    "0.8; plus one virtual depth scan each), hold 3 of each category out, "
                    "train the small CPU decoder of experiments/demo/specs.json, "
                    "reconstruct the held-out shapes (Gauss-Newton solver) and evaluate them "
                    "beside the retrieval baseline, complete every held-out shape from a "
                    "single-view scan (several starts, short Gauss-Newton preset), "
                    "interpolate from a chair to a table, and write "
                    "OUT/report/index.html (every held-out shape's reconstruction and "
                    "completion with its metrics, pictures, an interactive 3D view that works "
                    "offline, the interpolation, the training curve, the run's settings, "
                    "stage times and machine) and OUT/report/summary.json. Rerunning resumes "
                    "every step. --quick is the reduced mode CI runs (4 shapes per category, "
                    "1 held out, 300 epochs, 64^3 meshes).")
    parser.add_argument("--out", type=Path, default=Path("demo_output"),
                        help="output folder")
    parser.add_argument("--quick", action="store_true",
                        help="reduced mode: a couple of minutes on 2 cores")
    parser.add_argument("--count", type=int, help="shapes per category (30; quick 4; checked "
                        "with --held-out)")
    parser.add_argument("--held-out", type=int,
                        help="shapes per category held out of training (3; quick 1; with "
                             "--count alone, the same share of them)")
    parser.add_argument("--workers", type=_int_at_least(1), default=2, help="worker processes")
    parser.add_argument("--backend", choices=BACKENDS, default="pyrender",
                        help="preprocessing scanner (see deepsdf preprocess --help)")
    parser.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of every step")
    parser.add_argument("--epochs", type=_int_at_least(1),
                        help="train at most this many epochs now (default: all)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.set_defaults(run=_run_demo)


def _run_demo(args) -> int:
    from dataclasses import replace

    from deepsdf.demo import QUICK, DemoSettings, run_demo
    from deepsdf.device import resolve_device

    settings = QUICK if args.quick else DemoSettings()
    if args.count is not None or args.held_out is not None:
        count = settings.count if args.count is None else args.count
        held_out = (max(1, round(settings.held_out * count / settings.count))
                    if args.held_out is None else args.held_out)
        settings = replace(settings, count=count, held_out=held_out)
    summary = run_demo(args.out, settings, workers=args.workers, backend=args.backend,
                       seed=args.seed, device=resolve_device(args.device),
                       max_epochs=args.epochs)
    from deepsdf.metrics import Verdict

    if summary.get("versus_retrieval"):
        judged = Verdict.from_dict(summary["versus_retrieval"]).line("the retrieval baseline",
                                                                     plural=True)
    else:
        judged = f"score a mean Chamfer of {summary['mean_chamfer']:.3g} (no baseline)"
    print(f"held-out reconstructions {judged}; open {summary['report']}")
    return 0


def _training_failures(command) -> tuple:
    """Exception types of the learning library that end a command with a clear message."""
    if command not in ("new", "train", "demo", "reconstruct", "mesh", "evaluate", "report",
                       "complete", "interpolate", "export"):
        return ()
    from deepsdf.checkpoint import CheckpointError
    from deepsdf.data import DataError
    from deepsdf.mesh import NoSurfaceError
    from deepsdf.train import TrainingError

    return (DataError, TrainingError, CheckpointError, NoSurfaceError)


class _ConsoleHandler(logging.StreamHandler):
    """The command's console log: lines go through tqdm, so they never cut through a progress
    bar.  Quiet by default (warnings and errors; third-party INFO chatter such as OpenGL's
    "No OpenGL_accelerate module loaded" stays hidden); verbose: this project's INFO and DEBUG
    lines (which sample path training takes, caches packed, ...) and others' INFO."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record):
        ours = record.name.split(".")[0] in ("deepsdf", "deepsdf_preprocess")
        threshold = (logging.DEBUG if ours else logging.INFO) if self.verbose else logging.WARNING
        if record.levelno < threshold:
            return
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _configure_logging(verbose: bool) -> None:
    """Install the console handler, unless the embedding program configured logging."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, _ConsoleHandler):
            handler.verbose = verbose
            return
    if root.handlers:  # an application (or a test runner) that logs its own way
        return
    root.addHandler(_ConsoleHandler(verbose))
    root.setLevel(logging.DEBUG)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepsdf", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser._negative_number_matcher = _NEGATIVE_NUMBER
    parser.add_argument("--version", action="version", version=f"deepsdf {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="more output: progress details, and a traceback on errors")
    commands = parser.add_subparsers(dest="command", metavar="<step>")
    for add in (_add_generate, _add_preprocess, _add_preprocess_scans, _add_split, _add_new, _add_train,
                _add_reconstruct, _add_mesh, _add_evaluate, _add_report, _add_complete,
                _add_interpolate, _add_export, _add_demo):
        add(commands)
    for subparser in commands.choices.values():
        subparser.formatter_class = _Formatter
    commands._choices_actions = []  # the description lists the steps once
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _configure_logging(args.verbose)
    from deepsdf_preprocess.errors import DiskFullError, PreprocessError

    # This project's error types: one line (-v: the traceback).  Anything else is a bug and
    # shows its traceback.
    failures = (InputError, PreprocessError, DiskFullError) + _training_failures(args.command)
    try:
        return args.run(args)
    except failures as error:
        if args.verbose:  # -v: the whole story, for a bug report
            raise
        message = str(error).strip().splitlines() or [type(error).__name__]
        print(f"deepsdf {args.command}: error: {message[0]}"
              + (" (-v for details)" if len(message) > 1 else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deepsdf {args.command}: interrupted; {_how_to_resume(args)}", file=sys.stderr)
        return 130


def _how_to_resume(args) -> str:
    """The one line after Ctrl-C: the exact way to go on, per command."""
    if args.command == "train":
        return (f"resume with: deepsdf train {args.experiment_dir} --resume"
                + (f" --data {args.data}" if args.data else ""))
    if args.command == "reconstruct":
        return "rerun it with --skip to keep the shapes already reconstructed"
    if args.command in ("preprocess", "demo"):
        return "rerun the same command to resume (finished work is kept)"
    return "rerun the same command (nothing of this run is kept)"

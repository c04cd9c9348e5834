"""The ``deepsdf`` command line: one command, one subcommand per pipeline step.

Subcommands import their modules lazily, so ``deepsdf --help`` and the preprocessing steps
never load torch, and nothing but ``preprocess --backend pyrender`` loads OpenGL.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from deepsdf import __version__

logger = logging.getLogger("deepsdf")

DESCRIPTION = """\
DeepSDF made practical: meshes -> signed-distance training data -> shape models.

Pipeline steps:
  generate    write the embedded example category (procedural chairs / tables)
  preprocess  turn a folder of meshes into DeepSDF training data (100 depth cameras)
  split       make a seeded train/test split file
  demo        the main job on the embedded data: generate, preprocess, split, train

Run `deepsdf <step> --help` for the options of a step.
"""


def _add_generate(commands):
    parser = commands.add_parser(
        "generate", help="write procedural example meshes",
        description="Write seeded procedural meshes (closed manifolds built from boxes) to "
                    "OUT_DIR/<category>/<category>_<i>.obj, each with a .json of its "
                    "parameters.")
    parser.add_argument("out_dir", type=Path, help="folder to write the meshes into")
    parser.add_argument("--category", choices=("chairs", "tables"), default="chairs")
    parser.add_argument("--count", type=int, default=16, help="number of shapes (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.set_defaults(run=_run_generate)


def _run_generate(args) -> int:
    from deepsdf_preprocess.procedural import write_shapes

    paths = write_shapes(args.out_dir, args.category, args.count, args.seed)
    print(f"wrote {len(paths)} {args.category} to {args.out_dir / args.category}")
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
Each mesh is normalized to the unit sphere, scanned by 100 orthographic 400x400 depth
cameras, sampled near its visible surface (and uniformly), and signed by the reference
11-neighbour unanimous vote.  Reruns skip finished instances; the manifest
DATA_DIR/manifests/<dataset>.json records each instance's status, statistics and timing; the
instances that succeeded are written as a split file.  Exits 1 if any instance failed.""")
    parser.add_argument("mesh_dir", type=Path, help="folder of <class>/<instance> meshes")
    parser.add_argument("data_dir", type=Path, help="data root to write into")
    parser.add_argument("--dataset", required=True,
                        help="dataset name in the data tree and split files (e.g. ShapeNetV2)")
    parser.add_argument("--split", type=Path,
                        help="only preprocess the instances this split file lists")
    parser.add_argument("--split-out", type=Path,
                        help="where to write the split of succeeded instances "
                             "(default DATA_DIR/splits/<dataset>.json)")
    parser.add_argument("--test", action="store_true",
                        help="test-shape preset: 250k samples, variances 0.05 / 0.0005")
    parser.add_argument("--preset", choices=("train", "test", "paper"),
                        help="sampling preset: train (500k, variances 0.005 / 0.0005; the "
                             "default), test (same as --test), paper (500k, the paper's "
                             "variances 0.0025 / 0.00025)")
    parser.add_argument("--samples", type=int, help="override the preset's sample count")
    parser.add_argument("--sign", choices=("vote", "winding"), default="vote",
                        help="sign method: vote (reference 11-neighbour unanimous vote over "
                             "the scan; works on open meshes; default) or winding "
                             "(generalized winding number of the whole mesh; keeps every "
                             "sample; for closed meshes)")
    parser.add_argument("--backend", choices=("pyrender", "raycast"), default="pyrender",
                        help="scanner: pyrender (OpenGL through EGL, headless; default) or "
                             "raycast (no OpenGL; Embree when embreex is installed)")
    parser.add_argument("--views", type=int, default=100, help="number of cameras (100)")
    parser.add_argument("--resolution", type=int, default=400,
                        help="camera resolution in pixels (400)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes, one rendering context each (default 1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="run seed; per-instance seeds derive from it and the instance")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_preprocess)


def _preprocess_config(args):
    from dataclasses import replace

    from deepsdf_preprocess.cameras import CameraRig
    from deepsdf_preprocess.pipeline import PreprocessConfig
    from deepsdf_preprocess.sampling import PRESETS

    preset = args.preset or ("test" if args.test else "train")
    if args.test and args.preset not in (None, "test"):
        raise ValueError("--test and --preset disagree; give one of them")
    sampling = PRESETS[preset]
    if args.samples is not None:
        sampling = replace(sampling, count=args.samples)
    rig = CameraRig(count=args.views, resolution=args.resolution)
    return PreprocessConfig(sampling=sampling, rig=rig, sign_method=args.sign)


def _run_preprocess(args) -> int:
    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.formats import read_split

    config = _preprocess_config(args)
    split = read_split(args.split) if args.split else None
    report = preprocess_dataset(args.mesh_dir, args.data_dir, args.dataset, config=config,
                                split=split, workers=args.workers, seed=args.seed,
                                backend=args.backend, split_out=args.split_out,
                                progress=not args.no_progress)
    done = len(report.succeeded)
    print(f"{done} instance(s) ready ({len(report.skipped)} already done), "
          f"{len(report.failed)} failed; manifest {report.manifest_path}; "
          f"split {report.split_path}")
    for key, reason in sorted(report.failed.items()):
        print(f"  failed {key}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


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
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="fraction of each class for testing (default 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    parser.set_defaults(run=_run_split)


def _run_split(args) -> int:
    from deepsdf_preprocess.driver import discover_meshes
    from deepsdf_preprocess.formats import read_split, write_split
    from deepsdf_preprocess.splits import make_split

    if args.source.is_file():
        instances = read_split(args.source)
        if args.dataset not in instances:
            raise ValueError(f"{args.source} has no dataset {args.dataset!r} "
                             f"(it has {sorted(instances)})")
        instances = {args.dataset: instances[args.dataset]}
    else:
        instances = {args.dataset: {}}
        for job in discover_meshes(args.source):
            instances[args.dataset].setdefault(job.class_name, []).append(job.instance)
    train, test = make_split(instances, test_fraction=args.test_fraction, seed=args.seed)
    write_split(args.train, train)
    write_split(args.test, test)
    count = lambda split: sum(len(v) for c in split.values() for v in c.values())  # noqa: E731
    print(f"train {count(train)} -> {args.train}; test {count(test)} -> {args.test}")
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
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    parser.add_argument("--epochs", type=int,
                        help="train at most this many epochs in this run (default: up to "
                             "NumEpochs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_train)


def _run_train(args) -> int:
    from deepsdf.config import load_specs
    from deepsdf.train import Trainer

    config = load_specs(args.experiment_dir)
    trainer = Trainer(args.experiment_dir, config, data_dir=args.data, device=args.device,
                      progress=not args.no_progress)
    result = trainer.train(resume=args.resume, epochs=args.epochs)
    if trainer.rank == 0:
        print(f"trained to epoch {result.epochs_done} (last epoch's loss "
              f"{result.last_loss:.6f}); checkpoint {result.checkpoint}")
    return 0


def _add_demo(commands):
    parser = commands.add_parser(
        "demo", help="the main job on the embedded example data",
        description="Generate the procedural chairs and tables, preprocess them with the "
                    "reference settings, split them into train/test, and train the small CPU "
                    "decoder of experiments/demo/specs.json on the training shapes. Rerunning "
                    "resumes every step.")
    parser.add_argument("--out", type=Path, default=Path("demo_output"),
                        help="output folder (default ./demo_output)")
    parser.add_argument("--count", type=int, default=12, help="shapes per category (12)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--backend", choices=("pyrender", "raycast"), default="pyrender")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int,
                        help="train at most this many epochs now (default: the spec's)")
    parser.add_argument("--device", default="auto", help="training device (default auto)")
    parser.set_defaults(run=_run_demo)


def _run_demo(args) -> int:
    import json

    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.formats import read_split, write_split
    from deepsdf_preprocess.pipeline import PreprocessConfig
    from deepsdf_preprocess.procedural import write_shapes
    from deepsdf_preprocess.splits import make_split

    meshes, data = args.out / "meshes", args.out / "data"
    for category in ("chairs", "tables"):
        write_shapes(meshes, category, args.count, args.seed)
    print(f"generated {args.count} chairs and {args.count} tables under {meshes}")
    report = preprocess_dataset(meshes, data, "procedural", config=PreprocessConfig(),
                                workers=args.workers, seed=args.seed, backend=args.backend)
    train, test = make_split(read_split(report.split_path), test_fraction=0.25, seed=args.seed)
    write_split(data / "splits" / "procedural_train.json", train)
    write_split(data / "splits" / "procedural_test.json", test)
    print(f"preprocessed {len(report.succeeded)} shapes into {data} "
          f"({len(report.failed)} failed); manifest {report.manifest_path}")
    if report.failed:
        return 1

    from deepsdf.config import parse_specs
    from deepsdf.train import Trainer

    template = Path(__file__).resolve().parents[1] / "experiments" / "demo" / "specs.json"
    if not template.is_file():
        raise ValueError(f"the demo spec {template} is missing (run from a source checkout)")
    specs = json.loads(template.read_text())
    specs.update(DataSource=str(data), TrainSplit=str(data / "splits" / "procedural_train.json"),
                 TestSplit=str(data / "splits" / "procedural_test.json"))
    experiment = args.out / "experiment"
    experiment.mkdir(parents=True, exist_ok=True)
    (experiment / "specs.json").write_text(json.dumps(specs, indent=2) + "\n")
    trainer = Trainer(experiment, parse_specs(specs), device=args.device)
    result = trainer.train(resume=True, epochs=args.epochs)
    print(f"the demo model is trained to epoch {result.epochs_done}; checkpoint "
          f"{result.checkpoint}; curves: tensorboard --logdir {experiment / 'TensorBoard'}")
    return 0


def _training_failures(command) -> tuple:
    """Exception types of the learning library that end a command with a clear message."""
    if command not in ("train", "demo"):
        return ()
    from deepsdf.checkpoint import CheckpointError
    from deepsdf.data import DataError
    from deepsdf.train import TrainingError

    return (DataError, TrainingError, CheckpointError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepsdf", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"deepsdf {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", metavar="<step>")
    for add in (_add_generate, _add_preprocess, _add_split, _add_train, _add_demo):
        add(commands)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from deepsdf_preprocess.errors import PreprocessError

    failures = (ValueError, PreprocessError) + _training_failures(args.command)
    try:
        return args.run(args)
    except failures as error:
        print(f"deepsdf {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deepsdf {args.command}: interrupted; rerun the same command to resume",
              file=sys.stderr)
        return 130

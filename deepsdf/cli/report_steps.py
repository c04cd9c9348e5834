"""The steps that end in a page: ``report`` (an evaluated experiment) and ``demo`` (the
whole job on the embedded data)."""

from __future__ import annotations

from pathlib import Path

from deepsdf.cli.options import DEVICE_HELP, int_at_least
from deepsdf.demo import DEMO_WORKERS
from deepsdf.settings import PICTURE_SIZE
from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess.pipeline import BACKENDS


def add_report(commands):
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
    parser.add_argument("--size", type=int_at_least(16), default=PICTURE_SIZE,
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


def add_demo(commands):
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
    parser.add_argument("--workers", type=int_at_least(1), default=DEMO_WORKERS,
                        help="worker processes")
    parser.add_argument("--backend", choices=BACKENDS, default=BACKENDS[0],
                        help="preprocessing scanner (see deepsdf preprocess --help)")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="seed of every step")
    parser.add_argument("--epochs", type=int_at_least(1),
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


def add_explore(commands):
    parser = commands.add_parser(
        "explore", help="walk a trained shape space in a browser",
        description="Serve a local web app over a trained experiment (viser; install it with "
                    "pip install 'deepsdf[explore]') and print its address. It shows a map of "
                    "the codes (their first two principal directions, in standard deviations: "
                    "every training shape coloured by class, and the held-out shapes whose "
                    "reconstructions are current, in white) and the shape at the chosen code. "
                    "Click a shape on the map to show it; drag the handle or type a point of "
                    "the map; move the sliders along the principal directions; pick two shapes "
                    "to interpolate between; draw a random shape from the Gaussian of the "
                    "training codes; export the shown mesh (PLY or OBJ, normalized frame) to "
                    "--out. While something moves the mesh is decoded at --preview, at "
                    "--resolution once it rests. The model is loaded once; Ctrl-C stops.")
    parser.add_argument("experiment_dir", type=Path, help="the trained experiment folder")
    parser.add_argument("--checkpoint", default="latest",
                        help="checkpoint: a snapshot epoch or latest")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: this machine only; 0.0.0.0 "
                             "opens it to the network)")
    parser.add_argument("--port", type=int_at_least(1), default=8080, help="port to listen on")
    parser.add_argument("--resolution", type=int_at_least(8), default=96,
                        help="mesh grid points per axis of a resting view")
    parser.add_argument("--preview", type=int_at_least(8), default=40,
                        help="mesh grid points per axis while something moves")
    parser.add_argument("--out", type=Path,
                        help="folder of exported meshes (default: EXP/Explore)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--no-progress", action="store_true",
                        help="accepted by every step; explore prints no progress bar")
    parser.set_defaults(run=_run_explore)


def _run_explore(args) -> int:
    from deepsdf.device import resolve_device
    from deepsdf.experiment import Experiment
    from deepsdf.explore import EXPLORE_EXTRA, ShapeSpace, port_problem, serve

    from importlib.util import find_spec

    if find_spec("viser") is None:  # said before the model is loaded
        raise InputError(f"deepsdf explore needs viser: {EXPLORE_EXTRA}")
    if args.port > 65535:
        raise InputError(f"--port {args.port} is not a port (1 to 65535)")
    problem = port_problem(args.host, args.port)
    if problem:
        raise InputError(problem)
    if args.experiment_dir.exists() and not args.experiment_dir.is_dir():
        raise InputError(f"{args.experiment_dir} is a file, not an experiment folder")
    if not args.experiment_dir.is_dir():
        raise InputError(f"experiment folder {args.experiment_dir} does not exist")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out} is a file, not a folder for the exports")
    experiment = Experiment(args.experiment_dir, checkpoint=args.checkpoint,
                            device=resolve_device(args.device))
    space = ShapeSpace(experiment)
    held = sum(point.held_out for point in space.points)
    serve(space, host=args.host, port=args.port, resolution=args.resolution,
          preview=args.preview, out=args.out,
          ready=lambda address: print(
              f"exploring {len(space.points) - held} training and {held} held-out shapes of "
              f"{experiment.folder} (checkpoint {args.checkpoint}) at {address} (Ctrl-C stops)",
              flush=True))
    return 0

"""The steps that fit codes with a trained model: ``reconstruct``, ``mesh``, ``evaluate``,
``complete`` and ``interpolate``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepsdf.cli.options import (DEVICE_HELP, NEGATIVE_NUMBER, SOLVERS, int_at_least, listed,
                                 number_in)
from deepsdf.constraints import ConstraintConfig
from deepsdf.pictures import RENDERERS
from deepsdf.settings import (DEFAULT_QUALITY, GAUSS_NEWTON, INTERPOLATION_RESOLUTION,
                              INTERPOLATION_STEPS, INTERPOLATIONS, MESH_RESOLUTION, PICTURE_SIZE,
                              PRUNE, QUALITIES, RECONSTRUCT_BATCH, RECONSTRUCT_STARTS, REFINE,
                              SOLVER_PRESETS,
                              MultiStart, StartedFit, describe_solver)
from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess.pinhole import CONVENTIONS


def add_reconstruct(commands):
    parser = commands.add_parser(
        "reconstruct", help="fit latent codes of unseen shapes (decoder frozen)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Fit one latent code per shape of a split to its SdfSamples with the trained decoder frozen,
and write, in the original release's layout:
  EXP_DIR/Reconstructions/<checkpoint>/Codes/<dataset>/<class>/<instance>.pth
  EXP_DIR/Reconstructions/<checkpoint>/Meshes/<dataset>/<class>/<instance>.ply  (normalized)
  EXP_DIR/Reconstructions/<checkpoint>/MeshesOriginalFrame/...                   (original)
The default fit (the qualities'): {starts}. Each shape starts from its
nearest training codes (those whose shapes best explain its samples), the mean code and the
reference's random draw, so that a thin part or an unusual shape is not lost in the basin of a
single start; 0.11 of the reference's decoder work.
--solver picks one start instead: gauss-newton (Levenberg-Marquardt with per-shape damping,
{gn.steps} iterations on {gn.samples} samples) or adam (the paper's protocol: {adam.steps}
steps, lr {adam.lr:g} / 10 at half-way, {adam.samples} samples per
step).""".format(starts=describe_solver(RECONSTRUCT_STARTS), gn=GAUSS_NEWTON,
                 adam=SOLVER_PRESETS["adam"]))
    parser.add_argument("experiment_dir", type=Path, help="the experiment folder")
    parser.add_argument("--split", type=Path, help="split file (default: the spec's TestSplit)")
    parser.add_argument("--data", type=Path, help="data root (default: the spec's DataSource)")
    _add_fit_options(parser, solver_help="one start instead of the default several "
                     "(default: several starts, each fitted with gauss-newton): gauss-newton or "
                     "adam (the paper's protocol)")
    parser.add_argument("--screen", type=int_at_least(0), metavar="N",
                        help="with --solver: start each shape from the best of its random code "
                             "and the training codes, judged on N of its samples (costs (codes "
                             "+ 1) x N point-passes per shape; default: the solver's, 0 for "
                             "adam); the default fit's several starts need no screening")
    parser.add_argument("--keep-all-parts", action="store_true",
                        help="keep every connected piece of each mesh; by default a piece "
                             f"lying, for more than {100 * PRUNE.share:.0f}%% of its area, "
                             "where the shape's own SdfSamples say certainly empty by more "
                             f"than {PRUNE.margin:g} (normalized units) is dropped as debris "
                             "of the fit (docs/inference.md)")
    parser.add_argument("--batch", type=int_at_least(1), default=RECONSTRUCT_BATCH,
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
    parser.add_argument("--quality", choices=tuple(QUALITIES), default=DEFAULT_QUALITY,
                        help="preset of the grid and the solver: "
                             + "; ".join(f"{q.name}: {q.description}"
                                         for q in QUALITIES.values())
                             + "; --resolution, --solver and --steps override it (default: "
                             "fast)")
    parser.add_argument("--solver", choices=SOLVERS,
                        help=solver_help)
    parser.add_argument("--steps", type=int_at_least(1),
                        help="steps (adam) or iterations (gauss-newton) (default: the solver's; "
                             "for reconstruct's several starts, the finishing fit's)")
    parser.add_argument("--resolution", type=int_at_least(2),
                        help="mesh grid points per axis (default: the quality's, "
                             + ", ".join(f"{q.resolution} {q.name}" for q in QUALITIES.values())
                             + ")")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="random seed of the fit")
    parser.add_argument("--refine", action="store_true",
                        help="after the latent fit, also fine-tune a copy of the decoder with "
                             "the code on each shape, held near the category model (Deep "
                             "Optimized Priors, Yang et al. 2021; docs/inference.md): written "
                             "beside the latent-only result, under Refined/ (never instead of "
                             f"it); about {REFINE.steps} Adam steps per shape")
    parser.add_argument("--refine-steps", type=int_at_least(1, 100_000), default=REFINE.steps,
                        help="Adam steps of --refine")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _prune_from_args(args):
    """The PruneConfig of the fitting commands (None with --keep-all-parts)."""
    return None if args.keep_all_parts else PRUNE


def _refine_from_args(args):
    """The RefineConfig of --refine (None without it)."""
    from dataclasses import replace

    if not args.refine:
        if args.refine_steps != REFINE.steps:
            raise InputError("--refine-steps needs --refine")
        return None
    return replace(REFINE, steps=args.refine_steps, seed=args.seed)


def _experiment_and_solver(args):
    """The Experiment and the fit of a fitting command's options (the --quality preset's
    SolverConfig or StartedFit, unless --solver, --steps or reconstruct's --screen say
    otherwise); sets ``args.resolution`` from the preset when not given."""
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
    changes = {}
    if args.steps:
        changes["steps"] = args.steps
    if getattr(args, "screen", None) is not None:  # reconstruct's
        changes["screen"] = args.screen
    if isinstance(solver, StartedFit):  # the several-starts fit: --steps is its finish's
        if "screen" in changes:
            raise InputError("--screen ranks the training codes for one start: give --solver "
                             "gauss-newton or adam with it (the default several starts "
                             "already start from the nearest training codes)")
        solver = solver.seeded(args.seed)
        return experiment, (replace(solver, finish=replace(solver.finish, **changes))
                            if changes and solver.finish else solver)
    return experiment, replace(solver, seed=args.seed, **changes)


def _run_reconstruct(args) -> int:
    from deepsdf.inference import reconstruct_split

    started = time.perf_counter()
    experiment, solver = _experiment_and_solver(args)
    refine = _refine_from_args(args)
    report = reconstruct_split(experiment, experiment.split(args.split), solver=solver,
                               resolution=args.resolution, batch=args.batch, skip=args.skip,
                               progress=not args.no_progress, cache=args.cache, refine=refine,
                               prune=_prune_from_args(args))
    refined = (f", {len(report.refined)} refined under "
               f"{experiment.reconstructions / 'Refined'}"
               + (f" ({len(report.refined_no_surface)} of them without a surface)"
                  if report.refined_no_surface else "") if refine else "")
    pruned = (f", debris dropped from {len(report.pruned)}" if report.pruned else "")
    print(f"reconstructed {len(report.written)} shapes ({len(report.skipped)} skipped, "
          f"{len(report.no_surface)} without a surface{refined}{pruned}); "
          f"{report.point_passes:,} point-passes; "
          f"{time.perf_counter() - started:.0f} s ({args.quality} quality, "
          f"{describe_solver(solver)}, {args.resolution}^3)")
    return listed(report.unusable, "not reconstructed")


def add_mesh(commands):
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
    parser.add_argument("--resolution", type=int_at_least(2), default=MESH_RESOLUTION,
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


def add_evaluate(commands):
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


def add_complete(commands):
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
    parser._negative_number_matcher = NEGATIVE_NUMBER  # --sensor 1e+00 -6.2e-01 2.0
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
    parser.add_argument("--depth-scale", type=number_in(positive=True),
                        help="depth units per metre (e.g. 1000 for millimetres): required for "
                             "16-bit PNGs; .npy/.npz depths are divided by it too when given "
                             "(metres otherwise)")
    parser.add_argument("--points", type=Path, help="a partial point cloud (.ply/.npy/.xyz)")
    parser.add_argument("--sensor", type=number_in(), nargs=3, metavar=("X", "Y", "Z"),
                        help="the point cloud's sensor position (world frame)")
    frame = parser.add_mutually_exclusive_group()
    frame.add_argument("--transform", type=Path, help="4x4 similarity world -> model frame")
    frame.add_argument("--normalization", type=Path,
                       help="NormalizationParameters .npz of the world frame")
    parser.add_argument("--truth", type=Path, help="full ground-truth mesh (world frame)")
    defaults = ConstraintConfig()
    parser.add_argument("--eta", type=number_in(positive=True, high=ConstraintConfig.MAX_ETA),
                        default=defaults.eta,
                        help="surface sample offset along the normal, model units")
    parser.add_argument("--free-space", type=int_at_least(0), default=defaults.free_space,
                        help="free-space samples on each observed point's ray (0 disables "
                             "free space)")
    parser.add_argument("--empty-rays", type=number_in(0), default=defaults.empty_rays,
                        help="free-space samples on rays of pixels without a measurement, per "
                             "observed point")
    parser.add_argument("--no-background", action="store_true",
                        help="pixels without a measurement are sensor dropouts, not background "
                             "(do not use their rays as free space)")
    parser.add_argument("--no-retrieval", action="store_true", help="skip the baseline")
    parser.add_argument("--keep-all-parts", action="store_true",
                        help="keep every connected piece of the completed mesh; by default a "
                             f"piece lying, for more than {100 * PRUNE.share:.0f}%% of its "
                             "area, in what the scan saw as empty (the ball of "
                             f"{PRUNE.margin:g}, normalized units, around each point crossed "
                             "only by rays that run free beyond it) is dropped as debris of "
                             "the fit; unseen space keeps what the model put there")
    parser.add_argument("--single-start", action="store_true",
                        help="fit each shape from one random code, as the reference does "
                             "(default: several starts fitted together, the best kept: the "
                             f"{MultiStart().nearest} training codes that best explain the "
                             "scan, the mean code and a random one)")
    _add_fit_options(parser, solver_help="gauss-newton or adam (the reference); every "
                     "quality uses gauss-newton, in its length (default: gauss-newton)")
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
                                progress=not args.no_progress,
                                refine=_refine_from_args(args),
                                prune=_prune_from_args(args))
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
                             resolution=args.resolution, truth=args.truth,
                             refine=_refine_from_args(args), prune=_prune_from_args(args))
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
    observed = observe_depth_files(args.depth, intrinsics, poses, depth_scale=args.depth_scale,
                                   convention=args.convention)
    if getattr(args, "no_background", False):
        # pixels without a measurement may be the object (a dark or shiny part): they say
        # nothing, to the fit and to what the scan saw as empty alike
        from deepsdf.sensing import Observation

        observed = Observation(observed.points, observed.normals, observed.sensors,
                               hit_points=observed.hit_points,
                               hit_sensors=observed.hit_sensors)
    return observed


def _similarity_from_args(args):
    from deepsdf.frames import Similarity, read_similarity
    from deepsdf_preprocess.formats import read_normalization

    if args.transform:
        return read_similarity(args.transform)
    if args.normalization:
        return Similarity.from_normalization(*read_normalization(args.normalization))
    raise InputError("give the object's frame: --normalization N.npz or --transform T.txt "
                     "(world -> model similarity)")


def add_interpolate(commands):
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
    parser.add_argument("--steps", type=int_at_least(2), default=INTERPOLATION_STEPS,
                        help="codes on the path")
    parser.add_argument("--mode", choices=INTERPOLATIONS, default=INTERPOLATIONS[0],
                        help="slerp (great-circle direction, linear norm) or linear")
    parser.add_argument("--random", type=int_at_least(1), metavar="N",
                        help="instead: N codes from the Gaussian of the training codes")
    parser.add_argument("--resolution", type=int_at_least(2), default=INTERPOLATION_RESOLUTION,
                        help="mesh grid points per axis")
    parser.add_argument("--size", type=int_at_least(16), default=PICTURE_SIZE,
                        help="picture size in pixels")
    parser.add_argument("--renderer", choices=RENDERERS, default=RENDERERS[0],
                        help="pictures: pyrender (OpenGL/EGL), raycast (no OpenGL) or auto")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (accepted by every step; interpolate prints "
                             "none)")
    parser.add_argument("--checkpoint", default="latest",
                        help="checkpoint: a snapshot epoch or latest")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="random seed of the fit")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.set_defaults(run=_run_interpolate)


def _run_interpolate(args) -> int:
    from deepsdf.device import resolve_device
    from deepsdf.interpolate import interpolation_pictures

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

"""The data steps: ``generate``, ``preprocess``, ``preprocess-scans`` and ``split``."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepsdf.cli.options import int_at_least, listed, number_in, shard, usable_cores
from deepsdf_preprocess.cameras import CameraRig
from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess.pipeline import BACKENDS, PreprocessConfig
from deepsdf_preprocess.procedural import CATEGORIES
from deepsdf_preprocess.sampling import PRESETS
from deepsdf_preprocess.scan_sdf import ScanSamplingConfig
from deepsdf_preprocess.sdf import SIGN_METHODS
from deepsdf_preprocess.virtual_scans import CaptureConfig


def add_generate(commands):
    parser = commands.add_parser(
        "generate", help="write procedural example meshes",
        description="Write seeded procedural meshes to OUT_DIR/<category>/<category>_<i>.obj: "
                    "the easy categories (chairs and tables built from boxes, vessels revolved "
                    "from a profile) and the hard ones (airplanes with thin wings, lamps with "
                    "thin stems and open shades, capsule humans and quadrupeds in varied "
                    "poses, mugs with handles and frames with holes: docs/preprocessing.md, "
                    "'The procedural categories'), "
                    "each with a .json of its parameters.  --style closed (default) writes "
                    "closed manifolds; --style soup writes the same shapes the way ShapeNet "
                    "ships meshes (un-welded overlapping parts, faces wound at random, "
                    "single-sided sheets, doubled faces, open feet...; OBJ groups, every third "
                    "a GLB with node transforms), the .json naming the defects of each part "
                    "(see docs/preprocessing.md, 'Triangle soups').")
    parser.add_argument("out_dir", type=Path, help="folder to write the meshes into")
    parser.add_argument("--category", choices=tuple(CATEGORIES), default=tuple(CATEGORIES)[0],
                        help="which procedural category (vessels: vases, bottles and cups, "
                             "surfaces of revolution; --style soup: chairs, tables and vessels "
                             "only)")
    parser.add_argument("--count", type=int_at_least(1, 100_000), default=16,
                        help="number of shapes (at most 100 000)")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="generator seed")
    parser.add_argument("--style", choices=("closed", "soup", "scans"), default="closed",
                        help="closed manifolds, ShapeNet-style triangle soups of the same "
                             "shapes, or scans: noisy virtual depth views of them, in the "
                             "layout `deepsdf preprocess-scans` reads (default: closed)")
    parser.add_argument("--views", type=int_at_least(1), default=CaptureConfig.views,
                        help="with --style scans: depth views per shape (around it, from "
                             "-30, 10 and 45 degrees elevation)")
    parser.add_argument("--sensor", choices=("structured-light", "tof", "toy"),
                        default="structured-light",
                        help="with --style scans: the depth sensor (docs/scans.md, 'The "
                             "sensor model of the virtual captures'): a Kinect-v1-like "
                             "structured-light sensor, a time-of-flight one, or the earlier "
                             "toy noise model")
    parser.set_defaults(run=_run_generate)


def _run_generate(args) -> int:
    from deepsdf_preprocess.procedural import write_shapes
    from deepsdf_preprocess.soup import write_soups

    if args.style == "scans":
        from deepsdf_preprocess.sensor_model import KINECT_V1, KINECT_V2
        from deepsdf_preprocess.virtual_scans import CaptureConfig, write_scans

        sensor = {"structured-light": KINECT_V1, "tof": KINECT_V2, "toy": None}[args.sensor]
        folders = write_scans(args.out_dir, args.category, args.count, args.seed,
                              CaptureConfig(views=args.views, sensor=sensor))
        print(f"wrote {len(folders)} scanned {args.category} ({args.views} depth views each) "
              f"to {args.out_dir / args.category}")
        return 0
    write = write_soups if args.style == "soup" else write_shapes
    paths = write(args.out_dir, args.category, args.count, args.seed)
    style = " (triangle soups)" if args.style == "soup" else ""
    print(f"wrote {len(paths)} {args.category}{style} to {args.out_dir / args.category}")
    return 0


def add_preprocess(commands):
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
    parser.add_argument("--samples", type=int_at_least(1),
                        help="override the preset's sample count")
    parser.add_argument("--near-fraction", type=number_in(0, 1), metavar="F",
                        help="override the preset's fraction of samples near the surface "
                             "(0.94; the rest are uniform in the unit cube; the demo uses 0.8: "
                             "fewer stray blobs on held-out shapes, see docs/training.md)")
    parser.add_argument("--sign", choices=SIGN_METHODS, default=PreprocessConfig.sign_method,
                        help="sign method: vote (reference 11-neighbour unanimous vote over "
                             "the scan; works on open meshes) or winding "
                             "(generalized winding number of the whole mesh; keeps every "
                             "sample; for closed meshes)")
    parser.add_argument("--backend", choices=BACKENDS, default=BACKENDS[0],
                        help="scanner: pyrender (OpenGL through EGL, headless) or raycast (no "
                             "OpenGL; Embree where it is installed)")
    parser.add_argument("--partial-scans", action="store_true",
                        help="also write one seeded virtual depth scan per instance "
                             "(perspective 256x256, 60 degree field of view, random viewpoint "
                             "10-50 degrees above the horizon, original frame) for "
                             "`deepsdf complete --virtual-scan`")
    parser.add_argument("--views", type=int_at_least(1), default=CameraRig.count,
                        help="number of cameras")
    parser.add_argument("--resolution", type=int_at_least(2), default=CameraRig.resolution,
                        help="camera resolution in pixels")
    parser.add_argument("--workers", type=int_at_least(1), default=usable_cores(),
                        help="worker processes, one rendering context each; 1 runs in this "
                             "process (default: the cores this process may use)")
    parser.add_argument("--shard", type=shard, metavar="I/N",
                        help="process only shard I of N (0-based; a hash of each instance "
                             "name, stable under file-system order): one per task of a "
                             "cluster job array, all into one data tree; then run --merge")
    parser.add_argument("--merge", action="store_true",
                        help="process nothing: merge the shards' journals into the manifest "
                             "and write the split of the instances that succeeded")
    parser.add_argument("--seed", type=int_at_least(0), default=0,
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
    from deepsdf_preprocess.contract import read_split
    from deepsdf_preprocess.driver import preprocess_dataset

    config = _preprocess_config(args)
    split = read_split(args.split) if args.split else None
    if args.merge:
        from deepsdf_preprocess.driver import discover_meshes, merge_dataset

        if args.shard:
            raise InputError("--merge runs after the shards; do not give --shard with it")
        jobs = discover_meshes(args.mesh_dir, split=split, dataset=args.dataset)
        report = merge_dataset(args.data_dir, args.dataset, {job.key for job in jobs},
                               split_out=args.split_out, forget_all=True,
                               split_source=args.split)
        print(f"merged: {len(report.succeeded)} instance(s) ready, {len(report.failed)} failed;"
              f" manifest {report.manifest_path}; split {report.split_path}")
        return listed(report.failed, "failed")
    report = preprocess_dataset(args.mesh_dir, args.data_dir, args.dataset, config=config,
                                split=split, workers=args.workers, seed=args.seed,
                                backend=args.backend, split_out=args.split_out,
                                progress=not args.no_progress, shard=args.shard,
                                split_source=args.split)
    if args.shard:
        print(f"shard {args.shard[0]}/{args.shard[1]}: {len(report.succeeded)} instance(s) "
              f"ready, {len(report.failed)} failed; records in {report.journal}; run "
              "--merge when every shard is done")
        return listed(report.failed, "failed")
    print(f"{len(report.succeeded)} instance(s) ready ({len(report.skipped)} already done), "
          f"{len(report.failed)} failed; manifest {report.manifest_path}; "
          f"split {report.split_path}")
    return listed(report.failed, "failed")


def add_preprocess_scans(commands):
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
    parser.add_argument("--samples", type=int_at_least(2), default=ScanSamplingConfig.count,
                        help="samples drawn per instance (those no view constrains are "
                             "dropped)")
    parser.add_argument("--near-fraction", type=number_in(0, 1),
                        default=ScanSamplingConfig.near_fraction,
                        help="share of the samples near the fused surface")
    parser.add_argument("--margin", type=number_in(0, 1), default=ScanSamplingConfig.margin,
                        help="normalized units a sample must lie in front of (behind) a "
                             "measurement to count as free (occluded): above the depth noise")
    parser.add_argument("--min-coverage", type=number_in(0, 1),
                        default=ScanSamplingConfig.min_coverage,
                        help="an instance whose views cover less of its surface fails")
    parser.add_argument("--no-background", action="store_true",
                        help="pixels without a measurement are sensor dropouts, not free "
                             "space (for depth images that were not segmented)")
    parser.add_argument("--mask-margin", type=int_at_least(1),
                        default=ScanSamplingConfig.mask_margin, metavar="PIXELS",
                        help="pixels around a view's object mask that are never free space "
                             "(raise it to 2 or 3 for a segmentation that may fall short of "
                             "the object's edge; larger costs coverage at low resolution)")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="run seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=_run_preprocess_scans)


def _run_preprocess_scans(args) -> int:
    from deepsdf_preprocess.contract import read_split
    from deepsdf_preprocess.scan_driver import preprocess_scans
    from deepsdf_preprocess.scan_sdf import ScanSamplingConfig

    config = ScanSamplingConfig(count=args.samples, near_fraction=args.near_fraction,
                                margin=args.margin, min_coverage=args.min_coverage,
                                background=not args.no_background,
                                mask_margin=args.mask_margin)
    report = preprocess_scans(args.scan_dir, args.data_dir, args.dataset, config=config,
                              split=read_split(args.split) if args.split else None,
                              seed=args.seed, split_out=args.split_out,
                              progress=not args.no_progress, split_source=args.split)
    print(f"{len(report.succeeded)} instance(s) ready ({len(report.skipped)} already done), "
          f"{len(report.failed)} failed; manifest {report.manifest_path}; "
          f"split {report.split_path}")
    return listed(report.failed, "failed")


def add_split(commands):
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
    parser.add_argument("--test-fraction", type=number_in(0, 1), default=0.2,
                        help="fraction of each class for testing")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="shuffle seed")
    parser.set_defaults(run=_run_split)


def _run_split(args) -> int:
    from deepsdf_preprocess.contract import check_name, read_split
    from deepsdf_preprocess.driver import discover_meshes
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

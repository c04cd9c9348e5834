"""Reconstruction solvers: decoder work (point-passes) against quality (Chamfer).

Fits every shape of the given splits with the reference Adam solver (800 steps x 8000
samples) and with the Gauss-Newton / Levenberg-Marquardt solver, extracts each mesh at 128^3
(coarse-to-fine), and measures the Chamfer distance of the original protocol (30000 points on
each surface, squared distances, both means summed, original frame) against the shape's
SurfaceSamples.  Prints point-passes per shape, wall-clock and mean / median Chamfer of each
solver, and their ratios.

Usage::

    python benchmarks/reconstruct.py --experiment demo_output/experiment \\
        --splits demo_output/data/splits/procedural_train.json \\
                 demo_output/data/splits/procedural_test.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", type=Path, default=Path("demo_output/experiment"))
    parser.add_argument("--splits", type=Path, nargs="+",
                        default=[Path("demo_output/data/splits/procedural_train.json"),
                                 Path("demo_output/data/splits/procedural_test.json")])
    parser.add_argument("--data", type=Path, help="data root (default: the spec's)")
    parser.add_argument("--held-out", type=int, metavar="N",
                        help="fit N newly generated shapes (half chairs, half tables, seed 100) "
                             "instead of --splits")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/output/held_out"),
                        help="where --held-out writes its meshes and data")
    parser.add_argument("--adam-steps", type=int, default=800)
    parser.add_argument("--gn-steps", type=int, help="iterations (default: the preset's)")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--solvers", nargs="+", metavar="WORD",
                        help="only the solvers whose names hold one of these words (and the "
                             "reference)")
    parser.add_argument("--reference-dense", action="store_true",
                        help="mesh the reference's codes on the dense grid (the original's "
                             "protocol: its wall-clock then includes the dense grid)")
    parser.add_argument("--per-shape", action="store_true", help="print every shape's Chamfer")
    parser.add_argument("--prune", action="store_true",
                        help="also score every solver's meshes with the pieces the shape's "
                             "SdfSamples rule out dropped (what `reconstruct` writes by "
                             "default; deepsdf.pruning)")
    args = parser.parse_args()

    from deepsdf.data import pack_split
    from deepsdf.inference import load_trained
    from deepsdf.mesh import coarse_to_fine_grid, decoder_field, dense_grid, extract_mesh
    from deepsdf.metrics import CHAMFER_POINTS, chamfer, surface_points
    from deepsdf.reconstruct import GAUSS_NEWTON, SolverConfig, fit_codes, reconstruct_codes
    from deepsdf.pruning import drop_contradicted_parts
    from deepsdf.settings import PRUNE, RECONSTRUCT_STARTS, StartedFit
    from deepsdf_preprocess import formats

    decoder, config, payload = load_trained(args.experiment, device=args.device)
    data = args.data or Path(config.data_source)
    split: dict = {}
    if args.held_out:
        data, split = held_out_shapes(args.work, args.held_out)
    for path in [] if args.held_out else args.splits:
        for dataset, classes in formats.read_split(path).items():
            for class_name, instances in classes.items():
                split.setdefault(dataset, {}).setdefault(class_name, []).extend(instances)
    packed = pack_split(data, split, cache_root=Path(args.work) / "PackedSamples")
    scenes = list(range(len(packed)))
    truth = {}
    for key in packed.instance_ids:
        paths = formats.instance_outputs(data, key)
        truth[key] = (formats.read_surface_samples(paths[formats.SURFACE_SAMPLES])["points"],
                      *formats.read_normalization(paths[formats.NORMALIZATION_PARAMETERS]))

    gauss_newton = replace(GAUSS_NEWTON, steps=args.gn_steps or GAUSS_NEWTON.steps)
    solvers = {"adam (reference)": replace(SolverConfig(), steps=args.adam_steps),
               "gauss-newton": gauss_newton,
               "gauss-newton, several starts": RECONSTRUCT_STARTS}
    if args.solvers:
        solvers = {name: solvers[name] for name in solvers
                   if name == "adam (reference)" or any(w in name for w in args.solvers)}
    rows, per_shape = {}, {}
    for name, solver in solvers.items():
        start, passes, codes = time.perf_counter(), 0, []
        for first in range(0, len(scenes), args.batch):
            batch = scenes[first:first + args.batch]
            if isinstance(solver, StartedFit):
                result = fit_codes(decoder, packed, batch, solver, clamp=config.clamp,
                                   train_codes=payload["codes"], device=args.device)
            else:
                result = reconstruct_codes(decoder, packed, batch, solver, clamp=config.clamp,
                                           device=args.device)
            passes += result.point_passes
            codes.append(result.codes)
        fitting = time.perf_counter() - start
        codes = torch.cat(codes)
        distances = {}
        start = time.perf_counter()
        for scene, key in enumerate(packed.instance_ids):
            points, offset, scale = truth[key]
            field = decoder_field(decoder, codes[scene])
            grid = (dense_grid(field, args.resolution) if name == "adam (reference)"
                    and args.reference_dense else coarse_to_fine_grid(field, args.resolution))
            mesh = extract_mesh(grid)
            meshes = {name: mesh}
            if args.prune:
                meshes[name + ", pruned"] = drop_contradicted_parts(
                    mesh, packed.positive_rows(scene), PRUNE).mesh
            for label, one in meshes.items():
                one = one.copy()
                one.vertices = one.vertices / scale - offset  # the original frame
                ours, _ = surface_points(one, CHAMFER_POINTS)
                distances.setdefault(label, []).append(chamfer(ours, points))
        meshing = time.perf_counter() - start
        for label, values in distances.items():
            per_shape[label] = np.asarray(values)
            rows[label] = (passes / len(scenes), fitting, meshing, float(np.mean(values)),
                           float(np.median(values)))

    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()}, {os.cpu_count()} cores, device "
          f"{args.device}, torch {torch.__version__}; {len(scenes)} shapes; experiment "
          f"{args.experiment}; meshes at {args.resolution}^3"
          + (" (the reference's dense, ours coarse-to-fine)" if args.reference_dense else ""))
    # every row against the reference as the original release writes it (every piece kept)
    # and, with --prune, against the reference's own mesh pruned the same way
    references = ["adam (reference)"] + (["adam (reference), pruned"] if args.prune else [])
    print("| solver | point-passes per shape | fit s | mesh s | Chamfer mean | median | "
          + " | ".join(f"worst / {r} | shapes > 1.02x {r}" for r in references) + " |")
    print("|---|---|---|---|---|---|" + "---|---|" * len(references))
    for name, (passes, fitting, meshing, mean, median) in rows.items():
        cells = []
        for reference_name in references:
            ratio = per_shape[name] / np.maximum(per_shape[reference_name], 1e-12)
            cells.append(f"{ratio.max():.3f} | {int(np.sum(ratio > 1.02))}/{len(ratio)}")
        print(f"| {name} | {passes:,.0f} | {fitting:.1f} | {meshing:.1f} | {mean:.3e} | "
              f"{median:.3e} | " + " | ".join(cells) + " |")
    reference = rows["adam (reference)"]
    for name, fast in rows.items():
        if name != "adam (reference)":
            print(f"{name} / reference: point-passes {fast[0] / reference[0]:.3f}, wall-clock "
                  f"(fit + mesh) {(reference[1] + reference[2]) / (fast[1] + fast[2]):.1f}x "
                  f"faster, Chamfer mean {fast[3] / reference[3]:.3f}, "
                  f"median {fast[4] / reference[4]:.3f}")
    if args.per_shape:
        print("| shape | " + " | ".join(rows) + " |")
        for scene, key in enumerate(packed.instance_ids):
            print(f"| {key} | " + " | ".join(f"{per_shape[n][scene]:.3e}" for n in rows) + " |")
    return 0


def held_out_shapes(work: Path, count: int):
    """(data root, split) of ``count`` new procedural shapes preprocessed with the test preset
    (reused when already there)."""
    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.formats import read_split
    from deepsdf_preprocess.pipeline import PreprocessConfig
    from deepsdf_preprocess.procedural import write_shapes
    from deepsdf_preprocess.sampling import PRESETS

    for category, number in (("chairs", count - count // 2), ("tables", count // 2)):
        write_shapes(work / "meshes", category, number, 100)
    report = preprocess_dataset(work / "meshes", work / "data", "held_out",
                                config=PreprocessConfig(sampling=PRESETS["test"]),
                                backend="raycast", progress=False)
    if report.failed:
        raise SystemExit(f"preprocessing failed: {report.failed}")
    return work / "data", read_split(report.split_path)


if __name__ == "__main__":
    raise SystemExit(main())

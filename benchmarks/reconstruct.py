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
    parser.add_argument("--adam-steps", type=int, default=800)
    parser.add_argument("--gn-steps", type=int, help="iterations (default: the preset's)")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from deepsdf.data import pack_split
    from deepsdf.inference import load_trained
    from deepsdf.mesh import coarse_to_fine_grid, decoder_field, extract_mesh
    from deepsdf.metrics import CHAMFER_POINTS, chamfer, surface_points
    from deepsdf.reconstruct import GAUSS_NEWTON, SolverConfig, reconstruct_codes
    from deepsdf_preprocess import formats

    decoder, config, _ = load_trained(args.experiment, device=args.device)
    data = args.data or Path(config.data_source)
    split: dict = {}
    for path in args.splits:
        for dataset, classes in formats.read_split(path).items():
            for class_name, instances in classes.items():
                split.setdefault(dataset, {}).setdefault(class_name, []).extend(instances)
    packed = pack_split(data, split)
    scenes = list(range(len(packed)))
    truth = {}
    for key in packed.instance_ids:
        paths = formats.key_paths(data, key)
        truth[key] = (formats.read_surface_samples(paths[formats.SURFACE_SAMPLES])["points"],
                      *formats.read_normalization(paths[formats.NORMALIZATION_PARAMETERS]))

    solvers = {"adam (reference)": replace(SolverConfig(), steps=args.adam_steps),
               "gauss-newton": replace(GAUSS_NEWTON, steps=args.gn_steps or GAUSS_NEWTON.steps)}
    rows = {}
    for name, solver in solvers.items():
        start, passes, codes = time.perf_counter(), 0, []
        for first in range(0, len(scenes), args.batch):
            result = reconstruct_codes(decoder, packed, scenes[first:first + args.batch],
                                       solver, clamp=config.clamp,
                                       latent_size=config.decoder.latent_size,
                                       device=args.device)
            passes += result.point_passes
            codes.append(result.codes)
        seconds = time.perf_counter() - start
        codes = torch.cat(codes)
        distances = []
        for scene, key in enumerate(packed.instance_ids):
            points, offset, scale = truth[key]
            grid = coarse_to_fine_grid(decoder_field(decoder, codes[scene]), args.resolution)
            mesh = extract_mesh(grid, offset=offset, scale=scale)
            ours, _ = surface_points(mesh, CHAMFER_POINTS)
            distances.append(chamfer(ours, points))
        rows[name] = (passes / len(scenes), seconds, float(np.mean(distances)),
                      float(np.median(distances)))

    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()}, {os.cpu_count()} cores, device "
          f"{args.device}, torch {torch.__version__}; {len(scenes)} shapes; experiment "
          f"{args.experiment}; meshes at {args.resolution}^3")
    print("| solver | point-passes per shape | seconds (all shapes) | Chamfer mean | median |")
    print("|---|---|---|---|---|")
    for name, (passes, seconds, mean, median) in rows.items():
        print(f"| {name} | {passes:,.0f} | {seconds:.1f} | {mean:.3e} | {median:.3e} |")
    reference, fast = rows["adam (reference)"], rows["gauss-newton"]
    print(f"gauss-newton / reference: point-passes {fast[0] / reference[0]:.3f}, wall-clock "
          f"{fast[1] / reference[1]:.3f}, Chamfer mean {fast[2] / reference[2]:.3f}, "
          f"median {fast[3] / reference[3]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

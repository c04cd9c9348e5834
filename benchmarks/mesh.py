"""Mesh extraction: dense grid against coarse-to-fine, points evaluated and seconds.

For analytic fields (sphere, torus) and for trained codes of an experiment (default: the demo
model), at 128^3 and 256^3: the fraction of grid points the field is evaluated on, the
seconds, and whether the two meshes are identical.  It also measures how fast the reference
decoder (8 x 512, latent 256; weights at initialization, which do not change its cost)
evaluates points here, from which the time of a 256^3 grid follows.

Usage::

    python benchmarks/mesh.py [--experiment demo_output/experiment] [--codes 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch


def timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", type=Path, default=Path("demo_output/experiment"))
    parser.add_argument("--codes", type=int, default=3, help="trained codes to mesh")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    args = parser.parse_args()

    from deepsdf.config import DecoderConfig
    from deepsdf.decoder import Decoder
    from deepsdf.inference import load_trained
    from deepsdf.mesh import coarse_to_fine_grid, decoder_field, dense_grid, extract_mesh

    fields = {
        "sphere (analytic)": lambda p: (np.linalg.norm(p, axis=1) - 0.6).astype(np.float32),
        "torus (analytic)": lambda p: (np.hypot(np.hypot(p[:, 0], p[:, 2]) - 0.55, p[:, 1])
                                       - 0.2).astype(np.float32),
    }
    if (args.experiment / "Checkpoints" / "latest.pt").is_file():
        decoder, config, payload = load_trained(args.experiment)
        for row in range(min(args.codes, len(payload["codes"]))):
            fields[f"{payload['instance_ids'][row]} (small decoder)"] = decoder_field(
                decoder, payload["codes"][row])
    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads)")
    print("| field | N | dense s | coarse-to-fine s | points evaluated | same mesh |")
    print("|---|---|---|---|---|---|")
    for name, field in fields.items():
        for n in args.resolutions:
            dense, dense_s = timed(dense_grid, field, n)
            coarse, coarse_s = timed(coarse_to_fine_grid, field, n)
            a, b = extract_mesh(dense), extract_mesh(coarse)
            same = (a.vertices.shape == b.vertices.shape
                    and np.abs(a.vertices - b.vertices).max() <= 1e-6
                    and np.array_equal(a.faces, b.faces))
            print(f"| {name} | {n} | {dense_s:.2f} | {coarse_s:.2f} | "
                  f"{100 * coarse.evaluated / n ** 3:.1f}% | {same} |", flush=True)

    reference = Decoder(DecoderConfig()).eval()
    field = decoder_field(reference, torch.zeros(256))
    points = np.random.default_rng(0).uniform(-1, 1, (2 ** 17, 3)).astype(np.float32)
    field(points[:1024])
    _, seconds = timed(field, points)
    rate = len(points) / seconds
    print(f"reference decoder (8 x 512, fp32, CPU): {rate:,.0f} points/s; a dense 256^3 grid "
          f"= {256 ** 3 / rate:,.0f} s; at the coarse-to-fine fractions above, "
          f"{0.06 * 256 ** 3 / rate:,.0f} s (6%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``deepsdf explore``: how long one decode takes, at the preview and the resting resolution.

What a user waits for between moving a slider and seeing the mesh: the code's grid
(coarse-to-fine) and marching cubes, ``ShapeSpace.decode``, for codes of the kinds the app
shows: training shapes, points of the map (slider settings within ±2 σ) and random draws.
Prints the median and the slowest decode per resolution, and the time the model takes to
load (once per session).

Usage::

    python benchmarks/explore.py [--experiment demo_output/experiment] [--codes 12]
        [--resolutions 40 96]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", type=Path, default=Path("demo_output/experiment"))
    parser.add_argument("--codes", type=int, default=12, help="codes of each kind")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[40, 96])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from deepsdf.experiment import Experiment
    from deepsdf.explore import ShapeSpace

    start = time.perf_counter()
    space = ShapeSpace(Experiment(args.experiment, device=args.device))
    loaded = time.perf_counter() - start
    rng = np.random.default_rng(0)
    kinds = {
        "training shapes": [point.code for point in space.points[:args.codes]],
        "map points (±2 σ)": [space.code_at(rng.uniform(-2, 2, min(6, len(space.spreads))))
                              for _ in range(args.codes)],
        "random draws": [space.random(seed) for seed in range(args.codes)],
    }
    space.decode(space.mean, 16)  # warm-up: first-call overheads are not a decode's
    print(f"{args.experiment}: {len(space.points)} shapes, codes of {space.codes.shape[1]}; "
          f"model loaded in {loaded:.2f} s; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} "
          "threads)")
    print("| codes | resolution | median s | slowest s | no surface |")
    print("|---|---|---|---|---|")
    for kind, codes in kinds.items():
        for resolution in args.resolutions:
            seconds, empty = [], 0
            for code in codes:
                begin = time.perf_counter()
                mesh = space.decode(code, resolution)
                seconds.append(time.perf_counter() - begin)
                empty += mesh is None
            print(f"| {kind} | {resolution}³ | {np.median(seconds):.3f} | {max(seconds):.3f} "
                  f"| {empty} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

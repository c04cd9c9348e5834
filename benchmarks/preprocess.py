"""Preprocessing speed, memory and accuracy against the `mesh-to-sdf` package, on closed meshes
and on ShapeNet-style triangle soups.

Each tool runs in its own fresh process, one process each, on the same mesh file: 100 views
at 400 x 400 and the same number of samples.  A process's time runs from loading the mesh to
its files written (imports excluded, the rendering context included: the library call); its
memory is its peak resident set (``VmHWM``).  Accuracy is measured here, against the truth
of each mesh in each tool's own normalized frame:

- closed meshes (``chair-40k``, ``torus-65k``, ``table-35k``): the exact SDF of the mesh;
- soups (``soup-chair-<i>``, ``soup-table-<i>``, ``soup-vessel-<i>``: shape ``i`` of
  ``deepsdf generate --style soup``, written as OBJ or GLB as that command writes it): the SDF
  of the clean solid the soup's parts bound (``deepsdf_preprocess.soup``).

Figures per mesh and tool:

- signs: fraction wrong among kept samples farther than 1e-2 (and 1e-3) from the surface;
- dropped: fraction of drawn samples a tool discarded (dropping more is no way to be right);
- distance error within the clamp band |sdf| < 0.1: median and 99th percentile.

Usage::

    python benchmarks/preprocess.py                   # both corpora, ours and mesh-to-sdf
    python benchmarks/preprocess.py --corpus soup     # soups only
    python benchmarks/preprocess.py --no-baseline     # ours only
    python benchmarks/preprocess.py --samples 500000 --meshes chair-40k soup-chair-0
    python benchmarks/preprocess.py --whole-command   # process start to exit, both tools
    python benchmarks/preprocess.py --soup-signs 10   # signs and drops on 30 soups, ours only:
                                                      # per soup (with its defects), per defect

``--whole-command`` times what a user waits for: ``deepsdf preprocess`` on a folder holding the
one mesh (500 000 samples by default in this mode, one worker: it runs in the calling
process) from process start to exit, against a whole ``mesh-to-sdf`` process (interpreter
start, imports, load, sampling, saving) with the same sample count.

The script fails if mesh-to-sdf is missing, unless --no-baseline
(``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLOSED = ("chair-40k", "torus-65k", "table-35k")
SOUPS = ("soup-chair-0", "soup-chair-1", "soup-chair-2", "soup-table-0", "soup-table-1",
         "soup-vessel-0")
MESHES = CLOSED + SOUPS
SOUP_CATEGORIES = {"chair": "chairs", "table": "tables", "vessel": "vessels"}


def make_mesh(name: str):
    """The closed benchmark meshes: closed manifolds, so the exact SDF is known."""
    import trimesh

    from deepsdf_preprocess.procedural import generate_chair, generate_table

    if name == "chair-40k":  # a three-legged chair with slats, subdivided to 38400 faces
        mesh = generate_chair(np.random.default_rng([0, 0])).mesh
    elif name == "table-35k":
        mesh = generate_table(np.random.default_rng([0, 1])).mesh
    elif name == "torus-65k":
        return trimesh.creation.torus(0.6, 0.25, major_sections=256, minor_sections=128)
    else:
        raise ValueError(f"unknown mesh {name!r}; choose from {MESHES}")
    target = 40_000 if name.startswith("chair") else 35_000
    while len(mesh.faces) < 0.75 * target:
        mesh = mesh.subdivide()
    return mesh


class BenchMesh:
    """A benchmark mesh written to ``folder`` as a user would have it, with its truth.

    ``path`` is the file; ``faces`` its triangle count; ``truth(points)`` the SDF (> 0
    outside) of (n, 3) points in the mesh's original frame."""

    def __init__(self, name: str, folder: Path):
        self.name = name
        if name.startswith("soup-"):
            from deepsdf_preprocess.soup import write_soups, generate_soups

            _, kind, index = name.split("-")
            category, index = SOUP_CATEGORIES[kind], int(index)
            soups_dir = folder / f"{name}-files"
            self.path = write_soups(soups_dir, category, index + 1)[index]
            soup = generate_soups(category, index + 1)[index]
            self.faces = int(sum(len(part.faces) for part in soup.parts))
            self.truth = soup.sdf
            return
        import igl

        mesh = make_mesh(name)
        self.path = folder / f"{name}.ply"
        mesh.export(self.path)
        self.faces = len(mesh.faces)
        vertices = np.asarray(mesh.vertices, np.float64)
        faces = np.asarray(mesh.faces, np.int64)
        self.truth = lambda points: igl.signed_distance(
            np.asarray(points, np.float64), vertices, faces)[0]


# --------------------------------------------------------------------------- workers

def run_ours(mesh_path: Path, out_dir: Path, samples: int) -> dict:
    from dataclasses import replace

    import pyrender  # noqa: F401  (imported before the clock, as mesh_to_sdf's import does)

    from deepsdf_preprocess import formats
    from deepsdf_preprocess.errors import PreprocessError
    from deepsdf_preprocess.pipeline import PreprocessConfig, make_scanner, preprocess_instance
    from deepsdf_preprocess.sampling import PRESETS

    config = PreprocessConfig(sampling=replace(PRESETS["train"], count=samples))
    start = time.perf_counter()
    scanner = make_scanner("pyrender", config.rig)
    outputs = formats.instance_outputs(out_dir, formats.InstanceKey("bench", "c", "mesh"))
    try:
        record = preprocess_instance(mesh_path, outputs, config, scanner, seed=0)
    except PreprocessError as error:  # a failed instance is a figure too
        return {"failed": str(error)}
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "drawn": record["samples_drawn"], "stages": record["seconds"],
            "sign": record["sign"], "check": record.get("sign_check"),
            "file": str(outputs[formats.SDF_SAMPLES])}


def run_mesh_to_sdf(mesh_path: Path, out_dir: Path, samples: int) -> dict:
    import trimesh
    from mesh_to_sdf import sample_sdf_near_surface

    start = time.perf_counter()
    mesh = trimesh.load(mesh_path, force="mesh")
    points, sdf = sample_sdf_near_surface(mesh, number_of_points=samples,
                                          surface_point_method="scan", sign_method="normal",
                                          scan_count=100, scan_resolution=400)
    path = out_dir / "mesh_to_sdf.npz"
    rows = np.c_[points, sdf].astype(np.float32)
    np.savez(path, pos=rows[rows[:, 3] > 0], neg=rows[rows[:, 3] <= 0])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "drawn": samples, "file": str(path)}


def peak_rss_mb() -> float:
    """This process's peak resident set in MB: ``VmHWM`` (Linux; it starts afresh at exec),
    else ``ru_maxrss``, which Linux carries over from the parent at fork, so that a worker
    spawned by a large driver would report the driver's peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_main(tool: str, mesh_path: str, out_dir: str, samples: int) -> None:
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    run = run_ours if tool == "ours" else run_mesh_to_sdf
    result = run(Path(mesh_path), Path(out_dir), samples)
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result))


# --------------------------------------------------------------------------- driver

def spawn(tool: str, mesh_path: Path, out_dir: Path, samples: int) -> dict:
    env = dict(os.environ, PYOPENGL_PLATFORM="egl")
    start = time.perf_counter()
    process = subprocess.run([sys.executable, __file__, "--worker", tool, str(mesh_path),
                              str(out_dir), str(samples)], capture_output=True, text=True,
                             env=env)
    wall = time.perf_counter() - start
    lines = [l for l in process.stdout.splitlines() if l.startswith("RESULT ")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"{tool} failed on {mesh_path.name}:\n{process.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["process_seconds"] = wall
    return result


def spawn_command(mesh_path: Path, out_dir: Path, samples: int) -> float:
    """Seconds of a whole ``deepsdf preprocess`` process on a folder holding the mesh."""
    meshes = out_dir / "meshes" / "c"
    meshes.mkdir(parents=True)
    shutil.copy(mesh_path, meshes / mesh_path.name)
    env = dict(os.environ, PYOPENGL_PLATFORM="egl")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deepsdf", "preprocess", str(out_dir / "meshes"),
                    str(out_dir / "data"), "--dataset", "bench", "--samples", str(samples),
                    "--workers", "1", "--no-progress"], check=True, capture_output=True,
                   env=env)
    return time.perf_counter() - start


def whole_command(args) -> int:
    """Process start to exit: deepsdf preprocess against a mesh-to-sdf process."""
    samples = args.samples if args.samples_given else 500_000
    print(f"# {time.strftime('%Y-%m-%d')} on {platform.node()}: {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
          f"whole processes, {samples} samples, 100 views at 400x400, medians of "
          f"{args.repeats} runs")
    print("| mesh | deepsdf preprocess (s) | mesh-to-sdf process (s) | speed-up |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.meshes:
            mesh = BenchMesh(name, Path(scratch))
            ours, theirs = [], []
            for repeat in range(args.repeats):
                ours.append(spawn_command(mesh.path, Path(scratch) / f"{name}-cmd-{repeat}",
                                          samples))
                if not args.no_baseline:
                    out = Path(scratch) / f"{name}-m2s-{repeat}"
                    out.mkdir()
                    theirs.append(spawn("mesh-to-sdf", mesh.path, out, samples)[
                        "process_seconds"])
            mine = statistics.median(ours)
            baseline = statistics.median(theirs) if theirs else float("nan")
            print(f"| {name} ({mesh.faces} faces) | {mine:.2f} | {baseline:.2f} | "
                  f"{baseline / mine:.1f}x |", flush=True)
    return 0


def accuracy(tool: str, mesh: BenchMesh, result: dict) -> dict:
    """Compare a tool's samples with the truth of the mesh in that tool's frame."""
    import trimesh

    from deepsdf_preprocess.normalize import normalization_parameters

    with np.load(result["file"]) as data:
        rows = np.concatenate([data["pos"], data["neg"]]).astype(np.float64)
    loaded = trimesh.load(mesh.path, force="mesh", process=False)
    vertices = np.asarray(loaded.vertices, np.float64)
    if tool == "ours":
        offset, scale = normalization_parameters(vertices, loaded.faces)
    else:  # mesh-to-sdf: bounding-box centre, farthest vertex at radius 1
        offset = -loaded.bounding_box.centroid
        scale = 1.0 / np.linalg.norm(vertices + offset, axis=1).max()
    truth = mesh.truth(rows[:, :3] / scale - offset) * scale
    band = np.abs(truth) < 0.1
    error = np.abs(rows[:, 3] - truth)[band]

    def wrong(margin):
        far = np.abs(truth) > margin
        return float(np.mean(np.sign(rows[far, 3]) != np.sign(truth[far])))

    return {"kept": len(rows), "dropped": 1 - len(rows) / result["drawn"],
            "sign_wrong": wrong(1e-3), "sign_wrong_1e-2": wrong(1e-2),
            "dist_median": float(np.median(error)), "dist_p99": float(np.percentile(error, 99))}


def soup_signs(args) -> int:
    """Signs and drops of ours on the first ``--soup-signs N`` soups of each category, in
    process (no baseline, no timing): the corpus-wide figures."""
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    from deepsdf_preprocess.errors import PreprocessError
    from deepsdf_preprocess.pipeline import PreprocessConfig, make_scanner, sample_mesh
    from deepsdf_preprocess.sampling import PRESETS
    from deepsdf_preprocess.soup import DEFECTS, generate_soups

    samples = args.samples if args.samples_given else 50_000
    config = PreprocessConfig(sampling=PRESETS["train"].overridden(count=samples))
    scanner = make_scanner("pyrender", config.rig)
    print(f"# {time.strftime('%Y-%m-%d')} on {platform.node()}: the first {args.soup_signs} "
          f"soups of each category, {samples} samples, pyrender scanner")
    print("| soup | wrong > 1e-2 | dropped | sign check | defects |")
    print("|---|---|---|---|---|")
    wrong, dropped, failed = [], [], 0
    by_defect = {}  # defect -> wrong-sign rates of the soups that have it (None: failed)
    for category in ("chairs", "tables", "vessels"):
        for index, soup in enumerate(generate_soups(category, args.soup_signs)):
            defects = ", ".join(sorted(soup.defects))
            try:
                result = sample_mesh(soup.mesh, config, scanner, np.random.default_rng(index))
            except PreprocessError as error:
                failed += 1
                for name in soup.defects:
                    by_defect.setdefault(name, []).append(None)
                print(f"| {category} {index} | failed: {error} | | | {defects} |", flush=True)
                continue
            truth = soup.sdf(result.points / result.scale - result.offset) * result.scale
            far = np.abs(truth) > 1e-2
            wrong.append(float(np.mean(np.sign(result.sdf[far]) != np.sign(truth[far]))))
            dropped.append(result.stats["dropped_fraction"])
            for name in soup.defects:
                by_defect.setdefault(name, []).append(wrong[-1])
            check = result.stats["sign_check"]
            print(f"| {category} {index} | {100 * wrong[-1]:.3f}% | {100 * dropped[-1]:.2f}% | "
                  f"{check['disagree']}/{check['checked']} (limit {check['limit']}"
                  f"{', FAILED' if check['failed'] else ''}) | {defects} |", flush=True)
    print(f"wrong: mean {100 * np.mean(wrong):.3f}%, max {100 * np.max(wrong):.3f}%, "
          f"{sum(w > 0.005 for w in wrong)} above 0.5%; dropped: mean {100 * np.mean(dropped):.2f}%, "
          f"max {100 * np.max(dropped):.2f}%, {sum(d > 0.05 for d in dropped)} above 5%; "
          f"{failed} failed")
    print()
    print("| defect | soups | wrong > 1e-2: mean | max | failed |")
    print("|---|---|---|---|---|")
    for name in DEFECTS:  # the corpus's order: the CAD-export defects last
        rates = by_defect.get(name, [])
        kept = [rate for rate in rates if rate is not None]
        mean = f"{100 * np.mean(kept):.3f}%" if kept else "-"
        worst = f"{100 * np.max(kept):.3f}%" if kept else "-"
        print(f"| {name} | {len(rates)} | {mean} | {worst} | {len(rates) - len(kept)} |")
    scanner.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshes", nargs="+", choices=MESHES,
                        help="meshes to run (default: those of --corpus)")
    parser.add_argument("--corpus", choices=("closed", "soup", "both"), default="both",
                        help="closed meshes, ShapeNet-style soups, or both (default)")
    parser.add_argument("--samples", type=int)
    parser.add_argument("--whole-command", action="store_true",
                        help="time whole processes, start to exit (500000 samples unless "
                             "--samples)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool; medians reported")
    parser.add_argument("--soup-signs", type=int, metavar="N",
                        help="only signs and drops of ours on the first N soups of each "
                             "category (50000 samples unless --samples), against their truth")
    parser.add_argument("--no-baseline", action="store_true", help="skip mesh-to-sdf")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker[0], args.worker[1], args.worker[2], int(args.worker[3]))
        return 0
    if args.meshes is None:
        args.meshes = list({"closed": CLOSED, "soup": SOUPS, "both": MESHES}[args.corpus])
    args.samples_given = args.samples is not None
    if args.samples is None:
        args.samples = 250_000
    if args.soup_signs:
        return soup_signs(args)
    tools = ["ours"]
    if not args.no_baseline:
        try:
            import mesh_to_sdf  # noqa: F401
        except ImportError:
            print("mesh-to-sdf is not installed: pip install -e .[bench], or pass --no-baseline",
                  file=sys.stderr)
            return 1
        tools.append("mesh-to-sdf")
    if args.whole_command:
        return whole_command(args)
    print(f"# {time.strftime('%Y-%m-%d')} on {platform.node()}: {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; "
          f"{args.samples} samples, 100 views at 400x400, medians of {args.repeats} runs")
    header = ("mesh", "tool", "seconds", "peak RSS MB", "signs wrong >1e-2", "signs wrong >1e-3",
              "dropped", "dist median", "dist p99")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    summary = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.meshes:
            mesh = BenchMesh(name, Path(scratch))
            figures = {}
            for tool in tools:
                runs = []
                for repeat in range(args.repeats):
                    out = Path(scratch) / f"{name}-{tool}-{repeat}"
                    out.mkdir()
                    runs.append(spawn(tool, mesh.path, out, args.samples))
                if "failed" in runs[0]:
                    print(f"| {name} ({mesh.faces} faces) | {tool} | failed: "
                          f"{runs[0]['failed']} | | | | | | |", flush=True)
                    continue
                seconds = statistics.median(r["seconds"] for r in runs)
                rss = statistics.median(r["peak_rss_mb"] for r in runs)
                quality = accuracy(tool, mesh, runs[0])
                figures[tool] = (seconds, rss)
                print(f"| {name} ({mesh.faces} faces) | {tool} | {seconds:.2f} | {rss:.0f} | "
                      f"{100 * quality['sign_wrong_1e-2']:.3f}% | "
                      f"{100 * quality['sign_wrong']:.3f}% | {100 * quality['dropped']:.2f}% | "
                      f"{quality['dist_median']:.2e} | {quality['dist_p99']:.2e} |", flush=True)
                if tool == "ours":
                    print(f"|  | (ours: stages {runs[0]['stages']}, signs {runs[0]['sign']}, "
                          f"check {runs[0]['check']}) | | | | | | | |", flush=True)
            if "mesh-to-sdf" in figures and "ours" in figures:
                speed = figures["mesh-to-sdf"][0] / figures["ours"][0]
                memory = figures["ours"][1] / figures["mesh-to-sdf"][1]
                summary.append(f"{name}: {speed:.1f}x faster, {memory:.2f}x the peak memory")
    for line in summary:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

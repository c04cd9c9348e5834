"""Every GPU figure of the scale issue in one run (called by ``benchmarks/gpu.sh``).

Writes ``$OUT/figures.json`` and prints each figure as it is measured:

1. the reference decoder's training throughput (samples/s) in fp32, TF32, bf16 and
   bf16 + ``torch.compile``: with the real trainer (device-resident samples, Adam, schedules,
   logs) and with a bare step on device-resident tensors; the trainer's share of the bare step;
2. model FLOP utilisation: FLOPs per sample counted from the architecture (forward
   ``2 * sum(in * out)`` over the layers, forward + backward 3x that) times samples/s over the
   device's stated peak;
3. the projected wall-clock of the paper's chairs run (2001 x 3281 x 16384 samples) at the best
   setting;
4. 256^3 mesh extraction of the reference decoder, dense and coarse-to-fine;
5. batched Gauss-Newton reconstruction of 64 shapes;
6. the preprocessor with the pyrender backend on the GPU's EGL (skipped, with the reason,
   where EGL is missing).

``--cpu-smoke`` runs every step on the CPU at tiny sizes (a small decoder, 16^3... grids), so
the script is known to work before a GPU is lent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Dense peak FLOP/s by (device name fragment, precision), from the vendors' data sheets.
PEAKS = {("H200", "fp32"): 67e12, ("H200", "tf32"): 494e12, ("H200", "bf16"): 989e12,
         ("H100", "fp32"): 67e12, ("H100", "tf32"): 494e12, ("H100", "bf16"): 989e12,
         ("A100", "fp32"): 19.5e12, ("A100", "tf32"): 156e12, ("A100", "bf16"): 312e12}

REFERENCE = {"dims": [512] * 8, "dropout": list(range(8)), "dropout_prob": 0.2,
             "norm_layers": list(range(8)), "latent_in": [4], "xyz_in_all": False,
             "use_tanh": True, "latent_dropout": False, "weight_norm": True}
SMOKE = dict(REFERENCE, dims=[32] * 4, dropout=list(range(4)), norm_layers=list(range(4)),
             latent_in=[2])


def say(figures: dict, key: str, value, text: str) -> None:
    figures[key] = value
    print(text, flush=True)


def flops_per_sample(config) -> float:
    """Forward + backward FLOPs of one sample: 3 x 2 x sum(in * out) over the layers."""
    from deepsdf.decoder import Decoder

    decoder = Decoder(config.decoder)
    forward = sum(2 * layer.in_features * layer.out_features for layer in decoder.layers)
    return 3.0 * forward


def synthetic_data(root: Path, shapes: int, samples: int) -> tuple[Path, Path]:
    from scale import make_category

    split = make_category(root, shapes, samples)
    return root, split


def specs_for(network: dict, data: Path, split: Path, *, scenes: int, per_scene: int,
              precision: str, compile_: bool, epochs: int, latent: int) -> dict:
    return {"SpecsVersion": 2, "DataSource": str(data), "TrainSplit": str(split),
            "NetworkSpecs": network, "CodeLength": latent, "NumEpochs": epochs,
            "SnapshotFrequency": epochs, "AdditionalSnapshots": [], "LatestEvery": epochs,
            "SamplesPerScene": per_scene, "ScenesPerBatch": scenes, "LogFrequency": epochs,
            "MixedPrecision": precision == "bf16", "TF32": precision != "fp32",
            "Compile": compile_, "SampleStore": "device"}


def trainer_rate(specs: dict, work: Path, device: str, warm_epochs: int) -> float:
    """Samples/s of the real trainer in its steady state: the median epoch's wall time (as the
    trainer logs it) after ``warm_epochs`` (compilation, first allocations, the upload)."""
    from deepsdf.config import parse_specs
    from deepsdf.train import Trainer

    experiment = Path(tempfile.mkdtemp(dir=work, prefix="exp-"))
    config = parse_specs(specs)
    trainer = Trainer(experiment, config, device=device, progress=False)
    result = trainer.train()
    timing = result.log.entries["timing"][warm_epochs:]
    batches_per_epoch = len(result.log.entries["loss"]) // len(result.log.entries["timing"])
    return (batches_per_epoch * config.scenes_per_batch * config.samples_per_scene
            / float(np.median(timing)))


def bare_rate(config, device: str, steps: int) -> float:
    """Samples/s of forward + backward + Adam on tensors already on the device."""
    from deepsdf.decoder import Decoder
    from deepsdf.loss import clamped_l1

    decoder = Decoder(config.decoder).to(device)
    run = torch.compile(decoder) if config.compile else decoder
    count = config.scenes_per_batch * config.samples_per_scene
    codes = torch.nn.Parameter(torch.randn(config.scenes_per_batch, config.decoder.latent_size,
                                           device=device) * 0.06)
    points = torch.rand(count, 3, device=device) * 2 - 1
    target = torch.rand(count, device=device) * 0.2 - 0.1
    optimizer = torch.optim.Adam([{"params": decoder.parameters(), "lr": 5e-4},
                                  {"params": [codes], "lr": 1e-3}])
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                              enabled=config.mixed_precision)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            predicted = run(codes.repeat_interleave(config.samples_per_scene, 0), points)
        clamped_l1(predicted.float().squeeze(1), target, config.clamp).backward()
        optimizer.step()

    for _ in range(3):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * count / (time.perf_counter() - start)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def training(figures, args, work, device) -> None:
    from deepsdf.config import parse_specs

    network, latent = (SMOKE, 16) if args.cpu_smoke else (REFERENCE, 256)
    data, split = synthetic_data(work / "data", args.shapes, args.samples)
    best = None
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor()
    settings = [("fp32", False), ("tf32", False), ("bf16", False), ("bf16", True)]
    for precision, compile_ in settings:
        label = precision + (" + compile" if compile_ else "")
        specs = specs_for(network, data, split, scenes=args.scenes, per_scene=args.per_scene,
                          precision=precision, compile_=compile_, epochs=args.epochs,
                          latent=latent)
        config = parse_specs(specs)
        bare = bare_rate(config, device, args.steps)
        real = trainer_rate(specs, work, device, warm_epochs=2)
        flops = flops_per_sample(config)
        peak = next((v for (fragment, p), v in PEAKS.items()
                     if fragment in (name or "") and p == precision), None)
        key = label.replace(" + ", "_")
        say(figures, f"train_{key}", {"trainer_samples_per_s": real, "bare_samples_per_s": bare,
                                      "trainer_over_bare": real / bare,
                                      "mfu": None if peak is None else bare * flops / peak},
            f"train {label:16s}: trainer {real / 1e6:8.3f} M samples/s, bare step "
            f"{bare / 1e6:8.3f} M/s, trainer/bare {real / bare:5.1%} (target >= 90%), MFU "
            + ("n/a (no stated peak for " + str(name) + ")" if peak is None
               else f"{bare * flops / peak:5.1%} of {peak / 1e12:.0f} TFLOP/s {precision}"))
        if best is None or real > best[1]:
            best = (label, real)
    chairs = 2001 * 3281 * 16384
    say(figures, "projected_chairs_run_hours", chairs / best[1] / 3600,
        f"projected chairs run (2001 x 3281 x 16384 samples) at {best[0]}: "
        f"{chairs / best[1] / 3600:.2f} h (target <= 2 h on an H200-class GPU)")
    say(figures, "flops_per_sample", flops_per_sample(parse_specs(specs)),
        f"FLOPs per sample (forward + backward, counted from the architecture): "
        f"{flops_per_sample(parse_specs(specs)) / 1e6:.2f} M")


def meshing(figures, args, device) -> None:
    from deepsdf.config import parse_specs
    from deepsdf.decoder import Decoder
    from deepsdf.mesh import coarse_to_fine_grid, decoder_field, dense_grid, extract_mesh

    network, latent = (SMOKE, 16) if args.cpu_smoke else (REFERENCE, 256)
    decoder = Decoder(parse_specs({"SpecsVersion": 2, "NetworkSpecs": network,
                                   "CodeLength": latent}).decoder).to(device).eval()
    code = torch.randn(latent, device=device) * 0.06
    field = decoder_field(decoder, code, chunk=1 << 20 if device.startswith("cuda") else 65536)
    probe = np.stack(np.meshgrid(*[np.linspace(-1, 1, 16)] * 3, indexing="ij"),
                     -1).reshape(-1, 3).astype(np.float32)
    level = float(np.median(field(probe)))  # a level the random decoder surely crosses

    def shifted(points):
        return field(points) - level

    for name, make in (("dense", dense_grid), ("coarse_to_fine", coarse_to_fine_grid)):
        make(shifted, 32)  # warm-up
        _sync(device)
        start = time.perf_counter()
        grid = make(shifted, args.resolution)
        mesh = extract_mesh(grid)
        _sync(device)
        seconds = time.perf_counter() - start
        say(figures, f"mesh_{name}_seconds", seconds,
            f"mesh {args.resolution}^3 {name:15s}: {seconds:.2f} s ({len(mesh.faces)} faces; "
            "target <= 1 s on an H200-class GPU)")


def reconstruction(figures, args, work, device) -> None:
    from deepsdf.config import parse_specs
    from deepsdf.data import pack_split
    from deepsdf.decoder import Decoder
    from deepsdf.reconstruct import GAUSS_NEWTON, reconstruct_codes
    from deepsdf_preprocess.formats import read_split

    network, latent = (SMOKE, 16) if args.cpu_smoke else (REFERENCE, 256)
    decoder = Decoder(parse_specs({"SpecsVersion": 2, "NetworkSpecs": network,
                                   "CodeLength": latent}).decoder).to(device)
    data, split = synthetic_data(work / "data", args.shapes, args.samples)
    packed = pack_split(data, read_split(split), cache_root=work / "cache")
    shapes = min(64, len(packed))
    solver = replace(GAUSS_NEWTON, steps=args.gn_steps)
    start = time.perf_counter()
    result = reconstruct_codes(decoder, packed, list(range(shapes)), solver, clamp=0.1,
                               device=device)
    _sync(device)
    seconds = time.perf_counter() - start
    say(figures, "gauss_newton_64_seconds", seconds,
        f"Gauss-Newton reconstruction of {shapes} shapes ({solver.steps} iterations, "
        f"{solver.samples} samples each): {seconds:.2f} s, {result.point_passes:,} point-passes")


def preprocessing(figures, args, work) -> None:
    import subprocess

    from deepsdf_preprocess.procedural import write_shapes

    write_shapes(work / "meshes", "chairs", args.meshes, seed=0)
    command = [sys.executable, "-m", "deepsdf", "preprocess", str(work / "meshes"),
               str(work / "pre"), "--dataset", "bench", "--backend", "pyrender",
               "--no-progress"]
    if args.cpu_smoke:
        command += ["--views", "10", "--resolution", "64", "--samples", "20000"]
    environment = dict(os.environ, PYOPENGL_PLATFORM="egl")
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["?"])[-1]
        say(figures, "preprocess_pyrender", {"skipped": reason},
            f"preprocess with pyrender: skipped ({reason})")
        return
    say(figures, "preprocess_pyrender_seconds_per_mesh", seconds / args.meshes,
        f"preprocess with pyrender on EGL: {seconds / args.meshes:.2f} s per mesh "
        f"(whole command, {args.meshes} meshes, reference settings"
        f"{', smoke sizes' if args.cpu_smoke else ''})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="every step on the CPU at tiny sizes (checks the script)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-figures")))
    args = parser.parse_args()
    smoke = args.cpu_smoke
    device = "cpu" if smoke else "cuda"
    if not smoke and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu-smoke to check the script", file=sys.stderr)
        return 2
    args.shapes, args.samples = (8, 4000) if smoke else (512, 60_000)
    args.scenes, args.per_scene = (4, 512) if smoke else (64, 16384)
    args.epochs, args.steps = (4, 2) if smoke else (12, 20)
    args.resolution = 32 if smoke else 256
    args.gn_steps = 3 if smoke else 45
    args.meshes = 2 if smoke else 8
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="deepsdf-gpu-"))
    figures = {"device": torch.cuda.get_device_name(0) if not smoke else "cpu (smoke)",
               "torch": torch.__version__, "smoke": smoke,
               "date": time.strftime("%Y-%m-%d")}
    print(f"device: {figures['device']}, torch {torch.__version__}", flush=True)
    steps = (("training", lambda: training(figures, args, work, device)),
             ("meshing", lambda: meshing(figures, args, device)),
             ("reconstruction", lambda: reconstruction(figures, args, work, device)),
             ("preprocessing", lambda: preprocessing(figures, args, work)))
    for name, step in steps:
        start = time.perf_counter()
        try:
            step()
        except Exception as error:  # one failing figure must not lose the others
            figures[f"{name}_error"] = f"{type(error).__name__}: {error}"
            print(f"{name}: FAILED {type(error).__name__}: {error}", flush=True)
        (args.out / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(f"[{name}: {time.perf_counter() - start:.0f} s]", flush=True)
    return 1 if any(k.endswith("_error") for k in figures) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput against the raw decoder step on the same batches, in one script.

Runs the real trainer (packed memory-mapped cache, deterministic per-scene subsampling,
loss, Adam, code projection, checkpoint and TensorBoard bookkeeping) for some epochs, then
replays the same batches, already in memory, through a bare forward + backward + Adam step of
the same model.  The difference is what the data path and the bookkeeping cost.

Usage::

    python benchmarks/train.py                      # small decoder, CPU, generated shapes
    python benchmarks/train.py --reference --device cuda --scenes 64 --samples 16384

The default data are 16 generated chairs preprocessed into a temporary folder (OpenGL-free
scanner, 100k samples each); ``--data DATA --split FILE`` uses an existing data tree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

SMALL = {"dims": [128, 128, 128, 128], "dropout": [], "dropout_prob": 0.0,
         "norm_layers": [0, 1, 2, 3], "latent_in": [2], "xyz_in_all": False, "use_tanh": True,
         "latent_dropout": False, "weight_norm": True}
REFERENCE = {"dims": [512] * 8, "dropout": list(range(8)), "dropout_prob": 0.2,
             "norm_layers": list(range(8)), "latent_in": [4], "xyz_in_all": False,
             "use_tanh": True, "latent_dropout": False, "weight_norm": True}


def make_data(root: Path):
    from deepsdf_preprocess.cameras import CameraRig
    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.pipeline import PreprocessConfig
    from deepsdf_preprocess.procedural import write_shapes
    from deepsdf_preprocess.sampling import SamplingConfig

    write_shapes(root / "meshes", "chairs", 16, seed=0)
    config = PreprocessConfig(sampling=SamplingConfig(count=100_000),
                              rig=CameraRig(count=40, resolution=200), surface_samples=1000)
    report = preprocess_dataset(root / "meshes", root / "data", "bench", config=config,
                                backend="raycast", progress=False)
    return root / "data", report.split_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--split", type=Path)
    parser.add_argument("--reference", action="store_true", help="the 8 x 512 decoder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scenes", type=int, default=8, help="ScenesPerBatch")
    parser.add_argument("--samples", type=int, default=8192, help="SamplesPerScene")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=0, help="DataLoaderThreads")
    args = parser.parse_args()

    from deepsdf.config import parse_specs
    from deepsdf.loss import clamped_l1, code_prior
    from deepsdf.train import Trainer

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.data is None:
            data, split = make_data(scratch)
        else:
            data, split = args.data, args.split
        specs = {"SpecsVersion": 2, "DataSource": str(data), "TrainSplit": str(split),
                 "NetworkSpecs": REFERENCE if args.reference else SMALL,
                 "CodeLength": 256 if args.reference else 64, "NumEpochs": 1000,
                 "SamplesPerScene": args.samples, "ScenesPerBatch": args.scenes,
                 "DataLoaderThreads": args.workers, "SnapshotFrequency": 1000,
                 "AdditionalSnapshots": []}
        config = parse_specs(specs)
        experiment = scratch / "experiment"
        trainer = Trainer(experiment, config, device=args.device, progress=False)
        result = trainer.train(epochs=1)  # warm-up (packs the cache, first allocations)
        start = time.perf_counter()
        result = trainer.train(resume=True, epochs=args.epochs)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        full = time.perf_counter() - start

        # The same batches, in memory, through the bare step.
        from deepsdf.data import SceneBatches, epoch_batches

        model = result.model
        optimizer = torch.optim.Adam([{"params": model.decoder.parameters(), "lr": 1e-4},
                                      {"params": model.codes.parameters(), "lr": 1e-4}])
        batches = []
        for epoch in range(1, 1 + args.epochs):
            plan = epoch_batches(len(model.codes.instance_ids), config.scenes_per_batch,
                                 seed=config.seed, epoch=epoch)
            dataset = SceneBatches(result.packed, config.samples_per_scene, seed=config.seed,
                                   epoch=epoch, batches=plan)
            batches += [tuple(t.to(trainer.device) for t in dataset[i])
                        for i in range(len(dataset))]
        model.train()
        start = time.perf_counter()
        for samples, scenes in batches:
            optimizer.zero_grad(set_to_none=True)
            predicted, codes = model(scenes, samples[:, :3], config.samples_per_scene)
            loss = clamped_l1(predicted.squeeze(1), samples[:, 3], config.clamp)
            loss = loss + code_prior(codes, form="paper", weight=1e-4, std=config.code_std)
            loss.backward()
            optimizer.step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        raw = time.perf_counter() - start
        count = len(batches) * config.scenes_per_batch * config.samples_per_scene
    decoder = "8 x 512, latent 256" if args.reference else "4 x 128, latent 64"
    print(f"# {time.strftime('%Y-%m-%d')} {platform.node()}, {os.cpu_count()} cores, device "
          f"{trainer.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"decoder {decoder}; {args.scenes} scenes x {args.samples} samples per batch, "
          f"{len(batches)} batches")
    print(json.dumps({"trainer_samples_per_s": round(count / full),
                      "raw_step_samples_per_s": round(count / raw),
                      "overhead_fraction": round(1 - raw / full, 4)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

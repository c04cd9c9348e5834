"""The scale path on the CPU: packing, the two sample paths, and what the decoder consumes.

Makes a synthetic category directly as SdfSamples files (random rows, no meshes), then prints:

- packing: seconds per shape, and the packing process's peak RSS (it reads one file at a time:
  the split is never held in memory);
- samples/s delivered by the memory-mapped path (``SceneBatches``: a numpy gather from the map
  per batch) and by the device-resident path (``DeviceSamples.draw``, here on the CPU);
- samples/s the reference decoder (8 x 512, weight norm, codes of 256) consumes, forward and
  backward, on the same device;
- the ratio "data path rate / decoder rate" for each path (target for the device-resident path
  on the CPU: >= 10).

Usage::

    python benchmarks/scale.py                         # 400 shapes x 500k samples (~3.2 GB)
    python benchmarks/scale.py --shapes 3281           # the chairs category (~26 GB of disk)

Figures are per shape or per second, so a smaller category measures the same rates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_category(root: Path, shapes: int, samples: int, seed: int = 0) -> Path:
    """``root/SdfSamples/synthetic/c/<i>.npz`` with half positive, half negative random rows;
    returns the split file."""
    from deepsdf_preprocess import formats

    rng = np.random.default_rng(seed)
    names = [f"s{i:05d}" for i in range(shapes)]
    for name in names:
        path = formats.instance_outputs(root, f"synthetic/c/{name}")[formats.SDF_SAMPLES]
        if path.is_file():
            continue
        rows = rng.uniform(-1, 1, (samples, 4)).astype(np.float32)
        rows[: samples // 2, 3] = np.abs(rows[: samples // 2, 3]) + 1e-4
        rows[samples // 2:, 3] = -np.abs(rows[samples // 2:, 3])
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, pos=rows[: samples // 2], neg=rows[samples // 2:])
    split = root / "split.json"
    formats.write_split(split, {"synthetic": {"c": names}})
    return split


_PACK = """
import json, resource, sys, time
from deepsdf.data import pack_split
from deepsdf_preprocess.formats import read_split
start = time.perf_counter()
packed = pack_split(sys.argv[1], read_split(sys.argv[2]), cache_root=sys.argv[3])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": packed.total_rows,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def pack(root: Path, split: Path, cache: Path) -> dict:
    """Pack in a fresh process, so its peak RSS is the packing's alone."""
    result = subprocess.run([sys.executable, "-c", _PACK, str(root), str(split), str(cache)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def rate(function, samples_per_call: int, seconds: float = 5.0) -> float:
    """Samples per second of ``function()`` (one warm-up call, then calls for ``seconds``)."""
    function()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        function()
        calls += 1
    return calls * samples_per_call / (time.perf_counter() - start)


def decoder_rate(device: str, batch: int) -> float:
    """Samples/s of the reference decoder, forward and backward with Adam, on ``device``."""
    import torch

    from deepsdf.config import DecoderConfig
    from deepsdf.decoder import Decoder

    decoder = Decoder(DecoderConfig()).to(device)
    codes = torch.randn(batch, 256, device=device) * 0.06
    points = torch.rand(batch, 3, device=device) * 2 - 1
    target = torch.rand(batch, device=device) * 0.2 - 0.1
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = (decoder(codes, points).squeeze(1).clamp(-0.1, 0.1) - target).abs().mean()
        loss.backward()
        optimizer.step()

    return rate(step, batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=int, default=400,
                        help="shapes in the synthetic category (400; the chairs have 3281)")
    parser.add_argument("--samples", type=int, default=500_000, help="samples per shape")
    parser.add_argument("--scenes", type=int, default=64, help="ScenesPerBatch (64)")
    parser.add_argument("--per-scene", type=int, default=16384, help="SamplesPerScene (16384)")
    parser.add_argument("--decoder-batch", type=int, default=16384,
                        help="samples per decoder step when measuring it (16384)")
    parser.add_argument("--work", type=Path, help="folder for the category (default: temp)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import torch

    from deepsdf.data import SceneBatches, epoch_batches
    from deepsdf.sample_store import DeviceSamples, batch_generator

    work = args.work or Path(tempfile.mkdtemp(prefix="deepsdf-scale-"))
    start = time.perf_counter()
    split = make_category(work / "data", args.shapes, args.samples)
    print(f"synthetic category: {args.shapes} shapes x {args.samples:,} samples in {work} "
          f"({time.perf_counter() - start:.0f} s to write)")
    packing = pack(work / "data", split, work / "cache")
    per_shape = packing["seconds"] / args.shapes
    print(f"packing: {per_shape * 1e3:.1f} ms per shape ({packing['seconds']:.1f} s), "
          f"peak RSS {packing['peak_rss_mib']:.0f} MiB "
          f"(the split is {packing['rows'] * 16 / 2**20:.0f} MiB)")

    from deepsdf.data import pack_split
    from deepsdf_preprocess.formats import read_split

    packed = pack_split(work / "data", read_split(split), cache_root=work / "cache")
    batch_samples = args.scenes * args.per_scene
    batches = epoch_batches(len(packed), args.scenes, seed=0, epoch=0)
    mapped = SceneBatches(packed, args.per_scene, seed=0, epoch=0, batches=batches)
    counter = iter(range(10**9))
    mmap_rate = rate(lambda: mapped[next(counter) % len(mapped)], batch_samples)
    start = time.perf_counter()
    store = DeviceSamples(packed, torch.device("cpu"))
    upload = time.perf_counter() - start
    device_counter = iter(range(10**9))

    def draw():
        index = next(device_counter)
        return store.draw(batches[index % len(batches)], args.per_scene,
                          batch_generator("cpu", seed=0, epoch=0, batch=index))

    device_rate = rate(draw, batch_samples)
    model_rate = decoder_rate("cpu", args.decoder_batch)
    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__, "shapes": args.shapes, "samples_per_shape": args.samples,
        "pack_seconds_per_shape": per_shape, "pack_peak_rss_mib": packing["peak_rss_mib"],
        "upload_seconds": upload, "mmap_samples_per_s": mmap_rate,
        "device_samples_per_s": device_rate, "decoder_samples_per_s": model_rate,
        "mmap_over_decoder": mmap_rate / model_rate,
        "device_over_decoder": device_rate / model_rate,
    }
    print(f"memory-mapped path:   {mmap_rate / 1e6:8.2f} M samples/s "
          f"({figures['mmap_over_decoder']:.1f}x the decoder)")
    print(f"device-resident path: {device_rate / 1e6:8.2f} M samples/s "
          f"({figures['device_over_decoder']:.1f}x the decoder; target >= 10x; upload "
          f"{upload:.1f} s)")
    print(f"reference decoder:    {model_rate / 1e6:8.3f} M samples/s forward + backward "
          f"(batch {args.decoder_batch}, {torch.get_num_threads()} threads)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

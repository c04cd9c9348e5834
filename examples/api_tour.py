"""A tour of the Python API on a few generated chairs, small enough for a laptop CPU (~2 min).

    python examples/api_tour.py [OUT_DIR]

generate -> preprocess (OpenGL-free scanner) -> train a tiny decoder -> reconstruct a shape
-> complete a shape from one virtual depth scan -> interpolate between two codes.  Every
step's output lands under OUT_DIR (default ./api_tour_output).  docs/api.md walks through it.
"""

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from deepsdf.completion import complete_observations, scan_observation
from deepsdf.config import parse_specs
from deepsdf.data import pack_split
from deepsdf.interpolate import slerp
from deepsdf.mesh import code_mesh
from deepsdf.metrics import chamfer, surface_points
from deepsdf.observations import Similarity
from deepsdf.reconstruct import GAUSS_NEWTON, reconstruct_codes
from deepsdf.train import Trainer
from deepsdf_preprocess import formats
from deepsdf_preprocess.cameras import CameraRig
from deepsdf_preprocess.driver import preprocess_dataset
from deepsdf_preprocess.mesh_io import load_mesh
from deepsdf_preprocess.partial_scan import virtual_scan
from deepsdf_preprocess.pipeline import PreprocessConfig
from deepsdf_preprocess.procedural import write_shapes


def say(message: str) -> None:
    """One progress line per step (the tour takes a minute or two)."""
    print(f"[tour] {message}", flush=True)


def main(out: Path) -> dict:
    # 1. Meshes: four procedural chairs (any folder of <class>/<instance>.obj works).
    write_shapes(out / "meshes", "chairs", 4, seed=1)
    say(f"1/6 wrote four procedural chairs under {out / 'meshes'}")

    # 2. Preprocess: 30 orthographic cameras of 160x160 pixels and 50k samples (the reference
    #    is 100 x 400x400 and 500k); ray casting needs no OpenGL context.
    config = PreprocessConfig(rig=CameraRig(count=30, resolution=160), surface_samples=5000)
    config = replace(config, sampling=replace(config.sampling, count=50_000))
    report = preprocess_dataset(out / "meshes", out / "data", "tour", config=config,
                                backend="raycast", progress=False)
    split = formats.read_split(report.split_path)
    say(f"2/6 preprocessed them into {out / 'data'}")

    # 3. Train: a 4 x 128 decoder, 16-dimensional codes, 400 epochs of one batch each.
    specs = {"SpecsVersion": 2, "DataSource": str(out / "data"),
             "TrainSplit": str(report.split_path),
             "NetworkSpecs": {"dims": [128] * 4, "latent_in": [2], "weight_norm": False,
                              "dropout": [], "norm_layers": []},
             "CodeLength": 16, "NumEpochs": 400, "ScenesPerBatch": 4,
             "SamplesPerScene": 4096, "SnapshotFrequency": 400,
             "LearningRateSchedule": [{"Type": "Step", "Initial": 0.005, "Interval": 200,
                                       "Factor": 0.3}] * 2}
    experiment = out / "experiment"
    experiment.mkdir(parents=True, exist_ok=True)
    (experiment / "specs.json").write_text(json.dumps(specs, indent=2))
    trainer = Trainer(experiment, parse_specs(specs), device="cpu", progress=False)
    say("3/6 training a 4 x 128 decoder for 400 epochs (the longest step)")
    result = trainer.train(overwrite=True)  # a rerun of the tour starts its model afresh
    decoder, clamp = result.model.decoder.eval(), trainer.config.clamp

    # 4. Reconstruct shape 0 from its SdfSamples with the decoder frozen (Gauss-Newton).
    packed = pack_split(out / "data", split, cache_root=trainer.cache)  # the training cache
    fit = reconstruct_codes(decoder, packed, [0], GAUSS_NEWTON, clamp=clamp, latent_size=16)
    key = packed.instance_ids[0]
    paths = formats.instance_outputs(out / "data", key)
    offset, scale = formats.read_normalization(paths[formats.NORMALIZATION_PARAMETERS])
    truth = formats.read_surface_samples(paths[formats.SURFACE_SAMPLES])["points"]
    mesh = code_mesh(decoder, fit.codes[0], 96)           # normalized frame
    mesh.vertices = mesh.vertices / scale - offset         # back to the original frame
    mesh.export(out / "reconstructed.ply")
    reconstruction = chamfer(surface_points(mesh)[0], truth)
    say(f"4/6 reconstructed {key}: Chamfer {reconstruction:.3g}")

    # 5. Complete shape 1 from one depth view: a virtual scan in the mesh's own frame, mapped
    #    to the model frame by its normalization; free-space rows on by default.
    key1 = packed.instance_ids[1]
    paths1 = formats.instance_outputs(out / "data", key1)
    offset1, scale1 = formats.read_normalization(paths1[formats.NORMALIZATION_PARAMETERS])
    source = load_mesh(out / "meshes" / "chairs" / (key1.rsplit("/", 1)[1] + ".obj"))
    scan = virtual_scan(source, offset1, scale1, np.random.default_rng(0))  # depth, K, pose
    seen = scan_observation(scan).transformed(Similarity.from_normalization(offset1, scale1))
    completed = complete_observations(decoder, [seen], clamp=clamp, latent_size=16)
    code_mesh(decoder, completed.codes[0], 96).export(out / "completed_normalized.ply")
    say(f"5/6 completed {key1} from one depth view ({len(seen)} observed points)")

    # 6. Interpolate between the two fitted codes (slerp), one mesh per step.
    for step, code in enumerate(slerp(fit.codes[0], completed.codes[0], 4)):
        code_mesh(decoder, code, 64).export(out / f"step_{step}.ply")
    say(f"6/6 interpolated between them: {out}/step_*.ply")

    return {"reconstruction_chamfer": reconstruction, "observed_points": len(seen),
            "completion_loss": float(completed.loss[0])}


if __name__ == "__main__":
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else "api_tour_output")))

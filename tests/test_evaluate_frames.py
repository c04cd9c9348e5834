"""The retrieval baseline compares shapes across frames: real meshes need not share one."""

import shutil

import numpy as np
import torch
import trimesh


from deepsdf.experiment import load_specs
from deepsdf.evaluate import evaluate_split
from deepsdf.experiment import Experiment, write_code, write_mesh
from deepsdf.train import Trainer
from deepsdf_preprocess import formats
from deepsdf_preprocess.manifest import manifest_mesh, read_manifest

from conftest import make_experiment


def test_retrieval_maps_the_retrieved_shape_into_the_test_shapes_frame(tiny_data, tmp_path):
    data, split = tiny_data
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    experiment = make_experiment(tmp_path / "exp", copy, split, NumEpochs=1,
                                 SamplesPerScene=256)
    Trainer(experiment, load_specs(experiment), device="cpu", progress=False).train()
    # A test shape that is training shape chairs_0001 moved to 100 and scaled by 10, in a
    # millimetre-like frame of its own.
    source = formats.instance_outputs(copy, "gen/chairs/chairs_0001")
    twin = formats.instance_outputs(copy, "gen/chairs/twin")
    surface = formats.read_surface_samples(source[formats.SURFACE_SAMPLES])
    formats.write_surface_samples(twin[formats.SURFACE_SAMPLES], surface["points"] * 10.0 + 100,
                                  surface["normals"])
    offset, scale = formats.read_normalization(source[formats.NORMALIZATION_PARAMETERS])
    formats.write_normalization(twin[formats.NORMALIZATION_PARAMETERS], 10 * offset - 100,
                                scale / 10)
    mesh = trimesh.load(manifest_mesh(read_manifest(copy, "gen"), "chairs/chairs_0001"),
                        force="mesh")
    mesh.vertices = mesh.vertices * 10.0 + 100
    paths = Experiment(experiment).reconstruction("gen/chairs/twin")
    write_mesh(paths["original"], mesh)
    write_code(paths["code"], torch.zeros(16))
    summary = evaluate_split(experiment, {"gen": {"chairs": ["twin"]}}, data_dir=copy)
    import csv

    with open(experiment / "Evaluation" / "latest" / "metrics.csv") as stream:
        row = next(csv.DictReader(stream))
    assert row["retrieval_oracle_instance"] == "gen/chairs/chairs_0001"
    side = float(np.ptp(surface["points"] * 10.0, axis=0).max())
    # the retrieved shape is the test shape itself, in its frame: Chamfer ~ 0, F-score 1
    assert float(row["retrieval_oracle_chamfer"]) < 1e-8 * side ** 2
    assert float(row["retrieval_oracle_f_score"]) == 1.0
    assert summary["retrieval_oracle"]["chamfer"]["mean"] < 1e-8 * side ** 2

"""Latent-only reconstruction: recovery of training shapes, batching, the command."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from deepsdf.experiment import load_specs
from deepsdf.cli import main
from deepsdf.config import DecoderConfig
from deepsdf.data import pack_split
from deepsdf.decoder import Decoder
from deepsdf.experiment import Experiment
from deepsdf.mesh import coarse_to_fine_grid, decoder_field, extract_mesh
from deepsdf.metrics import chamfer, surface_points
from deepsdf.reconstruct import GAUSS_NEWTON, SolverConfig, reconstruct_codes
from deepsdf.train import Trainer
from deepsdf_preprocess import formats
from deepsdf_preprocess.normalize import to_normalized

from conftest import TINY_SPECS, make_experiment

SMALL_ADAM = SolverConfig(steps=200, samples=2000)


def surface_chamfer(decoder, code, data, key):
    paths = formats.instance_outputs(data, key)
    offset, scale = formats.read_normalization(paths[formats.NORMALIZATION_PARAMETERS])
    mesh = extract_mesh(coarse_to_fine_grid(decoder_field(decoder, code), 96), offset=offset,
                        scale=scale)
    truth = formats.read_surface_samples(paths[formats.SURFACE_SAMPLES])["points"]
    return chamfer(surface_points(mesh, 10000)[0], truth) * scale ** 2  # normalized units


@pytest.mark.slow
@pytest.mark.parametrize("solver", [SMALL_ADAM, GAUSS_NEWTON], ids=["adam", "gauss-newton"])
def test_fitted_codes_recover_training_shapes(trained, trained_data, solver):
    """Bound 3e-3 (normalized units): 1.5x the bound the trained codes themselves meet
    (tests/test_train.py), a tenth of the median Chamfer between two different chairs."""
    data, split = trained_data
    _, model = trained
    packed = pack_split(data, formats.read_split(split))
    result = reconstruct_codes(model.decoder, packed, [0, 1, 2], solver, clamp=0.1,
                               latent_size=16)
    for row in range(3):
        value = surface_chamfer(model.decoder, result.codes[row], data, packed.instance_ids[row])
        assert value < 3e-3, (solver.method, row, value)
    assert all(p.requires_grad for p in model.decoder.parameters())  # unfrozen afterwards


@pytest.mark.parametrize("solver", [replace(SMALL_ADAM, steps=30),
                                    replace(GAUSS_NEWTON, steps=5, samples=2000, damping=100.0)],
                         ids=["adam", "gauss-newton"])
def test_batched_equals_one_by_one(tiny_data, solver):
    """Each shape's fit is its own, whatever its batch.  (Gauss-Newton with a firm initial
    damping: on this untrained decoder the Jacobian is nearly rank-deficient, and an almost
    undamped solve turns float summation order into different steps; the code path under test
    is the same.)"""
    data, split = tiny_data
    packed = pack_split(data, formats.read_split(split))
    torch.manual_seed(0)
    decoder = Decoder(DecoderConfig(latent_size=8, dims=(32, 32, 32), dropout=(),
                                    norm_layers=(), latent_in=(), weight_norm=False))
    together = reconstruct_codes(decoder, packed, [0, 1, 2], solver, clamp=0.1, latent_size=8)
    for row in range(3):
        alone = reconstruct_codes(decoder, packed, [row], solver, clamp=0.1, latent_size=8)
        # same code up to float summation order in the batched matrix products
        torch.testing.assert_close(alone.codes[0], together.codes[row], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(alone.loss[0], together.loss[row], rtol=1e-4)


def small_trained_experiment(tiny_data, path, epochs: int):
    """A 4 x 32 decoder trained for a few epochs: enough for the commands' plumbing."""
    data, split = tiny_data
    experiment = make_experiment(path, data, split, NumEpochs=epochs,
                                 NetworkSpecs=dict(TINY_SPECS["NetworkSpecs"],
                                                   dims=[32, 32, 32, 32]))
    Trainer(experiment, load_specs(experiment), device="cpu", progress=False).train()
    return experiment


def test_reconstruct_command_writes_the_original_layout(tiny_data, tmp_path):
    _, split = tiny_data
    experiment = small_trained_experiment(tiny_data, tmp_path / "exp", epochs=3)
    args = ["reconstruct", str(experiment), "--split", str(split), "--solver", "gauss-newton",
            "--steps", "2", "--resolution", "32", "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    keys = [f"gen/chairs/chairs_000{i}" for i in range(3)]
    for key in keys:
        paths = Experiment(experiment).reconstruction(key)
        assert paths["code"].is_file()
        assert torch.load(paths["code"]).shape == (1, 16)
    assert main(args + ["--skip"]) == 0  # nothing left to do


def _normalized(mesh, data, index):
    offset, scale = formats.read_normalization(formats.instance_outputs(
        data, f"gen/chairs/chairs_000{index}")[formats.NORMALIZATION_PARAMETERS])
    copy = mesh.copy()
    copy.vertices = to_normalized(copy.vertices, offset, scale)
    return copy


def test_evaluate_command_on_ground_truth_meshes(tiny_data, tmp_path, capsys):
    """The ground-truth mesh as a reconstruction scores near-perfectly, a shifted copy far
    worse; the oracle retrieval finds each (training) shape itself."""
    import json

    import trimesh

    data, split = tiny_data
    experiment = small_trained_experiment(tiny_data, tmp_path / "exp", epochs=1)
    for i in range(2):  # the third shape has no reconstruction: reported missing
        mesh = trimesh.load(data.parent / "meshes" / "chairs" / f"chairs_000{i}.obj")
        if i == 1:  # a wrong reconstruction: shifted by 5% of the chair's size
            mesh.apply_translation([0.05 * mesh.extents.max(), 0, 0])
        paths = Experiment(experiment).reconstruction(f"gen/chairs/chairs_000{i}")
        for kind, frame in (("original", mesh), ("mesh", _normalized(mesh, data, i))):
            paths[kind].parent.mkdir(parents=True, exist_ok=True)
            frame.export(paths[kind])
    assert main(["evaluate", str(experiment), "--split", str(split)]) == 0
    printed = capsys.readouterr().out
    assert str(experiment / "Evaluation/latest/metrics.csv") in printed  # says where
    assert len(printed.splitlines()) < 15 and "Chamfer" in printed and "lower" in printed
    summary = json.loads((experiment / "Evaluation/latest/summary.json").read_text())
    assert summary["shapes"] == 2 and summary["missing"] == ["gen/chairs/chairs_0002"]
    # the oracle retrieves each shape itself from the training set (these are training shapes)
    assert summary["retrieval_oracle"]["chamfer"]["mean"] < 5e-4
    import csv

    with open(experiment / "Evaluation/latest/metrics.csv") as stream:
        right, wrong = ({k: (v if k.endswith("instance") or v == "" else float(v))
                         for k, v in row.items()} for row in csv.DictReader(stream))
    # Two independent 30000-point samplings of one surface (SurfaceSamples cover only its
    # visible part) score Chamfer ~2e-4 and F-score ~0.45 at 1% of the box side (sampling
    # gaps are of that size); the shifted mesh scores far worse on every metric.
    assert right["chamfer"] < 5e-4 and wrong["chamfer"] > 3 * right["chamfer"]
    assert right["f_score"] > wrong["f_score"] + 0.1
    assert right["normal_consistency"] > 0.85  # nearest-point matches across sharp edges
    assert right["iou"] > 0.97 and wrong["iou"] < right["iou"] - 0.1
    assert right["chamfer_l1"] < wrong["chamfer_l1"]
    assert right["retrieval_oracle_instance"] == "gen/chairs/chairs_0000"
    # The retrieved training shape's IoU comes from its source mesh: itself here.
    assert right["retrieval_oracle_iou"] > 0.97
    assert wrong["retrieval_oracle_instance"] == "gen/chairs/chairs_0001"
    header = (experiment / "Evaluation/latest/metrics.csv").read_text().splitlines()[0]
    assert header.startswith("instance,chamfer,chamfer_l1,f_score,normal_consistency,emd,")


def test_an_original_release_experiment_reconstructs_as_it_is(tiny_data, tmp_path):
    """ModelParameters/LatentCodes + an original specs.json: `deepsdf reconstruct` works."""
    import json

    data, split = tiny_data
    latent, dims = 8, [32, 32, 32, 32]
    generator = torch.Generator().manual_seed(0)
    sizes = [latent + 3] + dims + [1]
    state = {}
    for i in range(len(sizes) - 1):
        out_size = sizes[i + 1] - (latent + 3 if i + 1 == 2 else 0)
        v = torch.randn(out_size, sizes[i], generator=generator) * 0.3
        if i < len(dims):
            state[f"module.lin{i}.weight_g"] = v.norm(dim=1, keepdim=True)
            state[f"module.lin{i}.weight_v"] = v
        else:
            state[f"module.lin{i}.weight"] = v
        state[f"module.lin{i}.bias"] = torch.zeros(out_size)
    state[f"module.lin{len(dims)}.bias"] = torch.tensor([-0.05])  # a surface somewhere
    experiment = tmp_path / "original"
    (experiment / "ModelParameters").mkdir(parents=True)
    (experiment / "LatentCodes").mkdir()
    torch.save({"epoch": 2000, "model_state_dict": state},
               experiment / "ModelParameters" / "latest.pth")
    torch.save({"epoch": 2000, "latent_codes": {"weight": torch.zeros(3, latent)}},
               experiment / "LatentCodes" / "latest.pth")
    specs = {"Description": "original", "DataSource": str(data), "TrainSplit": str(split),
             "TestSplit": str(split), "NetworkArch": "deep_sdf_decoder",
             "NetworkSpecs": {"dims": dims, "dropout": [0, 1, 2, 3], "dropout_prob": 0.2,
                              "norm_layers": [0, 1, 2, 3], "latent_in": [2],
                              "xyz_in_all": False, "use_tanh": False, "latent_dropout": False,
                              "weight_norm": True},
             "CodeLength": latent, "ClampingDistance": 0.1}
    (experiment / "specs.json").write_text(json.dumps(specs))
    assert main(["reconstruct", str(experiment), "--solver", "gauss-newton", "--steps", "2",
                 "--resolution", "24", "--no-progress", "--device", "cpu"]) == 0
    for i in range(3):
        code = Experiment(experiment).reconstruction(f"gen/chairs/chairs_000{i}")["code"]
        assert torch.load(code).shape == (1, latent)


class _Ellipsoid(torch.nn.Module):
    """f(z, x) = |x / (r0 + z)| - 1 scaled: a 'decoder' whose two code entries are an
    ellipsoid's semi-axes (x and y; z axis 0.3), for a fit with a known answer."""

    def forward(self, codes, points):
        axes = torch.cat([0.3 + codes, torch.full_like(codes[:, :1], 0.3)], dim=1)
        return ((points / axes).norm(dim=1, keepdim=True) - 1.0) * 0.3


@pytest.mark.parametrize("solver", [SolverConfig(steps=300, samples=400, lr=2e-2, prior=0.0),
                                    replace(GAUSS_NEWTON, samples=400, prior=0.0)],
                         ids=["adam", "gauss-newton"])
def test_both_solvers_find_the_known_code(solver):
    """Rows of the ellipsoid with semi-axes (0.5, 0.4, 0.3), exact values of this 'decoder':
    each solver recovers the code (0.2, 0.1) from its random start."""
    rng = np.random.default_rng(0)
    truth = torch.tensor([[0.2, 0.1]])
    points = torch.from_numpy(rng.uniform(-0.7, 0.7, size=(3000, 3)).astype(np.float32))
    values = _Ellipsoid()(truth.expand(len(points), -1), points)
    rows = torch.cat([points, values, torch.zeros_like(values)], dim=1).numpy()
    rows = rows[np.abs(rows[:, 3]) < 0.08]  # inside the clamp, as a scan's samples are
    fit = reconstruct_codes(_Ellipsoid(), [rows], [0], solver, clamp=0.1, latent_size=2)
    np.testing.assert_allclose(fit.codes[0].numpy(), [0.2, 0.1], atol=5e-3)


@pytest.mark.slow
def test_several_starts_rank_their_fits_and_recover_training_shapes(trained, trained_data):
    """The default fit's starts (nearest training codes, the mean, a random draw): each shape's
    fits come back ranked by their data term, the winner no worse than the reference's single
    random start fitted alike, and the result recovers the shape (as the single start does)."""
    from deepsdf.reconstruct import candidate_values, fit_codes, fit_from_starts
    from deepsdf.settings import RECONSTRUCT_STARTS

    data, split = trained_data
    model = Experiment(trained[0]).model  # the checkpoint as inference reads it
    packed = pack_split(data, formats.read_split(split))
    starts = RECONSTRUCT_STARTS
    ranked = fit_from_starts(model.decoder, packed, [0, 1, 2], starts.solver, clamp=0.1,
                             starts=starts.starts, train_codes=model.codes)
    assert ranked.ranked.shape[:2] == (3, 4)
    assert np.all(np.diff(ranked.data, axis=1) >= 0)
    assert all(sorted(kinds) == ["mean", "nearest", "nearest", "random"]
               for kinds in ranked.start_kind)
    single = reconstruct_codes(model.decoder, packed, [0, 1, 2], starts.solver, clamp=0.1)
    values = candidate_values(model.decoder, packed, [0, 1, 2],
                              torch.stack([ranked.codes, single.codes], dim=1), count=4000,
                              clamp=0.1, seed=5)
    assert torch.all(values[:, 0] <= values[:, 1] * 1.05), values
    result = fit_codes(model.decoder, packed, [0, 1, 2], starts, clamp=0.1,
                       train_codes=model.codes)
    for row in range(3):
        value = surface_chamfer(model.decoder, result.codes[row], data, packed.instance_ids[row])
        assert value < 3e-3, (row, value)

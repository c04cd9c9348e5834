"""Round trip with the original DeepSDF release: export, resume, and the training semantics
legacy specs must reproduce.

The loader below follows the original's documented file contents (``deep_sdf/workspace.py``'s
keys: ``model_state_dict`` of a ``DataParallel`` decoder, ``latent_codes`` an ``Embedding``
state, ``optimizer_state_dict``; ``Logs.pth`` keys), and the forward pass is written by hand
from the original decoder's definition, not from this project's code.
"""

import json

import numpy as np
import pytest
import torch

from deepsdf.experiment import checkpoint_path, load_specs
from deepsdf.checkpoint import load_checkpoint
from deepsdf.cli import main
from deepsdf.config import DecoderConfig, Schedule, TrainConfig, parse_specs
from deepsdf.decoder import Decoder
from deepsdf.export import export_original
from deepsdf.original import (optimizer_to_original, original_optimizer_to_ours,
                              original_parameter_names)
from deepsdf.loss import prior_warmup
from deepsdf.train import AutoDecoder, Trainer, TrainingError

from conftest import TINY_SPECS, make_experiment


def original_forward(state, specs, codes, points):
    """The original decoder (deep_sdf_decoder.Decoder, eval mode) from its state dict."""
    network = specs["NetworkSpecs"]
    latent_in = network.get("latent_in", [])
    inputs = torch.cat([codes, points], dim=1)
    x = inputs
    layers = sorted({int(k.split(".")[1][3:]) for k in state if ".lin" in k})
    for i in layers:
        if i in latent_in:
            x = torch.cat([x, inputs], dim=1)
        if f"module.lin{i}.weight_g" in state:
            g, v = state[f"module.lin{i}.weight_g"], state[f"module.lin{i}.weight_v"]
            weight = g * v / v.norm(dim=1, keepdim=True)
        else:
            weight = state[f"module.lin{i}.weight"]
        x = x @ weight.T + state[f"module.lin{i}.bias"]
        if i == layers[-1] and network.get("use_tanh", False):
            x = torch.tanh(x)
        if i < layers[-1]:
            if f"module.bn{i}.weight" in state and not network.get("weight_norm", False):
                x = torch.nn.functional.layer_norm(
                    x, (x.shape[1],), state[f"module.bn{i}.weight"], state[f"module.bn{i}.bias"])
            x = torch.relu(x)
    return torch.tanh(x)  # the original's final, always-on tanh


@pytest.fixture
def trained_run(tiny_data, tmp_path):
    data, split = tiny_data
    experiment = make_experiment(tmp_path / "ours", data, split, NumEpochs=3,
                                 SnapshotFrequency=2, SamplesPerScene=512)
    Trainer(experiment, load_specs(experiment), device="cpu", progress=False).train()
    return experiment


def test_export_is_read_back_by_an_independent_loader(trained_run, tmp_path):
    out = tmp_path / "original"
    assert main(["export", str(trained_run), "--original", "--out", str(out)]) == 0
    ours = load_checkpoint(checkpoint_path(trained_run))
    specs = json.loads((out / "specs.json").read_text())
    assert "SpecsVersion" not in specs and specs["NetworkSpecs"]["use_tanh"] is False
    # the original builds its decoder as Decoder(CodeLength, **NetworkSpecs): only its
    # constructor's keyword arguments may appear
    assert set(specs["NetworkSpecs"]) <= {"dims", "dropout", "dropout_prob", "norm_layers",
                                          "latent_in", "weight_norm", "xyz_in_all",
                                          "use_tanh", "latent_dropout"}
    for name in ("latest", "2"):
        model = torch.load(out / "ModelParameters" / f"{name}.pth")
        codes = torch.load(out / "LatentCodes" / f"{name}.pth")
        optimizer = torch.load(out / "OptimizerParameters" / f"{name}.pth")
        assert model["epoch"] == codes["epoch"] == optimizer["epoch"] == (3 if name == "latest"
                                                                          else 2)
    model = torch.load(out / "ModelParameters/latest.pth")["model_state_dict"]
    weight = torch.load(out / "LatentCodes/latest.pth")["latent_codes"]["weight"]
    assert torch.equal(weight, ours["codes"])  # bitwise
    config = parse_specs(ours["config"])
    decoder = Decoder(config.decoder)
    decoder.load_state_dict(ours["decoder"])
    decoder.eval()
    points = torch.rand(200, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected = decoder(weight[1].expand(200, -1), points)
        theirs = original_forward(model, specs, weight[1].expand(200, -1), points)
    torch.testing.assert_close(theirs, expected, rtol=0, atol=1e-6)
    optimizer = torch.load(out / "OptimizerParameters/latest.pth")["optimizer_state_dict"]
    assert len(optimizer["param_groups"][0]["params"]) == len(original_parameter_names(config))
    logs = torch.load(out / "Logs.pth")
    assert set(logs) == {"epoch", "loss", "learning_rate", "timing", "latent_magnitude",
                         "param_magnitude"}
    assert logs["epoch"] == 3 and len(logs["learning_rate"]) == 3 and len(logs["timing"]) == 3
    assert len(logs["loss"]) == 3  # 3 shapes, 3 scenes per batch: one batch per epoch
    assert set(logs["param_magnitude"]) == {n for n in original_parameter_names(config)}


def test_the_optimizer_state_maps_both_ways_exactly():
    config = TrainConfig(decoder=DecoderConfig(latent_size=4, dims=(16, 16, 16),
                                               latent_in=(2,), dropout=(), weight_norm=False,
                                               norm_layers=(0, 1, 2, 3)))
    decoder = Decoder(config.decoder)
    codes = torch.nn.Parameter(torch.randn(5, 4))
    optimizer = torch.optim.Adam([{"params": decoder.parameters(), "lr": 1e-3},
                                  {"params": [codes], "lr": 1e-2}])
    (decoder(codes[:1].expand(8, -1), torch.rand(8, 3)).sum() + codes.sum()).backward()
    optimizer.step()
    names = [n for n, _ in decoder.named_parameters()]
    state = optimizer.state_dict()
    exported = optimizer_to_original(state, names, config)
    # the original's order: lin0 weight, bias, bn0 weight, bias, lin1 ...; bn3 (its unused
    # output LayerNorm) has no state
    original = original_parameter_names(config)
    assert original[:4] == ["lin0.weight", "lin0.bias", "bn0.weight", "bn0.bias"]
    assert original[-2:] == ["bn3.weight", "bn3.bias"]
    assert len(exported["state"]) == len(names) + 1
    back = original_optimizer_to_ours(exported, names, config)
    assert back["param_groups"] == state["param_groups"]
    for index, entry in state["state"].items():
        for key, value in entry.items():
            assert torch.equal(back["state"][index][key], value)


def test_train_resume_continues_an_original_training_folder(trained_run, tmp_path):
    out = tmp_path / "original"
    export_original(trained_run, out=out, checkpoints=["latest"])
    specs = json.loads((out / "specs.json").read_text())
    (out / "specs.json").write_text(json.dumps(dict(specs, NumEpochs=5)))
    config = load_specs(out)
    assert config.legacy
    trainer = Trainer(out, config, device="cpu", progress=False)
    result = trainer.train(resume=True, epochs=1)
    assert result.epochs_done == 4  # continued from the original files' epoch 3
    assert len(result.log.entries["timing"]) == 4 and len(result.log.entries["loss"]) == 4


def test_a_missing_original_file_is_named(trained_run, tmp_path):
    out = tmp_path / "original"
    export_original(trained_run, out=out, checkpoints=["latest"])
    (out / "OptimizerParameters" / "latest.pth").unlink()
    with pytest.raises(TrainingError, match="OptimizerParameters/latest.pth missing"):
        Trainer(out, load_specs(out), device="cpu", progress=False).train(resume=True)


def test_original_layernorm_on_the_output_layer_is_accepted(tmp_path):
    from deepsdf.original import load_legacy_decoder

    specs = {"NetworkSpecs": {"dims": [16, 16], "norm_layers": [0, 1, 2], "latent_in": [],
                              "weight_norm": False}, "CodeLength": 4}
    config = parse_specs(specs)
    state = {f"module.{k.replace('layers.', 'lin').replace('norms.', 'bn')}": v
             for k, v in Decoder(config.decoder).state_dict().items()}
    state["module.bn2.weight"], state["module.bn2.bias"] = torch.ones(1), torch.zeros(1)
    path = tmp_path / "ModelParameters" / "latest.pth"
    path.parent.mkdir()
    torch.save({"epoch": 1, "model_state_dict": state}, path)
    load_legacy_decoder(path, config)  # no "Unexpected key(s)"


def test_bare_n_1_d_latent_codes_are_accepted(tmp_path):
    from deepsdf.original import load_legacy_codes

    codes = torch.randn(3, 1, 8)
    torch.save(codes, tmp_path / "codes.pth")
    table = load_legacy_codes(tmp_path / "codes.pth", {"D": {"c": ["a", "b", "c"]}})
    assert torch.equal(table.weight.detach(), codes[:, 0])


# --------------------------------------------------------------------------- semantics

@pytest.mark.parametrize("schedule, expected", [
    (Schedule("Step", initial=5e-4, interval=500, factor=0.5),
     {1: 5e-4, 499: 5e-4, 500: 2.5e-4, 999: 2.5e-4, 1000: 1.25e-4}),
    (Schedule("Warmup", initial=0.0, final=1e-3, length=10),
     {1: 1e-4, 5: 5e-4, 10: 1e-3, 11: 1e-3}),
    (Schedule("Constant", value=3e-4), {1: 3e-4, 2001: 3e-4}),
])
def test_schedules_use_the_original_epoch_numbering(schedule, expected):
    for epoch, rate in expected.items():
        assert schedule.at(epoch) == pytest.approx(rate)


def test_the_prior_warmup_is_on_from_the_first_epoch():
    assert prior_warmup(1) == 0.01 and prior_warmup(100) == 1.0 and prior_warmup(250) == 1.0


@pytest.mark.parametrize("legacy, expected", [
    (True, [1e-3, 5e-4, 5e-4]),   # the original's epochs 1, 2, 3: halved from epoch 2 on
    (False, [1e-3, 1e-3, 5e-4]),  # SpecsVersion 2: halved after 2 completed epochs
])
def test_trainer_sets_the_learning_rate_at_the_boundary(tiny_data, tmp_path, legacy, expected):
    data, split = tiny_data
    experiment = make_experiment(tmp_path / "exp", data, split, NumEpochs=3,
                                 SamplesPerScene=256, LearningRateSchedule=[
                                     {"Type": "Step", "Initial": 1e-3, "Interval": 2,
                                      "Factor": 0.5}] * 2)
    if legacy:
        specs = json.loads((experiment / "specs.json").read_text())
        for key in ("SpecsVersion", "Seed"):
            specs.pop(key)
        (experiment / "specs.json").write_text(json.dumps(specs))
    trainer = Trainer(experiment, load_specs(experiment), device="cpu", progress=False)
    result = trainer.train()
    assert [round(lr[0], 8) for lr in result.log.entries["learning_rate"]] == expected


def test_the_legacy_prior_weighs_from_the_first_epoch():
    from deepsdf.train import schedule_epoch

    legacy, ours = parse_specs({"CodeLength": 4}), parse_specs({"SpecsVersion": 2})
    assert prior_warmup(schedule_epoch(legacy, 0)) == 0.01
    assert prior_warmup(schedule_epoch(ours, 0)) == 0.0


def test_legacy_use_tanh_applies_tanh_twice_and_version_2_once():
    legacy = {"NetworkSpecs": {"dims": [8, 8], "use_tanh": True}, "CodeLength": 2}
    config = parse_specs(legacy).decoder
    assert config.use_tanh and config.tanh_twice
    decoder = Decoder(config)
    with torch.no_grad():
        decoder.layers[-1].weight.zero_()
        decoder.layers[-1].bias.fill_(0.45)
    value = decoder(torch.zeros(1, 2), torch.zeros(1, 3)).item()
    assert value == pytest.approx(np.tanh(np.tanh(0.45)), abs=1e-7)
    ours = parse_specs(dict(legacy, SpecsVersion=2)).decoder
    assert ours.use_tanh and not ours.tanh_twice
    assert not parse_specs({"NetworkSpecs": {"dims": [8]}}).decoder.tanh_twice  # default off


def test_latent_dropout_rejoins_the_undropped_code():
    config = DecoderConfig(latent_size=4, dims=(16, 16), latent_in=(1,), dropout=(),
                           norm_layers=(), weight_norm=False, latent_dropout=True)
    decoder = Decoder(config)
    seen = []
    decoder.layers[1].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    codes = torch.ones(64, 4)
    torch.manual_seed(0)
    decoder.train()
    decoder(codes, torch.zeros(64, 3))
    rejoined = seen[0][:, -7:-3]  # the [z, xyz] joined at layer 1
    assert torch.equal(rejoined, codes)


def test_legacy_code_bound_rescales_looked_up_rows_before_the_first_use(tiny_data, tmp_path,
                                                                         monkeypatch):
    data, split = tiny_data
    legacy = {k: v for k, v in TINY_SPECS.items() if k not in ("SpecsVersion", "Seed")}
    experiment = tmp_path / "exp"
    experiment.mkdir()
    (experiment / "specs.json").write_text(json.dumps(dict(
        legacy, DataSource=str(data), TrainSplit=str(split), NumEpochs=1, SamplesPerScene=256,
        CodeInitStdDev=40.0, CodeBound=1.0)))
    trainer = Trainer(experiment, load_specs(experiment), device="cpu", progress=False)
    used = []
    real = AutoDecoder.forward

    def spy(self, scenes, points, per_scene):
        predicted, codes = real(self, scenes, points, per_scene)
        used.append(codes.detach().norm(dim=1))
        return predicted, codes

    monkeypatch.setattr(AutoDecoder, "forward", spy)
    result = trainer.train()
    assert used and float(used[0].max()) <= 1.0 + 1e-5
    # the bound acts at lookup, not after the step: the table may exceed it between uses
    assert float(result.model.codes.weight.detach().norm(dim=1).max()) > 1.0


# --------------------------------------------------------------------------- data and files

def test_training_writes_nothing_into_the_data_tree(tiny_data, tmp_path):
    import shutil

    data, split = tiny_data
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    modes = {p: p.stat().st_mode for p in copy.rglob("*")}
    for path in modes:  # a read-only data tree (the test may run as root, so also compare)
        path.chmod(modes[path] & ~0o222)
    try:
        experiment = make_experiment(tmp_path / "exp", copy, split, NumEpochs=1,
                                     SamplesPerScene=256)
        Trainer(experiment, load_specs(experiment), device="cpu", progress=False).train()
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before
    assert (experiment / "PackedSamples").is_dir()


def _write_original_surface(path, points):
    """A SurfaceSamples PLY as the original's C++ writes it: vertices without normals, and a
    face element of ``3 i i+1 i+2`` rows."""
    points = np.asarray(points, "<f4")
    faces = len(points) // 3
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(points)}\nproperty float x\nproperty float y\n"
              f"property float z\nelement face {faces}\n"
              "property list uchar int vertex_indices\nend_header\n").encode()
    rows = b"".join(np.uint8(3).tobytes() + np.arange(3 * i, 3 * i + 3, dtype="<i4").tobytes()
                    for i in range(faces))
    path.write_bytes(header + points.tobytes() + rows)


def test_evaluate_reads_the_original_layout_and_surfaces_without_normals(tiny_data, tmp_path):
    import shutil

    import trimesh

    from deepsdf.evaluate import evaluate_split
    from deepsdf.experiment import Experiment, write_mesh
    from deepsdf_preprocess import formats
    from deepsdf_preprocess.manifest import manifest_mesh, read_manifest
    from deepsdf_preprocess.normalize import to_normalized

    data, split_path = tiny_data
    split = formats.read_split(split_path)
    keys = [f"gen/chairs/{i}" for i in split["gen"]["chairs"]]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    manifest = read_manifest(data, "gen")
    for key in keys:  # "reconstructions": the source meshes themselves
        mesh = trimesh.load(manifest_mesh(manifest, key.split("/", 1)[1]), force="mesh")
        offset, scale = formats.read_normalization(
            formats.instance_outputs(data, key)[formats.NORMALIZATION_PARAMETERS])
        write_mesh(Experiment(ours).reconstruction(key)["original"], mesh)
        normalized = mesh.copy()
        normalized.vertices = to_normalized(mesh.vertices, offset, scale)
        write_mesh(Experiment(theirs, checkpoint=2000).reconstruction(key)["mesh"], normalized)
    expected = evaluate_split(ours, split, data_dir=data, retrieval=False)
    stripped = tmp_path / "data"
    shutil.copytree(data, stripped)
    for key in keys:
        path = formats.instance_outputs(stripped, key)[formats.SURFACE_SAMPLES]
        _write_original_surface(path, formats.read_surface_samples(path)["points"])
    summary = evaluate_split(theirs, split, data_dir=stripped, checkpoint="2000",
                             retrieval=False)
    assert summary["shapes"] == 3 and not summary["missing"]
    assert "normal_consistency" not in summary["reconstruction"]
    assert "without normals" in summary["note"]
    for metric in ("chamfer", "f_score", "chamfer_l1"):
        assert summary["reconstruction"][metric]["mean"] == pytest.approx(
            expected["reconstruction"][metric]["mean"], rel=1e-5)
    assert (theirs / "Evaluation" / "2000" / "metrics.csv").is_file()

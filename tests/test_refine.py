"""Test-time refinement (deepsdf.refine): against exact SDFs, and beside the latent results."""

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from deepsdf.cli import main
from deepsdf.config import DecoderConfig
from deepsdf.decoder import Decoder
from deepsdf.experiment import Experiment
from deepsdf.refine import REFINE, refine_shape
from deepsdf_preprocess.errors import InputError

from test_reconstruct import small_trained_experiment

SMALL = DecoderConfig(latent_size=8, dims=(64,) * 4, dropout=(), dropout_prob=0.0,
                      norm_layers=(), latent_in=(2,), weight_norm=False)


def _error(decoder, code, rows):
    """Mean |f - value| of a decoder and code on rows [x, y, z, value, 0]."""
    with torch.no_grad():
        points = torch.from_numpy(rows[:, :3])
        predicted = decoder(code.expand(len(points), -1), points).squeeze(1)
        return float((predicted - torch.from_numpy(rows[:, 3])).abs().mean())


def _teacher_rows(decoder, count, rng, change=0.1):
    """A field no code of ``decoder`` gives exactly (its weights moved by ``change`` x N(0, 1),
    a known network, so its values are exact), as rows [x, y, z, f, 0]; and that teacher."""
    teacher = copy.deepcopy(decoder)
    generator = torch.Generator().manual_seed(int(rng.integers(1 << 30)))
    with torch.no_grad():
        for parameter in teacher.parameters():
            parameter += change * torch.randn(parameter.shape, generator=generator)
    points = torch.from_numpy(rng.uniform(-1, 1, size=(count, 3)).astype(np.float32))
    with torch.no_grad():
        values = teacher(torch.zeros(count, 8), points)
    return torch.cat([points, values, torch.zeros_like(values)], dim=1).numpy()


def test_refinement_fits_a_field_the_category_model_cannot_and_leaves_the_model_alone():
    """Rows of a known network (the model's weights moved): no code reaches it, refining the
    weights with the code does, on fresh points (not the ones it was fitted to)."""
    torch.manual_seed(0)
    decoder = Decoder(SMALL)
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    rng = np.random.default_rng(0)
    rows = _teacher_rows(decoder, 20000, rng)
    rows, fresh = rows[:-5000], rows[-5000:]
    code = torch.zeros(8)
    config = replace(REFINE, steps=200, samples=4000, weight_prior=0.0, lr=1e-3)
    refined = refine_shape(decoder, [rows], 0, code, config, clamp=1.0)
    assert _error(refined.decoder, refined.code, fresh) < 0.25 * _error(decoder, code, fresh)
    assert refined.after < refined.before
    for name, value in decoder.state_dict().items():  # the category model is untouched
        assert torch.equal(value, before[name])
    again = refine_shape(decoder, [rows], 0, code, config, clamp=1.0)  # seeded
    assert torch.equal(again.code, refined.code)


def test_the_weight_prior_holds_the_decoder_near_the_category_model():
    torch.manual_seed(0)
    decoder = Decoder(SMALL)
    rows = _teacher_rows(decoder, 8000, np.random.default_rng(1))

    def drift(weight_prior):
        config = replace(REFINE, steps=60, samples=2000, weight_prior=weight_prior, lr=1e-3)
        refined = refine_shape(decoder, [rows], 0, torch.zeros(8), config, clamp=1.0)
        return sum(float(((a.detach() - b.detach()) ** 2).sum()) for a, b in
                   zip(refined.decoder.parameters(), decoder.parameters()))

    assert drift(10.0) < 0.2 * drift(0.0)


def test_bad_refinement_settings_and_inputs_are_one_line():
    with pytest.raises(InputError, match="steps"):
        replace(REFINE, steps=0)
    with pytest.raises(InputError, match="weight_prior"):
        replace(REFINE, weight_prior=float("nan"))
    decoder = Decoder(SMALL)
    rows = _teacher_rows(decoder, 100, np.random.default_rng(2))
    with pytest.raises(InputError, match="one code"):
        refine_shape(decoder, [rows], 0, torch.zeros(2, 8), clamp=0.1)
    with pytest.raises(InputError, match="clamp"):
        refine_shape(decoder, [rows], 0, torch.zeros(8), clamp=0.0)


def test_reconstruct_refine_writes_beside_and_leaves_the_latent_result_as_it_was(tiny_data,
                                                                              tmp_path):
    _, split = tiny_data
    experiment = small_trained_experiment(tiny_data, tmp_path / "exp", epochs=3)
    args = ["reconstruct", str(experiment), "--split", str(split), "--solver", "gauss-newton",
            "--steps", "2", "--resolution", "24", "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    opened = Experiment(experiment)
    keys = [f"gen/chairs/chairs_000{i}" for i in range(3)]
    latent = {key: torch.load(opened.reconstruction(key)["code"]) for key in keys}
    assert main(args + ["--refine", "--refine-steps", "3"]) == 0
    from deepsdf.inference import refined_outputs

    for key in keys:
        assert torch.equal(torch.load(opened.reconstruction(key)["code"]), latent[key])
        paths = refined_outputs(opened, key)
        assert paths["code"].is_file() and paths["decoder"].is_file()
        assert "Refined" in paths["mesh"].parts
        state = torch.load(paths["decoder"], weights_only=True)
        assert set(state) == set(opened.model.decoder.state_dict())
    # --skip: the latent fits are kept; refinement already done is not redone
    stamp = refined_outputs(opened, keys[0])["decoder"].stat().st_mtime_ns
    assert main(args + ["--skip", "--refine", "--refine-steps", "3"]) == 0
    assert refined_outputs(opened, keys[0])["decoder"].stat().st_mtime_ns == stamp
    with pytest.raises(SystemExit):
        main(args + ["--refine-steps", "0"])
    assert main(args + ["--refine-steps", "5"]) == 2  # without --refine: refused, one line


@pytest.mark.slow
def test_complete_refine_reports_the_refined_metrics_beside(trained, trained_data, tmp_path):
    experiment, _ = trained
    data, split = trained_data
    out = tmp_path / "completion"
    assert main(["complete", str(experiment), "--virtual-scan", "--split", str(split),
                 "--data", str(data), "--out", str(out), "--resolution", "32", "--device",
                 "cpu", "--no-progress", "--refine", "--refine-steps", "20"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["refined"]) == {"chamfer", "chamfer_l1", "f_score", "chamfer_unseen"}
    assert len(sorted((out / "Refined" / "Meshes").rglob("*.ply"))) == 5
    assert len(sorted((out / "Meshes").rglob("*.ply"))) == 5
    assert "refined_chamfer" in (out / "completion.csv").read_text().splitlines()[0]

"""The training recipes beyond the original: each spec key reads, writes back, stays out of
legacy specs, and has its intended effect in a tiny run."""

import json
import math

import numpy as np
import pytest
import torch

from deepsdf.experiment import load_specs
from deepsdf import loss as loss_module
from deepsdf.data import scene_samples
from deepsdf.config import ConfigError, DecoderConfig, parse_specs
from deepsdf.decoder import Decoder
from deepsdf.original import ExportError, legacy_specs
from deepsdf.loss import clamped_l1, eikonal
from deepsdf.train import Trainer

from conftest import TINY_SPECS, make_experiment

CURRICULUM = [{"Epoch": 2, "Clamp": 0.05, "HardWeight": 0.1},
              {"Epoch": 4, "Clamp": 0.02, "HardWeight": 0.2}]


# --------------------------------------------------------------------- Fourier features

def test_fourier_encoding_is_xyz_then_sines_then_cosines():
    decoder = Decoder(DecoderConfig(latent_size=4, dims=(64, 64), dropout=(), norm_layers=(),
                                    latent_in=(), weight_norm=False, fourier_frequencies=2))
    points = torch.tensor([[0.25, -0.5, 0.125]])
    encoded = decoder.encode(points)[0].numpy()
    expected = [0.25, -0.5, 0.125]
    angles = [np.pi * f * c for c in (0.25, -0.5, 0.125) for f in (1, 2)]
    expected += [math.sin(a) for a in angles] + [math.cos(a) for a in angles]
    np.testing.assert_allclose(encoded, expected, atol=1e-6)
    assert decoder.layers[0].in_features == 4 + 3 + 12
    assert decoder(torch.zeros(5, 4), torch.rand(5, 3)).shape == (5, 1)


def test_fourier_latent_in_rejoins_the_encoding_and_checks_widths():
    config = DecoderConfig(latent_size=8, dims=(64, 64, 64), dropout=(), norm_layers=(),
                           latent_in=(2,), weight_norm=False, fourier_frequencies=3)
    decoder = Decoder(config)
    assert decoder.layers[1].out_features == 64 - (8 + 21)
    assert decoder.layers[2].in_features == 64
    assert decoder(torch.zeros(3, 8), torch.rand(3, 3)).shape == (3, 1)
    with pytest.raises(ConfigError, match="point features"):
        DecoderConfig(latent_size=8, dims=(32, 32), latent_in=(1,), dropout=(), norm_layers=(),
                      fourier_frequencies=4)


def test_fourier_without_frequencies_keeps_the_original_state_dict():
    plain = Decoder(DecoderConfig(latent_size=4, dims=(32, 32), dropout=(), norm_layers=(),
                                  latent_in=()))
    assert "frequencies" not in plain.state_dict()
    encoded = Decoder(DecoderConfig(latent_size=4, dims=(32, 32), dropout=(), norm_layers=(),
                                    latent_in=(), fourier_frequencies=2))
    assert set(encoded.state_dict()) == set(plain.state_dict())


# --------------------------------------------------------------------- spec keys

def _specs(**extra):
    specs = json.loads(json.dumps(TINY_SPECS))
    network = extra.pop("network", {})
    specs["NetworkSpecs"].update(network)
    specs.update(extra)
    return specs


def test_recipe_keys_read_and_write_back():
    config = parse_specs(_specs(Curriculum=CURRICULUM, EikonalWeight=0.05,
                                network={"fourier_frequencies": 4}))
    assert config.curriculum == ((2, 0.05, 0.1), (4, 0.02, 0.2))
    assert config.eikonal_weight == 0.05
    assert config.decoder.fourier_frequencies == 4
    assert parse_specs(config.to_specs()) == config
    defaults = parse_specs(_specs())
    assert (defaults.curriculum, defaults.eikonal_weight,
            defaults.decoder.fourier_frequencies) == ((), 0.0, 0)


@pytest.mark.parametrize("value, message", [
    ([{"Epoch": 3, "Clamp": 0.05}, {"Epoch": 3, "Clamp": 0.02}], "later than"),
    ([{"Epoch": 1, "Clamp": -0.05}], "Clamp must be > 0"),
    ([{"Epoch": 1, "Clamp": 0.05, "HardWeight": 1.0}], "HardWeight must be < 1"),
    ([{"Epoch": 1}], "needs an Epoch and a Clamp"),
    ([{"Epoch": 1, "Clamp": 0.05, "Weight": 0.1}], "unknown key 'Weight'"),
    ({"Epoch": 1, "Clamp": 0.05}, "must be a list"),
])
def test_bad_curriculum_names_the_problem(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_specs(_specs(Curriculum=value))


def test_legacy_specs_ignore_the_recipes(caplog):
    specs = _specs(Curriculum=CURRICULUM, EikonalWeight=0.1,
                   network={"fourier_frequencies": 4})
    del specs["SpecsVersion"]
    config = parse_specs(specs)
    assert (config.curriculum, config.eikonal_weight,
            config.decoder.fourier_frequencies) == ((), 0.0, 0)
    assert "Curriculum" in caplog.text and "fourier_frequencies" in caplog.text


def test_stage_at_and_trained_clamp():
    config = parse_specs(_specs(Curriculum=CURRICULUM, NumEpochs=6))
    assert [config.stage_at(e) for e in range(6)] == [
        (0.1, 0.0), (0.1, 0.0), (0.05, 0.1), (0.05, 0.1), (0.02, 0.2), (0.02, 0.2)]
    assert config.trained_clamp == 0.02
    assert parse_specs(_specs(Curriculum=CURRICULUM, NumEpochs=3)).trained_clamp == 0.05
    assert parse_specs(_specs()).trained_clamp == 0.1


def test_an_encoded_decoder_cannot_be_exported_to_the_original():
    with pytest.raises(ExportError, match="Fourier"):
        legacy_specs(parse_specs(_specs(network={"fourier_frequencies": 2})))
    exported = legacy_specs(parse_specs(_specs(Curriculum=CURRICULUM)))
    assert "Curriculum" not in exported and "fourier_frequencies" not in exported["NetworkSpecs"]


# --------------------------------------------------------------------- the loss terms

def test_hard_weighting_weighs_the_surface_side_up():
    target = torch.tensor([0.05, 0.05, -0.05, -0.05])
    predicted = torch.tensor([0.02, 0.08, -0.02, -0.08])  # toward, away, toward, away
    errors = torch.full((4,), 0.03)
    weights = torch.tensor([1.25, 0.75, 1.25, 0.75])
    assert torch.isclose(clamped_l1(predicted, target, 0.1, hard_weight=0.25),
                         (weights * errors).mean())
    assert torch.isclose(clamped_l1(predicted, target, 0.1), errors.mean())


def test_eikonal_is_zero_for_an_exact_sdf_and_counts_the_deviation():
    points = torch.randn(200, 3, requires_grad=True)
    sphere = points.norm(dim=1) - 0.5
    gradients, = torch.autograd.grad(sphere.sum(), points)
    assert eikonal(gradients).item() < 1e-10
    assert torch.isclose(eikonal(2 * gradients), torch.tensor(1.0))
    assert torch.isclose(eikonal(2 * gradients, torch.arange(200) < 10), torch.tensor(1.0))
    assert eikonal(gradients, torch.zeros(200, dtype=torch.bool)).item() == 0


# --------------------------------------------------------------------- tiny runs

def test_a_curriculum_run_trains_with_each_stage(tiny_data, tmp_path, monkeypatch):
    """The clamp and the hard weight the loss receives follow the stages, epoch by epoch."""
    data, split = tiny_data
    seen = []

    def recording(predicted, target, delta, *, hard_weight=0.0):
        seen.append((delta, hard_weight))
        return clamped_l1(predicted, target, delta, hard_weight=hard_weight)

    monkeypatch.setattr("deepsdf.train.clamped_l1", recording)
    experiment = make_experiment(tmp_path / "exp", data, split, NumEpochs=6,
                                 Curriculum=CURRICULUM)
    Trainer(experiment, load_specs(experiment), device="cpu", progress=False).train()
    assert seen == [(0.1, 0.0)] * 2 + [(0.05, 0.1)] * 2 + [(0.02, 0.2)] * 2  # 1 batch/epoch
    assert loss_module.clamped_l1 is clamped_l1


def _band_gradient_deviation(result, data_points, codes):
    points = data_points.clone().requires_grad_(True)
    decoder = result.model.decoder.eval()
    predicted = decoder(codes, points)
    gradients, = torch.autograd.grad(predicted.sum(), points)
    return (gradients.norm(dim=1) - 1).abs().mean().item()


def test_the_eikonal_term_brings_gradient_norms_toward_one(tiny_data, tmp_path):
    data, split = tiny_data
    deviations = {}
    for weight in (0.0, 0.5):
        experiment = make_experiment(tmp_path / f"exp{weight}", data, split, NumEpochs=60,
                                     EikonalWeight=weight, SamplesPerScene=2048)
        trainer = Trainer(experiment, load_specs(experiment), device="cpu", progress=False)
        result = trainer.train()
        rows = torch.from_numpy(scene_samples(result.packed, 0, 8000, seed=5, epoch=0))
        band = rows[rows[:, 3].abs() < 0.1]
        codes = result.model.codes.weight[0].detach().expand(len(band), -1)
        deviations[weight] = _band_gradient_deviation(result, band[:, :3], codes)
    assert deviations[0.5] < 0.5 * deviations[0.0], deviations


# --------------------------------------------------------------------- collapse warning

def test_prediction_spread_compares_clamped_values():
    from deepsdf.train_log import prediction_spread

    target = torch.tensor([-0.5, -0.05, 0.0, 0.05, 0.5])
    spread, wanted = prediction_spread(torch.full((5,), 0.3), target, 0.1)
    assert spread == 0.0
    assert wanted == pytest.approx(torch.tensor([-0.1, -0.05, 0.0, 0.05, 0.1]).std().item())


def test_a_collapsed_run_is_reported_once(tiny_data, tmp_path, caplog):
    """At a learning rate of 0.05 this decoder collapses to a constant within 30 epochs (its
    clamped predictions' spread falls to ~1e-8 against ~0.04 for the targets): the trainer
    says so once; at 0.005 it trains and says nothing."""
    data, split = tiny_data
    warned = {}
    for rate in (0.005, 0.05):
        experiment = make_experiment(tmp_path / f"exp{rate}", data, split, NumEpochs=30,
                                     LearningRateSchedule=[{"Type": "Constant",
                                                            "Value": rate}] * 2)
        caplog.clear()
        with caplog.at_level("WARNING", logger="deepsdf.train_log"):
            trainer = Trainer(experiment, load_specs(experiment), device="cpu", progress=False)
            result = trainer.train()
        warned[rate] = [r.getMessage() for r in caplog.records if "collapsed" in r.getMessage()]
        spread, wanted = result.spread
        assert (spread < 0.01 * wanted) == (rate == 0.05), (rate, spread, wanted)
        assert (result.collapsed_at is not None) == (rate == 0.05)
    assert warned[0.005] == []
    assert len(warned[0.05]) == 1 and "Lower the learning rates" in warned[0.05][0]

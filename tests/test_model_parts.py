"""The learning side's small parts against hand-computed truth: decoder branches, the code
table's bound, the code priors, the schedules, the epoch's batches, retrieval by observation,
and ``chamfer_unseen``."""

import numpy as np
import pytest
import torch
import trimesh

from deepsdf.config import DecoderConfig, Schedule
from deepsdf.data import DataError, epoch_batches
from deepsdf.decoder import Decoder
from deepsdf.latents import LatentTable
from deepsdf.loss import code_prior, prior_warmup
from deepsdf.metrics import chamfer, chamfer_unseen
from deepsdf.retrieval import nearest_by_observation


def _plain(**changes):
    values = dict(latent_size=4, dims=(32, 32, 32), dropout=(), norm_layers=(), latent_in=(),
                  weight_norm=False)
    values.update(changes)
    return DecoderConfig(**values)


def test_xyz_in_all_feeds_xyz_to_every_hidden_layer():
    decoder = Decoder(_plain(xyz_in_all=True))
    widths = [(layer.in_features, layer.out_features) for layer in decoder.layers]
    assert widths == [(7, 29), (32, 29), (32, 29), (32, 1)]  # xyz joins the output layer too
    # With xyz cut from the input layer, the output still depends on xyz (it enters the
    # later layers); without xyz_in_all it then cannot.
    codes, points = torch.zeros(4, 4), torch.rand(4, 3)
    plain = Decoder(_plain())
    for model in (decoder, plain):
        with torch.no_grad():
            model.layers[0].weight[:, -3:] = 0.0
    assert not torch.allclose(decoder(codes, points), decoder(codes, points + 0.1))
    assert torch.allclose(plain(codes, points), plain(codes, points + 0.1))


def test_latent_dropout_drops_the_input_code_only_and_only_in_training():
    torch.manual_seed(0)
    decoder = Decoder(_plain(latent_dropout=True, latent_in=(2,)))
    codes, points = torch.randn(2000, 4), torch.rand(2000, 3)
    decoder.eval()
    eval_out = decoder(codes, points)
    reference = Decoder(_plain(latent_in=(2,)))
    reference.load_state_dict(decoder.state_dict())
    assert torch.allclose(eval_out, reference.eval()(codes, points))  # off in eval mode
    decoder.train()
    # In training, layer 0 sees a dropped code (zeros and 1/0.8-scaled survivors); layer 2's
    # re-joined input is the whole code: replay that by hand with the same random stream.
    torch.manual_seed(5)
    trained_out = decoder(codes, points)
    torch.manual_seed(5)
    dropped = torch.nn.functional.dropout(codes, p=0.2, training=True)
    x = torch.relu(decoder.layers[0](torch.cat([dropped, points], 1)))
    x = torch.relu(decoder.layers[1](x))
    x = torch.relu(decoder.layers[2](torch.cat([x, codes, points], 1)))
    by_hand = torch.tanh(decoder.layers[3](x))
    assert torch.allclose(trained_out, by_hand, atol=1e-6)
    assert (dropped == 0).float().mean().item() == pytest.approx(0.2, abs=0.02)


def test_project_bounds_every_row_and_leaves_short_rows():
    table = LatentTable(["a/b/c", "a/b/d", "a/b/e"], 3, init_std=0.1,
                        generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        table.weight.copy_(torch.tensor([[3.0, 4.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, -2.0]]))
        table.project_(1.0)
    np.testing.assert_allclose(table.weight.detach().numpy(),
                               [[0.6, 0.8, 0.0], [0.1, 0.0, 0.0], [0.0, 0.0, -1.0]], atol=1e-6)
    before = table.weight.clone()
    table.project_(None)
    assert torch.equal(before, table.weight)


def test_the_two_code_priors():
    codes = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert code_prior(codes, form="original", weight=0.5, std=1.0).item() == pytest.approx(
        0.5 * (5 + 1) / 2)
    # paper: weight * mean ||z||^2 / (d * std^2) = 0.5 * (25 + 1) / 2 / (2 * 0.25)
    assert code_prior(codes, form="paper", weight=0.5, std=0.5).item() == pytest.approx(13.0)
    with pytest.raises(ValueError, match="unknown code prior"):
        code_prior(codes, form="l1", weight=1.0, std=1.0)
    assert [prior_warmup(e) for e in (0, 50, 100, 500)] == [0.0, 0.5, 1.0, 1.0]


def test_warmup_and_constant_schedules():
    warmup = Schedule("Warmup", initial=1e-4, final=1e-3, length=10)
    np.testing.assert_allclose([warmup.at(e) for e in (0, 5, 10, 50)],
                               [1e-4, 5.5e-4, 1e-3, 1e-3])
    assert [Schedule("Constant", value=2e-4).at(e) for e in (0, 999)] == [2e-4, 2e-4]
    step = Schedule("Step", initial=1e-3, interval=500, factor=0.5)
    assert [step.at(e) for e in (0, 499, 500, 1000)] == [1e-3, 1e-3, 5e-4, 2.5e-4]
    for schedule in (warmup, Schedule("Constant", value=2e-4), step):
        assert Schedule.from_specs(schedule.to_specs(), "s") == schedule


def test_epoch_batches_cover_each_scene_once_and_split_between_ranks():
    whole = epoch_batches(10, 4, seed=1, epoch=3)
    assert len(whole) == 2 and all(len(b) == 4 for b in whole)
    drawn = np.concatenate(whole)
    assert len(set(drawn.tolist())) == 8  # no scene twice; the incomplete last batch dropped
    assert [b.tolist() for b in whole] == [b.tolist() for b in epoch_batches(10, 4, seed=1,
                                                                             epoch=3)]
    assert [b.tolist() for b in whole] != [b.tolist() for b in epoch_batches(10, 4, seed=1,
                                                                             epoch=4)]
    halves = [epoch_batches(10, 4, seed=1, epoch=3, rank=r, world=2) for r in (0, 1)]
    for index, batch in enumerate(whole):
        assert np.concatenate([halves[0][index], halves[1][index]]).tolist() == batch.tolist()
    with pytest.raises(DataError, match="not divisible"):
        epoch_batches(10, 3, seed=1, epoch=0, world=2)
    with pytest.raises(DataError, match="no batch can be formed"):
        epoch_batches(3, 4, seed=1, epoch=0)


def _sphere(radius, centre=(0, 0, 0), count=3000):
    points = trimesh.creation.icosphere(subdivisions=4, radius=radius).vertices
    return points[:count] + np.asarray(centre)


def test_nearest_by_observation_scores_the_seen_part_only():
    """A cap of the 0.5 sphere matches the whole 0.5 sphere (not a 0.3 sphere that overlaps
    the cap's centre, nor a shifted 0.5 sphere), though the cap is a small part of it."""
    truth = _sphere(0.5)
    cap = truth[truth[:, 2] > 0.35]
    clouds = [_sphere(0.3), _sphere(0.5, (0.2, 0, 0)), truth, _sphere(0.8)]
    assert nearest_by_observation(cap, clouds) == 2
    assert nearest_by_observation(cap, clouds, points=50) == 2


def test_chamfer_unseen_counts_only_what_the_scan_did_not_see():
    """Two spheres equal on the seen cap (z > 0.3) and apart elsewhere: the unseen Chamfer
    only sees the difference; with nothing observed it equals the whole Chamfer."""
    truth = _sphere(0.5)
    completed = truth.copy()
    below = completed[:, 2] < 0.0
    completed[below] *= 1.1  # the unseen lower half is 10% too large
    seen = truth[truth[:, 2] > 0.3]
    unseen = chamfer_unseen(completed, truth, seen, radius=0.03)
    assert unseen > 0
    identical = chamfer_unseen(truth, truth, seen, radius=0.03)
    assert identical == pytest.approx(0.0, abs=1e-12)
    far = np.array([[10.0, 10.0, 10.0]])
    assert chamfer_unseen(completed, truth, far, radius=0.03) == pytest.approx(
        chamfer(completed, truth))
    assert unseen > chamfer(completed, truth)  # the seen, equal points no longer dilute it

"""The Python API's doors: hostile inputs to the packed sample cache, the metrics, the field,
the reconstruction, mesh extraction and observations give a one-line InputError (or a correct
result), never a meaningless number or a raw traceback."""

import json
import logging
import os

import numpy as np
import pytest
import torch

from deepsdf_preprocess import formats
from deepsdf_preprocess.errors import InputError


# --- A. the packed sample cache -------------------------------------------------------------

def _data_tree(root):
    rng = np.random.default_rng(0)
    split = {"ds": {"cls": ["a", "b"]}}
    tree = formats.DataTree(root)
    for name in ("a", "b"):
        path = tree.instance(f"ds/cls/{name}").sdf_samples
        path.parent.mkdir(parents=True, exist_ok=True)
        points = rng.uniform(-0.5, 0.5, (200, 3))
        formats.write_sdf_samples(path, points, np.linalg.norm(points, axis=1) - 0.3)
    return split


@pytest.fixture
def packed_cache(tmp_path):
    from deepsdf.data import pack_split

    data = tmp_path / "data"
    split = _data_tree(data)
    cache = tmp_path / "cache"
    packed = pack_split(data, split, cache_root=cache)
    return data, split, cache, packed


def _repack(data, split, cache, caplog):
    from deepsdf.data import pack_split

    with caplog.at_level(logging.INFO, logger="deepsdf.data"):
        return pack_split(data, split, cache_root=cache)


def test_index_records_the_packed_file_and_a_clean_cache_is_reused(packed_cache, caplog):
    data, split, cache, packed = packed_cache
    index = json.loads((packed.path / "index.json").read_text())
    status = os.stat(packed.path / "samples.f32")
    assert index["samples"] == {"size": status.st_size, "mtime_ns": status.st_mtime_ns}
    again = _repack(data, split, cache, caplog)
    assert "stale" not in caplog.text and "packed" not in caplog.text
    np.testing.assert_array_equal(np.asarray(again.rows), np.asarray(packed.rows))


def test_a_linked_packed_file_is_rebuilt_never_read(packed_cache, tmp_path, caplog):
    data, split, cache, packed = packed_cache
    good = np.asarray(packed.rows).copy()
    outside = tmp_path / "outside.f32"
    outside.write_bytes(np.full_like(good, 7.0).tobytes())
    target = packed.path / "samples.f32"
    target.unlink()
    target.symlink_to(outside)
    again = _repack(data, split, cache, caplog)
    assert "symbolic link" in caplog.text
    assert not target.is_symlink()
    np.testing.assert_array_equal(np.asarray(again.rows), good)
    assert np.all(np.fromfile(outside, np.float32) == 7.0)  # untouched


def test_a_truncated_packed_file_is_rebuilt_or_refused(packed_cache, caplog):
    from deepsdf.data import DataError

    data, split, cache, packed = packed_cache
    good = np.asarray(packed.rows).copy()
    target = packed.path / "samples.f32"
    with open(target, "r+b") as stream:
        stream.truncate(100)
    # an already opened cache whose file shrinks: a one-line DataError, not mmap's ValueError
    from deepsdf.data import PackedSamples
    stale = PackedSamples(packed.path, packed.instance_ids, packed.pos_start, packed.pos_count,
                          packed.neg_start, packed.neg_count)
    with pytest.raises(DataError, match="bytes"):
        stale.rows
    again = _repack(data, split, cache, caplog)
    assert "stale" in caplog.text
    np.testing.assert_array_equal(np.asarray(again.rows), good)


def test_a_packed_file_modified_in_place_is_rebuilt(packed_cache, caplog):
    data, split, cache, packed = packed_cache
    good = np.asarray(packed.rows).copy()
    target = packed.path / "samples.f32"
    flipped = good.copy()
    flipped[:, 3] *= -1
    before = os.stat(target)
    target.write_bytes(flipped.tobytes())
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert os.stat(target).st_size == before.st_size
    again = _repack(data, split, cache, caplog)
    assert "modified" in caplog.text
    np.testing.assert_array_equal(np.asarray(again.rows), good)


def test_an_index_without_the_record_is_rebuilt(packed_cache, caplog):
    data, split, cache, packed = packed_cache
    path = packed.path / "index.json"
    index = json.loads(path.read_text())
    del index["samples"]
    path.write_text(json.dumps(index))
    _repack(data, split, cache, caplog)
    assert "records no size" in caplog.text
    assert "samples" in json.loads(path.read_text())


# --- B. metrics -----------------------------------------------------------------------------

def _cloud(n=200, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3))


@pytest.mark.parametrize("name", ["chamfer", "chamfer_l1"])
def test_metrics_refuse_planar_point_sets(name):
    from deepsdf import metrics

    flat = _cloud()[:, :2]
    with pytest.raises(InputError, match="shape"):
        getattr(metrics, name)(flat, flat + 1)


def test_f_score_and_surface_metrics_refuse_bad_input():
    from deepsdf.metrics import f_score, surface_metrics

    a = _cloud()
    with pytest.raises(InputError, match="threshold"):
        f_score(a, a, float("nan"))
    with pytest.raises(InputError, match="threshold"):
        f_score(a, a, -0.1)
    with pytest.raises(InputError, match="f_score"):
        f_score(a[:, :2], a[:, :2], 0.1)
    with pytest.raises(InputError, match="truth"):
        surface_metrics(a, np.zeros((0, 3)))
    with pytest.raises(InputError, match="f_fraction"):
        surface_metrics(a, a, f_fraction=float("nan"))
    assert surface_metrics(a, a)["f_score"] == 1.0


def test_chamfer_unseen_refuses_nan_radius_and_points():
    from deepsdf.metrics import chamfer_unseen

    a, b = _cloud(), _cloud(seed=1)
    with pytest.raises(InputError, match="radius"):
        chamfer_unseen(a, b, a[:10], float("nan"))
    bad = a.copy()
    bad[0, 0] = np.nan
    for args in ((bad, b, a[:10]), (a, bad, a[:10]), (a, b, bad)):
        with pytest.raises(InputError, match="NaN"):
            chamfer_unseen(*args, 0.1)
    assert chamfer_unseen(a, b, a[:10], 0.1) > 0


def test_earth_movers_refuses_empty_sets_zero_count_and_nan():
    from deepsdf.metrics import earth_movers

    a = _cloud()
    with pytest.raises(InputError, match="points"):
        earth_movers(a, np.zeros((0, 3)))
    with pytest.raises(InputError, match="count"):
        earth_movers(a, a, count=0)
    bad = a.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        earth_movers(bad, a)


def test_normal_consistency_normalizes_and_refuses_degenerate_normals():
    from deepsdf.metrics import normal_consistency

    points = _cloud()
    normals = points / np.linalg.norm(points, axis=1, keepdims=True)
    exact = normal_consistency(points, normals, points, normals)
    assert exact == pytest.approx(1.0)
    assert normal_consistency(points, normals * 100, points, normals) == pytest.approx(exact)
    for broken in (np.full_like(normals, np.nan), np.zeros_like(normals)):
        with pytest.raises(InputError, match="normals"):
            normal_consistency(points, broken, points, normals)
    with pytest.raises(InputError, match="normals"):
        normal_consistency(points, normals[:10], points, normals)


def test_volumetric_iou_refuses_an_empty_mesh_and_nan_points():
    import trimesh

    from deepsdf.metrics import volumetric_iou

    points = _cloud()
    occupied = np.linalg.norm(points, axis=1) < 0.5
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    with pytest.raises(InputError, match="no faces"):
        volumetric_iou(empty, points, occupied)
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    bad = points.copy()
    bad[0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        volumetric_iou(sphere, bad, occupied)
    with pytest.raises(InputError, match="occupied"):
        volumetric_iou(sphere, points, occupied[:5])
    assert volumetric_iou(sphere, points, occupied) > 0.8


# --- B. the field, reconstruction, meshes, observations ------------------------------------

class Ball(torch.nn.Module):
    """f(z, x) = |x| - z_0 (a one-number code)."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"latent_size": 1})()

    def forward(self, codes, points):
        return points.norm(dim=1, keepdim=True) - codes[:, :1]


def test_field_refuses_sparse_and_complex_points_and_codes():
    from deepsdf.field import sdf

    points = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.1, 0.0]])
    code = torch.tensor([0.3])
    assert sdf(Ball(), code, points).tolist() == pytest.approx([0.2, -0.2])
    with pytest.raises(InputError, match="sparse"):
        sdf(Ball(), code, points.to_sparse())
    with pytest.raises(InputError, match="sparse"):
        sdf(Ball(), code.to_sparse(), points)
    with pytest.raises(InputError, match="complex"):
        sdf(Ball(), code, points.numpy() + 1j)
    with pytest.raises(InputError, match="complex"):
        sdf(Ball(), code, points.to(torch.complex64))
    with pytest.raises(InputError, match="complex"):
        sdf(Ball(), np.array([0.3 + 2j]), points)


def test_field_refuses_booleans_and_sizes_a_graph_before_building_it(monkeypatch):
    from deepsdf.field import sdf
    from deepsdf_preprocess import validate

    points = torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.1, 0.0]])
    with pytest.raises(InputError, match="booleans"):
        sdf(Ball(), torch.tensor([0.3]), points > 0)
    with pytest.raises(InputError, match="booleans"):
        sdf(Ball(), np.array([True]), points)
    values = sdf(Ball(), torch.tensor([0.3]), points.requires_grad_(True), grad=True)
    values.sum().backward()  # a small graph is built as before
    monkeypatch.setattr(validate, "available_memory", lambda: 2 ** 20)
    many = torch.zeros(100_000, 3)
    with pytest.raises(InputError, match="grad=True.*100,000 points"):
        sdf(Ball(), torch.tensor([0.3]), many, grad=True)
    assert sdf(Ball(), torch.tensor([0.3]), many).shape == (100_000,)  # no graph: no sizing


def _rows(n=64):
    points = _cloud(n) * 0.5
    return np.concatenate([points, (np.linalg.norm(points, axis=1) - 0.3)[:, None],
                           np.zeros((n, 1))], axis=1).astype(np.float32)


@pytest.mark.parametrize("poison", ["nan", "inf", "far"])
def test_reconstruction_refuses_poisoned_constraint_rows(poison):
    from deepsdf.reconstruct import SolverConfig, candidate_values, reconstruct_codes

    rows = _rows()
    rows[5, {"nan": 3, "inf": 0, "far": 1}[poison]] = {"nan": np.nan, "inf": np.inf,
                                                       "far": 1e30}[poison]
    config = SolverConfig(steps=2, samples=8)
    with pytest.raises(InputError, match="shape 0"):
        reconstruct_codes(Ball(), [rows], [0], config, clamp=0.1)
    with pytest.raises(InputError, match="shape 0"):
        candidate_values(Ball(), [rows], [0], torch.zeros(2, 1), count=8, clamp=0.1)


@pytest.mark.parametrize("clamp", [float("nan"), 0.0, -0.1, float("inf")])
def test_reconstruction_refuses_a_bad_clamp(clamp):
    from deepsdf.reconstruct import SolverConfig, candidate_values, reconstruct_codes

    with pytest.raises(InputError, match="clamp"):
        reconstruct_codes(Ball(), [_rows()], [0], SolverConfig(steps=2, samples=8),
                          clamp=clamp)
    with pytest.raises(InputError, match="clamp"):
        candidate_values(Ball(), [_rows()], [0], torch.zeros(2, 1), count=8, clamp=clamp)


def test_reconstruction_of_valid_rows_still_runs():
    from deepsdf.reconstruct import SolverConfig, reconstruct_codes

    result = reconstruct_codes(Ball(), [_rows()], [0], SolverConfig(steps=2, samples=8),
                               clamp=0.1)
    assert torch.isfinite(result.codes).all()


def test_extract_mesh_refuses_a_mirroring_or_broken_normalization():
    from deepsdf.mesh import extract_mesh

    axis = np.linspace(-1, 1, 24)
    grid = np.linalg.norm(np.stack(np.meshgrid(axis, axis, axis, indexing="ij")), axis=0) - 0.5
    offset = np.array([0.1, 0.2, 0.3])
    for scale in (-1.0, 0.0, float("nan")):
        with pytest.raises(InputError, match="extract_mesh: scale"):
            extract_mesh(grid, offset=offset, scale=scale)
    with pytest.raises(InputError, match="extract_mesh: offset"):
        extract_mesh(grid, offset=[np.nan, 0, 0], scale=1.0)
    with pytest.raises(InputError, match="both"):
        extract_mesh(grid, scale=2.0)
    mesh = extract_mesh(grid, offset=offset, scale=2.0)
    np.testing.assert_allclose(mesh.vertices, extract_mesh(grid).vertices / 2.0 - offset,
                               atol=1e-6)


@pytest.mark.parametrize("field", ["points", "normals", "sensors"])
def test_observation_refuses_nan_and_inf(field):
    from deepsdf.sensing import Observation

    points = _cloud(30) * 0.4
    normals = points / np.linalg.norm(points, axis=1, keepdims=True)
    values = {"points": points, "normals": normals, "sensors": points + normals}
    for bad in (np.nan, np.inf):
        broken = dict(values)
        broken[field] = values[field].copy()
        broken[field][2, 1] = bad
        with pytest.raises(InputError, match=field):
            Observation(**broken)
    assert len(Observation(**values)) == 30


def test_completion_of_an_all_nan_observation_is_refused():
    from deepsdf.completion import complete_observations
    from deepsdf.sensing import Observation

    nan = np.full((20, 3), np.nan)
    with pytest.raises(InputError, match="NaN"):
        complete_observations(Ball(), [Observation(nan, nan, nan)], clamp=1.0, latent_size=1)


def test_sample_mesh_takes_a_seed_and_refuses_what_is_not_a_config():
    import trimesh

    from deepsdf_preprocess import pipeline

    from conftest import SMALL_CONFIG

    scanner = pipeline.make_scanner("raycast", SMALL_CONFIG.rig)
    box = trimesh.creation.box()
    by_seed = pipeline.sample_mesh(box, SMALL_CONFIG, scanner, 3)
    by_generator = pipeline.sample_mesh(box, SMALL_CONFIG, scanner, np.random.default_rng(3))
    np.testing.assert_array_equal(by_seed.points, by_generator.points)
    for rng in (-1, 2.5, True, "3"):
        with pytest.raises(InputError, match="rng"):
            pipeline.sample_mesh(box, SMALL_CONFIG, scanner, rng)
    with pytest.raises(InputError, match="PreprocessConfig"):
        pipeline.sample_mesh(box, {"views": 10}, scanner, 0)


def test_a_trainer_takes_a_specs_dict_as_specs_json_would_be_read(tiny_data, tmp_path):
    from deepsdf.experiment import load_specs
    from deepsdf.train import Trainer

    from conftest import TINY_SPECS, make_experiment

    data, split = tiny_data
    folder = make_experiment(tmp_path / "exp", data, split)
    specs = dict(TINY_SPECS, DataSource=str(data), TrainSplit=str(split))
    assert Trainer(folder, specs, device="cpu", progress=False).config == load_specs(folder)
    for config in (None, 5, [specs]):
        with pytest.raises(InputError, match="TrainConfig"):
            Trainer(folder, config, device="cpu", progress=False)

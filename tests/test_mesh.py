"""Mesh extraction: grid indexing, coarse-to-fine against dense, errors, frames."""

import numpy as np
import pytest
import torch

from deepsdf.mesh import (NoSurfaceError, coarse_strides, coarse_to_fine_grid, decoder_field,
                          dense_grid, extract_mesh, grid_axis)

N = 256
VOXEL = 2.0 / (N - 1)


def sphere(points):
    return np.linalg.norm(points, axis=1) - 0.6


def torus(points):
    q = np.hypot(points[:, 0], points[:, 2]) - 0.55
    return np.hypot(q, points[:, 1]) - 0.2


def plate(points):
    """A plate 1.5 voxels thick (at 256^3), its faces between grid planes."""
    half = np.array([0.7, 0.75 * VOXEL, 0.5])
    q = np.abs(points - [0.0, 0.3 * VOXEL, 0.0]) - half
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


def as_field(function):
    return lambda points: function(points.astype(np.float64)).astype(np.float32)


def assert_same_mesh(a, b):
    assert a.vertices.shape == b.vertices.shape
    np.testing.assert_allclose(a.vertices, b.vertices, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(a.faces, b.faces)


def test_grid_indexing_is_exact_on_every_axis():
    field = as_field(lambda p: p[:, 0] + 10 * p[:, 1] + 100 * p[:, 2])
    values = dense_grid(field, 7, chunk=50)  # chunks not aligned with rows
    axis = grid_axis(7)
    expected = axis[:, None, None] + 10 * axis[None, :, None] + 100 * axis[None, None, :]
    np.testing.assert_allclose(values, expected, atol=1e-5)


@pytest.mark.parametrize("shape", [sphere, torus, plate], ids=["sphere", "torus", "plate"])
def test_coarse_to_fine_gives_the_dense_mesh_at_256(shape):
    dense = dense_grid(as_field(shape), N)
    coarse = coarse_to_fine_grid(as_field(shape), N)
    assert_same_mesh(extract_mesh(dense), extract_mesh(coarse))
    assert coarse.evaluated <= 0.12 * N ** 3, coarse.evaluated / N ** 3
    assert not np.isnan(coarse).any()
    assert np.all(np.sign(coarse) == np.sign(dense))  # the fill has the right sign everywhere


def test_strides_keep_the_coarsest_cell_within_the_clamp():
    assert coarse_strides(256) == [4, 2, 1]
    assert coarse_strides(64) == [1]
    for n in (65, 128, 256, 512):
        stride = coarse_strides(n)[0]
        assert np.sqrt(3) * stride * 2 / (n - 1) < 0.1


@pytest.mark.slow
def test_coarse_to_fine_gives_the_dense_mesh_for_trained_codes(trained):
    _, model = trained
    model.eval()
    for row in range(3):
        field = decoder_field(model.decoder, model.codes.weight[row].detach())
        dense, coarse = dense_grid(field, 128), coarse_to_fine_grid(field, 128)
        assert_same_mesh(extract_mesh(dense), extract_mesh(coarse))
        assert coarse.evaluated < 0.3 * 128 ** 3


def test_no_surface_is_a_clear_error():
    with pytest.raises(NoSurfaceError, match="does not cross"):
        extract_mesh(np.ones((8, 8, 8), np.float32))
    with pytest.raises(NoSurfaceError):
        extract_mesh(coarse_to_fine_grid(as_field(lambda p: np.full(len(p), 0.5)), 32))


def test_original_frame_mapping():
    values = dense_grid(as_field(sphere), 48)
    normalized = extract_mesh(values)
    offset, scale = np.array([1.0, -2.0, 0.5]), 0.25
    original = extract_mesh(values, offset=offset, scale=scale)
    np.testing.assert_allclose(original.vertices, normalized.vertices / scale - offset,
                               atol=1e-6)


def test_decoder_field_matches_a_direct_call():
    from deepsdf.config import DecoderConfig
    from deepsdf.decoder import Decoder

    decoder = Decoder(DecoderConfig(latent_size=4, dims=(16, 16), dropout=(), norm_layers=(),
                                    latent_in=(), weight_norm=False)).eval()
    code = torch.randn(4)
    points = np.random.default_rng(0).uniform(-1, 1, (1000, 3)).astype(np.float32)
    with torch.no_grad():
        direct = decoder(code.expand(1000, -1), torch.from_numpy(points)).squeeze(1).numpy()
    np.testing.assert_allclose(decoder_field(decoder, code, chunk=300)(points), direct,
                               atol=1e-6)


def test_the_trained_clamp_reaches_mesh_extraction(monkeypatch):
    """code_mesh keeps the coarse cells below the model's clamp, not a restated 0.1."""
    import torch

    from deepsdf import mesh as mesh_module
    from deepsdf.config import DecoderConfig
    from deepsdf.decoder import Decoder

    seen = {}
    real = mesh_module.coarse_to_fine_grid

    def spy(field, resolution, **options):
        seen.update(options)
        return real(field, resolution, **options)

    monkeypatch.setattr(mesh_module, "coarse_to_fine_grid", spy)
    decoder = Decoder(DecoderConfig(latent_size=2, dims=(8, 8), latent_in=(), dropout=(),
                                    norm_layers=())).eval()
    with torch.no_grad():
        decoder.layers[-1].bias.fill_(-0.1)  # a surface somewhere in the cube, maybe
    try:
        mesh_module.code_mesh(decoder, torch.zeros(2), 16, clamp=0.02)
    except mesh_module.NoSurfaceError:
        pass
    assert seen["delta"] == 0.02
    assert mesh_module.coarse_strides(256, delta=0.02)[0] < mesh_module.coarse_strides(256)[0]

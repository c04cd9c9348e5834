import numpy as np
import pytest

from deepsdf_preprocess.cameras import CameraRig, golden_spiral_positions, look_at_basis


def test_reference_rig_constants():
    rig = CameraRig()
    assert (rig.count, rig.radius, rig.resolution, rig.near, rig.far) == (100, 1.1, 400, 0, 2.5)
    assert rig.pixel_size == pytest.approx(0.005)
    positions = rig.positions()
    assert positions.shape == (100, 3)
    np.testing.assert_allclose(np.linalg.norm(positions, axis=1), 1.1)
    # golden-angle spiral: heights evenly spaced, successive azimuths 137.5 degrees apart
    np.testing.assert_allclose(np.diff(positions[:, 1]), 2 * 1.1 / 100)
    azimuth = np.arctan2(positions[:, 2], positions[:, 0])
    step = np.mod(np.diff(azimuth), 2 * np.pi)
    np.testing.assert_allclose(step, np.mod(np.pi * (3 - np.sqrt(5)), 2 * np.pi), atol=1e-9)


def test_basis_is_orthonormal_and_looks_at_origin():
    for eye in golden_spiral_positions(100, 1.1):
        basis = look_at_basis(eye)
        np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(basis[2], -eye / np.linalg.norm(eye), atol=1e-12)
        np.testing.assert_allclose(np.cross(basis[0], basis[1]), -basis[2], atol=1e-12)


def test_pixel_rays_go_through_pixel_centres():
    rig = CameraRig(count=5, resolution=4)
    origins, direction = rig.rays(2)
    right, up, forward = rig.bases()[2]
    local = (origins - rig.positions()[2]) @ np.stack([right, up]).T
    # row 0 is the top (v = +0.75), col 0 the left (u = -0.75); pixel size 0.5
    np.testing.assert_allclose(local[0], [-0.75, 0.75])
    np.testing.assert_allclose(local[3], [0.75, 0.75])
    np.testing.assert_allclose(local[-1], [0.75, -0.75])
    np.testing.assert_allclose(direction, forward)


def test_opengl_matrices_map_pixel_centres_to_window_centres():
    rig = CameraRig(count=7, resolution=10)
    origins, direction = rig.rays(3)
    world = origins + 1.3 * direction  # 1.3 along the view, inside [near, far]
    clip = (rig.projection_matrix() @ rig.view_matrix(3) @ np.c_[world, np.ones(len(world))].T).T
    ndc = clip[:, :3] / clip[:, 3:]
    window_x = (ndc[:, 0] + 1) / 2 * 10
    window_y = (ndc[:, 1] + 1) / 2 * 10  # OpenGL: y = 0 at the bottom
    rows, cols = np.divmod(np.arange(100), 10)
    np.testing.assert_allclose(window_x, cols + 0.5, atol=1e-9)
    np.testing.assert_allclose(window_y, 10 - rows - 0.5, atol=1e-9)
    np.testing.assert_allclose(ndc[:, 2], 2 * 1.3 / 2.5 - 1, atol=1e-9)


def test_bad_rigs_are_rejected():
    with pytest.raises(ValueError):
        CameraRig(resolution=0)
    with pytest.raises(ValueError):
        CameraRig(near=3.0)
    with pytest.raises(ValueError):
        golden_spiral_positions(0, 1.0)

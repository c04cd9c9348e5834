"""Pinhole camera math, virtual partial scans and their file format."""

import numpy as np
import pytest
import trimesh

from deepsdf_preprocess import formats
from deepsdf_preprocess.partial_scan import VirtualScanConfig, render_depth, virtual_scan
from deepsdf_preprocess.pinhole import (PinholeCamera, intrinsics_from_fov, look_at_pose,
                                        to_opengl_pose)

K = intrinsics_from_fov(64, 48, 55.0)


def random_depth(rng, height=48, width=64):
    depth = rng.uniform(0.5, 3.0, (height, width))
    depth[rng.random((height, width)) < 0.2] = 0.0  # holes: no measurement
    return depth


@pytest.mark.parametrize("convention", ["opencv", "opengl"])
def test_depth_to_points_to_depth_round_trips(convention):
    rng = np.random.default_rng(0)
    pose = look_at_pose([1.0, 2.0, -3.0], target=[0.2, 0.1, 0.0])
    if convention == "opengl":
        pose = to_opengl_pose(pose)
    camera = PinholeCamera.create(K, pose, 64, 48, convention=convention)
    depth = random_depth(rng)
    points, pixels = camera.depth_to_points(depth)
    assert len(points) == np.count_nonzero(depth)
    np.testing.assert_allclose(camera.points_to_depth(points), depth, atol=1e-9)


def test_both_conventions_describe_the_same_camera():
    cv = look_at_pose([0.0, 0.5, 2.0])
    depth = random_depth(np.random.default_rng(1))
    a = PinholeCamera.create(K, cv, 64, 48).depth_to_points(depth)[0]
    b = PinholeCamera.create(K, to_opengl_pose(cv), 64, 48,
                             convention="opengl").depth_to_points(depth)[0]
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_depth_is_along_the_optical_axis_and_world_up_is_image_up():
    pose = look_at_pose([0.0, 0.0, 3.0])  # looks down -z, y up
    camera = PinholeCamera.create(K, pose, 64, 48)
    # A point above the target lands in an upper row; one to the +x side in a right column.
    uv, z = camera.project(np.array([[0.0, 0.5, 0.0], [0.5, 0.0, 0.0]]))
    assert uv[0, 1] < K[1, 2] and abs(uv[0, 0] - K[0, 2]) < 1e-9
    assert uv[1, 0] > K[0, 2]
    np.testing.assert_allclose(z, [3.0, 3.0])  # z, not the ray length


def test_bad_camera_inputs_are_named():
    with pytest.raises(ValueError, match="rotation"):
        PinholeCamera.create(K, np.diag([2.0, 2.0, 2.0, 1.0]), 64, 48)
    with pytest.raises(ValueError, match="convention"):
        PinholeCamera.create(K, np.eye(4), 64, 48, convention="unity")
    with pytest.raises(ValueError, match="shape"):
        PinholeCamera.create(K, np.eye(4), 64, 48).depth_to_points(np.ones((3, 3)))


def test_rendered_depth_of_a_plane_is_exact():
    """A square facing the camera at distance 2: every hit pixel has depth exactly 2."""
    plane = trimesh.Trimesh([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]],
                            [[0, 1, 2], [0, 2, 3]])
    camera = PinholeCamera.create(K, look_at_pose([0.3, -0.2, 2.0], target=[0.3, -0.2, 0.0]),
                                  64, 48)
    depth = render_depth(plane.vertices, plane.faces, camera)
    hit = depth > 0
    assert hit.mean() > 0.5
    np.testing.assert_allclose(depth[hit], 2.0, atol=1e-6)


def test_virtual_scan_sees_the_sphere_in_its_original_frame(tmp_path):
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    sphere.vertices += [1.0, 2.0, 3.0]
    offset, scale = -np.array([1.0, 2.0, 3.0]), 1.0 / (0.5 * 1.03)
    scan = virtual_scan(sphere, offset, scale, np.random.default_rng(0),
                        VirtualScanConfig(width=96, height=96))
    formats.write_partial_scan(tmp_path / "s.npz", **scan)
    loaded = formats.read_partial_scan(tmp_path / "s.npz")
    assert loaded["convention"] == "opencv"
    camera = PinholeCamera.create(loaded["K"], loaded["pose"], 96, 96)
    points, _ = camera.depth_to_points(loaded["depth"])
    radius = np.linalg.norm(points - [1.0, 2.0, 3.0], axis=1)
    np.testing.assert_allclose(radius, 0.5, atol=2e-4)  # the icosphere's facets
    # Only the near side is seen: every point faces the camera.
    towards = camera.centre - points
    assert np.all(np.einsum("ij,ij->i", points - [1.0, 2.0, 3.0], towards) > 0)

"""The physical depth-sensor model (deepsdf_preprocess.sensor_model) against its published
formulas: axial noise (Nguyen, Izadi & Lovell 2012), the incidence limit, disparity steps,
projector shadows, flying pixels, the exact mask, and the time-of-flight variant."""

import numpy as np
import pytest
import trimesh
from scipy.spatial import Delaunay

from deepsdf_preprocess.pinhole import PinholeCamera, intrinsics_from_fov, look_at_pose
from deepsdf_preprocess.scan_io import read_views
from deepsdf_preprocess.sensor_model import (GRAZING, SHADOW, VALID, DepthSensor,
                                             SensorScene, axial_sigma, disparity_focal,
                                             simulate_view)
from deepsdf_preprocess.virtual_scans import KINECT, capture_views, write_views

W, H = 160, 120
#: Every random effect off: the geometry alone.
EXACT = DepthSensor(axial_noise=0.0, lateral_noise=0.0, disparity_step=0.0,
                    flying_fraction=0.0)


def camera(eye, target=(0.0, 0.0, 0.0)):
    return PinholeCamera.create(intrinsics_from_fov(W, H, 45.0), look_at_pose(eye, target),
                                W, H)


def quad(normal, size=4.0, centre=(0.0, 0.0, 0.0)):
    """A square of side ``size`` through ``centre`` with unit ``normal`` (two triangles)."""
    normal = np.asarray(normal, float) / np.linalg.norm(normal)
    first = np.cross(normal, [0.0, 1.0, 0.0] if abs(normal[1]) < 0.9 else [1.0, 0.0, 0.0])
    first /= np.linalg.norm(first)
    second = np.cross(normal, first)
    corners = np.asarray(centre) + 0.5 * size * np.array(
        [-first - second, first - second, first + second, -first + second])
    return trimesh.Trimesh(corners, [[0, 1, 2], [0, 2, 3]], process=False)


def incidence(cam, normal):
    """(h, w) incidence angle (radians) of each pixel-centre ray on a plane of ``normal``."""
    _, directions = cam.rays()
    return np.arccos(np.abs(directions @ normal)).reshape(H, W)


@pytest.mark.parametrize("distance", [0.8, 1.6])
def test_axial_noise_on_a_facing_plane_matches_nguyen(distance):
    cam = camera((0.0, 0.0, distance))
    sensor = DepthSensor(disparity_step=0.0, flying_fraction=0.0)
    view = simulate_view(SensorScene(quad([0, 0, 1])), cam, sensor, np.random.default_rng(0))
    depth = view.depth[view.mask]
    assert view.mask.all() and (depth > 0).all()
    expected = 0.0012 + 0.0019 * (distance - 0.4) ** 2
    assert np.isclose(axial_sigma(distance, 0.0), expected)
    assert abs(depth.mean() - distance) < 1e-4
    assert depth.std() == pytest.approx(expected, rel=0.05)


def test_axial_noise_grows_past_sixty_degrees_as_published():
    """A plane tilted 55 degrees: incidences from about 25 to 85 degrees across the image; the
    residuals, divided by the formula's sigma at each pixel's depth and angle, have std 1."""
    normal = np.array([np.sin(np.radians(55.0)), 0.0, np.cos(np.radians(55.0))])
    cam = camera((0.0, 0.0, 0.8))
    scene = SensorScene(quad(normal))
    truth = simulate_view(scene, cam, EXACT, np.random.default_rng(0)).depth
    noisy = simulate_view(scene, cam, DepthSensor(lateral_noise=0.0, disparity_step=0.0,
                                                  flying_fraction=0.0),
                          np.random.default_rng(1)).depth
    theta = incidence(cam, normal)
    valid = truth > 0
    assert np.array_equal(valid, noisy > 0)
    ratio = (noisy - truth)[valid] / axial_sigma(truth[valid], theta[valid])
    steep = theta[valid] > np.radians(60.0)
    assert 1000 < steep.sum() < valid.sum() - 1000
    assert ratio[steep].std() == pytest.approx(1.0, abs=0.06)
    assert ratio[~steep].std() == pytest.approx(1.0, abs=0.06)
    # the theta term matters there: without it the residuals would be far wider
    plain = 0.0012 + 0.0019 * (truth[valid][steep] - 0.4) ** 2
    assert ((noisy - truth)[valid][steep] / plain).std() > 1.25


def test_beyond_the_maximum_incidence_nothing_returns_deterministically():
    normal = np.array([np.sin(np.radians(58.0)), 0.0, np.cos(np.radians(58.0))])
    cam = camera((0.0, 0.0, 0.8))
    scene = SensorScene(quad(normal, size=20.0))
    theta = np.degrees(incidence(cam, normal))
    sensor = DepthSensor(max_range=100.0)  # the Kinect's defaults, but no range limit
    views = [simulate_view(scene, cam, sensor, np.random.default_rng(seed)) for seed in (0, 1)]
    for view in views:
        assert view.mask.all()  # the whole image sees the plane...
        lost = view.depth == 0
        # ...and loses all of it beyond 75 degrees (give or take the lateral jitter of a
        # pixel's ray), none of it below: a solid band, not scattered dropouts
        assert lost[theta > 76.5].all()
        assert np.mean(view.reason[theta > 76.5] == GRAZING) > 0.99  # or off the far edge
        assert not lost[theta < 74.0].any()
        assert (theta > 76.5).sum() > 0.1 * theta.size
    assert np.array_equal(views[0].depth == 0, views[1].depth == 0) or \
        np.count_nonzero((views[0].depth == 0) != (views[1].depth == 0)) < 0.01 * theta.size


def test_depth_steps_follow_the_eighth_pixel_disparity():
    sensor = DepthSensor(lateral_noise=0.0, flying_fraction=0.0)
    focal = disparity_focal(intrinsics_from_fov(W, H, 45.0), W, sensor.native_width)
    assert focal == pytest.approx(4 * intrinsics_from_fov(W, H, 45.0)[0, 0])
    fb = focal * sensor.baseline
    for distance in (0.6, 1.0, 1.8):
        view = simulate_view(SensorScene(quad([0, 0, 1])), camera((0.0, 0.0, distance)),
                             sensor, np.random.default_rng(2))
        depth = view.depth[view.depth > 0].astype(np.float64)
        steps = fb / depth / 0.125
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)  # whole 1/8 pixels
        levels = np.unique(np.round(steps))
        gaps = np.diff(np.sort(fb / (levels * 0.125)))
        expected = distance ** 2 * 0.125 / fb  # dz = z^2 dd / (f b)
        assert np.median(gaps) == pytest.approx(expected, rel=0.05)


def test_a_box_before_a_wall_casts_its_shadow_on_the_side_away_from_the_projector():
    eye = np.array([0.0, 0.0, 1.0])
    cam = camera(eye)
    box = trimesh.creation.box(extents=(0.2, 0.2, 0.2))
    box.apply_translation([0.0, 0.0, 0.4])  # front face 0.5 m from the camera
    wall = quad([0, 0, 1], size=3.0)  # 1 m from the camera
    scene = SensorScene(trimesh.util.concatenate([box, wall]))
    view = simulate_view(scene, cam, DepthSensor(flying_fraction=0.0),
                         np.random.default_rng(0))
    assert cam.pose[0, 0] > 0  # the camera's +x (the projector's side) is the world's +x
    row = H // 2
    on_box = np.nonzero(np.abs(view.depth[row] - 0.5) < 0.02)[0]
    left, right = on_box.min(), on_box.max()
    shadow = np.nonzero(view.reason[row] == SHADOW)[0]
    assert len(shadow) and shadow.max() < left  # on the -x (left) side only
    assert view.mask[row].all()  # inside what the camera sees of box and wall
    f = cam.K[0, 0]
    assert len(shadow) == pytest.approx(f * 0.075 * (1 / 0.5 - 1 / 1.0), abs=1.5)
    assert not (view.reason[row, right + 1:] == SHADOW).any()
    tof = simulate_view(scene, cam, DepthSensor(kind="tof", flying_fraction=0.0),
                        np.random.default_rng(0))
    assert not (tof.reason == SHADOW).any()  # no projector: no shadow


def test_the_mask_is_the_exact_silhouette_and_flying_pixels_stay_at_edges():
    box = trimesh.creation.box(extents=(0.3, 0.2, 0.25))
    eye = np.array([0.5, 0.35, 0.6])
    cam = camera(eye)
    sensor = DepthSensor(flying_fraction=0.5)
    view = simulate_view(SensorScene(box), cam, sensor, np.random.default_rng(3))
    uv, _ = cam.project(box.vertices)
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    inside = Delaunay(uv).find_simplex(np.column_stack([cols.ravel(), rows.ravel()])) >= 0
    assert np.count_nonzero(inside.reshape(H, W) != view.mask) <= 2  # pixel centres on edges
    assert not view.depth[~view.mask].any()  # nothing written outside the object
    padded = np.pad(view.mask, 1)
    border = view.mask & ~np.all([padded[1 + dy:1 + dy + H, 1 + dx:1 + dx + W]
                                  for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
    assert view.flying.any() and not (view.flying & ~border).any()
    valid_border = border & (view.reason == VALID)
    assert view.flying.sum() / valid_border.sum() == pytest.approx(0.5, abs=0.12)
    # a flying pixel lies between the object and the wall behind it (1.8 m)
    distance = np.linalg.norm(eye)
    assert (view.depth[view.flying] > distance - 0.3).all()
    assert (view.depth[view.flying] < sensor.background + 0.01).all()
    assert np.mean(view.depth[view.flying] > distance + 0.25) > 0.5


def test_time_of_flight_multipath_pushes_a_concave_corner_away():
    """Two planes meeting at a right angle, the inside of the corner towards the camera:
    points near the fold measure farther than they are; far from it, no bias."""
    floor, wall = quad([0, 1, 0], size=1.0, centre=(0, 0, 0.5)), \
        quad([0, 0, 1], size=1.0, centre=(0, 0.5, 0))
    scene = SensorScene(trimesh.util.concatenate([floor, wall]))
    cam = camera((0.0, 0.45, 0.9), target=(0.0, 0.1, 0.1))
    exact = DepthSensor(kind="tof", axial_noise=0.0, lateral_noise=0.0, depth_quantum=0.0,
                        flying_fraction=0.0, multipath_gain=0.0)
    truth = simulate_view(scene, cam, exact, np.random.default_rng(0)).depth
    biased = simulate_view(scene, cam, DepthSensor(
        kind="tof", axial_noise=0.0, lateral_noise=0.0, depth_quantum=0.0,
        flying_fraction=0.0), np.random.default_rng(0)).depth
    points, pixels = cam.depth_to_points(truth)
    bias = (biased - truth).ravel()[pixels]
    fold = np.hypot(points[:, 1], points[:, 2])  # distance to the fold line (y = z = 0)
    assert (bias >= -1e-9).all()
    assert bias[fold < 0.02].mean() > 0.006  # about 1 cm at the fold
    assert np.abs(bias[fold > 0.12]).max() < 1e-9
    assert axial_sigma(0.8, 0.3, "tof") < axial_sigma(0.8, 0.3)  # quieter than Kinect v1


def test_captures_write_the_mask_and_read_back(tmp_path):
    from dataclasses import replace

    config = replace(KINECT, views=2, width=W, height=H)
    mesh = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    views = capture_views(mesh, config, np.random.default_rng(0))
    again = capture_views(mesh, config, np.random.default_rng(0))
    assert all(np.array_equal(a["depth"], b["depth"]) for a, b in zip(views, again))
    write_views(tmp_path, views)
    with np.load(tmp_path / "view_00.npz") as data:
        assert set(data.files) == {"depth", "K", "pose", "mask"}
        assert data["mask"].dtype == bool and data["mask"].shape == (H, W)
    for read, view in zip(read_views(tmp_path), views):
        np.testing.assert_array_equal(read.depth, view["depth"])
        assert not read.depth[~view["mask"]].any()
        assert 0.5 < (read.depth > 0).sum() / view["mask"].sum() <= 1.0

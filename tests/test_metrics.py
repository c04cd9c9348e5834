"""Metrics against hand-computed values."""

import numpy as np
import pytest
import trimesh

from deepsdf.metrics import chamfer, chamfer_l1, f_score, normal_consistency, surface_points


def sphere_points(radius, count=20000, seed=0):
    points = np.random.default_rng(seed).normal(size=(count, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return radius * points


def test_unit_sphere_against_a_sphere_of_radius_1_1():
    a, b = sphere_points(1.0), sphere_points(1.1, seed=1)
    # every point is 0.1 from the other sphere (plus sampling gaps of ~0.01)
    assert chamfer(a, b) == pytest.approx(2 * 0.1 ** 2, rel=0.05)
    assert chamfer_l1(a, b) == pytest.approx(0.1, rel=0.05)
    assert f_score(a, b, 0.05) == 0.0
    assert f_score(a, b, 0.2) == 1.0


def test_two_offset_boxes():
    box = trimesh.creation.box(extents=(1, 1, 1))
    points, normals = surface_points(box, 200_000)
    shifted = points + [0.2, 0, 0]
    # Unit box A and A + (0.2, 0, 0), distances from A's surface to B's, face by face:
    #   -x face: 0.2 everywhere;
    #   +x face (inside B): min(0.2, 0.5 - |y|, 0.5 - |z|), mean (1 - 0.6^3) / 6;
    #   4 side faces: 0 where they overlap B's, -0.3 - x on the 0.2-wide overhang (mean 0.1).
    # B to A is the mirror image; Chamfer-L1 is the mean of both directions.
    one_way = (0.2 + (1 - 0.6 ** 3) / 6 + 4 * 0.2 * 0.1) / 6
    assert chamfer(points, points) == 0.0
    # (+1% for the gaps between two samplings of the overlapping faces)
    assert chamfer_l1(points, shifted) == pytest.approx(one_way, rel=0.03)
    assert normal_consistency(points, normals, points, normals) == pytest.approx(1.0)
    rotated = np.roll(normals, 1, axis=1)  # every normal turned by 90 degrees
    assert normal_consistency(points, rotated, points, normals) == pytest.approx(0.0, abs=1e-9)


def test_empty_mesh_is_an_error():
    with pytest.raises(ValueError, match="no faces"):
        surface_points(trimesh.Trimesh(np.zeros((3, 3)), np.zeros((0, 3), int)))


def test_earth_movers_distance_of_a_translation_is_its_length():
    from deepsdf.metrics import earth_movers

    a = np.random.default_rng(3).uniform(-1, 1, (400, 3))
    assert earth_movers(a, a, count=400) == pytest.approx(0.0, abs=1e-12)
    # W1 >= |mean shift|, and the translation achieves it
    assert earth_movers(a, a + [0.03, 0.04, 0.0], count=400) == pytest.approx(0.05, rel=1e-9)


def test_retrieval_picks_the_right_neighbour():
    from deepsdf.retrieval import nearest_by_code, oracle_nearest

    rng = np.random.default_rng(0)
    sphere = sphere_points(0.5, 3000)
    box, _ = surface_points(trimesh.creation.box(extents=(1, 1, 1)), 3000)
    torus, _ = surface_points(trimesh.creation.torus(0.5, 0.15), 3000)
    slab, _ = surface_points(trimesh.creation.box(extents=(1.2, 0.2, 1.2)), 3000)
    train = [box, torus, sphere, slab]
    queries = [sphere_points(0.53, 2000, seed=5), box * 1.05, torus + [0.0, 0.0, 0.03]]
    assert list(oracle_nearest(queries, train, shortlist_points=200, top_k=2)) == [2, 0, 1]
    codes = rng.normal(size=(4, 8))
    assert list(nearest_by_code(codes[[3, 1]] + 0.01, codes)) == [3, 1]


def test_volumetric_iou_of_nested_spheres():
    from deepsdf.metrics import volumetric_iou

    points = np.random.default_rng(4).uniform(-1, 1, (200_000, 3))
    occupied = np.linalg.norm(points, axis=1) < 0.66  # the ground truth: radius 0.66
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=0.6)
    assert volumetric_iou(mesh, points, occupied) == pytest.approx((0.6 / 0.66) ** 3, rel=0.02)
    assert volumetric_iou(mesh, points, np.linalg.norm(points, axis=1) < 0.6) > 0.99


def test_the_metric_bundle_equals_each_metric_alone():
    from deepsdf.metrics import chamfer, chamfer_l1, f_score, surface_metrics

    rng = np.random.default_rng(3)
    truth = rng.normal(size=(800, 3))
    points = truth[:600] + rng.normal(scale=0.05, size=(600, 3))
    side = float(np.max(truth.max(axis=0) - truth.min(axis=0)))
    bundle = surface_metrics(points, truth)
    assert bundle == pytest.approx({"chamfer": chamfer(points, truth),
                                    "chamfer_l1": chamfer_l1(points, truth),
                                    "f_score": f_score(points, truth, 0.01 * side)}, rel=1e-12)
    assert surface_metrics(points, truth, f_fraction=0.05)["f_score"] == pytest.approx(
        f_score(points, truth, 0.05 * side))


def test_a_verdict_never_rests_on_the_mean_alone():
    from deepsdf.metrics import verdict

    # the case: a winning mean, a median lost 2x, most shapes lost
    mixed = verdict([0.001, 0.001, 0.003, 0.003, 0.003], [0.01, 0.01, 0.0015, 0.0015, 0.0015])
    assert mixed.mean[0] < mixed.mean[1] and mixed.median[0] == 2 * mixed.median[1]
    assert mixed.word == "mixed" and mixed.won == 2 and "mixed against" in mixed.line()
    assert mixed.line(plural=True).startswith("are mixed against")
    assert verdict([1, 1, 1], [2, 2, 2]).word == "beats"
    assert verdict([3, 3, 3], [2, 2, 2]).word == "loses to"
    assert verdict([0.9, 0.9], [0.5, 0.5], metric="f_score").word == "beats"  # higher wins
    assert verdict([None], [1.0]) is None
    assert verdict([1.0, None], [2.0, 3.0]).shapes == 1

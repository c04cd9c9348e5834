"""The hard procedural categories: closed, one piece, the topology their parameters say, an
analytic SDF that agrees with the mesh (judged by libigl's winding number, not by the
generator), and real variety within each category."""

import numpy as np
import pytest
from scipy.spatial import cKDTree

from deepsdf_preprocess.normalize import normalization_parameters, to_normalized
from deepsdf_preprocess.procedural import CATEGORIES, generate_shapes
from deepsdf_preprocess.procedural_hard import HARD_CATEGORIES

from conftest import mesh_sdf

#: Shapes per category in these tests.
COUNT = 10


@pytest.fixture(scope="module", params=sorted(HARD_CATEGORIES))
def category_shapes(request):
    return request.param, generate_shapes(request.param, COUNT, seed=0)


def test_the_hard_categories_are_generate_categories_beside_the_easy_ones():
    assert list(CATEGORIES)[:3] == ["chairs", "tables", "vessels"]
    assert set(HARD_CATEGORIES) <= set(CATEGORIES)


def test_each_shape_is_one_closed_outward_wound_manifold_standing_on_the_floor(category_shapes):
    category, shapes = category_shapes
    for shape in shapes:
        mesh = shape.mesh
        assert shape.category == category
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
        assert len(mesh.split(only_watertight=False)) == 1, (category, shape.params)
        assert abs(mesh.bounds[0, 1]) < 1e-9


def test_analytic_sdf_agrees_with_the_mesh_within_its_tessellation(category_shapes):
    category, shapes = category_shapes
    rng = np.random.default_rng(1)
    for shape in shapes[:5]:
        low, high = shape.mesh.bounds
        # near the surface too: the thin parts are where a sign would go wrong
        points = np.vstack([rng.uniform(low - 0.05, high + 0.05, size=(3000, 3)),
                            shape.mesh.sample(2000, seed=1) + rng.normal(0, 0.005, (2000, 3))])
        analytic, exact = shape.sdf(points), mesh_sdf(shape.mesh, points)
        tolerance = shape.tessellation_error() + 1e-7
        judged = np.abs(analytic) > tolerance
        assert np.array_equal(np.sign(analytic[judged]), np.sign(exact[judged])), shape.params
        assert np.all(np.abs(analytic - exact)[analytic > 0] <= tolerance), shape.params
        # the tessellation bound is not vacuous: it stays far below the shape's size
        assert tolerance < 0.01 * np.linalg.norm(high - low)


def _genus(mesh) -> int:
    return (2 - round(mesh.euler_number)) // 2


def test_holes_are_where_the_parameters_put_them():
    for shape in generate_shapes("mugs", 12, seed=0):
        assert _genus(shape.mesh) == shape.params["handles"], shape.params
    for shape in generate_shapes("frames", 20, seed=0):
        p = shape.params
        if p["kind"] == "window":
            assert _genus(shape.mesh) == p["columns"] * p["rows"], p
        elif p["kind"] == "ladder":
            assert _genus(shape.mesh) == p["rungs"] - 1, p
    rings = [s for s in generate_shapes("lamps", 20, seed=0) if s.params["shade"] == "ring"]
    assert rings
    for shape in rings:  # k spokes from the socket to the ring: k - 1 loops
        assert _genus(shape.mesh) >= 1


def test_topology_varies_within_each_category():
    varied = {"airplanes": ("engines", "tail", "wing_mount"), "lamps": ("stem", "shade", "base"),
              "humans": ("pose",), "quadrupeds": ("grazing",), "mugs": ("handles", "handle"),
              "frames": ("kind",)}
    for category, keys in varied.items():
        params = [s.params for s in generate_shapes(category, 30, seed=0)]
        for key in keys:
            assert len({p[key] for p in params}) >= 2, (category, key)


def test_thin_parts_are_thin():
    """Wings and shade walls are a few millimetres in a metre-sized shape: the class of part
    the easy categories do not have."""
    for shape in generate_shapes("airplanes", 6, seed=0):
        wing = shape.parts[1]
        assert 2 * wing.half.min() < 0.04 * shape.mesh.extents.max()
    for shape in generate_shapes("lamps", 12, seed=0):
        assert shape.params["stem_radius"] < 0.02 * shape.mesh.extents.max()


def test_generation_is_seeded(category_shapes):
    category, shapes = category_shapes
    again = generate_shapes(category, 2, seed=0)
    other = generate_shapes(category, 2, seed=1)
    for x, y in zip(shapes, again):
        assert x.params == y.params
        np.testing.assert_array_equal(x.mesh.vertices, y.mesh.vertices)
    assert [s.params for s in shapes[:2]] != [s.params for s in other]


def test_median_pairwise_chamfer_is_well_above_resampling(category_shapes):
    category, shapes = category_shapes
    clouds = []
    for shape in shapes:
        offset, scale = normalization_parameters(shape.mesh.vertices, shape.mesh.faces)
        clouds.append(to_normalized(shape.mesh.sample(2000, seed=0), offset, scale))
    trees = [cKDTree(c) for c in clouds]
    values = [(trees[j].query(clouds[i])[0] ** 2).mean()
              + (trees[i].query(clouds[j])[0] ** 2).mean()
              for i in range(len(clouds)) for j in range(i + 1, len(clouds))]
    # two samplings of one shape score about 1e-4 (test_procedural.py)
    assert np.median(values) > 5e-3, (category, np.median(values))

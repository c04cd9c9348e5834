"""Sign and distance accuracy against exact SDFs (analytic shapes and exact mesh distances)."""

import numpy as np
import pytest
import trimesh

from deepsdf_preprocess.normalize import normalization_parameters, to_normalized
from deepsdf_preprocess.procedural import generate_chair
from deepsdf_preprocess.raycast import RayCastScanner
from deepsdf_preprocess.sampling import SamplingConfig, draw_samples
from deepsdf_preprocess.scan import ScanAccumulator
from deepsdf_preprocess.sdf import reference_signed_distance, signed_distance, vote_cloud
from deepsdf_preprocess.surface import VisibleSurface

from conftest import SMALL_RIG, mesh_sdf, torus_mesh, torus_sdf

SAMPLING = SamplingConfig(count=20_000)

#: "Exact" up to the float32 the samples and distances are stored in.
FLOAT32 = {"median": 1e-8, "p99": 1e-7}


def scanned(vertices, faces):
    accumulator = ScanAccumulator(vertices, faces, SMALL_RIG)
    for view, ids in RayCastScanner(SMALL_RIG).triangle_ids(vertices, faces):
        accumulator.add_view(view, ids)
    return VisibleSurface.from_scan(vertices, faces, accumulator.finish())


def normalized(mesh):
    offset, scale = normalization_parameters(mesh.vertices, mesh.faces)
    return to_normalized(mesh.vertices, offset, scale), np.asarray(mesh.faces), offset, scale


def sampled(mesh, seed, **options):
    """Normalize, scan, draw samples and sign them: (vertices, faces, offset, scale, surface,
    points, result)."""
    vertices, faces, offset, scale = normalized(mesh)
    surface = scanned(vertices, faces)
    rng = np.random.default_rng(seed)
    points, _ = draw_samples(surface, SAMPLING, rng)
    result = signed_distance(surface, points, rng=rng, **options)
    return vertices, faces, offset, scale, surface, points, result


def accuracy(sdf, keep, truth):
    far = np.abs(truth) > 1e-3
    wrong = (np.sign(sdf) != np.sign(truth)) & keep & far
    band = keep & (np.abs(truth) < 0.1)
    error = np.abs(sdf - truth)[band]
    return {"wrong": wrong.sum() / max((keep & far).sum(), 1), "dropped": 1 - keep.mean(),
            "median": np.median(error), "p99": np.percentile(error, 99)}


def check(result, truth, *, median=1e-3, p99=5e-3):
    figures = accuracy(result.sdf, result.keep, truth)
    assert figures["wrong"] <= 1e-3, figures
    assert figures["dropped"] <= 0.02, figures
    assert figures["median"] <= median, figures
    assert figures["p99"] <= p99, figures
    return figures


def test_box_matches_its_analytic_sdf_exactly():
    mesh = trimesh.creation.box(extents=(1.0, 0.6, 0.3))
    _, _, _, scale, _, points, result = sampled(mesh, 0)
    half = np.array([0.5, 0.3, 0.15]) * scale
    q = np.abs(points) - half
    truth = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)
    figures = check(result, truth, **FLOAT32)
    assert figures["wrong"] == 0


def test_sphere_matches_the_analytic_sphere_up_to_tessellation():
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=0.8)
    vertices, faces, _, scale, _, points, result = sampled(mesh, 1)
    check(result, mesh_sdf(trimesh.Trimesh(vertices, faces), points), **FLOAT32)
    # the icosphere is within 5e-4 (normalized) of the sphere it approximates
    radius = 0.8 * scale
    check(result, np.linalg.norm(points, axis=1) - radius, median=5e-4, p99=1e-3)


def test_torus_sign_and_distance():
    vertices, faces, offset, scale, _, points, result = sampled(torus_mesh(), 2)
    check(result, mesh_sdf(trimesh.Trimesh(vertices, faces), points), **FLOAT32)
    original = points / scale - offset
    check(result, torus_sdf(original) * scale, median=1e-3, p99=5e-3)


@pytest.fixture(scope="module")
def chair_case():
    shape = generate_chair(np.random.default_rng(7))
    vertices, faces, offset, scale = normalized(shape.mesh)
    surface = scanned(vertices, faces)
    rng = np.random.default_rng(3)
    points, _ = draw_samples(surface, SAMPLING, rng)
    truth_sign = np.sign(shape.sdf(points / scale - offset))
    truth = mesh_sdf(trimesh.Trimesh(vertices, faces), points)
    assert np.all(np.sign(truth)[np.abs(truth) > 1e-6] == truth_sign[np.abs(truth) > 1e-6])
    return shape, vertices, faces, surface, points, truth


def test_generated_chair_against_its_analytic_sdf(chair_case):
    shape, vertices, faces, surface, points, truth = chair_case
    result = signed_distance(surface, points, rng=np.random.default_rng(0))
    check(result, truth, **FLOAT32)
    # outside, the union of the parts gives the exact distance analytically
    offset, scale = normalization_parameters(shape.mesh.vertices, shape.mesh.faces)
    analytic = shape.sdf(points / scale - offset) * scale
    outside = result.keep & (analytic > 0)
    gap = result.sdf[outside] - analytic[outside]
    # exact, except a few samples whose nearest point is on a patch no camera saw (hidden
    # triangles are not part of the visible surface: the distance to it is never shorter)
    assert np.mean(np.abs(gap) < 1e-6) > 0.999
    assert gap.min() > -1e-6


def test_shortcut_rules_agree_with_the_plain_vote(chair_case):
    _, _, _, surface, points, truth = chair_case
    fast = signed_distance(surface, points, rng=np.random.default_rng(5))
    plain = signed_distance(surface, points, rng=np.random.default_rng(5), exhaustive=True)
    assert fast.counts["face_rule"] + fast.counts["ring_rule"] > 0.5 * len(points)
    both = fast.keep & plain.keep
    assert np.mean(np.sign(fast.sdf[both]) == np.sign(plain.sdf[both])) > 0.998
    assert fast.keep.sum() >= plain.keep.sum()  # the exact rules drop nothing


def test_reference_rule_written_plainly_is_close_to_exact(chair_case):
    _, _, _, surface, points, truth = chair_case
    rng = np.random.default_rng(6)
    cloud, normals = vote_cloud(surface, rng)
    result = reference_signed_distance(cloud, normals, points, plane_radius=np.sqrt(0.0005))
    figures = accuracy(result.sdf, result.keep, truth)
    assert figures["wrong"] < 5e-3 and figures["median"] < 2e-3, figures


def test_winding_sign_on_closed_meshes(chair_case):
    _, vertices, faces, surface, points, truth = chair_case
    result = signed_distance(surface, points, method="winding", mesh_vertices=vertices,
                             mesh_faces=faces)
    assert result.keep.all()
    check(result, truth, **FLOAT32)


def test_open_mesh_keeps_working():
    mesh = torus_mesh()
    rng = np.random.default_rng(4)
    keep_faces = rng.random(len(mesh.faces)) > 0.005  # punch 0.5% of the faces out
    vertices, faces, offset, scale = normalized(trimesh.Trimesh(mesh.vertices,
                                                                mesh.faces[keep_faces]))
    surface = scanned(vertices, faces)
    points, _ = draw_samples(surface, SAMPLING, rng)
    result = signed_distance(surface, points, rng=rng)
    truth = torus_sdf(points / scale - offset) * scale
    figures = accuracy(result.sdf, result.keep, truth)
    assert figures["wrong"] < 5e-3, figures
    assert figures["dropped"] < 0.05, figures


def test_bad_arguments():
    surface = scanned(*normalized(trimesh.creation.box())[:2])
    with pytest.raises(ValueError, match="sign method"):
        signed_distance(surface, np.zeros((1, 3)), method="magic")
    with pytest.raises(ValueError, match="rng"):
        signed_distance(surface, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="mesh_vertices"):
        signed_distance(surface, np.zeros((1, 3)), method="winding")


def test_concave_edges_of_a_closed_mesh_need_no_vote():
    """An L-shaped solid: its concave edge is decided by the exact pseudonormal rule."""
    from deepsdf_preprocess.procedural import OrientedBox

    parts = [OrientedBox(np.array([0.0, 0.0, 0.0]), np.array([0.5, 0.1, 0.3])),
             OrientedBox(np.array([-0.4, 0.3, 0.0]), np.array([0.1, 0.3, 0.3]))]
    mesh = trimesh.boolean.union([p.mesh() for p in parts], engine="manifold")
    vertices, faces, offset, scale = normalized(mesh)
    surface = scanned(vertices, faces)
    assert np.all(surface.outward == 1) and len(surface.faces) == len(faces)
    rng = np.random.default_rng(8)
    points, _ = draw_samples(surface, SAMPLING, rng)
    result = signed_distance(surface, points, rng=rng)
    assert result.counts["voted"] == 0 and result.keep.all()
    truth = np.min([p.sdf(points / scale - offset) for p in parts], axis=0)
    assert np.all(np.sign(result.sdf)[np.abs(truth) > 1e-9] == np.sign(truth)[np.abs(truth) > 1e-9])


def test_samples_by_an_open_sheet_are_outside():
    """An open square seen from both sides has no inside: every sample is outside, at its
    exact distance to the square (the reference dropped them all)."""
    sheet = trimesh.Trimesh([[-1, 0, -1], [1, 0, -1], [1, 0, 1], [-1, 0, 1]],
                            [[0, 1, 2], [0, 2, 3]])
    vertices, faces, offset, scale = normalized(sheet)
    surface = scanned(vertices, faces)
    assert np.all(surface.outward == 0) and surface.sheet.all()
    rng = np.random.default_rng(9)
    points, _ = draw_samples(surface, SAMPLING, rng)
    result = signed_distance(surface, points, rng=rng)
    assert result.keep.all()
    half = np.array([1.0, 0.0, 1.0]) * scale  # the square, normalized
    truth = np.linalg.norm(np.maximum(np.abs(points) - half, 0.0), axis=1)
    assert np.allclose(result.sdf, truth, atol=1e-6)



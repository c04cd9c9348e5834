"""The visible surface (``deepsdf_preprocess.surface``): sealed cavities.

No camera sees a cavity sealed inside a solid.  The meshes here are built the way modelling
and CAD tools export hollow parts (an outer shell wound outward and an inner one wound
inward, each closed; a part modelled inside another and left overlapping), and judged against
analytic truth: distances to spheres and boxes, never the pipeline's own labels.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from deepsdf_preprocess.mesh_io import closed_orientation
from deepsdf_preprocess.normalize import to_original
from deepsdf_preprocess.pipeline import sample_mesh
from deepsdf_preprocess.surface import sealed_surfaces


def _hollow_sphere(inner_radius=0.6, shift=0.15):
    outer = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    inner = trimesh.creation.icosphere(subdivisions=4, radius=inner_radius)
    inner.apply_translation([shift, 0.0, 0.0])
    inner.invert()  # the inner wall faces the cavity
    return trimesh.util.concatenate([outer, inner])


def _box(extents, centre=(0, 0, 0), inward=False):
    box = trimesh.creation.box(extents=extents)
    box.apply_translation(centre)
    if inward:
        box.invert()
    return box


def _sphere_distance(points, centre, radius):
    return np.linalg.norm(points - np.asarray(centre), axis=1) - radius


def _box_distance(points, centre, extents):
    q = np.abs(points - np.asarray(centre)) - np.asarray(extents) / 2
    return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0)


# Worlds: (mesh, analytic SDF in the mesh's own frame, > 0 outside, |error| ~ tessellation)
WORLDS = {
    "hollow sphere (a sealed tank)": (
        _hollow_sphere(),
        lambda p: np.maximum(_sphere_distance(p, (0, 0, 0), 1.0),
                             -_sphere_distance(p, (0.15, 0, 0), 0.6))),
    "thin-walled box (a CAD shell, wall 4%)": (
        trimesh.util.concatenate([_box((1.0, 0.8, 0.6)), _box((0.92, 0.72, 0.52), inward=True)]),
        lambda p: np.maximum(_box_distance(p, (0, 0, 0), (1.0, 0.8, 0.6)),
                             -_box_distance(p, (0, 0, 0), (0.92, 0.72, 0.52)))),
    "a solid sealed in the cavity (ship in a bottle)": (
        trimesh.util.concatenate([_hollow_sphere(0.8, 0.0), _box((0.5, 0.3, 0.3))]),
        lambda p: np.minimum(np.maximum(_sphere_distance(p, (0, 0, 0), 1.0),
                                        -_sphere_distance(p, (0, 0, 0), 0.8)),
                             _box_distance(p, (0, 0, 0), (0.5, 0.3, 0.3)))),
    "a part buried in another (overlapping parts)": (
        trimesh.util.concatenate([_box((1.0, 1.0, 1.0)), _box((0.4, 0.4, 0.4), (0.1, 0, 0))]),
        lambda p: _box_distance(p, (0, 0, 0), (1.0, 1.0, 1.0))),
}

#: Sphere tessellation (subdivision 4) lies within about 0.003 of the sphere: signs are judged
#: beyond this margin of every analytic surface (mesh units).
MARGIN = 0.02


def _unwelded(mesh):
    """The mesh as STL stores it: every triangle's three corners apart, no index shared."""
    corners = np.asarray(mesh.vertices)[np.asarray(mesh.faces)].reshape(-1, 3)
    return trimesh.Trimesh(corners, np.arange(len(corners)).reshape(-1, 3), process=False)


@pytest.mark.parametrize("stored", ["indexed", "stl"])
@pytest.mark.parametrize("name", list(WORLDS))
def test_sealed_cavities_keep_their_signs(name, stored, small_config, gl_scanner):
    mesh, truth = WORLDS[name]
    if stored == "stl":
        mesh = _unwelded(mesh)
    samples = sample_mesh(mesh, small_config, gl_scanner, 0)
    points = to_original(samples.points, samples.offset, samples.scale)
    exact = truth(points)
    judged = np.abs(exact) > MARGIN
    wrong = np.count_nonzero((exact[judged] > 0) != (samples.sdf[judged] > 0))
    assert wrong <= 0.001 * judged.sum(), (name, wrong, judged.sum())
    # the cavity is sampled near its wall too, not only by the uniform samples
    assert samples.stats["sealed_triangles"] > 0 or "buried" in name
    near = np.abs(samples.sdf) < 0.02
    assert np.any(near & (np.abs(exact) < MARGIN))
    # distances (normalized units) match the analytic ones near the surface
    close = np.abs(exact) < 0.05
    error = np.abs(samples.sdf[close] - exact[close] * samples.scale)
    assert np.quantile(error, 0.99) < 0.01 * samples.scale + 0.005


def test_sealed_surfaces_of_each_habit():
    """Which hidden parts are surface, and which side of them is empty: the cavity wall faces
    the cavity, a floating solid faces away from itself, a buried part is not surface, and on
    an open mesh nothing can be said."""
    def sealed(mesh):
        vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
        parts = mesh.split(only_watertight=False)
        first = len(parts[0].faces)  # the outer part comes first and is the one seen
        return sealed_surfaces(vertices, faces, np.arange(first),
                               closed_orientation(vertices, faces)), first

    (index, outward), first = sealed(WORLDS["hollow sphere (a sealed tank)"][0])
    assert np.array_equal(index, np.arange(first, 2 * first)) and np.all(outward == 1)
    inverted = WORLDS["hollow sphere (a sealed tank)"][0].copy()
    inverted.invert()  # the whole file wound inside-out: the empty side is behind the normals
    (index, outward), _ = sealed(inverted)
    assert len(index) == first and np.all(outward == -1)
    (index, outward), _ = sealed(WORLDS["a part buried in another (overlapping parts)"][0])
    assert len(index) == 0
    ship = WORLDS["a solid sealed in the cavity (ship in a bottle)"][0]
    (index, outward), first = sealed(ship)
    assert len(index) == len(ship.faces) - first and np.all(outward == 1)
    soup = WORLDS["hollow sphere (a sealed tank)"][0].copy()
    soup.faces = soup.faces[5:]  # open: the winding number means nothing
    vertices, faces = np.asarray(soup.vertices), np.asarray(soup.faces)
    assert closed_orientation(vertices, faces) == 0
    assert len(sealed_surfaces(vertices, faces, np.arange(100), 0)[0]) == 0

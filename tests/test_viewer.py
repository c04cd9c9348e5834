"""The report's interactive 3D view: one scale per group, a small payload that decodes to
the meshes it was given, and in headless Chromium it loads offline from the folder alone,
draws, and logs no error."""

import json
import re

import numpy as np
import trimesh

from deepsdf.viewer import GRID, decode_mesh, group_payload, write_viewer

from browser import load


def test_a_group_keeps_one_scale_and_its_frame():
    big = trimesh.creation.box(extents=(2, 2, 2))
    small = trimesh.creation.box(extents=(1, 1, 1))
    small.apply_translation([0.5, 0, 0])  # inside the big one, off centre
    group = group_payload({"truth": big, "result": small, "missing": None})
    assert group["labels"] == ["truth", "result"]
    (big_v, _), (small_v, _) = (decode_mesh(entry) for entry in group["meshes"])
    extent = lambda v: v.max(axis=0) - v.min(axis=0)  # noqa: E731
    np.testing.assert_allclose(extent(small_v) / extent(big_v), 0.5, atol=1e-3)
    # The small box sits where it sat relative to the big one (one frame, not recentred).
    shift = small_v.mean(axis=0) - big_v.mean(axis=0)
    np.testing.assert_allclose(shift / extent(big_v)[0], [0.25, 0, 0], atol=1e-3)


def test_the_payload_is_small_and_decodes_to_the_mesh():
    sphere = trimesh.creation.icosphere(subdivisions=7, radius=0.7)  # 327 680 triangles
    sphere.apply_translation([3, 1, -2])
    sphere.apply_scale(40)  # any frame, any unit
    group = group_payload({"dense": sphere})
    entry, = group["meshes"]
    vertices, faces = decode_mesh(entry)
    size = len(entry["positions"]) + len(entry["indices"])
    assert len(faces) < len(sphere.faces) / 4 and size < 13 * len(faces) + 100  # 9 bytes a triangle, base64
    # Every drawn vertex within a vertex-clustering cell of the sphere (radius 1 in the
    # group's frame), and the sphere covered: its area kept to within a few percent.
    radii = np.linalg.norm(vertices, axis=1)
    assert np.abs(radii - 1).max() < 2 / GRID
    decoded = trimesh.Trimesh(vertices, faces, process=False)
    assert abs(decoded.area / (4 * np.pi) - 1) < 0.03


def test_the_viewer_draws_offline_without_errors(tmp_path):
    box = trimesh.creation.box(extents=(100, 60, 40))  # any frame: the viewer frames it
    box.apply_translation([500, -20, 3])
    inner = trimesh.creation.icosphere(radius=20)
    inner.apply_translation([500, -20, 3])
    html = write_viewer(tmp_path, {"a box far away": {"box": box, "sphere inside": inner},
                                   "nothing": {"empty": None}})
    page = tmp_path / "index.html"
    page.write_text(f"<!DOCTYPE html><html><body>{html}</body></html>")
    payload = json.loads((tmp_path / "meshes.js").read_text()
                         .removeprefix("window.DEEPSDF_MESHES = ").rstrip(";\n"))
    assert list(payload) == ["a box far away"]  # a group with nothing to show is left out
    dom, console = load(page)
    assert console == []
    errors = re.search(r'data-viewer-errors="([^"]*)"', dom)
    assert errors is not None and errors.group(1) == ""
    drawn = int(re.search(r'data-drawn="(\d+)"', dom).group(1))
    assert 0.05 * 900 * 320 < drawn < 0.9 * 900 * 320  # two meshes, framed, not the frame
    assert "box | sphere inside" in dom


def test_a_bad_vertex_or_huge_coordinates_do_not_blank_the_group():
    sphere = trimesh.creation.icosphere(subdivisions=3)
    broken = sphere.vertices.copy()
    broken[0] = np.nan
    group = group_payload({"nan": trimesh.Trimesh(broken, sphere.faces, process=False),
                           "clean": sphere})
    nan_entry, clean_entry = group["meshes"]
    assert clean_entry["triangles"] > 100 and 0 < nan_entry["triangles"] < len(sphere.faces)
    huge = trimesh.Trimesh(sphere.vertices * 1e300, sphere.faces, process=False)
    vertices, faces = decode_mesh(group_payload({"huge": huge})["meshes"][0])
    assert len(faces) > 100 and np.abs(np.linalg.norm(vertices, axis=1) - 1).max() < 0.05

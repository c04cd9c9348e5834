"""The report's interactive 3D view, in headless Chromium: it loads offline from the folder
alone, draws the mesh, and logs no error."""

import re

import trimesh

from deepsdf.viewer import write_viewer

from browser import load


def test_the_viewer_draws_offline_without_errors(tmp_path):
    box = trimesh.creation.box(extents=(100, 60, 40))  # any frame: the viewer frames it
    box.apply_translation([500, -20, 3])
    html = write_viewer(tmp_path, {"a box far away": box,
                                   "a sphere": trimesh.creation.icosphere()})
    page = tmp_path / "index.html"
    page.write_text(f"<!DOCTYPE html><html><body>{html}</body></html>")
    dom, console = load(page)
    assert console == []
    errors = re.search(r'data-viewer-errors="([^"]*)"', dom)
    assert errors is not None and errors.group(1) == ""
    drawn = int(re.search(r'data-drawn="(\d+)"', dom).group(1))
    assert 0.05 * 640 * 420 < drawn < 0.9 * 640 * 420  # the mesh, framed, not the frame
    assert "a box far away" in dom and "a sphere" in dom

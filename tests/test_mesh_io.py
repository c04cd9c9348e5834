"""Loading every format trimesh reads, scenes, and the validation errors."""

import numpy as np
import pytest
import trimesh

from deepsdf_preprocess.errors import MeshError
from deepsdf_preprocess.mesh_io import load_mesh


@pytest.mark.parametrize("suffix", ["obj", "off", "ply", "stl", "glb"])
def test_formats_load_to_the_same_surface(tmp_path, suffix):
    box = trimesh.creation.box(extents=(1.0, 2.0, 3.0))
    path = tmp_path / f"box.{suffix}"
    box.export(path)
    mesh = load_mesh(path)
    assert len(mesh.faces) == 12
    assert mesh.area == pytest.approx(box.area)
    np.testing.assert_allclose(mesh.bounds, box.bounds, atol=1e-6)


def test_a_scene_is_merged_with_its_transforms(tmp_path):
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(), transform=trimesh.transformations.translation_matrix([3, 0, 0]))
    scene.add_geometry(trimesh.creation.icosphere(subdivisions=1))
    scene.export(tmp_path / "scene.glb")
    mesh = load_mesh(tmp_path / "scene.glb")
    assert len(mesh.faces) == 12 + 80
    assert mesh.bounds[1][0] == pytest.approx(3.5)


def test_missing_textures_do_not_stop_an_obj(tmp_path):
    box = trimesh.creation.box()
    text = "mtllib missing.mtl\nusemtl nothing\n" + "".join(
        f"v {x} {y} {z}\n" for x, y, z in box.vertices) + "".join(
        f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in box.faces)
    (tmp_path / "model_normalized.obj").write_text(text)
    assert len(load_mesh(tmp_path / "model_normalized.obj").faces) == 12


def test_missing_file_is_a_mesh_error(tmp_path):
    with pytest.raises(MeshError, match="no such file"):
        load_mesh(tmp_path / "nope.obj")

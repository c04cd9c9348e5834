import numpy as np
import pytest

from deepsdf_preprocess import formats
from deepsdf_preprocess.normalize import normalization_parameters, to_normalized, to_original


def test_sdf_samples_round_trip_and_split_by_sign(tmp_path):
    rng = np.random.default_rng(0)
    points, sdf = rng.normal(size=(100, 3)), rng.normal(size=100)
    sdf[:3] = 0.0  # zero belongs to neg
    path = tmp_path / "a" / "b.npz"
    positive, negative = formats.write_sdf_samples(path, points, sdf)
    pos, neg = formats.read_sdf_samples(path)
    assert (positive, negative) == (len(pos), len(neg)) == ((sdf > 0).sum(), (sdf <= 0).sum())
    assert pos.dtype == neg.dtype == np.float32 and pos.shape[1] == 4
    assert np.all(pos[:, 3] > 0) and np.all(neg[:, 3] <= 0)
    rows = np.concatenate([pos, neg])
    expected = np.c_[points, sdf].astype(np.float32)
    assert sorted(map(tuple, rows)) == sorted(map(tuple, expected))


def test_reader_drops_nan_rows_and_rejects_other_files(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, pos=np.array([[0, 0, 0, 1], [np.nan, 0, 0, 1]], np.float32),
             neg=np.zeros((2, 4), np.float32))
    pos, neg = formats.read_sdf_samples(path)
    assert len(pos) == 1 and len(neg) == 2
    np.savez(tmp_path / "y.npz", points=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="pos"):
        formats.read_sdf_samples(tmp_path / "y.npz")


def test_normalization_file_round_trip_and_original_layout(tmp_path):
    formats.write_normalization(tmp_path / "n.npz", [1.0, 2.0, 3.0], 0.5)
    offset, scale = formats.read_normalization(tmp_path / "n.npz")
    np.testing.assert_array_equal(offset, [1, 2, 3])
    assert scale == 0.5
    with np.load(tmp_path / "n.npz") as data:
        assert data["offset"].shape == (3,) and data["scale"].shape == (1,)
    # the original release stores a 0-d scale
    np.savez(tmp_path / "orig.npz", offset=np.array([0.1, 0.2, 0.3]), scale=np.float64(2.0))
    assert formats.read_normalization(tmp_path / "orig.npz")[1] == 2.0


def test_surface_samples_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    points, normals = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    formats.write_surface_samples(tmp_path / "s.ply", points, normals)
    data = formats.read_surface_samples(tmp_path / "s.ply")
    np.testing.assert_allclose(data["points"], points.astype(np.float32))
    np.testing.assert_allclose(data["normals"], normals.astype(np.float32))
    import trimesh  # an independent reader agrees

    cloud = trimesh.load(tmp_path / "s.ply")
    np.testing.assert_allclose(cloud.vertices, points.astype(np.float32), rtol=1e-6)


def test_original_release_surface_ply_with_bogus_face_element(tmp_path):
    points = np.arange(12, dtype=np.float32).reshape(4, 3)
    header = ("ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty float x\n"
              "property float y\nproperty float z\nelement face 4\n"
              "property list uchar int vertex_indices\nend_header\n")
    (tmp_path / "o.ply").write_bytes(header.encode() + points.tobytes())  # faces never written
    data = formats.read_surface_samples(tmp_path / "o.ply")
    np.testing.assert_array_equal(data["points"], points)
    assert "normals" not in data
    ascii_file = tmp_path / "a.ply"
    ascii_file.write_text("ply\nformat ascii 1.0\ncomment x\nelement vertex 2\nproperty float x\n"
                          "property float y\nproperty float z\nend_header\n1 2 3\n4 5 6\n")
    np.testing.assert_array_equal(formats.read_surface_samples(ascii_file)["points"],
                                  [[1, 2, 3], [4, 5, 6]])


def test_atomic_writes_leave_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "out.npz"
    with pytest.raises(RuntimeError):
        with formats.atomic_path(target) as temporary:
            temporary.write_bytes(b"half a file")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_split_files_are_validated(tmp_path):
    formats.write_split(tmp_path / "s.json", {"D": {"c": ["b", "a"]}})
    assert formats.read_split(tmp_path / "s.json") == {"D": {"c": ["a", "b"]}}
    (tmp_path / "bad.json").write_text('["a", "b"]')
    with pytest.raises(ValueError, match="not a split file"):
        formats.read_split(tmp_path / "bad.json")


def test_normalization_round_trip_and_reference_radius():
    rng = np.random.default_rng(2)
    vertices = rng.normal(size=(200, 3)) * [3, 1, 2] + [10, -5, 2]
    stray = np.vstack([vertices, [[1e6, 1e6, 1e6]]])  # an unreferenced vertex
    faces = rng.integers(0, 200, size=(300, 3))
    offset, scale = normalization_parameters(stray, faces)
    used = stray[np.unique(faces)]
    normalized = to_normalized(used, offset, scale)
    assert np.linalg.norm(normalized, axis=1).max() == pytest.approx(1 / 1.03)
    np.testing.assert_allclose((normalized.max(0) + normalized.min(0)) / 2, 0, atol=1e-12)
    np.testing.assert_allclose(to_original(normalized, offset, scale), used, rtol=1e-12)


def test_instance_key_has_one_string_form_and_checks_its_names():
    from deepsdf_preprocess.formats import InstanceKey

    key = InstanceKey.parse("ShapeNetV2/03001627/a.b.c")
    assert (key.dataset, key.class_name, key.instance) == ("ShapeNetV2", "03001627", "a.b.c")
    assert str(key) == "ShapeNetV2/03001627/a.b.c" and key.local == "03001627/a.b.c"
    assert InstanceKey.parse(key) is key
    from deepsdf_preprocess.formats import DataTree, instance_outputs

    files = DataTree("/d").instance(key)
    assert files.sdf_samples.as_posix() == "/d/SdfSamples/ShapeNetV2/03001627/a.b.c.npz"
    assert files.outputs() == instance_outputs("/d", "ShapeNetV2/03001627/a.b.c")
    assert "PartialScans" not in files.outputs() and "PartialScans" in files.outputs(
        partial_scans=True)
    for bad in ("a/b", "a/b/c/d", "a/../c", "./b/c"):
        with pytest.raises(ValueError):
            InstanceKey.parse(bad)
    with pytest.raises(ValueError, match="instance"):
        InstanceKey("a", "b", "..")

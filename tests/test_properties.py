"""Generated cases for the reliability mechanisms (docs/reliability.md): the validators, the
readers behind them, and the path layer.

Each property asserts only the promise: a correct result or one line of InputError (never
another exception, never a wrong value), and nothing outside the given folders changed.
Example counts are bounded so that the file runs in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from deepsdf_preprocess import contract, formats, manifest, validate
from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess.paths import Tree

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# ------------------------------------------------------------------ arrays of every kind

DTYPES = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8,
                          np.bool_, np.complex64])


@st.composite
def arrays(draw, shapes=None):
    """Arrays of any dtype (bool and complex included), of a few shapes, holding any values
    (NaN, infinities, huge, negative, zero)."""
    dtype = np.dtype(draw(DTYPES))
    shape = draw(shapes if shapes is not None else hnp.array_shapes(min_dims=0, max_dims=3,
                                                                     max_side=5))
    return draw(hnp.arrays(dtype, shape))


def near(shape):
    """Shapes equal to ``shape`` or one off in a dimension or in the count of dimensions."""
    options = [shape, shape[:-1], shape + (1,)]
    options += [shape[:i] + (shape[i] + 1,) + shape[i + 1:] for i in range(len(shape))]
    return st.sampled_from(options)


def one_line_error(call):
    """Run ``call``; return its result, or None after checking the error is one InputError
    line."""
    try:
        return call()
    except InputError as error:
        assert "\n" not in str(error) and str(error)
        return None


@FAST
@given(offset=arrays(near((3,))), scale=arrays(near((1,))))
def test_a_normalization_is_finite_with_a_positive_scale_or_refused(offset, scale):
    result = one_line_error(lambda: validate.normalization(offset, scale, source="N.npz"))
    if result is not None:
        offset, scale = result
        assert offset.shape == (3,) and np.all(np.isfinite(offset))
        assert np.isfinite(scale) and scale > 0


@FAST
@given(matrix=st.one_of(arrays(near((3, 3))),
                        hnp.arrays(np.float64, (3, 3), elements=st.floats(-3, 3)).map(
                            lambda m: np.vstack([m[:2], [0, 0, 1]]))))
def test_intrinsics_are_invertible_pinhole_matrices_or_refused(matrix):
    K = one_line_error(lambda: validate.intrinsics(matrix, source="K.txt"))
    if K is not None:
        assert K.shape == (3, 3) and np.all(np.isfinite(K))
        assert np.allclose(K[2], [0, 0, 1]) and K[0, 0] > 0 and K[1, 1] > 0
        assert abs(np.linalg.det(K)) > 0


def _rotation(angles):
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


@st.composite
def poses(draw):
    """Rigid poses, and poses spoiled in one way: a last row not 0 0 0 1 (``0 0 0 2``), a scale,
    a mirror, a shear, a NaN, or an arbitrary array."""
    pose = np.eye(4)
    pose[:3, :3] = _rotation(draw(st.tuples(*[st.floats(-np.pi, np.pi)] * 3)))
    pose[:3, 3] = draw(st.tuples(*[st.floats(-1e3, 1e3)] * 3))
    spoil = draw(st.sampled_from(["none", "rounded", "last row", "scale", "mirror", "shear",
                                  "nan", "any"]))
    if spoil == "last row":
        pose[3] = draw(st.sampled_from([[0, 0, 0, 2], [0, 0, 1, 1], [1e-3, 0, 0, 1]]))
    elif spoil == "scale":
        pose[:3, :3] *= draw(st.sampled_from([0.5, 2.0, 0.0, -1.0]))
    elif spoil == "mirror":
        pose[:3, 0] *= -1
    elif spoil == "shear":
        pose[0, 1] += 0.3
    elif spoil == "nan":
        pose[draw(st.integers(0, 3)), draw(st.integers(0, 3))] = np.nan
    elif spoil == "rounded":  # a pose written as text with 4 decimals: rigid, not exactly
        pose = np.round(pose, 4)
    elif spoil == "any":
        pose = draw(arrays(near((4, 4))))
    return spoil, pose


@FAST
@given(case=poses())
def test_a_pose_is_rigid_or_refused(case):
    spoil, pose = case
    result = one_line_error(lambda: validate.rigid_pose(pose, source="pose.txt"))
    if spoil in ("last row", "scale", "mirror", "shear", "nan"):
        assert result is None
    if spoil in ("none", "rounded"):
        assert result is not None
        assert np.allclose(result, pose, atol=1e-3)  # the pose given, its digits restored
    if result is not None:
        rotation = result[:3, :3]
        assert np.array_equal(result[3], [0, 0, 0, 1])
        assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
        assert np.linalg.det(rotation) > 0


@FAST
@given(depth=arrays(st.sampled_from([(4, 5), (1, 1), (4,), (2, 2, 3), (0, 3)])))
def test_a_depth_image_is_metres_or_refused(depth):
    result = one_line_error(lambda: validate.depth_image(depth, source="d.npy"))
    if result is not None:
        assert depth.dtype != bool and depth.dtype.kind in "iuf"
        assert result.ndim == 2 and np.all(np.isfinite(result)) and np.all(result >= 0)


@FAST
@given(cloud=arrays(st.sampled_from([(5, 3), (0, 3), (5, 2), (3,), (2, 3, 1)])))
def test_points_are_finite_n_by_3_or_refused(cloud):
    result = one_line_error(lambda: validate.points(cloud, source="p.npy"))
    if result is not None:
        assert result.ndim == 2 and result.shape[1] == 3 and len(result) >= 1
        assert np.all(np.isfinite(result))


@FAST
@given(value=st.one_of(st.integers(-10 ** 12, 10 ** 12), st.floats(allow_nan=True),
                       st.booleans(), st.text(max_size=3), st.none()))
def test_numbers_are_in_range_or_refused(value):
    result = one_line_error(lambda: validate.integer(value, what="--steps", minimum=1,
                                                     maximum=10 ** 6))
    if result is not None:
        assert isinstance(result, int) and 1 <= result <= 10 ** 6
    result = one_line_error(lambda: validate.number(value, what="--eta", positive=True))
    if result is not None:
        assert np.isfinite(result) and result > 0


# ------------------------------------------------------------------ files behind the doors

@st.composite
def npz_contents(draw, keys):
    """An npz's arrays: each wanted key present or not, arbitrary; sometimes extra keys."""
    contents = {}
    for key in keys:
        if draw(st.integers(0, 9)) > 0:
            contents[key] = draw(arrays())
    if draw(st.booleans()):
        contents["extra"] = draw(arrays())
    return contents


@FAST
@given(contents=npz_contents(("offset", "scale")))
def test_normalization_files_read_right_or_one_line(tmp_path_factory, contents):
    path = tmp_path_factory.mktemp("n") / "n.npz"
    np.savez(path, **contents)
    result = one_line_error(lambda: formats.read_normalization(path))
    if result is not None:
        assert result[1] > 0 and np.isfinite(result[1]) and np.all(np.isfinite(result[0]))


@FAST
@given(contents=npz_contents(("depth", "K", "pose")))
def test_partial_scan_files_read_right_or_one_line(tmp_path_factory, contents):
    path = tmp_path_factory.mktemp("s") / "s.npz"
    np.savez(path, **contents)
    result = one_line_error(lambda: formats.read_partial_scan(path))
    if result is not None:
        assert result["depth"].ndim == 2 and result["K"][0, 0] > 0
        assert np.array_equal(result["pose"][3], [0, 0, 0, 1])


@FAST
@given(contents=npz_contents(("points", "occupied")))
def test_occupancy_files_read_right_or_one_line(tmp_path_factory, contents):
    path = tmp_path_factory.mktemp("o") / "o.npz"
    np.savez(path, **contents)
    result = one_line_error(lambda: formats.read_occupancy(path))
    if result is not None:
        points, occupied = result
        assert points.shape[1] == 3 and occupied.dtype == bool
        assert len(points) == len(occupied)


@FAST
@given(data=st.binary(max_size=300), cut=st.integers(0, 400))
def test_damaged_files_are_one_line(tmp_path_factory, data, cut):
    """Random bytes, and real files cut short, in every kind of data-tree file."""
    folder = tmp_path_factory.mktemp("d")
    good = folder / "good.ply"
    formats.write_surface_samples(good, np.random.default_rng(0).normal(size=(20, 3)),
                                  np.tile([0.0, 0.0, 1.0], (20, 1)))
    cut_ply = folder / "cut.ply"
    cut_ply.write_bytes(good.read_bytes()[:cut])
    good_npz = folder / "good.npz"
    formats.write_sdf_samples(good_npz, np.zeros((10, 3)), np.linspace(-1, 1, 10))
    cut_npz = folder / "cut.npz"
    cut_npz.write_bytes(good_npz.read_bytes()[:cut])
    noise = folder / "noise.bin"
    noise.write_bytes(data)
    for path in (cut_ply, noise):
        one_line_error(lambda: formats.read_surface_samples(path))
    for path in (cut_npz, noise):
        for reader in (formats.read_sdf_samples, formats.read_occupancy,
                       formats.read_normalization, formats.read_partial_scan):
            one_line_error(lambda: reader(path))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=12)


@FAST
@given(payload=JSON, duplicate=st.booleans())
def test_split_files_are_unique_single_component_names_or_refused(tmp_path_factory, payload,
                                                                  duplicate):
    path = tmp_path_factory.mktemp("split") / "s.json"
    text = json.dumps(payload)
    if duplicate and isinstance(payload, dict) and payload:
        key = json.dumps(next(iter(payload)))
        text = "{" + f"{key}: {{}}, " + text[1:]  # the same key twice
    path.write_text(text)
    split = one_line_error(lambda: contract.read_split(path))
    if split is not None:
        assert text == json.dumps(payload)
        keys = [f"{d}/{c}/{i}" for d, classes in split.items() for c, items in classes.items()
                for i in items]
        assert len(keys) == len(set(keys))
        for key in keys:
            contract.InstanceKey.parse(key)


@FAST
@given(payload=JSON)
def test_a_manifest_that_is_not_one_is_one_line(tmp_path_factory, payload):
    data = tmp_path_factory.mktemp("m")
    path = manifest.manifest_path(data, "ds")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(payload))
    result = one_line_error(lambda: manifest.read_manifest(data, "ds"))
    if result is not None:
        assert isinstance(result, dict)
        assert all(isinstance(r, dict) for r in result.get("instances", {}).values())


# ------------------------------------------------------------------ the path layer

def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` (not following links) with its content hash."""
    found = {}
    for root, folders, files in os.walk(folder):
        for name in files + folders:
            path = Path(root) / name
            if path.is_symlink():
                found[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


#: The paths the tools touch inside a data root, as (components, kind).
DATA_PATHS = [
    (("SdfSamples", "ds", "c", "a.npz"), "file"),
    (("SurfaceSamples", "ds", "c", "a.ply"), "file"),
    (("NormalizationParameters", "ds", "c", "a.npz"), "file"),
    (("OccupancySamples", "ds", "c", "a.npz"), "file"),
    (("manifests", "ds.json"), "file"),
    (("manifests", "ds.lock"), "file"),
    (("manifests", "ds.journal"), "folder"),
    (("splits", "ds.json"), "file"),
]


def data_operations(data: Path):
    """Every writing operation of the data tree's owners, on instance ds/c/a."""
    def write_instance():
        paths = formats.instance_outputs(data, formats.InstanceKey("ds", "c", "a"))
        formats.write_sdf_samples(paths[formats.SDF_SAMPLES], np.zeros((4, 3)),
                                  np.array([-1.0, -1.0, 1.0, 1.0]))
        formats.write_normalization(paths[formats.NORMALIZATION_PARAMETERS], np.zeros(3), 1.0)

    def journal_and_merge():
        manifest.append_record(manifest.journal_path(data, "ds"), "c/a", {"status": "ok"})
        manifest.merge_journals(data, "ds", forget_all=True)

    def split():
        from deepsdf_preprocess.driver import merge_dataset

        merge_dataset(data, "ds", {"c/a"})

    return [write_instance, journal_and_merge, split]


@st.composite
def planted(draw):
    """A link or a wrong kind planted at one component of one path the tools touch."""
    parts, kind = draw(st.sampled_from(DATA_PATHS))
    depth = draw(st.integers(1, len(parts)))
    what = draw(st.sampled_from(["link out", "link to a file out", "file for folder",
                                 "folder for file", "dangling link out", "link inside"]))
    return parts[:depth], depth == len(parts) and kind == "file", what


@FAST
@given(case=planted())
def test_nothing_outside_the_data_root_changes_whatever_is_planted_in_it(tmp_path_factory,
                                                                         case):
    parts, is_file, what = case
    base = tmp_path_factory.mktemp("plant")
    data, outside = base / "data", base / "outside"
    outside.mkdir()
    (outside / "host-1.jsonl").write_text('{"key": "c/forged", "record": {"status": "ok"}}\n')
    (outside / "precious.json").write_text("{}")
    target = data.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    if what == "link out":
        target.symlink_to(outside, target_is_directory=True)
    elif what == "link to a file out":
        target.symlink_to(outside / "precious.json")
    elif what == "dangling link out":
        target.symlink_to(outside / "nothing")
    elif what == "link inside":
        (data / "elsewhere").mkdir(exist_ok=True)
        target.symlink_to(data / "elsewhere", target_is_directory=True)
    elif what == "file for folder" and not is_file:
        target.write_text("in the way")
    elif what == "folder for file" and is_file:
        target.mkdir()
    else:
        assume(False)
    before = snapshot(outside)
    for operation in data_operations(data):
        one_line_error(operation)
    assert snapshot(outside) == before
    records = one_line_error(lambda: manifest.read_manifest(data, "ds")) or {}
    assert "c/forged" not in records.get("instances", {})


@FAST
@given(parts=st.lists(st.sampled_from(["a", "b", "..", ".", "/x", "c/../..", "d"]),
                      min_size=1, max_size=4))
def test_a_tree_never_hands_out_a_path_outside_it(tmp_path_factory, parts):
    root = tmp_path_factory.mktemp("tree")
    path = one_line_error(lambda: Tree(root).file(*parts))
    if path is not None:
        assert Path(os.path.realpath(path)).is_relative_to(root.resolve())


def test_only_our_own_journals_are_deleted(tmp_path):
    data = tmp_path / "data"
    journal = manifest.journal_path(data, "ds")
    manifest.append_record(journal, "c/a", {"status": "ok"})
    foreign = journal.parent / "notes.jsonl"
    foreign.write_text("not ours\n")
    manifest.merge_journals(data, "ds", forget_all=True)
    assert not journal.exists() and foreign.read_text() == "not ours\n"


def test_memory_needs_are_refused_before_allocating(monkeypatch):
    from deepsdf import mesh

    monkeypatch.setattr(mesh, "available_memory", lambda: 20 * 2 ** 30)
    monkeypatch.setattr(validate, "available_memory", lambda: 20 * 2 ** 30)
    with pytest.raises(InputError, match=r"resolution 1024.*at most \d+"):
        mesh.check_grid_memory(1024)
    mesh.check_grid_memory(256)
    with pytest.raises(InputError, match="needs about"):
        validate.require_memory(1e15, what="a table")

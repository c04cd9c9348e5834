"""The bad-input corpus: generated bad meshes, specs, data files, codes, depth images and split
entries, each with the exact outcome it must have (docs/reliability.md lists them).

Outcomes are of three kinds: ``ok`` with data checked against truth, a failure of that one
item with a one-line reason naming it, or a one-line error of the command.  None may be a
traceback, silently wrong data, a write outside the given folders, or a lost record.
"""

import json
import os

import numpy as np
import pytest
import torch
import trimesh

from deepsdf.experiment import load_specs
from deepsdf.checkpoint import CheckpointError, load_checkpoint
from deepsdf.config import ConfigError, parse_specs
from deepsdf.data import DataError, ROW_LIMIT, pack_split
from deepsdf.experiment import read_code
from deepsdf.observations import load_depth, read_matrix, read_point_cloud
from deepsdf_preprocess import contract, formats
from deepsdf_preprocess.driver import preprocess_dataset
from deepsdf_preprocess.mesh_io import closed_orientation

from conftest import SMALL_CONFIG, TINY_SPECS


# --------------------------------------------------------------------------- meshes

def _sphere(radius=0.5, centre=(0.0, 0.0, 0.0)):
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    sphere.vertices = sphere.vertices + np.asarray(centre)
    return sphere


def _write(mesh, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(path)


def _box_with_stray_triangle(path):
    box = trimesh.creation.box()
    far = [[100, 100, 100], [101, 100, 100], [100, 101, 100]]
    _write(trimesh.Trimesh(np.vstack([box.vertices, far]), np.vstack([box.faces, [[8, 9, 10]]]),
                           process=False), path)


def _two_open_quads(path):
    vertices = [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]]
    _write(trimesh.Trimesh(vertices, [[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]],
                           process=False), path)


def _nan_vertex(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\n"
                    "f 2 3 4\n")


def _latin1_tetrahedron(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    tetra = trimesh.creation.box()
    text = tetra.export(file_type="obj")
    path.write_bytes(b"# caf\xe9 cr\xe9\xe9 \xe0 Z\xfcrich\n" + text.encode())


#: name -> (writer(path to class folder), file name, expected status, reason substring)
MESH_CASES = {
    "sphere 1 cm at 10^4": (lambda d: _write(_sphere(0.005, (1e4, 1e4, 1e4)), d / "a.obj"),
                            "ok", None),
    "box at 10^8": (lambda d: _write(trimesh.creation.box().apply_translation([1e8] * 3),
                                     d / "a.obj"), "ok", None),
    "box of side 10^39": (lambda d: _write(trimesh.creation.box().apply_scale(1e39),
                                           d / "a.obj"), "ok", None),
    "single triangle": (lambda d: _write(trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]],
                                                         [[0, 1, 2]]), d / "a.obj"),
                        "failed", "too few samples kept"),
    "two open quads": (lambda d: _two_open_quads(d / "a.obj"), "failed", "too few samples"),
    "box with a stray far triangle": (lambda d: _box_with_stray_triangle(d / "a.obj"),
                                      "failed", "too few samples kept"),
    "NaN vertex": (lambda d: _nan_vertex(d / "a.obj"), "failed", "NaN"),
    "Latin-1 comment": (lambda d: _latin1_tetrahedron(d / "a.obj"), "ok", None),
    "random bytes .obj": (lambda d: (d.mkdir(parents=True), (d / "a.obj").write_bytes(
        np.random.default_rng(0).bytes(3000))), "failed", "not a triangle mesh"),
    "random bytes .stl": (lambda d: (d.mkdir(parents=True), (d / "a.stl").write_bytes(
        np.random.default_rng(1).bytes(3000))), "failed", "not a triangle mesh"),
    "empty .off": (lambda d: (d.mkdir(parents=True), (d / "a.off").write_text("")), "failed",
                   "a.off"),
    "two files, one stem": (lambda d: (_write(trimesh.creation.box(), d / "a.obj"),
                                       _write(trimesh.creation.box(), d / "a.ply")),
                            "failed", "ambiguous instance: both a.obj and a.ply"),
    "dangling symbolic link": (lambda d: (d.mkdir(parents=True),
                                          os.symlink(d / "gone.obj", d / "a.obj")),
                               "failed", "dangling symbolic link"),
    "symbolic link loop": (lambda d: (d.mkdir(parents=True), os.symlink(d / "a.obj",
                                                                        d / "a.obj")),
                           "failed", "symbolic link loop"),
}


@pytest.fixture(scope="module")
def bad_mesh_tree(tmp_path_factory):
    """Every mesh case as its own class folder, preprocessed once with the ray caster."""
    root = tmp_path_factory.mktemp("bad_meshes")
    for index, (writer, _, _) in enumerate(MESH_CASES.values()):
        writer(root / "meshes" / f"case{index:02d}")
    report = preprocess_dataset(root / "meshes", root / "data", "D", config=SMALL_CONFIG,
                                backend="raycast", workers=1, progress=False)
    manifest = json.loads(report.manifest_path.read_text())
    return root, report, manifest


@pytest.mark.parametrize("index, case", list(enumerate(MESH_CASES)))
def test_bad_mesh_outcome(bad_mesh_tree, index, case):
    root, report, manifest = bad_mesh_tree
    _, status, reason = MESH_CASES[case]
    key = f"case{index:02d}/a"
    record = manifest["instances"][key]
    assert record["status"] == status, record
    in_split = key.split("/")[1] in formats.read_split(report.split_path)["D"].get(
        key.split("/")[0], [])
    assert in_split == (status == "ok")
    if status == "failed":
        assert reason in record["reason"] and "\n" not in record["reason"]
        assert not list((root / "data" / formats.SDF_SAMPLES / "D" / key.split("/")[0]).glob(
            "*.npz")), "a failed instance must not leave SdfSamples"
        return
    # ok: signs against the source mesh's exact inside/outside, SurfaceSamples on it
    paths = formats.instance_outputs(root / "data", formats.InstanceKey("D", *key.split("/")))
    mesh = trimesh.load(next((root / "meshes" / key.split("/")[0]).iterdir()), force="mesh",
                        process=False)
    offset, scale = formats.read_normalization(paths[formats.NORMALIZATION_PARAMETERS])
    pos, neg = formats.read_sdf_samples(paths[formats.SDF_SAMPLES])
    rows = np.vstack([pos, neg])
    far = np.abs(rows[:, 3]) > 0.05
    import igl

    normalized = (np.asarray(mesh.vertices, np.float64) + offset) * scale
    winding = igl.fast_winding_number(normalized, np.asarray(mesh.faces, np.int64),
                                      rows[far, :3].astype(np.float64))
    assert np.mean((winding > 0.5) == (rows[far, 3] < 0)) > 0.99
    surface = formats.read_surface_samples(paths[formats.SURFACE_SAMPLES])["points"]
    assert np.all(np.isfinite(surface))
    assert len(np.unique(surface, axis=0)) > 0.99 * len(surface), "points collapsed"
    extent = mesh.bounds[1] - mesh.bounds[0]
    assert np.all(surface.min(0) >= mesh.bounds[0] - 1e-3 * extent)
    assert np.all(surface.max(0) <= mesh.bounds[1] + 1e-3 * extent)


def test_far_from_the_origin_the_orientation_is_still_outward():
    """The cause of the inside-out samples: the enclosed volume's sign cancelled away."""
    assert closed_orientation(*_arrays(_sphere(0.005, (1e4, 1e4, 1e4)))) == 1
    flipped = _sphere(0.005, (1e4, 1e4, 1e4))
    flipped.faces = flipped.faces[:, ::-1]
    assert closed_orientation(*_arrays(flipped)) == -1
    assert closed_orientation(*_arrays(trimesh.creation.box().apply_translation([1e8] * 3))) == 1


def _arrays(mesh):
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


@pytest.mark.egl
def test_far_sphere_with_the_opengl_scanner_is_not_inside_out(gl_scanner):
    from deepsdf_preprocess.pipeline import sample_mesh

    samples = sample_mesh(_sphere(0.005, (1e4, 1e4, 1e4)), SMALL_CONFIG, gl_scanner,
                          np.random.default_rng(0))
    radius = np.linalg.norm(samples.points, axis=1)
    exact = radius - 1 / 1.03  # the sphere's normalized radius
    far = np.abs(exact) > 0.02
    assert np.all(np.sign(samples.sdf[far]) == np.sign(exact[far]))
    assert samples.stats["back_observation_fraction"] < 0.01


def test_the_sign_self_check_fails_an_inside_out_instance(inverted_signs):
    """Whatever inverts the labels upstream (the old culling bug did), the independent ray
    check fails the instance instead of writing it."""
    from deepsdf_preprocess import pipeline
    from deepsdf_preprocess.errors import PreprocessError

    scanner = pipeline.make_scanner("raycast", SMALL_CONFIG.rig)
    with pytest.raises(PreprocessError, match="sign check failed") as failure:
        pipeline.sample_mesh(_sphere(), SMALL_CONFIG, scanner, np.random.default_rng(0))
    assert "\n" not in str(failure.value)


# --------------------------------------------------------------------------- specs

def _network(**change):
    return {"NetworkSpecs": dict(TINY_SPECS["NetworkSpecs"], **change)}


#: change to TINY_SPECS (SpecsVersion 2) -> words the ConfigError must contain
SPEC_CASES = {
    "NumEpochs as a list": ({"NumEpochs": [5]}, "NumEpochs must be an integer, got [5]"),
    "NumEpochs as text": ({"NumEpochs": "ten"}, "NumEpochs must be an integer"),
    "fractional NumEpochs": ({"NumEpochs": 2.7}, "NumEpochs must be an integer, got 2.7"),
    "NumEpochs 0": ({"NumEpochs": 0}, "NumEpochs must be at least 1"),
    "dims as a number": (_network(dims=128), "NetworkSpecs.dims must be a list of integers"),
    "dropout as text": (_network(dropout="abc"), "NetworkSpecs.dropout must be a list"),
    "dropout_prob as text": (_network(dropout_prob="abc"), "NetworkSpecs.dropout_prob must be"),
    "dropout_prob 1": (_network(dropout_prob=1.0), "NetworkSpecs.dropout_prob must be < 1"),
    "use_tanh as the string false": (_network(use_tanh="false"),
                                     "NetworkSpecs.use_tanh must be true or false"),
    "CodeRegularization as the string false": ({"CodeRegularization": "false"},
                                               "CodeRegularization must be true or false"),
    "CodeInitStdDev -1": ({"CodeInitStdDev": -1}, "CodeInitStdDev must be > 0"),
    "LogFrequency 0": ({"LogFrequency": 0}, "LogFrequency must be at least 1"),
    "negative learning rate": (
        {"LearningRateSchedule": [{"Type": "Step", "Initial": -0.001, "Interval": 5,
                                   "Factor": 0.5}, TINY_SPECS["LearningRateSchedule"][1]]},
        "LearningRateSchedule[0].Initial must be > 0"),
    "negative clip norm": ({"GradientClipNorm": -1.0}, "GradientClipNorm must be > 0"),
    "NaN clamp": ({"ClampingDistance": float("nan")}, "ClampingDistance must be a finite"),
    "boolean as an integer": ({"ScenesPerBatch": True}, "ScenesPerBatch must be an integer"),
    "CodeLength as text": ({"CodeLength": "16"}, "CodeLength must be an integer"),
    "unknown key": ({"Comment": "hello"}, "unknown key 'Comment'"),
    "SpecsVersion 3": ({"SpecsVersion": 3}, "SpecsVersion 3 is not supported"),
    "schedule not an object": ({"LearningRateSchedule": [5, 6]}, "must be an object"),
}


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_bad_spec_names_key_and_value(case):
    change, words = SPEC_CASES[case]
    with pytest.raises(ConfigError) as error:
        parse_specs(dict(TINY_SPECS, **change))
    assert words in str(error.value) and "\n" not in str(error.value)


def test_legacy_spec_ignores_unknown_keys_with_a_warning(caplog):
    legacy = {k: v for k, v in TINY_SPECS.items() if k not in ("SpecsVersion", "Seed")}
    config = parse_specs(dict(legacy, Comment="trained on the cluster",
                              Description=["two", "lines"]))
    assert config.legacy and config.description == "two lines"
    assert "unknown key 'Comment'" in caplog.text


def test_spec_paths_are_relative_to_the_spec_folder_in_version_2(tmp_path, monkeypatch):


    experiment = tmp_path / "runs" / "exp"
    experiment.mkdir(parents=True)
    (experiment / "specs.json").write_text(json.dumps(dict(
        TINY_SPECS, DataSource="../../data", TrainSplit="../../data/splits/train.json")))
    monkeypatch.chdir("/")  # anywhere else
    config = load_specs(experiment)
    assert config.data_source == str(tmp_path / "data")
    assert config.train_split == str(tmp_path / "data" / "splits" / "train.json")
    legacy = {k: v for k, v in TINY_SPECS.items() if k not in ("SpecsVersion", "Seed")}
    (experiment / "specs.json").write_text(json.dumps(dict(legacy, DataSource="data")))
    assert load_specs(experiment).data_source == "data"  # the original's current-dir rule


# --------------------------------------------------------------------------- data files

def _samples(path, pos, neg):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, pos=np.asarray(pos, np.float32), neg=np.asarray(neg, np.float32))


def _good_rows(sign, n=50, seed=0):
    rows = np.random.default_rng(seed).uniform(-0.5, 0.5, (n, 4))
    rows[:, 3] = sign * np.abs(rows[:, 3]) + (1e-3 if sign > 0 else 0)
    return rows


def test_absurd_rows_are_dropped_at_packing_with_a_count(tmp_path, caplog):
    good_pos, good_neg = _good_rows(1), _good_rows(-1, seed=1)
    bad = np.array([[1e30, 0, 0, 0.1], [np.inf, 0, 0, 0.1], [0, np.nan, 0, 0.1],
                    [0, 0, 0, 1e12]])
    _samples(tmp_path / "SdfSamples/D/c/a.npz", np.vstack([good_pos, bad]), good_neg)
    packed = pack_split(tmp_path, {"D": {"c": ["a"]}})
    rows = np.asarray(packed.rows)
    assert len(rows) == 100 and np.all(np.abs(rows) <= ROW_LIMIT)
    np.testing.assert_array_equal(rows[:50], good_pos.astype(np.float32))
    assert "D/c/a: dropped 4 of 104 rows" in caplog.text


def test_a_file_with_only_absurd_rows_is_named(tmp_path):
    _samples(tmp_path / "SdfSamples/D/c/a.npz", [[1e30, 0, 0, 1]], _good_rows(-1))
    with pytest.raises(DataError, match="D/c/a: no positive samples"):
        pack_split(tmp_path, {"D": {"c": ["a"]}})


def test_a_pickled_sdf_file_is_unreadable_not_executed(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "SdfSamples/D/c/a.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, pos=np.array([_Payload(marker)], dtype=object), neg=_good_rows(-1))
    with pytest.raises(DataError, match="unreadable"):
        pack_split(tmp_path, {"D": {"c": ["a"]}})
    assert not marker.exists()


# --------------------------------------------------------------------------- pickles, codes

class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: a stand-in for ``os.system``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _malicious(path, marker):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "deepsdf-checkpoint-1", "decoder": _Payload(marker)}, path)


def test_a_malicious_checkpoint_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    _malicious(tmp_path / "Checkpoints/latest.pt", marker)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_checkpoint(tmp_path / "Checkpoints/latest.pt")
    assert not marker.exists()


def test_a_malicious_original_release_file_runs_nothing(tmp_path):
    from deepsdf.config import DecoderConfig, TrainConfig
    from deepsdf.original import load_legacy_codes, load_legacy_decoder

    marker = tmp_path / "ran"
    _malicious(tmp_path / "ModelParameters/latest.pth", marker)
    _malicious(tmp_path / "LatentCodes/latest.pth", marker)
    config = TrainConfig(decoder=DecoderConfig(latent_size=8, dims=(32, 32), latent_in=(),
                                               dropout=(), norm_layers=()))
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_legacy_decoder(tmp_path / "ModelParameters/latest.pth", config)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_legacy_codes(tmp_path / "LatentCodes/latest.pth", {"D": {"c": ["a"]}})
    assert not marker.exists()


def _code_file(tmp_path, content):
    path = tmp_path / "code.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return path


#: what the file holds -> words the CheckpointError must contain (codes have 16 values)
CODE_CASES = {
    "wrong length": (torch.zeros(1, 15), "shape (1, 15)"),
    "a 2 x 64 tensor": (torch.zeros(2, 64), "shape (2, 64)"),
    "a dict": ({"code": torch.zeros(16)}, "holds a dict"),
    "random bytes": (np.random.default_rng(0).bytes(500), "cannot read code file"),
    "integers": (torch.zeros(16, dtype=torch.int64), "floating-point"),
    "NaN": (torch.full((1, 16), float("nan")), "NaN"),
}


@pytest.mark.parametrize("case", list(CODE_CASES))
def test_bad_code_file_is_one_line(tmp_path, case):
    content, words = CODE_CASES[case]
    with pytest.raises(CheckpointError) as error:
        read_code(_code_file(tmp_path, content), 16)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_code_files_of_both_releases_are_read(tmp_path):
    for shape in ((16,), (1, 16), (1, 1, 16)):
        code = torch.arange(16, dtype=torch.float32).reshape(shape)
        np.testing.assert_array_equal(read_code(_code_file(tmp_path, code), 16), np.arange(16))
    with pytest.raises(CheckpointError, match="no code file"):
        read_code(tmp_path / "missing.pth", 16)
    marker = tmp_path / "ran"
    torch.save(_Payload(marker), tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="refusing"):
        read_code(tmp_path / "evil.pth", 16)
    assert not marker.exists()


# --------------------------------------------------------------------------- depth, matrices

def _depth_file(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content, allow_pickle=True)
    return path


DEPTH_CASES = {
    "missing": ("none.npy", None, "does not exist"),
    "random bytes .png": ("d.png", np.random.default_rng(0).bytes(400), "cannot read depth"),
    "random bytes .npy": ("d.npy", np.random.default_rng(1).bytes(400), "cannot read depth"),
    "3-D array": ("d.npy", np.ones((4, 4, 3)), "is 2-D"),
    "boolean mask": ("d.npy", np.ones((4, 4), dtype=bool), "numbers are needed"),
    "negative depth": ("d.npy", -np.ones((4, 4)), "finite and >= 0"),
    "infinite depth": ("d.npy", np.full((4, 4), np.inf), "finite and >= 0"),
    "pickled objects": ("d.npy", np.array([{"a": 1}], dtype=object), "cannot read depth"),
    "unknown suffix": ("d.exr", b"", "unsupported depth file"),
}


@pytest.mark.parametrize("case", list(DEPTH_CASES))
def test_bad_depth_image_is_one_line(tmp_path, case):
    name, content, words = DEPTH_CASES[case]
    path = tmp_path / name if content is None else _depth_file(tmp_path, name, content)
    with pytest.raises(ValueError) as error:
        load_depth(path, depth_scale=1000)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_nan_depth_means_no_measurement(tmp_path):
    depth = np.array([[np.nan, 1.5], [2.0, 0.0]])
    np.testing.assert_array_equal(load_depth(_depth_file(tmp_path, "d.npy", depth)),
                                  [[0, 1.5], [2.0, 0]])


@pytest.mark.parametrize("content, words", [
    (None, "does not exist"), ("1 2 3\n4 5 6\n", r"\(3, 3\) is needed"),
    ("a b c\n", "cannot read a matrix"), ("1 0 0\n0 1 0\n0 0 nan\n", "NaN or infinite"),
])
def test_bad_matrix_file_is_one_line(tmp_path, content, words):
    path = tmp_path / "K.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=words):
        read_matrix(path, (3, 3))


def test_bad_point_cloud_is_one_line(tmp_path):
    (tmp_path / "p.xyz").write_text("1 2\n3 4\n")
    with pytest.raises(ValueError, match=r"\(n, 3\) is needed"):
        read_point_cloud(tmp_path / "p.xyz")
    with pytest.raises(ValueError, match="does not exist"):
        read_point_cloud(tmp_path / "none.ply")


# --------------------------------------------------------------------------- names, splits

@pytest.mark.parametrize("entry", ["../../escape", "..", "a/b", "/etc", "", "a\\b", "a\x00b"])
def test_split_entries_must_be_single_names(tmp_path, entry):
    path = tmp_path / "split.json"
    for split in ({"D": {"c": [entry]}}, {"D": {entry or ".": ["a"]}}, {entry or "..": {}}):
        path.write_text(json.dumps(split))
        with pytest.raises(ValueError, match="single file-name component|must be a string"):
            formats.read_split(path)


def test_non_string_split_entry_is_an_error(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"D": {"c": [5]}}))
    with pytest.raises(ValueError, match="must be a string"):
        formats.read_split(tmp_path / "s.json")


def test_a_dataset_name_cannot_escape_the_data_tree(tmp_path):
    meshes = tmp_path / "meshes" / "c"
    _write(trimesh.creation.box(), meshes / "a.obj")
    outside = tmp_path / "outside.part"
    outside.write_text("not ours")
    for dataset in ("../../escape", "..", "../x"):
        with pytest.raises(ValueError, match="dataset"):
            preprocess_dataset(tmp_path / "meshes", tmp_path / "data" / "inner", dataset,
                               config=SMALL_CONFIG, backend="raycast", progress=False)
    assert outside.read_text() == "not ours"
    assert not (tmp_path / "escape").exists() and not (tmp_path / "data").exists()


def test_stale_cleanup_touches_only_this_writers_temporaries(tmp_path):
    folder = tmp_path / "SdfSamples" / "D" / "c"
    folder.mkdir(parents=True)
    ours = folder / ".a.npz.x1y2z3.part"
    theirs = folder / "notes.part"
    ours.write_text("left by a kill")
    theirs.write_text("someone's file")
    assert formats.remove_stale_temporaries(tmp_path / "SdfSamples", recursive=True) == [ours]
    assert theirs.exists() and not ours.exists()


# --------------------------------------------------------------------------- writing

def test_written_files_get_the_umask_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        formats.write_json(tmp_path / "a.json", {})
        formats.write_normalization(tmp_path / "n.npz", np.zeros(3), 1.0)
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "n.npz").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        formats.write_json(tmp_path / "b.json", {})
        assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(previous)


def test_a_full_disk_is_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch):
    import errno

    from deepsdf_preprocess.errors import DiskFullError

    formats.write_json(tmp_path / "m.json", {"kept": True})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(contract.json, "dumps", full)
    with pytest.raises(DiskFullError) as error:
        formats.write_json(tmp_path / "m.json", {"kept": False})
    assert str(error.value) == (f"no space left on device while writing {tmp_path / 'm.json'}; "
                                "the previous file there is intact")
    assert json.loads((tmp_path / "m.json").read_text()) == {"kept": True}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_storage_precision_follows_the_data():
    assert formats.storage_dtype(np.random.default_rng(0).uniform(-1, 1, (100, 3))) == np.float32
    assert formats.storage_dtype(1e4 + np.random.default_rng(0).uniform(0, 0.01, (100, 3))
                                 ) == np.float64
    assert formats.storage_dtype(np.array([[1e39, 0, 0], [2e39, 1, 1]])) == np.float64
    with pytest.raises(ValueError, match="NaN or infinite"):
        formats.storage_dtype(np.array([np.inf]))


def test_one_rule_names_a_training_instance_everywhere():
    from deepsdf.latents import find_instance

    ids = ["D/chairs/chairs_0000", "D/chairs/chairs_0001", "D/tables/tables_0000",
           "E/chairs/chairs_0000"]
    assert find_instance(ids, "D/chairs/chairs_0001") == 1
    assert find_instance(ids, "chairs_0001") == 1
    assert find_instance(ids, "tables/tables_0000") == 2
    with pytest.raises(ValueError, match="matches 2 training instances"):
        find_instance(ids, "chairs/chairs_0000")
    with pytest.raises(ValueError, match="did you mean 'chairs_0001'"):
        find_instance(ids, "chairs_001")
    with pytest.raises(ValueError, match="not a training instance"):
        find_instance(ids, "sofa")


def test_the_code_length_comes_from_the_decoder():
    from dataclasses import replace

    from deepsdf.config import DecoderConfig
    from deepsdf.decoder import Decoder
    from deepsdf.reconstruct import GAUSS_NEWTON, reconstruct_codes

    decoder = Decoder(DecoderConfig(latent_size=6, dims=(16, 16), latent_in=(), dropout=(),
                                    norm_layers=()))
    rows = [np.c_[np.random.default_rng(0).uniform(-1, 1, (64, 3)), np.full(64, 0.05),
                  np.zeros(64)].astype(np.float32)]
    solver = replace(GAUSS_NEWTON, steps=1, samples=64)
    fit = reconstruct_codes(decoder, rows, [0], solver, clamp=0.1)  # no latent_size needed
    assert fit.codes.shape == (1, 6)
    with pytest.raises(ValueError, match="not the decoder's code length 6"):
        reconstruct_codes(decoder, rows, [0], solver, clamp=0.1, latent_size=16)

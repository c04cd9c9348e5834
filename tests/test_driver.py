"""The folder driver: bad inputs, resume after a kill, determinism, splits, layouts."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from deepsdf_preprocess import formats
from deepsdf_preprocess.normalize import to_normalized
from deepsdf_preprocess.driver import discover_meshes, preprocess_dataset
from deepsdf_preprocess.procedural import write_shapes

from conftest import SMALL_CONFIG


@pytest.fixture(scope="module")
def mesh_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("meshes")
    write_shapes(root, "chairs", 3, seed=1)
    return root


def read_tree(data_dir):
    """{relative path: file bytes} of every data file (manifests and splits excluded)."""
    return {p.relative_to(data_dir).as_posix(): p.read_bytes()
            for p in sorted(Path(data_dir).rglob("*"))
            if p.is_file() and "manifests" not in p.parts and "splits" not in p.parts}


def test_writes_the_data_tree_manifest_and_split(mesh_dir, tmp_path):
    report = preprocess_dataset(mesh_dir, tmp_path, "demo", config=SMALL_CONFIG,
                                backend="raycast", progress=False)
    assert report.succeeded == [f"chairs/chairs_000{i}" for i in range(3)] and not report.failed
    for key in report.succeeded:
        outputs = formats.instance_outputs(tmp_path, formats.InstanceKey("demo", *key.split("/")))
        pos, neg = formats.read_sdf_samples(outputs[formats.SDF_SAMPLES])
        assert len(pos) > 1000 and len(neg) > 1000
        surface = formats.read_surface_samples(outputs[formats.SURFACE_SAMPLES])
        assert surface["points"].shape == (SMALL_CONFIG.surface_samples, 3)
        # SurfaceSamples are in the original frame: on the original mesh
        mesh = trimesh.load(mesh_dir / f"{key}.obj")
        offset, scale = formats.read_normalization(outputs[formats.NORMALIZATION_PARAMETERS])
        np.testing.assert_allclose(surface["points"].min(0), mesh.bounds[0], atol=0.05)
        # the normalization puts the mesh just inside the unit sphere (the 1.03 buffer)
        radii = np.linalg.norm(to_normalized(mesh.vertices, offset, scale), axis=1)
        assert radii.max() == pytest.approx(1 / 1.03, abs=1e-3)
    manifest = json.loads(report.manifest_path.read_text())
    record = manifest["instances"]["chairs/chairs_0000"]
    assert record["status"] == "ok" and 0 <= record["dropped_fraction"] < 0.05
    assert {"hit_pixels", "triangles_seen_from_both_sides", "back_observation_fraction",
            "warnings", "seconds", "positive", "negative"} <= set(record)
    assert formats.read_split(report.split_path) == {
        "demo": {"chairs": ["chairs_0000", "chairs_0001", "chairs_0002"]}}


def test_bad_meshes_are_reported_and_the_run_goes_on(tmp_path):
    meshes = tmp_path / "meshes" / "things"
    meshes.mkdir(parents=True)
    trimesh.creation.box().export(meshes / "good.obj")
    (meshes / "garbage.stl").write_bytes(b"\x00\x01 not a mesh at all")
    (meshes / "empty.obj").write_text("# nothing\n")
    (meshes / "nan.obj").write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    (meshes / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    (meshes / "cloud.ply").write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\n"
                                      "property float y\nproperty float z\nend_header\n"
                                      "0 0 0\n1 0 0\n0 1 0\n")
    # a needle: positive area, but thinner than any pixel can see
    (meshes / "needle.obj").write_text("v 0 0 0\nv 1 0 0\nv 0.5 1e-9 0\nf 1 2 3\n")
    report = preprocess_dataset(tmp_path / "meshes", tmp_path / "data", "d", config=SMALL_CONFIG,
                                backend="raycast", progress=False)
    assert report.succeeded == ["things/good"]
    reasons = report.failed
    assert set(reasons) == {f"things/{n}" for n in
                            ("garbage", "empty", "nan", "flat", "cloud", "needle")}
    assert "NaN" in reasons["things/nan"]
    assert "zero surface area" in reasons["things/flat"]
    assert "point cloud" in reasons["things/cloud"] or "no triangles" in reasons["things/cloud"]
    assert "nothing rendered" in reasons["things/needle"]
    assert all("\n" not in reason for reason in reasons.values())
    manifest = json.loads(report.manifest_path.read_text())
    assert manifest["instances"]["things/nan"]["status"] == "failed"
    assert not (tmp_path / "data" / "SdfSamples" / "d" / "things" / "nan.npz").exists()


KILLER = """
import os, signal, sys
import numpy as np
from deepsdf_preprocess import formats
from deepsdf_preprocess.driver import preprocess_dataset
sys.path.insert(0, {tests!r})
from conftest import SMALL_CONFIG
real_savez, calls = np.savez, []
def dying_savez(stream, **arrays):
    calls.append(1)
    if len(calls) == {kill_at}:  # die half-way through writing this file
        stream.write(b"PK partial")
        stream.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real_savez(stream, **arrays)
np.savez = dying_savez
preprocess_dataset({mesh_dir!r}, {data_dir!r}, "demo", config=SMALL_CONFIG, backend="raycast",
                   progress=False)
"""


def test_a_killed_run_leaves_no_partial_file_and_the_rerun_finishes(mesh_dir, tmp_path):
    data = tmp_path / "data"
    # each instance writes 2 npz files (normalization, then SdfSamples); die in the 4th:
    # instance 0 is complete, instance 1 dies writing its SdfSamples.
    script = KILLER.format(tests=str(Path(__file__).parent), kill_at=4, mesh_dir=str(mesh_dir),
                           data_dir=str(data))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert result.returncode == -9, result.stderr.decode()
    sdf_files = sorted(p.name for p in (data / "SdfSamples").rglob("*.npz"))
    assert sdf_files == ["chairs_0000.npz"]  # no partial file under a final name
    assert len(list(data.rglob("*.part"))) == 1  # the half-written temporary
    for path in (data / "SdfSamples").rglob("*.npz"):
        formats.read_sdf_samples(path)  # what exists is complete
    report = preprocess_dataset(mesh_dir, data, "demo", config=SMALL_CONFIG, backend="raycast",
                                progress=False)
    assert report.skipped == ["chairs/chairs_0000"]
    assert report.succeeded == [f"chairs/chairs_000{i}" for i in range(3)]
    assert not list(data.rglob("*.part"))
    # the resumed tree equals an uninterrupted run's, file for file
    clean = tmp_path / "clean"
    preprocess_dataset(mesh_dir, clean, "demo", config=SMALL_CONFIG, backend="raycast",
                       progress=False)
    assert read_tree(data) == read_tree(clean)


def test_output_does_not_depend_on_worker_count(mesh_dir, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    preprocess_dataset(mesh_dir, one, "demo", config=SMALL_CONFIG, backend="raycast",
                       workers=1, seed=3, progress=False)
    preprocess_dataset(mesh_dir, two, "demo", config=SMALL_CONFIG, backend="raycast",
                       workers=2, seed=3, progress=False)
    assert read_tree(one) == read_tree(two)
    other = tmp_path / "other"
    preprocess_dataset(mesh_dir, other, "demo", config=SMALL_CONFIG, backend="raycast",
                       workers=1, seed=4, progress=False)
    assert read_tree(one) != read_tree(other)


def test_split_selects_instances_and_names_missing_ones(mesh_dir, tmp_path):
    split = {"demo": {"chairs": ["chairs_0001", "chairs_0042"]}}
    report = preprocess_dataset(mesh_dir, tmp_path, "demo", config=SMALL_CONFIG,
                                backend="raycast", split=split, progress=False)
    assert report.succeeded == ["chairs/chairs_0001"]
    assert "no mesh" in report.failed["chairs/chairs_0042"]
    with pytest.raises(ValueError, match="no dataset"):
        discover_meshes(mesh_dir, split=split, dataset="ShapeNetV2")


def test_shapenet_layout_is_discovered(tmp_path):
    model = tmp_path / "03001627" / "abc123" / "models"
    model.mkdir(parents=True)
    (model / "model_normalized.obj").write_text(
        "mtllib model_normalized.mtl\nusemtl missing\n"
        + "".join(f"v {x} {y} {z}\n" for x, y, z in trimesh.creation.box().vertices)
        + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in trimesh.creation.box().faces))
    jobs = discover_meshes(tmp_path)
    assert [(j.class_name, j.instance) for j in jobs] == [("03001627", "abc123")]
    report = preprocess_dataset(tmp_path, tmp_path / "data", "ShapeNetV2", config=SMALL_CONFIG,
                                backend="raycast", progress=False)
    assert report.succeeded == ["03001627/abc123"], report.failed


def test_preprocess_config_reads_back_what_the_manifest_records():
    import json

    from deepsdf_preprocess.cameras import CameraRig
    from deepsdf_preprocess.partial_scan import VirtualScanConfig
    from deepsdf_preprocess.pipeline import PreprocessConfig
    from deepsdf_preprocess.sampling import SamplingConfig

    config = PreprocessConfig(sampling=SamplingConfig(count=1234, variances=(0.01, 0.001)),
                              rig=CameraRig(count=7, resolution=64), sign_method="winding",
                              partial_scan=VirtualScanConfig(width=32, elevation=(5.0, 20.0)))
    recorded = json.loads(json.dumps(config.to_dict()))
    assert PreprocessConfig.from_dict(recorded) == config
    assert PreprocessConfig.from_dict({**recorded, "retired_setting": 1}) == config
    assert PreprocessConfig.from_dict({}) == PreprocessConfig()


def test_a_mesh_reached_through_a_link_is_read_and_its_file_recorded(mesh_dir, tmp_path):
    """A category subset made of links into another copy (the way ShapeNet subsets are made):
    the mesh is read where the link points, the record names that file, and nothing is
    written beside it."""
    import os

    subset = tmp_path / "subset" / "chairs"
    subset.mkdir(parents=True)
    target = mesh_dir / "chairs" / "chairs_0001.obj"
    os.symlink(target, subset / "linked.obj")
    before = sorted(p.name for p in (mesh_dir / "chairs").iterdir())
    report = preprocess_dataset(tmp_path / "subset", tmp_path / "data", "D", config=SMALL_CONFIG,
                                backend="raycast", progress=False)
    assert report.succeeded == ["chairs/linked"]
    record = json.loads(report.manifest_path.read_text())["instances"]["chairs/linked"]
    assert record["mesh"] == str(subset / "linked.obj")
    assert record["mesh_file"] == os.path.realpath(target)
    assert sorted(p.name for p in (mesh_dir / "chairs").iterdir()) == before


def test_reruns_that_keep_an_earlier_split_write_their_own_once(tmp_path):
    """A rerun whose split lists fewer instances than the split already there keeps that one
    and writes its own beside it, once: the next identical rerun reuses that file instead of
    adding -3, -4, ..."""
    from deepsdf_preprocess import contract, formats
    from deepsdf_preprocess.driver import _split_keeping_earlier

    data = tmp_path / "data"
    default = formats.split_path(data, "D")
    default.parent.mkdir(parents=True)
    contract.write_split(default, {"D": {"chairs": ["a", "b", "c"]}})
    smaller = {"D": {"chairs": ["b", "a"]}}
    first = _split_keeping_earlier(data, "D", default, smaller)
    contract.write_split(first, smaller)
    again = _split_keeping_earlier(data, "D", default, smaller)
    assert first == again == formats.split_path(data, "D-2")
    other = _split_keeping_earlier(data, "D", default, {"D": {"chairs": ["c"]}})
    assert other == formats.split_path(data, "D-3")

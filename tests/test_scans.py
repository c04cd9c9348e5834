"""Training data from depth scans alone: signs and distances against analytic truth, the
scan layout's doors, the driver's records, and one short path from scans to a model."""

import json
import os

import numpy as np
import pytest
import trimesh
from PIL import Image

from deepsdf.cli import main
from deepsdf_preprocess.errors import InputError, PreprocessError
from deepsdf_preprocess.normalize import to_original
from deepsdf_preprocess.pinhole import to_opengl_pose
from deepsdf_preprocess.scan_driver import preprocess_scans
from deepsdf_preprocess.scan_io import read_views
from deepsdf_preprocess.scan_sdf import ScanSamplingConfig, sample_views
from deepsdf_preprocess.virtual_scans import (CaptureConfig, capture_views, object_scale,
                                              write_views)

SAMPLING = ScanSamplingConfig(count=40_000)


def box_sdf(points, half):
    """Exact SDF of an axis-aligned box of half extents ``half`` at the origin."""
    q = np.abs(points) - half
    return (np.linalg.norm(np.maximum(q, 0), axis=1)
            + np.minimum(np.max(q, axis=1), 0))


SHAPES = {
    "sphere": (trimesh.creation.icosphere(subdivisions=5, radius=1.0),
               lambda p: np.linalg.norm(p, axis=1) - 1.0),
    "box": (trimesh.creation.box(extents=(1.0, 0.6, 0.4)),
            lambda p: box_sdf(p, np.array([0.5, 0.3, 0.2]))),
}


def scanned(tmp_path, name, views=8, **capture):
    mesh, truth = SHAPES[name]
    config = CaptureConfig(views=views, **capture)
    folder = tmp_path / name
    write_views(folder, capture_views(mesh, config, np.random.default_rng(0)))
    return folder, mesh, truth, config


def in_mesh_frame(samples, mesh, config):
    """The samples' points in the mesh's frame and their SDF in normalized units."""
    centre, metres = object_scale(mesh, config)
    world = to_original(samples.points, samples.offset, samples.scale)
    return world / metres + centre, metres * samples.scale


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_signs_and_distances_from_eight_noisy_views_match_the_truth(tmp_path, name):
    folder, mesh, truth, config = scanned(tmp_path, name)
    samples = sample_views(read_views(folder), SAMPLING, np.random.default_rng(1))
    points, to_normalized_units = in_mesh_frame(samples, mesh, config)
    true = truth(points) * to_normalized_units
    decided = np.abs(true) > 0.01
    wrong = decided & (np.sign(true) != np.sign(samples.sdf))
    assert wrong.sum() <= 0.01 * decided.sum()  # the bound: at most 1%
    band = np.abs(true) < 0.1
    error = np.abs(np.abs(samples.sdf) - np.abs(true))[band & ~wrong]
    assert np.median(error) < 0.01 and np.percentile(error, 95) < 0.03
    assert 0.2 < np.mean(samples.sdf < 0) < 0.6  # both sides, neither swamped
    assert samples.stats["coverage"] > 0.9
    assert len(samples.stats["views"]) == 8


def test_a_scan_from_one_side_fails_with_a_reason(tmp_path):
    mesh, _ = SHAPES["box"]
    views = capture_views(mesh, CaptureConfig(views=1), np.random.default_rng(0))
    write_views(tmp_path / "one", views)
    with pytest.raises(PreprocessError, match="covered .* of the surface"):
        sample_views(read_views(tmp_path / "one"), SAMPLING, np.random.default_rng(0))


def test_png_views_and_the_opengl_convention_read_as_the_npz_views(tmp_path):
    folder, *_ = scanned(tmp_path, "box", views=3)
    reference = read_views(folder)
    png = tmp_path / "png"
    png.mkdir()
    (png / "cameras.json").write_text(json.dumps({"K": reference[0].camera.K.tolist(),
                                                  "depth_scale": 1000,
                                                  "convention": "opengl"}))
    for view in reference:
        millimetres = np.round(view.depth * 1000).astype(np.uint16)
        Image.fromarray(millimetres).save(png / f"{view.name}.png")
        (png / f"{view.name}.json").write_text(json.dumps(
            {"pose": to_opengl_pose(view.camera.pose).tolist()}))
    for ours, theirs in zip(read_views(png), reference):
        np.testing.assert_allclose(ours.depth, theirs.depth, atol=5e-4)
        np.testing.assert_allclose(ours.camera.pose, theirs.camera.pose, atol=1e-12)


def test_point_clouds_with_their_sensor_positions_sign_as_depth_views(tmp_path):
    folder, mesh, truth, config = scanned(tmp_path, "box", views=8)
    clouds = tmp_path / "clouds"
    clouds.mkdir()
    for view in read_views(folder):  # each view's points and where they were seen from
        points, _ = view.camera.depth_to_points(view.depth)
        np.savetxt(clouds / f"{view.name}.xyz", points)
        (clouds / f"{view.name}.json").write_text(
            json.dumps({"sensor": view.camera.centre.tolist()}))
    samples = sample_views(read_views(clouds), SAMPLING, np.random.default_rng(1))
    points, to_normalized_units = in_mesh_frame(samples, mesh, config)
    true = truth(points) * to_normalized_units
    decided = np.abs(true) > 0.01
    assert np.count_nonzero(decided & (np.sign(true) != np.sign(samples.sdf))) \
        <= 0.01 * decided.sum()
    assert samples.stats["coverage"] > 0.6  # the pseudo-images are coarser than the points
    (clouds / "view_00.json").write_text(json.dumps({"sensor": [0.0, 0.0, 0.0]}))
    with pytest.raises(InputError, match="behind the sensor"):
        read_views(clouds)  # the origin is inside the cloud: no single viewpoint


@pytest.mark.parametrize("change, message", [
    (lambda d: dict(d, pose=np.diag([1.0, 1.0, 1.0, 2.0])), "last row"),
    (lambda d: dict(d, depth=(d["depth"] * 1000).astype(np.uint16)), "depth_scale"),
    (lambda d: dict(d, depth=d["depth"] > 0), "depth"),
    (lambda d: {k: v for k, v in d.items() if k != "K"}, "intrinsics"),
    (lambda d: dict(d, K=np.zeros((3, 3))), "K"),
    (lambda d: dict(d, mask=np.ones((2, 2))), "mask"),
    (lambda d: dict(d, convention="blender"), "convention"),
    (lambda d: dict(d, convention=np.array(["opencv", "opengl"])), "convention"),
    (lambda d: dict(d, mask=np.where(d["depth"] > 0, "1", "0")), "mask"),
    (lambda d: dict(d, depth=np.zeros_like(d["depth"])), "measures nothing"),
    (lambda d: dict(d, depth=d["depth"], mask=np.zeros(d["depth"].shape, bool)),
     "every pixel 0 after its mask"),
])
def test_a_bad_view_is_one_line_naming_its_file(tmp_path, change, message):
    folder, *_ = scanned(tmp_path, "box", views=2)
    with np.load(folder / "view_01.npz") as data:
        arrays = {name: data[name] for name in data.files}
    np.savez(folder / "view_01.npz", **change(arrays))
    with pytest.raises(InputError, match=message) as error:
        read_views(folder)
    assert "view_01.npz" in str(error.value) and "\n" not in str(error.value)


def test_views_that_disagree_on_units_or_convention_fail_with_that_reason(tmp_path):
    folder, *_ = scanned(tmp_path, "box", views=4)
    with np.load(folder / "view_02.npz") as data:
        arrays = {name: data[name] for name in data.files}
    np.savez(folder / "view_02.npz", **dict(arrays, depth=arrays["depth"] * 1000))  # mm
    with pytest.raises(PreprocessError, match="do not see one object.*depth units"):
        sample_views(read_views(folder), SAMPLING, np.random.default_rng(0))
    np.savez(folder / "view_02.npz", **dict(arrays, pose=to_opengl_pose(arrays["pose"])))
    with pytest.raises(PreprocessError, match="do not see one object.*convention"):
        sample_views(read_views(folder), SAMPLING, np.random.default_rng(0))


def test_links_ragged_json_and_hidden_files(tmp_path):
    folder, *_ = scanned(tmp_path, "box", views=3)
    (folder / "._view_00.npz").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # skipped
    assert len(read_views(folder)) == 3
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"convention": "opengl"}))
    os.symlink(outside, folder / "cameras.json")
    with pytest.raises(InputError, match="symbolic link"):
        read_views(folder)
    (folder / "cameras.json").unlink()
    (folder / "cameras.json").write_text(json.dumps({"K": [[300, 0, 160], [0, 300], [0, 0, 1]]}))
    with np.load(folder / "view_00.npz") as data:
        arrays = {name: data[name] for name in data.files if name != "K"}
    np.savez(folder / "view_00.npz", **arrays)
    with pytest.raises(InputError, match="not a numeric array") as error:
        read_views(folder)
    assert "view_00.npz" in str(error.value)


def test_the_driver_records_fails_and_skips_as_the_mesh_driver(tmp_path):
    scans = tmp_path / "scans" / "boxes"
    for index in range(3):
        mesh = trimesh.creation.box(extents=(1.0, 0.6 + 0.1 * index, 0.4))
        write_views(scans / f"box_{index}", capture_views(mesh, CaptureConfig(views=6),
                                                          np.random.default_rng(index)))
    (scans / "broken").mkdir()
    (scans / "broken" / "view_00.npz").write_bytes(b"not a zip file")
    outside = tmp_path / "elsewhere"
    write_views(outside, capture_views(SHAPES["box"][0], CaptureConfig(views=6),
                                       np.random.default_rng(9)))
    os.symlink(outside, scans / "linked")
    data = tmp_path / "data"
    config = ScanSamplingConfig(count=20_000)
    report = preprocess_scans(tmp_path / "scans", data, "scanned", config=config,
                              progress=False)
    assert report.succeeded == [f"boxes/box_{i}" for i in range(3)]
    assert "cannot read" in report.failed["boxes/broken"]
    assert "symbolic link" in report.failed["boxes/linked"]
    split = json.loads(report.split_path.read_text())
    assert split == {"scanned": {"boxes": ["box_0", "box_1", "box_2"]}}
    assert not (data / "OccupancySamples").exists()
    assert (data / "PartialScans/scanned/boxes/box_0.npz").is_file()
    manifest = json.loads(report.manifest_path.read_text())["instances"]
    assert manifest["boxes/box_0"]["coverage"] > 0.9
    assert len(manifest["boxes/box_0"]["views"]) == 6
    again = preprocess_scans(tmp_path / "scans", data, "scanned", config=config,
                             progress=False)
    assert again.skipped == report.succeeded
    view = scans / "box_1" / "view_00.npz"
    touched = scans / "box_2" / "view_00.npz"  # a new time, the same bytes: still done
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    arrays = dict(np.load(view))
    arrays["depth"] = np.where(arrays["depth"] > 0, arrays["depth"] * 1.001, 0)  # a new take
    np.savez(view, **arrays)
    third = preprocess_scans(tmp_path / "scans", data, "scanned", config=config,
                             progress=False)
    assert "boxes/box_1" not in third.skipped and "boxes/box_0" in third.skipped
    assert "boxes/box_2" in third.skipped


def test_scans_to_a_trained_model_and_its_reconstructions(tmp_path, monkeypatch, capsys):
    """The short path CI runs: generate scans, preprocess them, a recipe, train, reconstruct
    and evaluate the held-out scanned shapes."""
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "scans", "--category", "chairs", "--count", "5", "--style",
                 "scans", "--views", "8"]) == 0
    assert main(["preprocess-scans", "scans", "data", "--dataset", "scanned", "--samples",
                 "30000", "--no-progress"]) == 0
    assert main(["split", "data/splits/scanned.json", "--dataset", "scanned", "--train",
                 "train.json", "--test", "test.json"]) == 0
    assert main(["new", "exp", "--data", "data", "--train", "train.json", "--test",
                 "test.json", "--steps", "40", "--model", "small"]) == 0
    assert main(["train", "exp", "--no-progress", "--device", "cpu"]) == 0
    assert main(["reconstruct", "exp", "--resolution", "40", "--steps", "8", "--no-progress",
                 "--device", "cpu"]) == 0
    assert main(["evaluate", "exp"]) == 0
    summary = json.loads((tmp_path / "exp/Evaluation/latest/summary.json").read_text())
    assert summary["shapes"] == 1 and summary["reconstruction"]["chamfer"]["mean"] > 0

"""The data side's classes of the third hostile probe (docs/reliability.md): ``generate``
writing through links and over users' files, ``--split-out`` replacing any file, and the doors
of ``preprocess-scans`` (depth scales, duplicate views, booleans, messages naming the real
cause)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import trimesh

from deepsdf.cli import main
from deepsdf_preprocess import validate
from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess.scan_driver import preprocess_scans
from deepsdf_preprocess.scan_io import discover_scans, read_views
from deepsdf_preprocess.virtual_scans import CaptureConfig, capture_views, write_views


def _one_line(capsys, code, *words):
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert all(word in err for word in words), err
    return err


def _tree(root):
    """Every file below ``root`` with its content and modification time."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


STYLES = {"closed": [], "soup": ["--style", "soup"], "scans": ["--style", "scans", "--views", "2"]}


# ------------------------------------------------------------------ generate: links, users' files

@pytest.mark.parametrize("style", sorted(STYLES))
def test_generate_refuses_a_link_out_of_its_folder(tmp_path, style, capsys):
    out, outside = tmp_path / "g", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    os.symlink(outside, out / "chairs")
    code = main(["generate", str(out), "--count", "1", *STYLES[style]])
    _one_line(capsys, code, "symbolic link", "outside the output folder")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("style", ["closed", "soup"])
def test_generate_refuses_to_replace_a_users_file_and_writes_nothing(tmp_path, style, capsys):
    out = tmp_path / "g3"
    (out / "chairs").mkdir(parents=True)
    mine = out / "chairs" / "chairs_0001.obj"
    mine.write_text("mine")
    code = main(["generate", str(out), "--count", "2", *STYLES[style]])
    _one_line(capsys, code, "chairs_0001.obj", "exists and differs", "empty folder")
    assert mine.read_text() == "mine"
    assert sorted(p.name for p in (out / "chairs").iterdir()) == ["chairs_0001.obj"]


def test_generate_scans_refuses_to_replace_a_foreign_view(tmp_path, capsys):
    out = tmp_path / "g"
    folder = out / "chairs" / "chairs_0000"
    folder.mkdir(parents=True)
    np.savez(folder / "view_01.npz", depth=np.ones((4, 4)), K=np.eye(3), pose=np.eye(4))
    before = (folder / "view_01.npz").read_bytes()
    code = main(["generate", str(out), "--count", "1", *STYLES["scans"]])
    _one_line(capsys, code, "view_01.npz", "exists and differs")
    assert (folder / "view_01.npz").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["view_01.npz"]


@pytest.mark.parametrize("style", sorted(STYLES))
def test_generate_twice_is_idempotent_and_keeps_the_files(tmp_path, style, capsys):
    out = tmp_path / "g"
    assert main(["generate", str(out), "--count", "3", *STYLES[style]]) == 0
    first = _tree(out)
    assert first
    assert main(["generate", str(out), "--count", "3", *STYLES[style]]) == 0
    assert _tree(out) == first  # same content, not even rewritten
    # a run that lost a file (killed) completes it, the others kept
    lost = sorted(out.rglob("*_0001*"))[-1] if style != "scans" else \
        out / "chairs" / "chairs_0001" / "view_01.npz"
    lost.unlink()
    assert main(["generate", str(out), "--count", "3", *STYLES[style]]) == 0
    again = _tree(out)
    assert {k: v[0] for k, v in again.items()} == {k: v[0] for k, v in first.items()}


def test_generate_scans_with_absurd_views_is_refused_at_once(tmp_path, capsys, monkeypatch):
    code = main(["generate", str(tmp_path / "g"), "--style", "scans", "--views", "100000",
                 "--count", "1"])
    _one_line(capsys, code, "views", "at most")
    assert not (tmp_path / "g").exists()
    # within the bound, the memory estimate still refuses what does not fit
    monkeypatch.setattr(validate, "available_memory", lambda: 2 ** 20)
    code = main(["generate", str(tmp_path / "g"), "--style", "scans", "--views", "8",
                 "--count", "1"])
    _one_line(capsys, code, "memory", "fewer views")
    assert not (tmp_path / "g").exists()


# ------------------------------------------------------------------ --split-out

def _scan_dir(tmp_path):
    views = capture_views(trimesh.creation.box(extents=(1.0, 0.6, 0.4)),
                          CaptureConfig(views=2, width=64, height=48),
                          np.random.default_rng(0))
    write_views(tmp_path / "scans" / "boxes" / "b0", views)
    return tmp_path / "scans"


def _mesh_dir(tmp_path):
    from deepsdf_preprocess.procedural import write_shapes

    write_shapes(tmp_path / "meshes", "chairs", 1, seed=1)
    return tmp_path / "meshes"


@pytest.mark.parametrize("command", ["preprocess", "preprocess-scans"])
@pytest.mark.parametrize("target", ["notes", "view", "folder"])
def test_split_out_refuses_a_file_that_is_not_a_split(tmp_path, command, target, capsys):
    source = _mesh_dir(tmp_path) if command == "preprocess" else _scan_dir(tmp_path)
    if target == "notes":
        path = tmp_path / "notes.txt"
        path.write_text("my notes\n")
    elif target == "view":
        path = tmp_path / "scans" / "boxes" / "b0" / "view_00.npz" \
            if command == "preprocess-scans" else tmp_path / "view_00.npz"
        if not path.exists():
            np.savez(path, depth=np.ones((2, 2)))
    else:
        path = tmp_path / "a_folder"
        path.mkdir()
    before = path.read_bytes() if path.is_file() else None
    code = main([command, str(source), str(tmp_path / "data"), "--dataset", "d",
                 "--split-out", str(path), "--no-progress"])
    _one_line(capsys, code, "split output", path.name)
    assert (path.read_bytes() if path.is_file() else None) == before
    assert not (tmp_path / "data").exists()  # refused before any work


@pytest.mark.parametrize("command", ["preprocess", "preprocess-scans"])
def test_split_out_refuses_its_own_split_input(tmp_path, command, capsys):
    source = _mesh_dir(tmp_path) if command == "preprocess" else _scan_dir(tmp_path)
    split = tmp_path / "s.json"
    listed = {"chairs": ["chairs_0000", "gone"]} if command == "preprocess" \
        else {"boxes": ["b0", "gone"]}
    split.write_text(json.dumps({"d": listed}))
    before = split.read_bytes()
    code = main([command, str(source), str(tmp_path / "data"), "--dataset", "d", "--split",
                 str(split), "--split-out", str(split), "--no-progress"])
    _one_line(capsys, code, "split read as input")
    assert split.read_bytes() == before
    # also through a link to it
    os.symlink(split, tmp_path / "alias.json")
    code = main([command, str(source), str(tmp_path / "data"), "--dataset", "d", "--split",
                 str(split), "--split-out", str(tmp_path / "alias.json"), "--no-progress"])
    _one_line(capsys, code, "split read as input")


def test_split_out_may_replace_a_split_file(tmp_path):
    from deepsdf_preprocess.splits import check_split_out

    old = tmp_path / "old.json"
    old.write_text(json.dumps({"d": {"c": ["a"]}}))
    assert check_split_out(old) == old
    assert check_split_out(tmp_path / "new.json") == tmp_path / "new.json"
    with pytest.raises(InputError, match="split read as input"):
        check_split_out(old, source=old)


def test_split_out_keeps_a_split_that_lists_other_instances(tmp_path):
    """A named split file holding another list (a train split, say) is never replaced: this
    run's split goes beside it as <name>-2.json; the same list is replaced in place."""
    scans = _scan_dir(tmp_path)
    out = tmp_path / "out.json"
    out.write_text(json.dumps({"d": {"boxes": ["old"]}}))
    report = preprocess_scans(scans, tmp_path / "data", "d", split_out=out, progress=False)
    assert json.loads(out.read_text()) == {"d": {"boxes": ["old"]}}
    assert report.split_path == tmp_path / "out-2.json"
    written = json.loads(report.split_path.read_text())
    listed = [f"{c}/{i}" for c, items in written["d"].items() for i in items]
    assert listed == report.succeeded
    again = preprocess_scans(scans, tmp_path / "data", "d", split_out=report.split_path,
                             progress=False)
    assert again.split_path == report.split_path  # the same list: replaced in place


# ------------------------------------------------------------------ preprocess-scans doors

@pytest.fixture
def scan(tmp_path):
    views = capture_views(trimesh.creation.box(extents=(1.0, 0.6, 0.4)),
                          CaptureConfig(views=2, width=64, height=48),
                          np.random.default_rng(0))
    folder = tmp_path / "scans" / "boxes" / "b0"
    write_views(folder, views)
    return folder, views


def _refused(folder, *words):
    with pytest.raises(InputError) as error:
        read_views(folder)
    message = str(error.value)
    assert "\n" not in message and all(word in message for word in words), message
    return message


@pytest.mark.parametrize("scale", [1e-300, 1e300, 0, -1, True, "1000"])
def test_a_depth_scale_out_of_range_is_refused_naming_file_and_field(scan, scale):
    folder, _ = scan
    (folder / "cameras.json").write_text(json.dumps({"depth_scale": scale}))
    _refused(folder, "cameras.json", "depth_scale")


def test_a_depth_scale_of_1e_minus_300_fails_the_instance_with_that_reason(scan, tmp_path):
    folder, _ = scan
    (folder / "cameras.json").write_text(json.dumps({"depth_scale": 1e-300}))
    report = preprocess_scans(tmp_path / "scans", tmp_path / "data", "d", progress=False)
    reason = report.failed["boxes/b0"]
    assert "depth_scale" in reason and "cameras.json" in reason and "IndexError" not in reason


def test_an_npz_depth_scale_out_of_range_is_refused(scan):
    folder, views = scan
    np.savez(folder / "view_00.npz", depth=views[0]["depth"], K=views[0]["K"],
             pose=views[0]["pose"], depth_scale=np.array(1e-300))
    _refused(folder, "view_00.npz", "depth_scale")


def test_two_views_of_one_name_are_ambiguous(scan):
    from PIL import Image

    folder, views = scan
    Image.fromarray(np.full((48, 64), 700, np.uint16)).save(folder / "view_00.png")
    (folder / "view_00.json").write_text(json.dumps({"pose": views[0]["pose"].tolist(),
                                                     "K": views[0]["K"].tolist(),
                                                     "depth_scale": 1000}))
    _refused(folder, "view_00.npz", "view_00.png", "ambiguous")


@pytest.mark.parametrize("field", ["K", "pose", "sensor", "depth_scale"])
def test_booleans_are_not_numbers(scan, field):
    from PIL import Image

    folder, views = scan
    K = views[0]["K"].tolist()
    K[2] = [False, False, True]
    pose = views[0]["pose"].tolist()
    pose[3] = [False, False, False, True]
    if field == "K":
        for path in folder.glob("*.npz"):
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files if k != "K"}
            np.savez(path, **arrays)
        (folder / "cameras.json").write_text(json.dumps({"K": K}))
        _refused(folder, "cameras.json", "K", "true/false")
    elif field in ("pose", "depth_scale"):
        for path in folder.glob("*.npz"):
            path.unlink()
        Image.fromarray(np.full((48, 64), 700, np.uint16)).save(folder / "view_00.png")
        sidecar = {"pose": views[0]["pose"].tolist(), "K": views[0]["K"].tolist(),
                   "depth_scale": 1000}
        sidecar[field] = pose if field == "pose" else True
        (folder / "view_00.json").write_text(json.dumps(sidecar))
        _refused(folder, "view_00.json", field)
    else:
        for path in folder.glob("*.npz"):
            path.unlink()
        np.savetxt(folder / "c.xyz", np.random.default_rng(0).normal(size=(100, 3)))
        (folder / "c.json").write_text(json.dumps({"sensor": [True, 0, 5]}))
        _refused(folder, "c.json", "sensor", "true/false")


def test_messages_name_the_real_cause(scan, tmp_path):
    from PIL import Image

    folder, views = scan
    (folder / "cameras.json").mkdir()
    _refused(folder, "cameras.json", "is a folder")
    (folder / "cameras.json").rmdir()

    np.savez(folder / "view_00.npz", depth=np.zeros((0, 320)), K=views[0]["K"],
             pose=views[0]["pose"])
    message = _refused(folder, "view_00.npz", "empty")
    assert "2-D" not in message

    for path in folder.glob("*.npz"):
        path.unlink()
    Image.fromarray(np.full((48, 64), 700, np.uint16)).save(folder / "view_00.png")
    (folder / "view_00.json").mkdir()
    _refused(folder, "view_00.json", "is a folder, not a JSON sidecar")
    (folder / "view_00.json").rmdir()
    (folder / "view_00.png").unlink()

    points = np.random.default_rng(0).normal(size=(100, 3))
    np.savetxt(folder / "c.xyz", points)
    (folder / "c.json").write_text(json.dumps({"sensor": [1e12, 0, 0]}))
    message = _refused(folder, "c.json", "sensor position", "implausibly far")
    assert "fx" not in message


def test_a_link_to_another_instance_inside_scan_dir_says_links_are_not_followed(scan, tmp_path):
    folder, _ = scan
    os.symlink(folder, folder.parent / "b1")
    problems = {job.key: job.problem for job in discover_scans(tmp_path / "scans")}
    assert problems["boxes/b0"] is None
    assert "links are not followed in scan folders" in problems["boxes/b1"]
    assert "inside SCAN_DIR" not in problems["boxes/b1"]

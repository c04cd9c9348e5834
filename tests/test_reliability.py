"""Every example of the reliability issue's classes, each a test (docs/reliability.md's tally):
inputs trusted without checking what they mean, stale or foreign outputs trusted, links
followed out, a lost split, tracebacks on everyday mistakes, runaway memory."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import TINY_SPECS, make_experiment
from deepsdf.experiment import checkpoint_path, load_specs
from deepsdf.checkpoint import load_checkpoint
from deepsdf.cli import main

from deepsdf.experiment import Experiment
from deepsdf.train import Trainer
from deepsdf_preprocess import formats, manifest
from deepsdf_preprocess.errors import InputError


@pytest.fixture
def experiment(tiny_data, tmp_path):
    data, split = tiny_data
    return make_experiment(tmp_path / "exp", data, split, NumEpochs=4, SnapshotFrequency=2,
                           SamplesPerScene=512)


def _train(experiment, epochs=1, **options):
    Trainer(experiment, load_specs(experiment), device="cpu", progress=False).train(
        epochs=epochs, **options)


def _instances(experiment) -> list:
    split = json.loads(Path(load_specs(experiment).train_split).read_text())
    return [f"gen/chairs/{name}" for name in split["gen"]["chairs"]]


def _one_line(capsys, code, *words):
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and all(word in err for word in words), err
    return err


# ------------------------------------------------------------------ silently wrong: meaning

@pytest.mark.parametrize("scale", [0.0, -2.0, np.nan, np.inf])
def test_a_normalization_with_a_bad_scale_is_refused(tmp_path, scale, capsys):
    path = tmp_path / "n.npz"
    np.savez(path, offset=np.zeros(3), scale=np.array([scale]))
    with pytest.raises(InputError, match="scale.*positive finite"):
        formats.read_normalization(path)
    code = main(["complete", str(tmp_path / "exp"), "--out", str(tmp_path / "out"),
                 "--points", str(tmp_path / "p.npy"), "--sensor", "0", "0", "2",
                 "--normalization", str(path)])
    assert code == 2 and "Traceback" not in capsys.readouterr().err


def test_a_pose_whose_last_row_is_not_0001_is_refused(tmp_path):
    from deepsdf.frames import read_pose

    pose = np.eye(4)
    pose[3, 3] = 2
    np.savetxt(tmp_path / "pose.txt", pose)
    with pytest.raises(InputError, match="last row"):
        read_pose(tmp_path / "pose.txt")


def test_a_boolean_depth_image_is_refused(tmp_path):
    from deepsdf.sensing import load_depth

    np.save(tmp_path / "d.npy", np.ones((4, 4), dtype=bool))
    with pytest.raises(InputError, match="bool values; numbers are needed"):
        load_depth(tmp_path / "d.npy")


def test_a_split_with_a_repeated_entry_is_refused(tmp_path):
    from deepsdf_preprocess.contract import read_split

    path = tmp_path / "s.json"
    path.write_text(json.dumps({"gen": {"chairs": ["a", "b", "a"]}}))
    with pytest.raises(InputError, match="more than once: a"):
        read_split(path)
    path.write_text('{"gen": {"chairs": ["a"], "chairs": ["b"]}}')
    with pytest.raises(InputError, match="more than once: chairs"):
        read_split(path)


def test_a_singular_K_is_refused(tmp_path):
    from deepsdf.frames import read_intrinsics

    np.savetxt(tmp_path / "K.txt", np.diag([0.0, 500.0, 1.0]))
    with pytest.raises(InputError, match="focal lengths"):
        read_intrinsics(tmp_path / "K.txt")


# ------------------------------------------------------------------ silently wrong: stale

def test_files_at_output_paths_without_a_record_are_redone(tmp_path):
    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.procedural import write_shapes
    from conftest import SMALL_CONFIG
    from dataclasses import replace

    write_shapes(tmp_path / "meshes", "chairs", 1, seed=3)
    key = next((tmp_path / "meshes" / "chairs").iterdir()).stem
    paths = formats.instance_outputs(tmp_path / "data", formats.InstanceKey("gen", "chairs", key))
    for path in paths.values():  # four 0-byte files (or an earlier tool's) at the outputs
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    config = replace(SMALL_CONFIG, sampling=replace(SMALL_CONFIG.sampling, count=20_000))
    report = preprocess_dataset(tmp_path / "meshes", tmp_path / "data", "gen", config=config,
                                backend="raycast", progress=False)
    assert report.skipped == [] and report.succeeded == [f"chairs/{key}"]
    assert all(path.stat().st_size > 0 for path in paths.values())
    # unchanged files are now trusted; a file changed since is redone and left out meanwhile
    again = preprocess_dataset(tmp_path / "meshes", tmp_path / "data", "gen", config=config,
                               backend="raycast", progress=False)
    assert again.skipped == [f"chairs/{key}"]
    paths[formats.SURFACE_SAMPLES].write_bytes(b"")
    from deepsdf_preprocess.driver import merge_dataset

    merged = merge_dataset(tmp_path / "data", "gen", {f"chairs/{key}"})
    assert merged.succeeded == []
    third = preprocess_dataset(tmp_path / "meshes", tmp_path / "data", "gen", config=config,
                               backend="raycast", progress=False)
    assert third.skipped == [] and third.succeeded == [f"chairs/{key}"]


def test_reconstructions_of_an_earlier_checkpoint_are_not_taken_as_latest(experiment, capsys):
    split = load_specs(experiment).train_split
    _train(experiment, epochs=2)
    args = ["reconstruct", str(experiment), "--split", split, "--steps", "2", "--resolution",
            "16", "--no-progress"]
    assert main(args) == 0
    exp = Experiment(experiment)
    key = _instances(experiment)[0]
    assert exp.reconstruction_stale(key) is None
    _train(experiment, epochs=1, resume=True)  # latest.pt is now epoch 3
    exp = Experiment(experiment)
    assert "epoch 2; now epoch 3" in exp.reconstruction_stale(key)
    # evaluate refuses the stale ones; --skip redoes them
    assert main(["evaluate", str(experiment), "--split", split, "--no-retrieval"]) == 2
    assert "stale" in capsys.readouterr().err
    assert main(args + ["--skip"]) == 0
    assert Experiment(experiment).reconstruction_stale(key) is None
    capsys.readouterr()
    assert main(args + ["--skip"]) == 0
    assert "(3 skipped" in capsys.readouterr().out


def test_inference_reads_the_data_source_of_specs_json(experiment, tmp_path):
    _train(experiment, epochs=1)
    specs = json.loads((experiment / "specs.json").read_text())
    specs["DataSource"] = str(tmp_path / "moved")
    specs["TestSplit"] = str(tmp_path / "test.json")
    (experiment / "specs.json").write_text(json.dumps(specs))
    exp = Experiment(experiment)
    assert exp.data_dir == tmp_path / "moved"
    with pytest.raises(InputError, match="test.json does not exist"):
        exp.split()


# ------------------------------------------------------------------ escapes

def test_a_journal_folder_linked_out_is_refused_and_nothing_outside_changes(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    for name in ("a-1.jsonl", "b-2.jsonl"):
        (outside / name).write_text('{"key": "c/forged", "record": {"status": "ok"}}\n')
    (data / "manifests").mkdir(parents=True)
    (data / "manifests" / "ds.journal").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match="symbolic link"):
        manifest.merge_journals(data, "ds", forget_all=True)
    assert sorted(p.name for p in outside.iterdir()) == ["a-1.jsonl", "b-2.jsonl"]


@pytest.mark.parametrize("name", ["ds.lock", "ds.active", "ds.json"])
def test_links_at_the_lock_and_manifest_paths_are_not_written_through(tmp_path, name):
    data, outside = tmp_path / "data", tmp_path / "outside.txt"
    (data / "manifests").mkdir(parents=True)
    (data / "manifests" / name).symlink_to(outside)
    with pytest.raises(InputError, match="symbolic link"):
        with manifest.active_run(data, "ds"):
            manifest.merge_journals(data, "ds")
    assert not outside.exists()


def test_a_journal_file_linked_out_is_not_appended_to(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside.jsonl"
    outside.write_text("")
    journal = manifest.journal_path(data, "ds")
    journal.parent.mkdir(parents=True)
    journal.symlink_to(outside)
    with pytest.raises(InputError, match="symbolic link"):
        manifest.append_record(journal, "c/a", {"status": "ok"})
    assert outside.read_text() == ""


@pytest.mark.parametrize("folder", ["TensorBoard", "Checkpoints"])
def test_experiment_folders_linked_out_are_refused(experiment, tmp_path, folder, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "1.pt").write_text("foreign")
    (experiment / folder).symlink_to(outside, target_is_directory=True)
    code = main(["train", str(experiment), "--epochs", "1", "--no-progress", "--overwrite"])
    _one_line(capsys, code, "symbolic link", "refusing to follow")
    assert sorted(p.name for p in outside.iterdir()) == ["1.pt"]


# ------------------------------------------------------------------ lost

def test_split_refuses_train_and_test_in_one_file(tmp_path, capsys):
    from deepsdf_preprocess.procedural import write_shapes

    write_shapes(tmp_path / "meshes", "chairs", 5, seed=1)
    same = tmp_path / "x.json"
    code = main(["split", str(tmp_path / "meshes"), "--dataset", "gen", "--train", str(same),
                 "--test", str(same)])
    _one_line(capsys, code, "same file")
    assert not same.exists()
    train, test = tmp_path / "train.json", tmp_path / "test.json"
    argv = ["split", str(tmp_path / "meshes"), "--dataset", "gen", "--train", str(train),
            "--test", str(test)]
    assert main(argv) == 0 and main(argv) == 0  # the same split again is fine
    assert main(argv + ["--test-fraction", "0.5"]) == 2
    assert main(["split", str(train), "--dataset", "gen", "--train", str(train), "--test",
                 str(tmp_path / "t2.json")]) == 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(
    st.text(max_size=200),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                 max_leaves=8).map(json.dumps)))
@example(content="\r").via("CI found it: a lone carriage return must come back as written")
def test_split_overwrite_replaces_only_split_files(tmp_path, content, capsys):
    """`split --overwrite` pointed at any file that is not a split file (a manifest, notes,
    any JSON that is not {dataset: {class: [names]}}) refuses it and leaves it as it was."""
    from deepsdf_preprocess.contract import read_split

    try:
        read_split(_write(tmp_path / "probe.json", content))
    except InputError:
        pass
    else:
        return  # a split file (an empty one too): --overwrite may replace it
    meshes = _split_meshes(tmp_path)
    target = _write(tmp_path / "notes.json", content)
    code = main(["split", str(meshes), "--dataset", "gen", "--train", str(target), "--test",
                 str(tmp_path / "test.json"), "--overwrite"])
    _one_line(capsys, code, "not a split file")
    # bytes, not text: reading text back would turn a lone "\r" into "\n"
    assert target.read_bytes() == content.encode() and not (tmp_path / "test.json").exists()


def test_split_overwrite_spares_the_manifest_and_folders_and_replaces_a_split(tmp_path, capsys):
    from deepsdf_preprocess.procedural import write_shapes

    write_shapes(tmp_path / "meshes", "chairs", 4, seed=1)
    manifest = tmp_path / "manifest.json"
    record = json.dumps({"dataset": "gen", "instances": {"chairs/chairs_0000": {"ok": True}}})
    manifest.write_text(record)
    (tmp_path / "folder.json").mkdir()
    base = ["split", str(tmp_path / "meshes"), "--dataset", "gen", "--overwrite"]
    for target in (manifest, tmp_path / "folder.json"):
        code = main(base + ["--train", str(target), "--test", str(tmp_path / "t.json")])
        _one_line(capsys, code, "not a split file")
    assert manifest.read_text() == record and (tmp_path / "folder.json").is_dir()
    train, test = tmp_path / "train.json", tmp_path / "test.json"
    assert main(base + ["--train", str(train), "--test", str(test)]) == 0
    assert main(base + ["--train", str(train), "--test", str(test), "--test-fraction",
                        "0.5"]) == 0  # another split over a split file: what --overwrite asks


def _write(path, content):
    path.write_bytes(content.encode())
    return path


def _split_meshes(tmp_path):
    meshes = tmp_path / "meshes"
    if not meshes.is_dir():
        for name in ("a", "b", "c"):
            (meshes / "cls").mkdir(parents=True, exist_ok=True)
            (meshes / "cls" / f"{name}.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    return meshes


# ------------------------------------------------------------------ everyday mistakes

@pytest.mark.parametrize("device", ["cuda", "cuda:3", "mps", "tpu", "gpu0"])
def test_a_device_this_machine_lacks_is_one_line_naming_the_device(experiment, device, capsys):
    if device.startswith("cuda") and torch.cuda.device_count() > 3:
        pytest.skip("this machine has the device")
    _train(experiment, epochs=1)
    for argv in (["mesh", str(experiment), str(experiment / "m.ply"), "--instance",
                  _instances(experiment)[0]],
                 ["reconstruct", str(experiment), "--steps", "1"],
                 ["train", str(experiment), "--resume", "--epochs", "1"]):
        code = main(argv + ["--device", device])
        err = _one_line(capsys, code, f"device {device!r}")
        assert "checkpoint" not in err


def test_a_data_dir_that_is_a_file_or_read_only_is_one_line(tmp_path, capsys):
    from deepsdf_preprocess.procedural import write_shapes

    write_shapes(tmp_path / "meshes", "chairs", 1, seed=1)
    (tmp_path / "file").write_text("")
    code = main(["preprocess", str(tmp_path / "meshes"), str(tmp_path / "file"), "--dataset",
                 "gen", "--no-progress", "--backend", "raycast"])
    _one_line(capsys, code, "is not a folder")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        code = main(["preprocess", str(tmp_path / "meshes"), str(locked), "--dataset", "gen",
                     "--no-progress", "--backend", "raycast"])
        _one_line(capsys, code, "cannot")


def test_outputs_where_a_file_stands_are_one_line(experiment, tmp_path, capsys):
    _train(experiment, epochs=1)
    (tmp_path / "out").write_text("")
    first, second = _instances(experiment)[:2]
    code = main(["interpolate", str(experiment), "--from", first, "--to", second, "--out",
                 str(tmp_path / "out"), "--steps", "2", "--resolution", "16"])
    _one_line(capsys, code, "is not a folder")
    (experiment / "PackedSamples").rename(experiment / "PackedSamples.old") \
        if (experiment / "PackedSamples").exists() else None
    (experiment / "PackedSamples").write_text("")
    code = main(["train", str(experiment), "--resume", "--epochs", "1", "--no-progress"])
    _one_line(capsys, code, "PackedSamples")


def test_checkpoints_or_tensorboard_paths_that_are_files_are_one_line(experiment, capsys):
    (experiment / "TensorBoard").write_text("")
    code = main(["train", str(experiment), "--epochs", "1", "--no-progress"])
    _one_line(capsys, code, "TensorBoard")
    (experiment / "TensorBoard").unlink()
    (experiment / "Checkpoints").write_text("")
    code = main(["train", str(experiment), "--epochs", "1", "--no-progress"])
    _one_line(capsys, code, "Checkpoints")


def test_a_negative_screen_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["reconstruct", "E", "--screen", "-5"])
    assert exit_.value.code == 2 and "at least 0" in capsys.readouterr().err


def test_damaged_truth_files_in_evaluate_are_one_line(trained, tmp_path, capsys):
    import shutil

    experiment = tmp_path / "exp"
    shutil.copytree(trained[0], experiment, ignore=shutil.ignore_patterns(
        "Reconstructions", "Evaluation", "PackedSamples"))
    split = load_specs(experiment).train_split
    data = Path(load_specs(experiment).data_source)
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    assert main(["reconstruct", str(experiment), "--split", split, "--steps", "3",
                 "--resolution", "24", "--no-progress", "--data", str(copy)]) == 0
    surface = sorted((copy / "SurfaceSamples").rglob("*.ply"))[0]
    intact = surface.read_bytes()
    surface.write_bytes(intact[:200])
    code = main(["evaluate", str(experiment), "--split", split, "--data", str(copy),
                 "--no-retrieval"])
    _one_line(capsys, code, surface.name)
    surface.write_bytes(intact)
    occupancy = sorted((copy / "OccupancySamples").rglob("*.npz"))[0]
    occupancy.write_bytes(b"PK\x03\x04 damaged")
    code = main(["evaluate", str(experiment), "--split", split, "--data", str(copy),
                 "--no-retrieval"])
    _one_line(capsys, code, occupancy.name)


def test_a_manifest_that_is_a_json_list_is_one_line(tmp_path, capsys):
    from deepsdf_preprocess.procedural import write_shapes

    write_shapes(tmp_path / "meshes", "chairs", 1, seed=1)
    (tmp_path / "data" / "manifests").mkdir(parents=True)
    (tmp_path / "data" / "manifests" / "gen.json").write_text("[1, 2]")
    code = main(["preprocess", str(tmp_path / "meshes"), str(tmp_path / "data"), "--dataset",
                 "gen", "--no-progress", "--backend", "raycast"])
    _one_line(capsys, code, "is not a manifest")
    assert (tmp_path / "data" / "manifests" / "gen.json").read_text() == "[1, 2]"


# ------------------------------------------------------------------ runaway memory

def test_a_huge_grid_or_code_table_is_refused_before_allocating(experiment, monkeypatch,
                                                                 capsys):
    from deepsdf import mesh
    from deepsdf_preprocess import validate

    monkeypatch.setattr(mesh, "available_memory", lambda: 20 * 2 ** 30)
    monkeypatch.setattr(validate, "available_memory", lambda: 20 * 2 ** 30)
    _train(experiment, epochs=1)
    code = main(["mesh", str(experiment), str(experiment / "m.ply"), "--instance",
                 _instances(experiment)[0], "--resolution", "1024"])
    _one_line(capsys, code, "resolution 1024", "at most")
    assert not (experiment / "m.ply").exists()
    specs = json.loads((experiment / "specs.json").read_text())
    specs["CodeLength"] = 10 ** 9
    (experiment / "specs.json").write_text(json.dumps(specs))
    code = main(["train", str(experiment), "--epochs", "1", "--no-progress", "--overwrite"])
    _one_line(capsys, code, "CodeLength")
    assert load_checkpoint(checkpoint_path(experiment))["epoch"] == 1


# ------------------------------------------------------------------ the hostile probe's finds

def test_a_changed_source_mesh_is_preprocessed_again(tmp_path):
    import shutil
    from dataclasses import replace

    from conftest import SMALL_CONFIG
    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.procedural import write_shapes

    write_shapes(tmp_path / "a", "chairs", 2, seed=3)
    write_shapes(tmp_path / "b", "chairs", 2, seed=4)  # the same names, other shapes
    config = replace(SMALL_CONFIG, sampling=replace(SMALL_CONFIG.sampling, count=20_000))

    def run(meshes):
        return preprocess_dataset(meshes, tmp_path / "data", "gen", config=config,
                                  backend="raycast", progress=False)

    assert run(tmp_path / "a").skipped == []
    assert len(run(tmp_path / "a").skipped) == 2
    assert run(tmp_path / "b").skipped == []  # another folder's meshes under the same names
    first, second = sorted((tmp_path / "b" / "chairs").glob("*.obj"))
    shutil.copyfile(second, first)  # a mesh replaced in place
    assert run(tmp_path / "b").skipped == [f"chairs/{second.stem}"]


def test_reconstructions_fitted_to_other_samples_are_stale(experiment, tmp_path):
    import shutil

    split = load_specs(experiment).train_split
    _train(experiment, epochs=1)
    assert main(["reconstruct", str(experiment), "--split", split, "--steps", "1",
                 "--resolution", "16", "--no-progress"]) == 0
    key = _instances(experiment)[0]
    copy = tmp_path / "other"
    shutil.copytree(load_specs(experiment).data_source, copy)
    assert Experiment(experiment).reconstruction_stale(key) is None
    # an identical copy is the same samples (provenance by content: tests/test_provenance.py)
    assert Experiment(experiment, data=copy).reconstruction_stale(key) is None
    samples = copy / "SdfSamples" / f"{key}.npz"
    arrays = dict(np.load(samples))
    arrays["neg"][0, 3] -= 0.125
    np.savez(samples, **arrays)
    assert "other SdfSamples" in Experiment(experiment, data=copy).reconstruction_stale(key)


def test_interpolation_leaves_no_step_of_an_earlier_run(experiment, tmp_path):
    _train(experiment, epochs=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.ply").write_text("mine")
    first, second = _instances(experiment)[:2]

    def interpolate(folder, steps):
        return main(["interpolate", str(experiment), "--from", first, "--to", second, "--out",
                     str(folder), "--steps", str(steps), "--resolution", "16", "--size", "32"])

    assert interpolate(out, 2) == 0 and (out / ".deepsdf-interpolation").is_file()
    (out / "step_05.ply").write_text("a step of that earlier run")  # the marker covers it
    assert interpolate(out, 2) == 0
    assert not (out / "step_05.ply").exists() and (out / "notes.ply").read_text() == "mine"
    # Step meshes this command did not write (a user's own step_07.ply) are never deleted.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "step_07.ply").write_text("my mesh")
    assert interpolate(foreign, 2) == 2
    assert (foreign / "step_07.ply").read_text() == "my mesh"


def test_scales_and_focal_lengths_that_overflow_are_refused(tmp_path):
    from deepsdf.frames import read_intrinsics

    path = tmp_path / "n.npz"
    np.savez(path, offset=np.zeros(3), scale=np.array([1e300]))
    from deepsdf.frames import Similarity
    from deepsdf.sensing import Observation

    seen = Observation(np.ones((3, 3)), np.ones((3, 3)) / np.sqrt(3), np.full((3, 3), 2.0))
    with pytest.raises(InputError, match="unit sphere"):
        seen.transformed(Similarity.from_normalization(*formats.read_normalization(path)))
    np.savetxt(tmp_path / "K.txt", np.array([[1e300, 0, 1], [0, 1e300, 1], [0, 0, 1]]))
    with pytest.raises(InputError, match="focal lengths must lie in"):
        read_intrinsics(tmp_path / "K.txt")
    np.save(tmp_path / "n.npy", np.ones(4))
    with pytest.raises(InputError, match="single array"):
        formats.read_normalization(tmp_path / "n.npy")


@pytest.mark.parametrize("mode", ["L", "P", "RGB"])
def test_a_picture_png_is_not_read_as_depth(tmp_path, mode):
    from PIL import Image

    from deepsdf.sensing import load_depth

    Image.new(mode, (4, 4)).save(tmp_path / "d.png")
    with pytest.raises(InputError, match="picture, not a depth image"):
        load_depth(tmp_path / "d.png", depth_scale=1000)


def test_a_depth_scale_applies_to_npy_depths(tmp_path):
    from deepsdf.sensing import load_depth

    np.save(tmp_path / "d.npy", np.full((2, 2), 1500, dtype=np.uint16))
    assert np.allclose(load_depth(tmp_path / "d.npy", depth_scale=1000), 1.5)
    assert np.allclose(load_depth(tmp_path / "d.npy"), 1500)


def test_constraint_rows_and_pictures_beyond_memory_are_refused():
    from deepsdf.constraints import ConstraintConfig, sdf_constraints
    from deepsdf.pictures import default_camera, render_meshes
    from deepsdf.sensing import Observation

    points = np.random.default_rng(0).normal(size=(1000, 3)) * 0.3
    seen = Observation(points, points / np.linalg.norm(points, axis=1, keepdims=True),
                       points * 3)
    with pytest.raises(InputError, match="free-space"):
        sdf_constraints(seen, ConstraintConfig(free_space=10 ** 9),
                        rng=np.random.default_rng(0))
    with pytest.raises(InputError, match="200000 x 200000"):
        render_meshes([None], default_camera(200_000))


def test_small_everyday_slips_get_the_right_blame(tmp_path):
    from deepsdf.device import resolve_device
    from deepsdf_preprocess.contract import read_split

    assert resolve_device("cpu:0") == torch.device("cpu")
    with pytest.raises(InputError, match="is a folder"):
        read_split(tmp_path)


def test_a_link_that_stays_inside_the_experiment_is_followed(experiment):
    _train(experiment, epochs=1)
    elsewhere = experiment / "CodesElsewhere"
    elsewhere.mkdir()
    folder = experiment / "Reconstructions" / "latest"
    folder.mkdir(parents=True)
    (folder / "Codes").symlink_to("../../CodesElsewhere", target_is_directory=True)
    key = _instances(experiment)[0]
    assert Experiment(experiment).reconstruction(key)["code"].parent.parent.parent.name == "Codes"


def test_workflows_follow_the_experiment_they_are_given(experiment, capsys):
    """Given an Experiment, a workflow uses its checkpoint and device; asking for others is an
    error, never silently ignored."""
    from deepsdf.inference import reconstruct_split

    split = load_specs(experiment).train_split
    _train(experiment, epochs=2)
    assert main(["reconstruct", str(experiment), "--split", split, "--checkpoint", "2",
                 "--steps", "1", "--resolution", "16", "--no-progress"]) == 0
    assert (experiment / "Reconstructions" / "2" / "Records").is_dir()
    capsys.readouterr()
    opened = Experiment(experiment, checkpoint=2)
    with pytest.raises(InputError, match="opened with checkpoint 2"):
        reconstruct_split(opened, {}, solver=None, checkpoint="latest")
    assert Experiment.of(opened, checkpoint="2", device="cpu") is opened
    assert Experiment.of(opened, data=opened.data_dir) is opened


def test_a_second_preprocess_into_the_same_tree_keeps_the_first_split(tmp_path):
    from dataclasses import replace

    from conftest import SMALL_CONFIG
    from deepsdf_preprocess.contract import read_split
    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.procedural import write_shapes

    write_shapes(tmp_path / "train", "chairs", 2, seed=3)
    write_shapes(tmp_path / "test", "tables", 1, seed=3)
    config = replace(SMALL_CONFIG, sampling=replace(SMALL_CONFIG.sampling, count=20_000))

    def run(meshes):
        return preprocess_dataset(meshes, tmp_path / "data", "gen", config=config,
                                  backend="raycast", progress=False)

    first = run(tmp_path / "train")
    second = run(tmp_path / "test")
    assert first.split_path.name == "gen.json" and second.split_path.name == "gen-2.json"
    assert list(read_split(first.split_path)["gen"]) == ["chairs"]
    assert list(read_split(second.split_path)["gen"]) == ["tables"]
    assert run(tmp_path / "train").split_path.name == "gen.json"  # a rerun: the same file


def test_a_data_source_of_another_dataset_is_one_short_line_with_a_hint(tiny_data, tmp_path):
    from deepsdf.data import DataError, pack_split

    data, _ = tiny_data
    split = {"other": {"chairs": [f"shape_{i:04d}" for i in range(500)]}}
    with pytest.raises(DataError) as error:
        pack_split(data, split, cache_root=tmp_path)
    message = str(error.value)
    assert "500 of 500 SdfSamples files are missing" in message and "..." in message
    assert "holds SdfSamples of gen, not of other" in message and len(message) < 400


# ------------------------------------------------------------------ the third probe's finds

def test_an_unknown_instance_is_one_line_in_every_command(experiment, tmp_path, capsys):
    _train(experiment, epochs=1)
    code = main(["mesh", str(experiment), str(tmp_path / "m.ply"), "--instance", "nonexist",
                 "--resolution", "16"])
    _one_line(capsys, code, "not a training instance")


def test_a_sparse_or_quantized_tensor_in_a_file_is_refused(experiment, tmp_path, capsys):
    from deepsdf.checkpoint import CheckpointError, safe_load

    torch.save(torch.randn(16).to_sparse(), tmp_path / "sparse.pth")
    with pytest.raises(CheckpointError, match="sparse"):
        safe_load(tmp_path / "sparse.pth")
    torch.save({"codes": [torch.randn(2, 3).to_sparse()]}, tmp_path / "nested.pth")
    with pytest.raises(CheckpointError, match="dense"):
        safe_load(tmp_path / "nested.pth")
    _train(experiment, epochs=1)
    code = main(["mesh", str(experiment), str(tmp_path / "m.ply"), "--code",
                 str(tmp_path / "sparse.pth"), "--resolution", "16"])
    _one_line(capsys, code, "sparse")


@pytest.mark.parametrize("change, words", [
    ({"NumEpochs": 10 ** 12}, "NumEpochs must be at most"),
    ({"LearningRateSchedule": [{"Type": "Step", "Initial": 5e-3, "Interval": 1,
                                "Factor": 1e308},
                               {"Type": "Constant", "Value": 1e-3}]}, "learning rate"),
    ({"LearningRateSchedule": [{"Type": "Step", "Initial": 5e-3, "Interval": 1, "Factor": 2},
                               {"Type": "Constant", "Value": 1e-3}], "NumEpochs": 4000},
     "learning rate"),
])
def test_specs_that_would_run_away_are_refused_when_read(tmp_path, change, words):
    from deepsdf.config import ConfigError, parse_specs
    from conftest import TINY_SPECS

    with pytest.raises(ConfigError, match=words):
        parse_specs(dict(TINY_SPECS, **change))


def test_a_batch_beyond_memory_is_refused_before_allocating(experiment, capsys):
    specs = json.loads((experiment / "specs.json").read_text())
    specs["SamplesPerScene"] = 10 ** 12
    (experiment / "specs.json").write_text(json.dumps(specs))
    code = main(["train", str(experiment), "--device", "cpu", "--epochs", "1"])
    _one_line(capsys, code, "batches of", "SamplesPerScene")


def test_snapshots_are_decided_in_constant_time_and_as_listed():
    from deepsdf.config import parse_specs
    from conftest import TINY_SPECS

    config = parse_specs(dict(TINY_SPECS, NumEpochs=10 ** 8, SnapshotFrequency=7,
                              AdditionalSnapshots=[3, 10 ** 8 + 5]))
    assert config.is_snapshot(3) and config.is_snapshot(14) and not config.is_snapshot(15)
    assert not config.is_snapshot(10 ** 8 + 5) and not config.is_snapshot(0)
    small = parse_specs(dict(TINY_SPECS, NumEpochs=30, SnapshotFrequency=7,
                             AdditionalSnapshots=[3, 40]))
    assert {e for e in range(0, 45) if small.is_snapshot(e)} == small.snapshot_epochs()


def test_the_sdf_of_points_refuses_nan_and_a_bad_chunk():
    import deepsdf
    from deepsdf.config import DecoderConfig
    from deepsdf.decoder import Decoder

    decoder = Decoder(DecoderConfig(latent_size=4, dims=(8, 8), latent_in=(), dropout=(),
                                    norm_layers=()))
    code, points = torch.zeros(4), torch.zeros(5, 3)
    assert deepsdf.sdf(decoder, code, points).shape == (5,)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="chunk"):
            deepsdf.sdf(decoder, code, points, chunk=bad)
    points[2, 1] = float("nan")
    with pytest.raises(InputError, match="1 of 5 points"):
        deepsdf.sdf(decoder, code, points)
    with pytest.raises(InputError, match="code has NaN"):
        deepsdf.sdf(decoder, torch.full((4,), float("nan")), torch.zeros(5, 3))


def test_metrics_of_empty_or_nan_point_sets_are_refused_not_nan():
    from deepsdf.metrics import chamfer, surface_metrics

    points = np.random.default_rng(0).random((10, 3))
    with pytest.raises(InputError, match="0 points"):
        chamfer(points, np.zeros((0, 3)))
    nan = points.copy()
    nan[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        chamfer(nan, points)
    assert chamfer(points, points) == 0.0
    assert surface_metrics(points, points)["chamfer"] == 0.0


def test_a_mesh_mapped_to_infinity_is_never_written(tmp_path):
    """A normalization so extreme that mapping back overflows (scale 1e-300): the mesh is
    refused where every mesh is written, not written as infinities."""
    from deepsdf.experiment import write_mesh
    from deepsdf.mesh import dense_grid, extract_mesh

    sphere = lambda p: np.linalg.norm(p, axis=1) - 0.5  # noqa: E731
    grid = dense_grid(sphere, 16)
    with np.errstate(over="ignore"):
        mesh = extract_mesh(grid, offset=np.zeros(3), scale=1e-300)
    with pytest.raises(InputError, match="infinite vertices"):
        write_mesh(tmp_path / "m.ply", mesh)
    assert not (tmp_path / "m.ply").exists()
    write_mesh(tmp_path / "ok.ply", extract_mesh(grid))  # a finite mesh is written


def test_an_interpolation_beyond_memory_is_refused_before_the_work(experiment, tmp_path,
                                                                  capsys):
    _train(experiment, epochs=1)
    first, second = _instances(experiment)[:2]
    code = main(["interpolate", str(experiment), "--from", first, "--to", second, "--out",
                 str(tmp_path / "out"), "--steps", "10000000", "--resolution", "16"])
    _one_line(capsys, code, "pictures", "fewer steps")


def test_export_never_mixes_two_runs_nor_writes_before_refusing(experiment, tiny_data,
                                                                 tmp_path, capsys):
    import shutil

    from conftest import TINY_SPECS

    _train(experiment, epochs=2)
    # A folder with another run's checkpoints (the original release's own, say): refused.
    foreign = tmp_path / "foreign"
    (foreign / "ModelParameters").mkdir(parents=True)
    (foreign / "ModelParameters" / "10.pth").write_bytes(b"another run")
    code = main(["export", str(experiment), "--original", "--out", str(foreign)])
    _one_line(capsys, code, "no export of this experiment wrote")
    assert not (foreign / "LatentCodes").exists()
    # Its own export folder may be written again; another experiment's export is refused.
    ours = tmp_path / "ours"
    assert main(["export", str(experiment), "--original", "--out", str(ours)]) == 0
    assert main(["export", str(experiment), "--original", "--out", str(ours)]) == 0
    twin = tmp_path / "twin"
    shutil.copytree(experiment, twin)
    code = main(["export", str(twin), "--original", "--out", str(ours)])
    _one_line(capsys, code, "an export of another experiment")
    # A decoder the original cannot express is refused before any file is written.
    data, split = tiny_data
    fourier = make_experiment(tmp_path / "fourier", data, split, NumEpochs=1,
                              SamplesPerScene=512,
                              NetworkSpecs=dict(TINY_SPECS["NetworkSpecs"],
                                                fourier_frequencies=2))
    _train(fourier, epochs=1)
    code = main(["export", str(fourier), "--original"])
    _one_line(capsys, code, "Fourier")
    assert not (fourier / "original").exists()


def test_one_scan_completion_checks_its_outputs_and_truth_before_the_fit(tmp_path):
    from deepsdf.completion import complete_scans
    from deepsdf.frames import Similarity
    from deepsdf.outputs import ScanCompletionFolder
    from deepsdf.sensing import Observation

    out = tmp_path / "out"
    folder = ScanCompletionFolder(out)
    folder.start_run(with_metrics=True)  # a first run: the folder becomes complete's
    (out / "metrics.json").write_text('{"an earlier run": 1}')
    folder.start_run(with_metrics=True)
    assert (out / "metrics.json").is_file()
    folder.start_run(with_metrics=False)  # it would describe another completion
    assert not (out / "metrics.json").exists()
    outside = tmp_path / "outside.ply"
    outside.write_text("mine")
    os.symlink(outside, out / "completed.ply")
    with pytest.raises(InputError, match="outside"):
        folder.start_run(with_metrics=False)
    seen = Observation(np.zeros((3, 3)), np.ones((3, 3)) / np.sqrt(3), np.full((3, 3), 2.0))
    identity = Similarity.from_normalization(np.zeros(3), 1.0)
    for truth in (tmp_path / "missing.obj", tmp_path):  # missing, a folder
        with pytest.raises(InputError, match="the true mesh"):
            complete_scans(tmp_path / "no-experiment", seen, identity,
                           out_dir=tmp_path / "fresh", truth=truth)
    assert not (tmp_path / "fresh").exists() and outside.read_text() == "mine"


def test_an_eta_beyond_the_model_frame_is_refused(capsys):
    from deepsdf.constraints import ConstraintConfig

    for eta in (0.0, -1.0, 0.6, 1e9):
        with pytest.raises(InputError, match="eta must lie"):
            ConstraintConfig(eta=eta)
    with pytest.raises(SystemExit) as exit_:  # argparse's usage error
        main(["complete", "E", "--out", "O", "--points", "p.npy", "--sensor", "0", "0", "2",
              "--eta", "1e9"])
    assert exit_.value.code == 2 and "at most 0.5" in capsys.readouterr().err


def test_new_names_a_data_root_that_is_a_file(tiny_data, tmp_path, capsys):
    _, split = tiny_data
    code = main(["new", str(tmp_path / "exp"), "--data", str(split), "--train", str(split),
                 "--steps", "10"])
    _one_line(capsys, code, "is a file")


# ------------------------------------------------------------------ the fourth probe's finds

def test_output_folders_never_replace_files_their_command_did_not_write(tmp_path):
    """Every output layout's own names are refused without its marker (a user's files, or
    another command's), and its marker is replaced atomically (a hard link planted there is
    never written through)."""
    from deepsdf.outputs import CompletionFolder, InterpolationFolder, ScanCompletionFolder

    cases = [(ScanCompletionFolder, "completed.ply"), (ScanCompletionFolder, "code.pth"),
             (InterpolationFolder, "strip.png"), (InterpolationFolder, "interpolation.gif"),
             (InterpolationFolder, "step_07.ply"), (CompletionFolder, "completion.csv"),
             (CompletionFolder, "Meshes")]
    for index, (layout, name) in enumerate(cases):
        folder = tmp_path / f"case{index}"
        folder.mkdir()
        if name == "Meshes":
            (folder / name).mkdir()
        else:
            (folder / name).write_text("mine")
        with pytest.raises(InputError, match="did not write"):
            if layout is ScanCompletionFolder:
                layout(folder).start_run(with_metrics=False)
            else:
                layout(folder).claim()
        assert not (folder / layout.MARKER).exists()
        if name != "Meshes":
            assert (folder / name).read_text() == "mine"
    # A rerun replaces its own files; a hard-linked marker is replaced, not written through.
    outside = tmp_path / "outside.txt"
    outside.write_text("mine")
    own = tmp_path / "own"
    InterpolationFolder(own).start_run(checkpoint={"epoch": 1})
    (own / "strip.png").write_text("an earlier run's")
    (own / InterpolationFolder.MARKER).unlink()
    os.link(outside, own / InterpolationFolder.MARKER)
    InterpolationFolder(own).start_run(checkpoint={"epoch": 2})
    assert outside.read_text() == "mine" and not (own / "strip.png").exists()
    assert InterpolationFolder(own).record()["checkpoint"] == {"epoch": 2}


def test_a_report_refuses_its_own_names_held_by_a_user_even_when_replacing(tmp_path):
    from deepsdf.experiment_report import _report_folder

    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "strip.png").write_text("the demo's interpolation")
    _report_folder(folder, replace=True)  # other files may stay beside the report
    (folder / "index.html").write_text("my page")
    with pytest.raises(InputError, match="index.html"):
        _report_folder(folder, replace=True)


def test_report_inputs_edited_or_made_by_another_model_are_refused(tmp_path):
    from deepsdf.experiment_report import (_check_completion_summary, _check_evaluation,
                                           _check_made_from, _rows)
    from deepsdf.outputs import CompletionFolder

    good = {"shapes": 2, "reconstruction": {"chamfer": {"mean": 1e-3, "median": 1e-3}},
            "versus_retrieval_code": {"metric": "chamfer", "shapes": 2, "won": 1,
                                      "mean": [1e-3, 2e-3], "median": [1e-3, 2e-3],
                                      "verdict": "mixed"}}
    assert _check_evaluation(good, "s.json") is good
    bad = [dict(good, reconstruction={"chamfer": {"mean": "abc", "median": 1}}),
           dict(good, reconstruction={"chamfer": {"mean": -5, "median": float("nan")}}),
           dict(good, reconstruction={"f_score": {"mean": [1, 2], "median": 1}}),
           dict(good, versus_retrieval_code={"metric": "chamfer"}),
           dict(good, versus_retrieval_code="yes"), dict(good, retrieval_code=5),
           dict(good, shapes=0)]
    for summary in bad:
        with pytest.raises(InputError):
            _check_evaluation(summary, "s.json")
    for summary in ({"shapes": 1, "versus_retrieval": {"metric": 1}},
                    {"shapes": 1, "completion": {"chamfer": {"mean": -1, "median": -1}}},
                    {"shapes": 1, "no_surface": [{"a": 1}]}):
        with pytest.raises(InputError):
            _check_completion_summary(summary, "c.json")
    table = tmp_path / "metrics.csv"
    for body in ("a,0.001,5\n", "a,0.001,0.5\na,0.001,0.5\n"):  # F-score 5; a row twice
        table.write_text("instance,chamfer,f_score\n" + body)
        with pytest.raises(InputError):
            _rows(table)

    class Trained:
        checkpoint, checkpoint_identity = "latest", {"epoch": 305, "size": 1, "mtime_ns": 2}

    run = CompletionFolder(tmp_path / "completion")
    run.claim(checkpoint={"epoch": 300, "size": 1, "mtime_ns": 1})
    with pytest.raises(InputError, match="made from epoch 300"):
        _check_made_from(run, Trained(), "a completion")
    run.claim(checkpoint=Trained.checkpoint_identity)
    _check_made_from(run, Trained(), "a completion")


def test_export_refuses_a_users_logs_and_a_bad_spec_before_writing(experiment, tmp_path,
                                                                   capsys):
    _train(experiment, epochs=1)
    for name, content in (("Logs.pth", "mine"), ("specs.json", "mine"),
                          ("specs.json", '{"my": "own specs"}')):
        out = tmp_path / f"out-{name}-{len(content)}"
        out.mkdir()
        (out / name).write_text(content)
        code = main(["export", str(experiment), "--original", "--out", str(out)])
        assert code == 2 and "Traceback" not in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == [name]
        assert (out / name).read_text() == content


@pytest.mark.parametrize("change, words", [
    ({"Seed": 2 ** 70}, "Seed must be at most"),
    ({"ClampingDistance": 1e300}, "ClampingDistance must be <"),
    ({"DataLoaderThreads": 100000}, "DataLoaderThreads must be at most"),
])
def test_spec_numbers_beyond_reason_are_refused(change, words):
    from deepsdf.config import ConfigError, parse_specs
    from conftest import TINY_SPECS

    with pytest.raises(ConfigError, match=words):
        parse_specs(dict(TINY_SPECS, **change))


def test_solver_settings_beyond_reason_are_refused_before_allocating():
    from deepsdf.settings import GAUSS_NEWTON

    for change in ({"steps": 10 ** 12}, {"screen": 10 ** 12}, {"samples": 10 ** 12}):
        with pytest.raises(InputError, match="at most"):
            replace_config(GAUSS_NEWTON, **change)


def replace_config(config, **change):
    from dataclasses import replace

    return replace(config, **change)


def test_tensors_without_data_and_mismatched_tables_are_refused(tmp_path):
    from deepsdf.checkpoint import CheckpointError, load_checkpoint, safe_load
    from deepsdf.experiment import read_code

    torch.save(torch.empty(64, device="meta"), tmp_path / "meta.pth")
    with pytest.raises(CheckpointError, match="meta"):
        safe_load(tmp_path / "meta.pth")
    torch.save(torch.randn(8, 8), tmp_path / "square.pth")
    with pytest.raises(CheckpointError, match="64 floating-point values"):
        read_code(tmp_path / "square.pth", 64)
    torch.save(torch.randn(1, 64), tmp_path / "row.pth")
    assert read_code(tmp_path / "row.pth", 64).shape == (64,)
    from deepsdf.checkpoint import CHECKPOINT_FORMAT

    torch.save({"format": CHECKPOINT_FORMAT, "codes": torch.zeros(3, 4),
                "instance_ids": ["a", "b", "c", "d", "e", "f"]}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path / "c.pt")


def test_a_mesh_beyond_the_precision_of_a_mesh_file_is_never_written(tmp_path):
    import trimesh

    from deepsdf.experiment import write_mesh

    box = trimesh.creation.box()
    far = box.copy()
    far.vertices = far.vertices + 1e38  # collapses to one point in float32
    with pytest.raises(InputError, match="precision"):
        write_mesh(tmp_path / "far.ply", far)
    moved = box.copy()
    moved.vertices = moved.vertices + 1e5  # a big offset, still representable
    write_mesh(tmp_path / "moved.ply", moved)


def test_generate_counts_are_bounded(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "out", "--count", "1000000000"])
    assert exit_.value.code == 2 and "at most 100,000" in capsys.readouterr().err


def test_a_checkpoint_with_nan_weights_is_named_not_the_grid(experiment, tmp_path, capsys):
    _train(experiment, epochs=1)
    path = checkpoint_path(experiment)
    payload = torch.load(path, weights_only=True)
    first = next(iter(payload["decoder"]))
    payload["decoder"][first] = payload["decoder"][first] * float("nan")
    from deepsdf.checkpoint import save_checkpoint

    save_checkpoint(path, payload)  # a NaN written by a run (its checksum holds)
    code = main(["mesh", str(experiment), str(tmp_path / "m.ply"), "--instance",
                 _instances(experiment)[0], "--resolution", "16"])
    _one_line(capsys, code, "NaN or infinite values", "earlier snapshot")


# ------------------------------------------------------------------ damage

def _small_checkpoint(path):
    from deepsdf.checkpoint import save_checkpoint

    generator = torch.Generator().manual_seed(0)
    save_checkpoint(path, {"epoch": 4, "decoder": {"w": torch.randn(8, 8, generator=generator),
                                                   "b": torch.randn(8, generator=generator)},
                           "codes": torch.randn(3, 4, generator=generator),
                           "instance_ids": ["d/c/a", "d/c/b", "d/c/e"], "config": {"x": 1.5},
                           "git_hash": None})
    return path


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_a_flipped_bit_anywhere_in_a_checkpoint_is_refused_or_harmless(tmp_path, position, bit):
    """Flip one bit of the file: either loading refuses it (one CheckpointError) or what loads
    is, by content, exactly what was saved (a bit in zip padding or metadata)."""
    from deepsdf.checkpoint import CheckpointError, content_digest, load_checkpoint

    path = _small_checkpoint(tmp_path / "c.pt")
    saved = content_digest(load_checkpoint(path))
    data = bytearray(path.read_bytes())
    data[int(position * len(data))] ^= 1 << bit
    path.write_bytes(bytes(data))
    try:
        loaded = load_checkpoint(path)
    except CheckpointError:
        return
    assert content_digest(loaded) == saved


def test_a_changed_weight_or_a_bad_epoch_is_damage_named_in_one_line(tmp_path):
    from deepsdf.checkpoint import CheckpointError, load_checkpoint

    path = _small_checkpoint(tmp_path / "c.pt")
    payload = torch.load(path, weights_only=True)
    payload["decoder"]["w"].view(torch.int32)[3, 5] ^= 1 << 12  # one bit of one weight
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="damaged.*checksum"):
        load_checkpoint(path)
    for epoch in (-5, 10 ** 12, 2.5, True, "4"):
        payload = torch.load(_small_checkpoint(tmp_path / "d.pt"), weights_only=True)
        payload["epoch"] = epoch
        torch.save(payload, tmp_path / "d.pt")
        with pytest.raises(CheckpointError, match="epoch"):
            load_checkpoint(tmp_path / "d.pt")


def test_a_spec_naming_a_key_twice_or_a_code_of_length_zero_is_refused(tmp_path):
    from deepsdf.config import ConfigError, parse_specs, read_specs

    text = json.dumps(TINY_SPECS)[:-1] + ', "NumEpochs": 7}'
    (tmp_path / "specs.json").write_text(text)
    with pytest.raises(ConfigError, match="NumEpochs"):
        read_specs(tmp_path / "specs.json")
    with pytest.raises(ConfigError, match="CodeLength"):
        parse_specs(dict(TINY_SPECS, CodeLength=0), base=tmp_path)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=6),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["key", "record", "finished", "x"]),
                                       inner, max_size=3), max_leaves=6)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_JSON, max_size=5))
def test_journal_lines_of_any_json_are_read_or_skipped_never_a_traceback(tmp_path, lines):
    from deepsdf_preprocess.manifest import append_record, journal_path, read_journals

    journal = journal_path(tmp_path, "gen")
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_text("")
    append_record(journal, "cls/good", {"status": "ok", "finished": 1.0})
    with open(journal, "a") as stream:
        stream.write("".join(json.dumps(line) + "\n" for line in lines))
    records, _ = read_journals(tmp_path, "gen")
    assert records["cls/good"]["status"] == "ok" or any(
        isinstance(line, dict) and line.get("key") == "cls/good" for line in lines)
    assert all(isinstance(k, str) and isinstance(v, dict) for k, v in records.items())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0, 1))
def test_a_metrics_table_cut_anywhere_is_refused_or_read_as_its_whole_rows(tmp_path, cut):
    from deepsdf.experiment_report import _rows

    full = tmp_path / "full.csv"
    full.write_text("instance,chamfer,f_score\nd/c/a,0.001,0.9\nd/c/b,0.002,0.8\n"
                    "d/c/e,0.003,0.7\n")
    whole = _rows(full)
    text = full.read_text()
    cut_path = tmp_path / "cut.csv"
    cut_path.write_text(text[:int(cut * len(text))])
    try:
        rows = _rows(cut_path)
    except InputError as error:
        assert "cut.csv" in str(error)
        return
    assert rows == whole[:len(rows)]  # whole rows only, never a shortened one


def test_a_file_given_where_a_folder_belongs_is_named_as_such(experiment, tmp_path, capsys):
    """train --data FILE and --cache FILE: one line saying it is a file (not "does not
    exist", not a NotADirectoryError traceback); nothing trained."""
    afile = tmp_path / "afile"
    afile.write_text("notes")
    for option in ("--data", "--cache"):
        code = main(["train", str(experiment), option, str(afile), "--epochs", "1"])
        _one_line(capsys, code, "is a file")
    assert afile.read_text() == "notes" and not (experiment / "Checkpoints").exists()


def test_a_class_folder_named_like_a_mesh_is_a_class_folder_not_an_ignored_file(tmp_path,
                                                                               caplog):
    from deepsdf_preprocess.driver import discover_meshes

    (tmp_path / "tables.obj").mkdir()
    (tmp_path / "tables.obj" / "a.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    (tmp_path / "loose.obj").write_text("v 0 0 0\n")
    with caplog.at_level("WARNING"):
        jobs = discover_meshes(tmp_path)
    assert [(job.class_name, job.instance) for job in jobs] == [("tables.obj", "a")]
    warned = " ".join(record.getMessage() for record in caplog.records)
    assert "loose.obj" in warned and "tables.obj" not in warned


@pytest.mark.parametrize("name", ["a" * 250 + ".npz", "é" * 124 + ".ply"])
def test_a_final_name_near_the_limit_still_gets_its_temporary(tmp_path, name):
    from deepsdf_preprocess.contract import atomic_path, remove_stale_temporaries

    target = tmp_path / name
    with atomic_path(target) as temporary:
        assert len(temporary.name.encode()) <= 255
        temporary.write_bytes(b"x")
    assert target.read_bytes() == b"x" and remove_stale_temporaries(tmp_path) == []


def test_too_few_views_are_named_as_the_cause_of_a_failed_sign_check(tmp_path, capsys):
    import trimesh

    (tmp_path / "m" / "cls").mkdir(parents=True)
    trimesh.creation.box().export(tmp_path / "m" / "cls" / "box.obj")
    code = main(["preprocess", str(tmp_path / "m"), str(tmp_path / "d"), "--dataset", "x",
                 "--test", "--workers", "1", "--views", "1", "--no-progress"])
    out = capsys.readouterr()
    assert code == 1 and "use more --views" in out.out + out.err
    assert "inside-out" not in out.out + out.err


def test_a_second_trainer_is_refused_naming_the_first_and_a_dead_ones_lock_is_taken_over(
        experiment, capsys, caplog):
    """Another live process holding the experiment (a second `train --resume` or
    `train --overwrite` during a run): one line naming it, nothing written; a lock left by a
    killed process: taken over with a line saying so."""
    import subprocess
    import sys

    from deepsdf_preprocess.locks import LOCK_NAME

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from deepsdf_preprocess.locks import writer_lock\n"
         f"with writer_lock({str(experiment)!r}, 'deepsdf train'):\n"
         "    print('held', flush=True); time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for extra in ([], ["--overwrite"], ["--resume"]):
            code = main(["train", str(experiment), "--epochs", "1", "--device", "cpu"] + extra)
            err = _one_line(capsys, code, f"process {holder.pid}", "deepsdf train")
            assert "in use" in err
        assert not (experiment / "Checkpoints").exists()
    finally:
        holder.kill()
        holder.wait()
    # the killed holder's record is still in the lock file; the kernel released its lock
    assert str(holder.pid) in (experiment / LOCK_NAME).read_text()
    with caplog.at_level("WARNING"):
        assert main(["train", str(experiment), "--epochs", "1", "--device", "cpu"]) == 0
    assert f"took over the lock of process {holder.pid}" in caplog.text
    assert (experiment / LOCK_NAME).read_text() == ""  # released at the end


@pytest.mark.parametrize("name", ["chair#1", "a?b", "50% off", "x y"])
def test_report_links_to_a_shape_named_with_url_characters_reach_its_file(tmp_path, name):
    """A link is a relative URL: the browser must resolve it to the file itself."""
    from urllib.parse import unquote, urljoin, urlparse

    from deepsdf.outputs import ReportFolder

    out = ReportFolder(tmp_path / "report")
    picture = out.shape_picture("chairs", name)
    href = out.link(picture)
    resolved = urlparse(urljoin((tmp_path / "report").as_uri() + "/index.html", href))
    assert not resolved.fragment and not resolved.query
    assert unquote(resolved.path) == str(picture)


class _Killed(BaseException):
    """A process death: nothing more runs."""


@pytest.mark.parametrize("dies_after", [0, 1, 4])
def test_an_export_stopped_part_way_is_finished_by_its_rerun(experiment, tmp_path, capsys,
                                                             monkeypatch, dies_after):
    from deepsdf import export

    _train(experiment, epochs=2)
    out = tmp_path / "original"
    real_save, saved = export._save, []

    def dying_save(path, content):
        if len(saved) == dies_after:
            raise _Killed
        saved.append(path)
        real_save(path, content)

    monkeypatch.setattr(export, "_save", dying_save)
    with pytest.raises(_Killed):
        main(["export", str(experiment), "--original", "--out", str(out)])
    monkeypatch.setattr(export, "_save", real_save)
    assert main(["export", str(experiment), "--original", "--out", str(out)]) == 0
    assert (out / "specs.json").is_file() and (out / "Logs.pth").is_file()


def test_an_export_on_a_full_disk_is_one_line_and_leaves_no_partial_file(experiment, tmp_path,
                                                                        capsys, monkeypatch):
    import builtins
    import errno

    from deepsdf import export

    _train(experiment, epochs=2)
    real_open = builtins.open

    def full_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if "w" in mode and "b" in mode and str(file).endswith(".part"):
            def write(data):
                raise OSError(errno.ENOSPC, "No space left on device")
            handle.write = write
        return handle

    monkeypatch.setattr(export, "open", full_open, raising=False)
    code = main(["export", str(experiment), "--original", "--out", str(tmp_path / "o")])
    _one_line(capsys, code, "no space left on device")
    assert not list((tmp_path / "o").rglob("*.part")) and not list((tmp_path / "o").rglob("*.pth"))


@pytest.mark.parametrize("where", ["experiment", "data"])
def test_a_folder_this_user_may_not_write_or_read_is_one_line(experiment, tmp_path, capsys,
                                                             monkeypatch, where):
    """Read-only experiment folders, data roots and unreadable class folders (as a user who
    is not root meets them): one line naming the path, for training, reconstruction and
    preprocessing."""
    import errno
    import pathlib

    from deepsdf_preprocess.procedural import write_shapes

    _train(experiment, epochs=1)
    write_shapes(tmp_path / "meshes", "chairs", 2, seed=1)
    guarded = {"experiment": experiment, "data": tmp_path / "data"}[where]
    real_mkdir, real_iterdir = pathlib.Path.mkdir, pathlib.Path.iterdir

    def refuse(path):
        if str(path).startswith(str(guarded)) or (where == "data" and path.name == "chairs"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

    def mkdir(self, *args, **kwargs):
        refuse(self)
        return real_mkdir(self, *args, **kwargs)

    def iterdir(self):
        refuse(self) if where == "data" and self.name == "chairs" else None
        return real_iterdir(self)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)
    if where == "experiment":
        commands = [["train", str(experiment), "--resume", "--epochs", "1"],
                    ["reconstruct", str(experiment), "--split", str(load_specs(
                        experiment).train_split), "--steps", "1", "--resolution", "8"]]
    else:
        commands = [["preprocess", str(tmp_path / "meshes"), str(tmp_path / "data"),
                     "--dataset", "x", "--test", "--workers", "1", "--no-progress"]]
    for argv in commands:
        code = main(argv)
        _one_line(capsys, code, "Permission denied")


def test_a_speck_far_from_the_object_that_sets_the_frame_fails_with_its_reason(tmp_path):
    """A tiny part far away counts in the normalization but no camera sees it: failed with
    the reason (it was `ok` with distance errors up to 0.99); a hidden part inside the object
    (which sets no frame) is no reason to fail."""
    import trimesh

    from deepsdf_preprocess import pipeline
    from deepsdf_preprocess.errors import PreprocessError

    from conftest import SMALL_CONFIG

    box = trimesh.creation.box()
    speck = trimesh.creation.icosphere(subdivisions=1, radius=1e-4)
    speck.apply_translation([4.0, 0.0, 0.0])
    scanner = pipeline.make_scanner("raycast", SMALL_CONFIG.rig)
    with pytest.raises(PreprocessError, match="set the normalization but no camera saw"):
        pipeline.sample_mesh(trimesh.util.concatenate([box, speck]), SMALL_CONFIG, scanner, 0)
    inner = trimesh.creation.icosphere(subdivisions=1, radius=0.05)  # inside the box
    samples = pipeline.sample_mesh(trimesh.util.concatenate([box, inner]), SMALL_CONFIG,
                                   scanner, 0)
    assert len(samples.points) > 0

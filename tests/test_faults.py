"""Faults the driver, the trainer and the commands must survive: dead workers, a dead driver,
full disks, corrupt or foreign checkpoints, runs the user did not ask to lose."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import trimesh

from deepsdf.experiment import checkpoint_path, load_specs
from deepsdf.checkpoint import load_checkpoint
from deepsdf.cli import main

from deepsdf.train import Trainer, TrainingError
from deepsdf_preprocess import driver, formats
from deepsdf_preprocess.driver import WORKER_DIED, preprocess_dataset

from conftest import SMALL_CONFIG, make_experiment

import fault_jobs


def _boxes(root, names):
    for name in names:
        path = root / "c" / f"{name}.obj"
        path.parent.mkdir(parents=True, exist_ok=True)
        trimesh.creation.box(extents=(1, 0.6, 0.4)).export(path)


# --------------------------------------------------------------------------- the driver

def test_a_worker_killed_mid_mesh_fails_that_mesh_and_the_run_goes_on(tmp_path, monkeypatch):
    _boxes(tmp_path / "meshes", ["a", "b", "killer", "d", "e"])
    monkeypatch.setattr(driver, "_run_job", fault_jobs.run_job_or_die)
    report = preprocess_dataset(tmp_path / "meshes", tmp_path / "data", "D",
                                config=SMALL_CONFIG, backend="raycast", workers=2,
                                progress=False)
    assert report.failed == {"c/killer": WORKER_DIED}
    assert report.succeeded == ["c/a", "c/b", "c/d", "c/e"]
    manifest = json.loads(report.manifest_path.read_text())
    assert manifest["instances"]["c/killer"]["status"] == "failed"
    assert all(manifest["instances"][k]["status"] == "ok" for k in report.succeeded)
    assert not list(report.manifest_path.with_suffix(".journal").glob("*.jsonl"))


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
                children.append(int(entry.name))
    return children


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_end_when_the_driver_is_killed_and_no_record_is_lost(tmp_path):
    _boxes(tmp_path / "meshes", [f"m{i}" for i in range(8)])
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import SMALL_CONFIG
        from deepsdf_preprocess.driver import preprocess_dataset
        preprocess_dataset({str(tmp_path / 'meshes')!r}, {str(tmp_path / 'data')!r}, "D",
                           config=SMALL_CONFIG, backend="raycast", workers=2, progress=False)
    """)
    process = subprocess.Popen([sys.executable, "-c", script])
    journal = tmp_path / "data" / "manifests" / "D.journal" / f"{socket.gethostname()}-{process.pid}.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (journal.is_file()
                                          and journal.read_text().count("\n") >= 1):
        time.sleep(0.05)
    workers = _children(process.pid)
    assert workers, "the driver started no workers"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "workers outlived their driver"
    finished = {json.loads(line)["key"] for line in journal.read_text().splitlines()}
    report = preprocess_dataset(tmp_path / "meshes", tmp_path / "data", "D",
                                config=SMALL_CONFIG, backend="raycast", progress=False)
    manifest = json.loads(report.manifest_path.read_text())
    assert len(report.succeeded) == 8 and not report.failed
    for key in finished:  # the killed run's records, statistics and all, survived
        assert "samples_kept" in manifest["instances"][key]


def test_mesh_paths_in_the_manifest_are_absolute(tmp_path, monkeypatch):
    _boxes(tmp_path / "meshes", ["a"])
    monkeypatch.chdir(tmp_path)
    report = preprocess_dataset("meshes", "data", "D", config=SMALL_CONFIG, backend="raycast",
                                progress=False)
    record = json.loads(report.manifest_path.read_text())["instances"]["c/a"]
    assert record["mesh"] == str(tmp_path / "meshes" / "c" / "a.obj")


# --------------------------------------------------------------------------- the trainer

@pytest.fixture
def experiment(tiny_data, tmp_path):
    data, split = tiny_data
    return make_experiment(tmp_path / "exp", data, split, NumEpochs=4, SnapshotFrequency=2,
                           SamplesPerScene=512)


def _trainer(experiment):
    return Trainer(experiment, load_specs(experiment), device="cpu", progress=False)


def test_train_without_resume_never_overwrites_a_run(experiment):
    _trainer(experiment).train(epochs=2)
    before = checkpoint_path(experiment).read_bytes()
    with pytest.raises(TrainingError, match="already holds checkpoints.*--resume.*--overwrite"):
        _trainer(experiment).train(epochs=1)
    assert checkpoint_path(experiment).read_bytes() == before
    assert main(["train", str(experiment), "--epochs", "1", "--no-progress"]) == 2
    assert checkpoint_path(experiment).read_bytes() == before
    _trainer(experiment).train(epochs=1, overwrite=True)
    assert load_checkpoint(checkpoint_path(experiment))["epoch"] == 1


def test_stale_checkpoint_temporaries_are_removed(experiment):
    _trainer(experiment).train(epochs=1)
    stale = experiment / "Checkpoints" / ".latest.pt.k1ll3d.part"
    stale.write_bytes(b"\0" * 1000)
    _trainer(experiment).train(resume=True, epochs=1)
    assert not stale.exists()


def test_a_corrupt_latest_names_the_newest_readable_snapshot(experiment):
    _trainer(experiment).train(epochs=3)  # snapshot 2.pt, latest at 3
    checkpoint_path(experiment).write_bytes(b"truncated")
    with pytest.raises(TrainingError, match="--resume-from 2"):
        _trainer(experiment).train(resume=True)
    result = _trainer(experiment).train(resume_from=2, epochs=1)
    assert result.epochs_done == 3 and load_checkpoint(checkpoint_path(experiment))["epoch"] == 3


def test_resume_refuses_another_architecture_and_warns_for_other_changes(experiment, caplog):
    _trainer(experiment).train(epochs=1)
    specs = json.loads((experiment / "specs.json").read_text())
    changed = dict(specs, LearningRateSchedule=[dict(specs["LearningRateSchedule"][0],
                                                     Initial=0.001),
                                                specs["LearningRateSchedule"][1]])
    (experiment / "specs.json").write_text(json.dumps(changed))
    _trainer(experiment).train(resume=True, epochs=1)
    assert "changed setting LearningRateSchedule" in caplog.text
    wider = dict(changed, NetworkSpecs=dict(specs["NetworkSpecs"], dims=[64, 64, 64, 64]))
    (experiment / "specs.json").write_text(json.dumps(wider))
    with pytest.raises(TrainingError, match=r"architecture differs.*dims: checkpoint "
                                            r"\(128, 128, 128, 128\), spec \(64, 64, 64, 64\)"):
        _trainer(experiment).train(resume=True, epochs=1)


def test_a_checkpoint_from_before_a_setting_existed_resumes_quietly(experiment, caplog):
    """Checkpoints of earlier versions lack newer keys: they compare equal on the defaults."""
    from deepsdf.checkpoint import save_checkpoint

    _trainer(experiment).train(epochs=1)
    payload = load_checkpoint(checkpoint_path(experiment))
    for key in ("TF32", "Compile", "SampleStore", "SampleStoreMemory"):
        payload["config"].pop(key)
    payload["config"]["NetworkSpecs"].pop("tanh_twice")
    save_checkpoint(checkpoint_path(experiment), payload)
    result = _trainer(experiment).train(resume=True, epochs=1)
    assert result.epochs_done == 2 and "changed setting" not in caplog.text


def test_a_full_disk_names_the_last_good_checkpoint(experiment, monkeypatch):
    import errno

    from deepsdf import checkpoint

    _trainer(experiment).train(epochs=2)
    good = checkpoint_path(experiment).read_bytes()

    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(TrainingError) as error:
        _trainer(experiment).train(resume=True, epochs=1)
    message = str(error.value)
    assert message.startswith("no space left on device while writing")
    assert f"The last good checkpoint is {checkpoint_path(experiment)} (epoch 2)" in message
    assert checkpoint_path(experiment).read_bytes() == good
    assert not list((experiment / "Checkpoints").glob(".*.part"))


@pytest.mark.parametrize("explodes_at", [1, 3])
def test_a_nan_loss_names_only_checkpoints_that_exist(tiny_data, tmp_path, monkeypatch,
                                                      explodes_at):
    """A loss that turns NaN (at the first step, before any checkpoint, or later): the
    message names a checkpoint only when it exists.  (A learning rate of 1e30, the old way to
    provoke this, is now refused when the spec is read.)"""
    import deepsdf.train as train_module
    from deepsdf.config import ConfigError

    data, split = tiny_data
    with pytest.raises(ConfigError, match="learning rate"):
        _trainer(make_experiment(tmp_path / "absurd", data, split, LearningRateSchedule=[
            {"Type": "Constant", "Value": 1e30}] * 2))
    experiment = make_experiment(tmp_path / "exp", data, split, SamplesPerScene=512)
    real_loss, calls = train_module.clamped_l1, []

    def loss_that_explodes(predicted, target, delta, **options):
        calls.append(1)
        value = real_loss(predicted, target, delta, **options)
        return value * float("nan") if len(calls) >= explodes_at else value

    monkeypatch.setattr(train_module, "clamped_l1", loss_that_explodes)
    with pytest.raises(TrainingError) as error:
        _trainer(experiment).train(epochs=5)
    message = str(error.value)
    if "No checkpoint was written yet" not in message:
        named = message.split("The last good checkpoint is ")[1].split(" ")[0].rstrip(".")
        assert Path(named).is_file()
    else:
        assert explodes_at == 1


def test_a_missing_data_root_names_the_path_and_the_rule(tiny_data, tmp_path):
    _, split = tiny_data
    experiment = make_experiment(tmp_path / "exp", "no_such_data", split)
    with pytest.raises(TrainingError, match="relative to its folder"):
        _trainer(experiment).train()


# --------------------------------------------------------------------------- commands

def test_mesh_refuses_an_unknown_format_before_the_work(experiment, capsys):
    _trainer(experiment).train(epochs=1)
    out = experiment / "out.xyz"
    assert main(["mesh", str(experiment), str(out), "--instance", "gen/chairs/chairs_0000",
                 "--resolution", "16"]) == 2
    assert "suffix must be one of" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("make, words", [
    (lambda p: torch.save(torch.zeros(2, 64), p), "shape (2, 64)"),
    (lambda p: torch.save({"a": 1}, p), "holds a dict"),
    (lambda p: p.write_bytes(b"\x80\x02garbage"), "cannot read code file"),
    (lambda p: None, "no code file"),
])
def test_mesh_with_a_bad_code_is_one_line(experiment, capsys, make, words):
    _trainer(experiment).train(epochs=1)
    code = experiment / "code.pth"
    make(code)
    assert main(["mesh", str(experiment), str(experiment / "m.ply"), "--code", str(code),
                 "--resolution", "16"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1


def test_argument_errors_are_usage_lines(capsys):
    for argv in (["mesh", "E", "o.ply", "--instance", "x", "--resolution", "1"],
                 ["preprocess", "M", "D", "--dataset", "d", "--workers", "0"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert "must be at least" in capsys.readouterr().err


def test_a_sensor_in_scientific_notation_parses():
    from deepsdf.cli import build_parser

    args = build_parser().parse_args(["complete", "E", "--out", "O", "--points", "p.ply",
                                      "--sensor", "1.28e+00", "9.34e-01", "-6.27e-01"])
    assert args.sensor == [1.28, 0.934, -0.627]


def test_reconstruct_goes_on_past_a_missing_shape(experiment, tmp_path, capsys):
    import shutil

    data = Path(load_specs(experiment).data_source)
    copy = tmp_path / "data_copy"
    shutil.copytree(data, copy)
    missing = sorted((copy / "SdfSamples").rglob("*.npz"))[0]
    missing.unlink()
    split = load_specs(experiment).train_split
    _trainer(experiment).train(epochs=1)
    code = main(["reconstruct", str(experiment), "--split", split, "--data", str(copy),
                 "--steps", "2", "--resolution", "16", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1 and f"not reconstructed gen/chairs/{missing.stem}" in captured.err
    written = sorted((experiment / "Reconstructions" / "latest" / "Codes").rglob("*.pth"))
    assert len(written) == 2 and missing.stem not in {p.stem for p in written}


def test_a_split_entry_cannot_make_reconstruct_leave_the_experiment(experiment, tmp_path,
                                                                     capsys):
    _trainer(experiment).train(epochs=1)
    escape = tmp_path / "escape.json"
    escape.write_text(json.dumps({"gen": {"chairs": ["../../../../outside"]}}))
    assert main(["reconstruct", str(experiment), "--split", str(escape), "--steps", "1",
                 "--no-progress"]) == 2
    assert "single file-name component" in capsys.readouterr().err
    assert not (tmp_path / "outside.pth").exists()


def test_a_version_2_spec_trains_from_any_working_directory(experiment, tmp_path,
                                                             monkeypatch):
    """SpecsVersion-2 paths are relative to the spec: any working directory works."""
    specs = json.loads((experiment / "specs.json").read_text())
    specs["DataSource"] = os.path.relpath(specs["DataSource"], experiment)
    specs["TrainSplit"] = os.path.relpath(specs["TrainSplit"], experiment)
    (experiment / "specs.json").write_text(json.dumps(specs))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _trainer(experiment).train(epochs=1)
    assert load_checkpoint(checkpoint_path(experiment))["epoch"] == 1


# --------------------------------------------------------------------------- shards

def _tree_bytes(data_dir):
    return {p.relative_to(data_dir).as_posix(): p.read_bytes()
            for p in sorted(Path(data_dir).rglob("*"))
            if p.is_file() and "manifests" not in p.parts and "splits" not in p.parts
            and "PackedSamples" not in p.parts}


def test_three_shards_give_the_files_of_one_run_and_merge_into_its_manifest(tmp_path):
    from deepsdf_preprocess.driver import discover_meshes, merge_dataset
    from deepsdf_preprocess.manifest import shard_of

    _boxes(tmp_path / "meshes", [f"m{i}" for i in range(7)])
    (tmp_path / "meshes" / "c" / "bad.obj").write_text("not a mesh\n")
    one = preprocess_dataset(tmp_path / "meshes", tmp_path / "one", "D", config=SMALL_CONFIG,
                             backend="raycast", progress=False)
    sizes = []
    for index in range(3):
        report = preprocess_dataset(tmp_path / "meshes", tmp_path / "sharded", "D",
                                    config=SMALL_CONFIG, backend="raycast", progress=False,
                                    shard=(index, 3))
        sizes.append(len(report.succeeded) + len(report.failed))
        assert report.split_path is None and report.journal.is_file()
    assert sum(sizes) == 8 and max(sizes) < 8  # a partition, not three copies
    assert not (tmp_path / "sharded" / "manifests" / "D.json").exists()  # until the merge
    assert _tree_bytes(tmp_path / "sharded") == _tree_bytes(tmp_path / "one")
    jobs = discover_meshes(tmp_path / "meshes")
    merged = merge_dataset(tmp_path / "sharded", "D", {j.key for j in jobs}, forget_all=True)
    assert merged.succeeded == one.succeeded and merged.failed.keys() == one.failed.keys()
    assert formats.read_split(merged.split_path) == formats.read_split(one.split_path)
    records = json.loads(merged.manifest_path.read_text())["instances"]
    assert set(records) == {j.key for j in jobs}
    assert all("samples_kept" in records[k] for k in one.succeeded)
    assert {shard_of(k, 3) for k in records} == {0, 1, 2}


def test_the_merge_command_after_shards(tmp_path, capsys):
    _boxes(tmp_path / "meshes", ["a", "b", "c"])
    base = ["preprocess", str(tmp_path / "meshes"), str(tmp_path / "data"), "--dataset", "D",
            "--backend", "raycast", "--views", "12", "--resolution", "96", "--samples", "5000",
            "--no-progress"]
    for index in range(2):
        assert main(base + ["--shard", f"{index}/2", "--workers", "1"]) == 0
    assert main(base + ["--merge"]) == 0
    assert "merged: 3 instance(s) ready" in capsys.readouterr().out
    assert formats.read_split(tmp_path / "data/splits/D.json") == {"D": {"c": ["a", "b", "c"]}}
    assert not list((tmp_path / "data/manifests/D.journal").glob("*.jsonl"))
    with pytest.raises(SystemExit):
        main(base + ["--shard", "2/2"])


def test_two_concurrent_runs_on_one_tree_corrupt_nothing(tmp_path):
    _boxes(tmp_path / "meshes", [f"m{i}" for i in range(6)])
    reference = preprocess_dataset(tmp_path / "meshes", tmp_path / "reference", "D",
                                   config=SMALL_CONFIG, backend="raycast", progress=False)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import SMALL_CONFIG
        from deepsdf_preprocess.driver import preprocess_dataset
        preprocess_dataset({str(tmp_path / 'meshes')!r}, {str(tmp_path / 'data')!r}, "D",
                           config=SMALL_CONFIG, backend="raycast", workers=1, progress=False)
    """)
    runs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    assert [run.wait(timeout=300) for run in runs] == [0, 0]
    assert _tree_bytes(tmp_path / "data") == _tree_bytes(tmp_path / "reference")
    manifest = json.loads((tmp_path / "data/manifests/D.json").read_text())
    assert sorted(manifest["instances"]) == reference.succeeded
    assert all(r["status"] == "ok" for r in manifest["instances"].values())
    assert not list((tmp_path / "data").rglob("*.part"))

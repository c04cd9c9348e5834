"""Provenance by content (``deepsdf_preprocess.provenance`` and the records built on it).

A record trusts contents, with size and time only as the fast path: a copied folder (new
times, same bytes) stays valid; an edited file is stale even when its size is unchanged; a
record cut short is damage, never "no record"; resuming on other samples is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_experiment
from deepsdf.cli import main
from deepsdf.experiment import Experiment, load_specs
from deepsdf.train import Trainer
from deepsdf_preprocess import provenance


def _copy_tree(source, target):
    """``cp -r``: the same bytes under new modification times."""
    shutil.copytree(source, target, copy_function=shutil.copyfile)
    return Path(target)


def _later(path, seconds=10):
    status = os.stat(path)
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + seconds * 10**9))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(min_size=1, max_size=4096), where=st.integers(min_value=0),
       flip=st.integers(min_value=1, max_value=255))
def test_same_file_follows_contents_not_times(tmp_path, content, where, flip):
    path = tmp_path / "a.bin"
    path.write_bytes(content)
    record = provenance.fingerprint(path)
    assert provenance.same_file(record, path)
    copy = tmp_path / "copy.bin"
    shutil.copyfile(path, copy)
    _later(copy)
    assert provenance.same_file(record, copy)  # a copy: new time, same bytes
    edited = bytearray(content)
    edited[where % len(content)] ^= flip
    path.write_bytes(bytes(edited))
    _later(path)
    assert not provenance.same_file(record, path)  # same size, other bytes
    path.write_bytes(content + b"x")
    assert not provenance.same_file(record, path)


def test_records_without_contents_are_compared_as_they_were_made(tmp_path):
    """A record written before contents were hashed (size and time only) is compared by size
    and time: valid while untouched, stale once the time moves."""
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    legacy = {key: value for key, value in provenance.fingerprint(path).items()
              if key != "sha256"}
    assert provenance.same_file(legacy, path)
    _later(path)
    assert not provenance.same_file(legacy, path)
    assert not provenance.same_file(None, path) and not provenance.same_file(legacy, tmp_path)


def test_stale_reason_compares_inputs_named_by_path_by_content(tmp_path):
    output, source = tmp_path / "out.bin", tmp_path / "mesh.obj"
    output.write_bytes(b"result")
    source.write_bytes(b"v 0 0 0\n")
    record = {"outputs": provenance.fingerprints({"out": output}),
              "source": provenance.file_identity(source)}
    moved = _copy_tree(tmp_path, tmp_path.parent / f"{tmp_path.name}-moved")
    _later(moved / "mesh.obj")
    assert provenance.stale_reason(record, {"out": moved / "out.bin"},
                                   made_by={"source": moved / "mesh.obj"}) is None
    (moved / "mesh.obj").write_bytes(b"v 0 0 1\n")
    assert provenance.stale_reason(record, {"out": moved / "out.bin"},
                                   made_by={"source": moved / "mesh.obj"}) \
        == "made from another source"


@pytest.fixture(scope="module")
def made(tiny_data, tmp_path_factory):
    """One experiment trained an epoch (of 2) and reconstructed, on a private copy of the tiny
    data root; tests work on copies of it."""
    data, split = tiny_data
    root = tmp_path_factory.mktemp("provenance")
    data = _copy_tree(data, root / "data")
    experiment = make_experiment(root / "exp", data, split, NumEpochs=2, SamplesPerScene=512)
    _train(experiment)
    _reconstruct(experiment)
    return experiment, data, split


@pytest.fixture
def copied(made, tmp_path):
    """(this test's copy of the experiment, the shared data root, the split)."""
    experiment, data, split = made
    return _copy_tree(experiment, tmp_path / "exp"), data, split


def _train(experiment, **options):
    Trainer(experiment, load_specs(experiment), device="cpu", progress=False).train(
        epochs=1, **options)


def _reconstruct(experiment):
    assert main(["reconstruct", str(experiment), "--split", load_specs(experiment).train_split,
                 "--steps", "1", "--resolution", "16", "--no-progress"]) == 0


def _keys(experiment) -> list:
    split = json.loads(Path(load_specs(experiment).train_split).read_text())
    return [f"{d}/{c}/{name}" for d, classes in split.items() for c, names in classes.items()
            for name in names]


def _edit_samples(data: Path, key: str) -> None:
    """Change one SdfSamples value of ``key`` in place, keeping the file's size."""
    path = data / "SdfSamples" / f"{key}.npz"
    arrays = dict(np.load(path))
    arrays["pos"][0, 3] += 0.25
    np.savez(path, **arrays)


def test_a_copied_experiment_and_data_root_stay_valid(made, tmp_path, capsys):
    experiment, data, split = made
    copy = _copy_tree(experiment, tmp_path / "copy")
    data_copy = _copy_tree(data, tmp_path / "data-copy")
    for key in _keys(experiment):
        assert Experiment(copy).reconstruction_stale(key) is None
        assert Experiment(copy, data=data_copy).reconstruction_stale(key) is None
    capsys.readouterr()
    assert main(["evaluate", str(copy), "--split", str(split), "--no-retrieval"]) == 0
    assert "left out" not in capsys.readouterr().err
    # ... and an edit of the same size, in the copy, is seen
    key = _keys(experiment)[0]
    mesh = Experiment(copy).reconstruction(key)["mesh"]
    raw = bytearray(mesh.read_bytes())
    raw[-5] ^= 1
    mesh.write_bytes(bytes(raw))
    assert "changed since it was written" in Experiment(copy).reconstruction_stale(key)
    _edit_samples(data_copy, _keys(experiment)[1])
    assert "other SdfSamples" in Experiment(
        experiment, data=data_copy).reconstruction_stale(_keys(experiment)[1])


@pytest.mark.parametrize("damage", ["cut", "list", "no outputs"])
def test_a_damaged_record_is_not_evaluated_as_found(copied, tmp_path, capsys, damage):
    """A reconstruction record cut short (or edited into something else) leaves its
    reconstruction out of the evaluation as stale; it is not "no record" (evaluated as
    found), and `reconstruct --skip` redoes it."""
    experiment, data, split = copied
    records = [Experiment(experiment).reconstruction_record(key) for key in _keys(experiment)]
    for record in records:
        text = record.read_text()
        record.write_text({"cut": text[: len(text) // 2], "list": "[1, 2]",
                           "no outputs": json.dumps({"checkpoint": None})}[damage])
    capsys.readouterr()
    assert main(["evaluate", str(experiment), "--split", str(split), "--no-retrieval"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "damaged" in err and "evaluated as found" not in err, err
    assert main(["reconstruct", str(experiment), "--split", str(split), "--steps", "1",
                 "--resolution", "16", "--no-progress", "--skip"]) == 0
    assert all(Experiment(experiment).reconstruction_stale(key) is None
               for key in _keys(experiment))


def test_resume_refuses_other_samples_and_takes_a_copy(copied, tmp_path, capsys):
    experiment, data, split = copied  # trained 1 epoch of 2
    # the same samples under another path and new times: resumed
    data_copy = _copy_tree(data, tmp_path / "data-copy")
    assert main(["train", str(experiment), "--data", str(data_copy), "--resume", "--epochs",
                 "1", "--no-progress"]) == 0
    # the samples preprocessed again (one value differs): refused in one line, nothing written
    _edit_samples(data_copy, _keys(experiment)[0])
    data_copy = _copy_tree(data_copy, tmp_path / "data-edited")  # another DataSource, too
    latest = Experiment(experiment).checkpoint_file()
    before = latest.read_bytes()
    resolved = experiment / "specs.resolved.json"
    resolved_before = resolved.read_bytes()
    capsys.readouterr()
    code = main(["train", str(experiment), "--data", str(data_copy), "--resume", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "not those" in err, err
    assert latest.read_bytes() == before and resolved.read_bytes() == resolved_before


def test_a_source_given_through_a_link_is_compared_by_what_it_points_to(tmp_path):
    """Inputs may be links (a mesh folder of links into a library): the record describes the
    file pointed to, and a rerun through the link (or a link to an identical copy) matches;
    an output that became a link never does."""
    mesh, copy, output = tmp_path / "mesh.obj", tmp_path / "copy.obj", tmp_path / "out.bin"
    mesh.write_bytes(b"v 0 0 0\n")
    copy.write_bytes(b"v 0 0 0\n")
    output.write_bytes(b"result")
    link = tmp_path / "link.obj"
    link.symlink_to(mesh)
    record = {"outputs": provenance.fingerprints({"out": output}),
              "source": provenance.file_identity(link)}
    assert record["source"]["path"] == str(mesh.resolve())
    assert provenance.stale_reason(record, {"out": output}, made_by={"source": link}) is None
    link.unlink()
    link.symlink_to(copy)
    assert provenance.stale_reason(record, {"out": output}, made_by={"source": link}) is None
    linked_output = tmp_path / "linked.bin"
    linked_output.symlink_to(output)
    assert "symbolic link" in provenance.stale_reason(record, {"out": linked_output})


def test_one_unusable_reconstruction_leaves_only_itself_out(copied, tmp_path, capsys, caplog):
    """A record that is a folder, or a mesh replaced by a link to a file outside: that shape
    is left out with its reason, the others are scored."""
    experiment, data, split = copied
    keys = _keys(experiment)
    record = Experiment(experiment).reconstruction_record(keys[0])
    record.unlink()
    record.mkdir()
    mesh = Experiment(experiment).reconstruction(keys[1])["mesh"]
    outside = tmp_path / "outside.ply"
    outside.write_bytes(mesh.read_bytes())
    mesh.unlink()
    mesh.symlink_to(outside)
    capsys.readouterr()
    assert main(["evaluate", str(experiment), "--split", str(split), "--no-retrieval"]) == 0
    err = capsys.readouterr().err + caplog.text
    assert "2 reconstruction(s) left out" in err and "Traceback" not in err, err
    summary = json.loads(Experiment(experiment).evaluation_summary.read_text())
    assert summary["shapes"] == len(keys) - 2


@pytest.mark.parametrize("tamper", ["table", "summary"])
def test_a_report_refuses_tables_and_summaries_changed_since_written(copied, tmp_path, capsys,
                                                                     tamper):
    """The evaluation summary carries its own checksum and the digest of the table it was
    written with: a value changed in either (still a valid number) is refused by `report`."""
    experiment, data, split = copied
    assert main(["evaluate", str(experiment), "--split", str(split), "--no-retrieval"]) == 0
    trained = Experiment(experiment)
    if tamper == "table":
        lines = trained.evaluation_table.read_text().splitlines(keepends=True)
        cells = lines[1].split(",")
        cells[1] = repr(float(cells[1]) * 0.5)  # a better Chamfer than was measured
        lines[1] = ",".join(cells)
        trained.evaluation_table.write_text("".join(lines))
    else:
        summary = json.loads(trained.evaluation_summary.read_text())
        summary["reconstruction"]["chamfer"]["mean"] *= 0.5
        trained.evaluation_summary.write_text(json.dumps(summary))
    capsys.readouterr()
    assert main(["report", str(experiment), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "changed since" in err and "deepsdf evaluate" in err, err


def test_a_manifest_changed_since_written_is_not_trusted(tmp_path, small_config, caplog):
    """A value edited in the manifest (a record's status, a count) breaks its checksum: no
    record of it is trusted, and its instances are redone rather than skipped."""
    from deepsdf_preprocess.driver import preprocess_dataset
    from deepsdf_preprocess.manifest import manifest_path
    from deepsdf_preprocess.procedural import write_shapes

    meshes = tmp_path / "meshes"
    write_shapes(meshes, "chairs", 2, seed=4)
    data = tmp_path / "data"

    def run():
        return preprocess_dataset(meshes, data, "gen", config=small_config, workers=1,
                                  backend="raycast", progress=False)

    assert len(run().succeeded) == 2
    assert len(run().skipped) == 2
    path = manifest_path(data, "gen")
    manifest = json.loads(path.read_text())
    key = sorted(manifest["instances"])[0]
    manifest["instances"][key]["positive"] += 1
    path.write_text(json.dumps(manifest))
    again = run()
    assert again.skipped == [] and "changed since it was written" in caplog.text

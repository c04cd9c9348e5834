"""The README's main job, end to end, in its reduced mode (what CI runs)."""

import json
import re

import pytest
from PIL import Image

from deepsdf.cli import main

from browser import load

SECTIONS = ("Summary over all", "Per shape", "Pictures", "Interactive 3D view",
            "Interpolation (slerp between two training codes)", "The shape space",
            "Training curve", "The run")


@pytest.mark.slow
def test_quick_demo_runs_end_to_end_and_writes_its_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--backend", "raycast",
                 "--device", "cpu"]) == 0
    assert "report/index.html" in capsys.readouterr().out
    report = out / "report"
    page = (report / "index.html").read_text()
    for section in SECTIONS:
        assert f"<h2>{section}" in page, section
    held_out = json.loads((out / "data/splits/procedural_test.json").read_text())
    names = [(c, n) for c, instances in held_out["procedural"].items() for n in instances]
    assert len(names) == 2
    for class_name, name in names:  # every held-out shape: its row, picture, viewer meshes
        assert page.count(name) >= 3
        with Image.open(report / "shapes" / class_name / f"{name}.png") as image:
            width, height = image.size  # five 160-pixel panels and the gaps between
            assert 5 * 160 <= width < 5 * 170 and 160 <= height < 170
    for picture in ("interpolation/strip.png", "interpolation/interpolation.gif",
                    "training_curve.png", "code_map.png"):
        assert f'src="{picture}"' in page
        with Image.open(report / picture) as image:
            assert min(image.size) >= 160
    assert "deepsdf explore" in page  # the report says how to walk the space live
    # links to the meshes and the CSVs resolve inside the output folder
    for target in re.findall(r'href="([^"]+)"', page):
        assert (report / target).resolve().is_file(), target
    # the quick run's spec: 6 training shapes hold the 12 x 2048 batch as 6 x 4096, and the
    # learning rates are cut at the same share of its 300 epochs as of the spec's 630
    specs = json.loads((out / "experiment/specs.json").read_text())
    assert (specs["ScenesPerBatch"], specs["SamplesPerScene"], specs["NumEpochs"]) == \
        (6, 4096, 300)
    assert [s["Interval"] for s in specs["LearningRateSchedule"]] == [120, 120]
    summary = json.loads((report / "summary.json").read_text())
    assert summary["held_out_shapes"] == 2 and summary["completion"]["shapes"] == 2
    # the reconstructions beat retrieval by code on the mean Chamfer (seeded: deterministic on
    # a given machine; the quick model is small, see docs/benchmarks.md on its sensitivity)
    assert summary["versus_retrieval"]["mean"][0] < summary["versus_retrieval"]["mean"][1]
    assert summary["mean_chamfer"] < 0.5 * summary["retrieval_mean_chamfer"]
    assert 0 < summary["completion"]["chamfer"] < 0.1
    assert set(summary["timings"]) >= {"preprocess", "train", "complete"}
    dom, console = load(report / "index.html")  # the interactive view, in a browser
    assert console == [] and 'data-viewer-errors=""' in dom
    assert int(re.search(r'data-drawn="(\d+)"', dom).group(1)) > 1000
    # Rerunning resumes: nothing is trained or fitted again, the report is rewritten.
    assert main(["demo", "--quick", "--out", str(out), "--backend", "raycast",
                 "--device", "cpu"]) == 0
    assert json.loads((report / "summary.json").read_text())["mean_chamfer"] == \
        summary["mean_chamfer"]


def test_demo_size_options_keep_the_held_out_share(monkeypatch, tmp_path):
    """--count alone keeps the default share held out (3 of 30; quick: 1 of 4), --held-out
    sets it, and a split that leaves nothing to train on is refused before any work."""
    import deepsdf.demo

    seen = []

    def record(out, settings, **options):
        seen.append((settings.count, settings.held_out, settings.epochs))
        return {"mean_chamfer": 1.0, "retrieval_mean_chamfer": 2.0,
                "report": str(out / "report/index.html")}

    monkeypatch.setattr(deepsdf.demo, "run_demo", record)
    out = ["--out", str(tmp_path)]
    for argv in (["--count", "12"], ["--count", "60"], ["--quick", "--count", "8"],
                 ["--held-out", "5"], []):
        assert main(["demo"] + argv + out) == 0
    assert seen == [(12, 1, None), (60, 6, None), (8, 2, 300), (30, 5, None), (30, 3, None)]
    assert main(["demo", "--count", "1"] + out) == 2
    assert main(["demo", "--held-out", "30"] + out) == 2
    assert main(["demo", "--count", "0"] + out) == 2
    assert len(seen) == 5


def test_specs_with_epochs_keeps_the_cuts_at_the_same_share():
    from deepsdf.config import specs_with_epochs

    specs = {"NumEpochs": 630, "SnapshotFrequency": 315,
             "LearningRateSchedule": [{"Type": "Step", "Initial": 1e-3, "Interval": 252,
                                       "Factor": 0.3},
                                      {"Type": "Constant", "Value": 1e-3}]}
    shorter = specs_with_epochs(specs, 300)
    assert (shorter["NumEpochs"], shorter["SnapshotFrequency"]) == (300, 300)
    assert shorter["LearningRateSchedule"] == [
        {"Type": "Step", "Initial": 1e-3, "Interval": 120, "Factor": 0.3},
        {"Type": "Constant", "Value": 1e-3}]
    assert specs_with_epochs(specs, 1)["LearningRateSchedule"][0]["Interval"] == 1
    assert specs["LearningRateSchedule"][0]["Interval"] == 252  # the input is left alone

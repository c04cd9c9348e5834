"""The README's main job, end to end, in its reduced mode (what CI runs)."""

import json

import pytest
from PIL import Image

from deepsdf.cli import main


@pytest.mark.slow
def test_quick_demo_runs_end_to_end_and_writes_its_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--backend", "raycast",
                 "--device", "cpu"]) == 0
    assert "report/index.html" in capsys.readouterr().out
    report = out / "report"
    page = (report / "index.html").read_text()
    for picture in ("held_out.png", "completion.png", "interpolation/strip.png",
                    "interpolation/interpolation.gif", "training_curve.png"):
        assert f'src="{picture}"' in page
        with Image.open(report / picture) as image:
            assert image.size[0] > 0 and image.size[1] > 0
    summary = json.loads((report / "summary.json").read_text())
    assert summary["held_out_shapes"] == 2
    assert isinstance(summary["beats_retrieval_on_mean"], bool)
    assert summary["completion"]["chamfer"] > 0
    # Rerunning resumes: nothing is trained or fitted again, the report is rewritten.
    assert main(["demo", "--quick", "--out", str(out), "--backend", "raycast",
                 "--device", "cpu"]) == 0
    assert json.loads((report / "summary.json").read_text())["mean_chamfer"] == \
        summary["mean_chamfer"]

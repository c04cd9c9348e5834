"""The guide's "your own meshes" path, run as written in docs/guide.md on generated vessels:
every command of its block, in order, with smaller settings appended (the docs stay true)."""

import json
import re
import shlex
import shutil
from pathlib import Path

from deepsdf.cli import main
from deepsdf_preprocess.procedural import write_shapes

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"

#: Appended to each command of the block: the same path at test size.
SMALLER = {
    "preprocess": ["--backend", "raycast", "--samples", "30000", "--views", "20",
                   "--resolution", "96", "--workers", "1", "--no-progress"],
    "new": ["--device", "cpu"],
    "train": ["--no-progress", "--device", "cpu"],
    "reconstruct": ["--resolution", "40", "--steps", "8", "--no-progress", "--device", "cpu"],
    "complete": ["--resolution", "40", "--steps", "6", "--no-progress", "--device", "cpu"],
    "interpolate": ["--steps", "3", "--resolution", "32", "--size", "64", "--no-progress",
                    "--device", "cpu"],
    "report": ["--size", "64"],
}


def guide_commands() -> list:
    """The `deepsdf ...` lines of the guide's "Your own meshes" block, as argument lists."""
    text = GUIDE.read_text()
    section = text[text.index("## Your own meshes"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [shlex.split(line)[1:] for line in block.splitlines()
            if line.startswith("deepsdf ")]


def test_the_guides_own_meshes_path_runs_as_written(tmp_path, monkeypatch, capsys):
    # "Your meshes": 8 generated vessels named as the guide names them.
    write_shapes(tmp_path / "generated", "vessels", 8, seed=3)
    cups = tmp_path / "meshes" / "cups"
    cups.mkdir(parents=True)
    for index, mesh in enumerate(sorted((tmp_path / "generated" / "vessels").glob("*.obj"))):
        shutil.copy(mesh, cups / f"cup_{index:02d}.obj")
    monkeypatch.chdir(tmp_path)
    commands = guide_commands()
    assert [c[0] for c in commands] == ["preprocess", "split", "new", "train", "reconstruct",
                                        "evaluate", "complete", "interpolate", "report"]
    for arguments in commands:
        step = arguments[0]
        if step == "new":  # the budget as written would train for 15 minutes here
            arguments = [a for a in arguments if a not in ("--budget", "15")] + ["--steps",
                                                                                 "40"]
        if step == "interpolate":  # the ends: two shapes the split put in training
            train = json.loads(Path("splits/train.json").read_text())["cups"]["cups"]
            arguments = [{"cups/cup_00": f"cups/{train[0]}",
                          "cups/cup_01": f"cups/{train[1]}"}.get(a, a) for a in arguments]
        assert main(arguments + SMALLER.get(step, [])) == 0, arguments
    out = capsys.readouterr().out
    assert "runs/cups/specs.json: 6 training shapes" in out
    assert "next: deepsdf train runs/cups" in out
    specs = json.loads(Path("runs/cups/specs.json").read_text())
    assert specs["ScenesPerBatch"] == len(
        json.loads(Path("splits/train.json").read_text())["cups"]["cups"])
    report = Path("runs/cups/Report/latest")
    summary = json.loads((report / "summary.json").read_text())
    assert summary["held_out_shapes"] == summary["completion"]["shapes"] >= 1
    assert summary["versus_retrieval"]["verdict"] in ("beats", "loses to", "mixed")
    page = (report / "index.html").read_text()
    for target in re.findall(r'(?:href|src)="([^"]+)"', page):
        assert (report / target).resolve().is_file(), target
    assert "walk/strip.png" in page and "completion.ply" in page
    assert "shapes/cups/" in page  # pictures per class: instance names may repeat across them
    # The report's doors: a rerun replaces its own folder; other folders are left alone.
    assert main(["report", "runs/cups"]) == 0
    Path("mine").mkdir()
    Path("mine/index.html").write_text("my page")
    Path("a_file").write_text("mine")
    Path("empty").mkdir()
    for extra in (["--out", "mine"], ["--out", "a_file"], ["--completion", "empty"],
                  ["--interpolation", "empty"], ["--out", "runs/cups/Evaluation/latest"]):
        assert main(["report", "runs/cups", *extra]) == 2, extra
    assert Path("mine/index.html").read_text() == "my page"
    assert Path("a_file").read_text() == "mine"
    assert "reconstruction" in json.loads(
        Path("runs/cups/Evaluation/latest/summary.json").read_text())
    # Foreign or stale inputs of a report are refused or left out, never published:
    completion = Path("runs/cups/completion")
    written = (completion / "completion.csv").read_bytes()
    rows = written.decode().splitlines()
    (completion / "completion.csv").write_text("\n".join(
        [rows[0], rows[1].replace(rows[1].split(",")[4], "-5", 1)] + rows[2:]) + "\n")
    assert main(["report", "runs/cups", "--completion", str(completion)]) == 2  # a metric < 0
    (completion / "completion.csv").write_bytes(written)  # as written: its summary vouches
    # an earlier run's mesh of a shape this run's table does not list is not shown
    stray = completion / "Meshes" / "cups" / "cups" / "not_in_this_run.ply"
    shutil.copy(next((completion / "Meshes" / "cups" / "cups").glob("*.ply")), stray)
    assert main(["report", "runs/cups", "--completion", str(completion)]) == 0
    assert "not_in_this_run" not in (report / "index.html").read_text()
    # more training makes the evaluation another checkpoint's: the report says so
    specs["NumEpochs"] += 1
    Path("runs/cups/specs.json").write_text(json.dumps(specs))
    assert main(["train", "runs/cups", "--resume", *SMALLER["train"]]) == 0
    capsys.readouterr()
    assert main(["report", "runs/cups"]) == 2
    assert "not this model's evaluation" in capsys.readouterr().err

"""The `deepsdf` command: help, generate, split, and a short end-to-end preprocess."""

import json
import subprocess
import sys

import numpy as np
import pytest

from deepsdf.cli import main
from deepsdf_preprocess import formats


def test_help_lists_the_steps(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for step in ("generate", "preprocess", "split", "demo"):
        assert step in text
    with pytest.raises(SystemExit):
        main(["preprocess", "--help"])
    assert "--backend" in capsys.readouterr().out


def test_console_script_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "deepsdf", "--version"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and "deepsdf" in result.stdout


def test_split_is_seeded_and_complete(tmp_path):
    assert main(["generate", str(tmp_path / "m"), "--count", "10"]) == 0
    args = ["split", str(tmp_path / "m"), "--dataset", "D", "--test-fraction", "0.3"]
    main(args + ["--train", str(tmp_path / "a.json"), "--test", str(tmp_path / "b.json")])
    main(args + ["--train", str(tmp_path / "c.json"), "--test", str(tmp_path / "d.json")])
    train, test = formats.read_split(tmp_path / "a.json"), formats.read_split(tmp_path / "b.json")
    assert train == formats.read_split(tmp_path / "c.json")
    assert test == formats.read_split(tmp_path / "d.json")
    assert len(test["D"]["chairs"]) == 3 and len(train["D"]["chairs"]) == 7
    assert sorted(train["D"]["chairs"] + test["D"]["chairs"]) == [f"chairs_{i:04d}" for i in range(10)]
    main(args + ["--seed", "1", "--train", str(tmp_path / "e.json"), "--test", str(tmp_path / "f.json")])
    assert formats.read_split(tmp_path / "f.json") != test


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["preprocess", str(tmp_path / "nowhere"), str(tmp_path / "d"),
                 "--dataset", "D"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_bug_shows_its_traceback_and_our_errors_do_not(tmp_path, capsys, monkeypatch):
    """Only this project's error types become one line; a plain ValueError from the code is a
    bug and propagates (with its traceback); -v shows ours in full."""
    import deepsdf.cli as cli
    from deepsdf_preprocess.errors import InputError

    def failing(error):
        def run(args):
            raise error
        return run

    argv = ["split", str(tmp_path / "nowhere.json"), "--dataset", "D", "--train",
            str(tmp_path / "a.json"),
            "--test", str(tmp_path / "b.json")]
    original = cli.build_parser

    def parser_with(run):
        def build():
            parser = original()
            parser._subparsers._group_actions[0].choices["split"].set_defaults(run=run)
            return parser
        return build

    monkeypatch.setattr(cli, "build_parser", parser_with(failing(InputError("bad input X"))))
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == "deepsdf split: error: bad input X"
    with pytest.raises(InputError):
        main(["-v"] + argv)
    monkeypatch.setattr(cli, "build_parser", parser_with(failing(ValueError("a bug"))))
    with pytest.raises(ValueError, match="a bug"):
        main(argv)


def test_preprocess_end_to_end_and_exit_code(tmp_path):
    meshes = tmp_path / "meshes"
    main(["generate", str(meshes), "--count", "2", "--category", "tables"])
    args = ["preprocess", str(meshes), str(tmp_path / "data"), "--dataset", "D", "--backend",
            "raycast", "--views", "12", "--resolution", "96", "--samples", "5000",
            "--no-progress"]
    assert main(args) == 0
    pos, neg = formats.read_sdf_samples(tmp_path / "data/SdfSamples/D/tables/tables_0001.npz")
    assert len(pos) + len(neg) > 4500
    (meshes / "tables" / "broken.obj").write_text("not a mesh\n")
    assert main(args) == 1  # a failed instance makes the run exit non-zero
    manifest = json.loads((tmp_path / "data/manifests/D.json").read_text())
    assert manifest["instances"]["tables/broken"]["status"] == "failed"
    assert manifest["instances"]["tables/tables_0000"]["status"] == "ok"


def test_near_fraction_sets_how_many_samples_are_uniform(tmp_path):
    """--near-fraction 0.5 leaves half of the 5000 drawn samples uniform in the cube (the
    default preset: 3/50 of them); the manifest records it."""
    main(["generate", str(tmp_path / "m"), "--count", "1", "--category", "tables"])
    uniform = {}
    for fraction in (None, 0.5):
        data = tmp_path / f"data{fraction}"
        extra = [] if fraction is None else ["--near-fraction", str(fraction)]
        assert main(["preprocess", str(tmp_path / "m"), str(data), "--dataset", "D",
                     "--backend", "raycast", "--views", "12", "--resolution", "96",
                     "--samples", "5000", "--no-progress"] + extra) == 0
        paths = formats.instance_outputs(data, formats.InstanceKey("D", "tables", "tables_0000"))
        uniform[fraction] = len(formats.read_occupancy(paths[formats.OCCUPANCY_SAMPLES])[0])
        recorded = json.loads((data / "manifests/D.json").read_text())
        assert recorded["config"]["sampling"]["near_fraction"] == (fraction or 47 / 50)
    assert 250 <= uniform[None] <= 300
    assert 2300 <= uniform[0.5] <= 2500


@pytest.mark.slow
@pytest.mark.egl
def test_full_reference_settings_on_one_chair(tmp_path, gl_scanner):
    """One mesh at the defaults: 100 views at 400 x 400 through EGL, 500k samples."""
    from deepsdf_preprocess.normalize import to_original
    from deepsdf_preprocess.procedural import write_shapes, generate_shapes

    write_shapes(tmp_path / "m", "chairs", 1, seed=9)
    assert main(["preprocess", str(tmp_path / "m"), str(tmp_path / "d"), "--dataset", "D",
                 "--no-progress"]) == 0
    paths = formats.instance_outputs(tmp_path / "d", "D/chairs/chairs_0000")
    pos, neg = formats.read_sdf_samples(paths[formats.SDF_SAMPLES])
    assert 490_000 <= len(pos) + len(neg) <= 500_000
    assert len(formats.read_surface_samples(paths[formats.SURFACE_SAMPLES])["points"]) == 30_000
    offset, scale = formats.read_normalization(paths[formats.NORMALIZATION_PARAMETERS])
    shape = generate_shapes("chairs", 1, seed=9)[0]
    rows = np.concatenate([pos, neg])
    truth = shape.sdf(to_original(rows[:, :3], offset, scale)) * scale
    far = np.abs(truth) > 1e-3
    assert np.mean(np.sign(rows[far, 3]) != np.sign(truth[far])) <= 1e-3
    outside = truth > 0
    assert np.median(np.abs(rows[outside, 3] - truth[outside])) < 1e-6


def test_every_option_with_a_default_shows_it_in_help():
    import argparse
    import re

    from deepsdf.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, subparser in commands.choices.items():
        text = re.sub(r"-\s+", "-", " ".join(subparser.format_help().split()))
        for action in subparser._actions:
            if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
                continue
            if action.default is True or isinstance(action.default, list):
                continue
            if f"default: {action.default}" not in text and "default:" not in (action.help or ""):
                missing.append(f"{name} {action.option_strings[0]}")
    assert missing == []
    reconstruct = " ".join(commands.choices["reconstruct"].format_help().split())
    assert "--solver {gauss-newton,adam}" in reconstruct and "(default: several starts" in reconstruct
    complete = re.sub(r"-\s+", "-", " ".join(commands.choices["complete"].format_help().split()))
    assert "(default: gauss-newton)" in complete
    assert "%%" not in " ".join(p.format_help() for p in commands.choices.values())


def test_one_progress_helper_honours_the_switch(monkeypatch, caplog):
    import logging

    from deepsdf_preprocess.progress import progress_bar

    monkeypatch.setenv("DEEPSDF_NO_PROGRESS", "1")
    bar = progress_bar(3, desc="x", unit="item", log=logging.getLogger("deepsdf.test"))
    bar.update(1)
    bar.set_postfix(loss="0.1")
    bar.write("FAILED something")
    bar.close()
    assert type(bar).__name__ == "_Silent" and "FAILED something" in caplog.text
    monkeypatch.delenv("DEEPSDF_NO_PROGRESS")
    assert type(progress_bar(3, desc="x", unit="item", enabled=False)).__name__ == "_Silent"
    shown = progress_bar(3, desc="x", unit="item")
    assert type(shown).__name__ == "tqdm"
    shown.close()


def test_generate_soups_writes_meshes_the_preprocessor_reads(tmp_path, capsys):
    """`generate --style soup`: OBJ and GLB soups with their defects named, which the
    preprocess command's mesh walker finds and its loader reads."""
    from deepsdf_preprocess.mesh_io import load_mesh
    from deepsdf_preprocess.soup import generate_soups

    assert main(["generate", str(tmp_path / "m"), "--count", "3", "--category", "vessels",
                 "--style", "soup"]) == 0
    assert "triangle soups" in capsys.readouterr().out
    paths = sorted(p for p in (tmp_path / "m" / "vessels").iterdir() if p.suffix != ".json")
    assert [p.suffix for p in paths] == [".obj", ".obj", ".glb"]
    for path, soup in zip(paths, generate_soups("vessels", 3)):
        assert len(load_mesh(path).faces) == len(soup.mesh.faces)


def test_after_ctrl_c_one_line_names_the_exact_way_on(monkeypatch, capsys, tmp_path):
    import deepsdf.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    assert cli.build_parser().parse_args(["interpolate", "E", "--out", "O", "--random", "2",
                                          "--no-progress"]).no_progress
    parsed = cli.build_parser().parse_args(["train", str(tmp_path / "exp")])
    monkeypatch.setattr(cli, "build_parser", lambda: _Fixed(parsed, interrupted))
    assert cli.main(["train", str(tmp_path / "exp")]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"deepsdf train {tmp_path / 'exp'} --resume" in err


class _Fixed:
    """A parser stand-in that returns ``parsed`` with ``run`` replaced."""

    def __init__(self, parsed, run):
        self.parsed, self.run = parsed, run

    def parse_args(self, argv):
        self.parsed.run = self.run
        return self.parsed


def test_quality_presets_choose_grid_and_solver_and_flags_override_them(tmp_path):
    from deepsdf.cli import build_parser
    from deepsdf.cli.fitting_steps import _experiment_and_solver
    from deepsdf.settings import (GAUSS_NEWTON, QUALITIES, RECONSTRUCT_STARTS,
                                  SHORT_GAUSS_NEWTON, StartedFit)
    from deepsdf_preprocess.errors import InputError

    def resolved(*argv):
        args = build_parser().parse_args(list(argv))
        _, solver = _experiment_and_solver(args)
        if isinstance(solver, StartedFit):  # the several starts: its finishing fit
            assert solver.solver.seed == args.seed
            solver = solver.finish
        return args.resolution, solver.method, solver.steps, solver.samples

    exp = str(tmp_path)
    finish = RECONSTRUCT_STARTS.finish
    assert resolved("reconstruct", exp) == (128, "gauss-newton", finish.steps, finish.samples)
    assert resolved("reconstruct", exp, "--steps", "9", "--seed", "3")[2] == 9
    with pytest.raises(InputError, match="--screen"):
        resolved("reconstruct", exp, "--screen", "500")
    assert resolved("reconstruct", exp, "--screen", "500", "--solver", "gauss-newton")[1] == \
        "gauss-newton"
    assert resolved("reconstruct", exp, "--solver", "gauss-newton") == (
        128, "gauss-newton", GAUSS_NEWTON.steps, GAUSS_NEWTON.samples)
    assert resolved("complete", exp, "--out", "o", "--virtual-scan") == (
        128, "gauss-newton", SHORT_GAUSS_NEWTON.steps, SHORT_GAUSS_NEWTON.samples)
    assert resolved("complete", exp, "--out", "o", "--quality", "reference")[:3] == (
        QUALITIES["reference"].resolution, "gauss-newton", GAUSS_NEWTON.steps)
    assert resolved("reconstruct", exp, "--quality", "reference", "--resolution", "64",
                    "--steps", "7", "--solver", "adam")[:3] == (64, "adam", 7)

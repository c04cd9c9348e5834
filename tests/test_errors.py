"""One error hierarchy (``deepsdf_preprocess.errors``): every exception type either package
defines is a ``DeepSDFError`` (the command line's one-line door) and keeps the standard base a
caller catches; the command line answers any of them in one line, from any step."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import deepsdf
import deepsdf_preprocess
from deepsdf_preprocess.errors import DeepSDFError

#: Modules not to import here: one needs an OpenGL context, the other runs the command line.
SKIP = {"deepsdf_preprocess.render_gl", "deepsdf.__main__"}


def _error_types():
    found = {}
    for package in (deepsdf, deepsdf_preprocess):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module.name in SKIP:
                continue
            loaded = importlib.import_module(module.name)
            for name, value in vars(loaded).items():
                if (inspect.isclass(value) and issubclass(value, BaseException)
                        and value.__module__ == loaded.__name__):
                    found[f"{loaded.__name__}.{name}"] = value
    return found


def test_every_error_type_of_both_packages_is_one_hierarchy():
    types = _error_types()
    assert len(types) >= 10, sorted(types)  # the walk found them
    outside = sorted(name for name, kind in types.items() if not issubclass(kind, DeepSDFError))
    assert outside == [], outside
    # ... keeping the standard base a caller of the old types catches
    standard = (ValueError, RuntimeError, OSError)
    assert all(issubclass(kind, standard) for kind in types.values() if kind is not DeepSDFError)


@pytest.mark.parametrize("name", ["deepsdf.mesh.NoSurfaceError", "deepsdf.data.DataError",
                                  "deepsdf.checkpoint.CheckpointError",
                                  "deepsdf.train_state.TrainingError"])
def test_the_command_line_answers_any_of_them_in_one_line(name, monkeypatch, capsys):
    """Raised inside any step (here `generate`, which raised none of these before), the error
    is one line with exit code 2, not a traceback."""
    from deepsdf.cli import main

    module, kind = name.rsplit(".", 1)
    error = getattr(importlib.import_module(module), kind)

    def fail(args):
        raise error("what went wrong, named")

    import deepsdf.cli as cli

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: _Fixed(parser, fail))
    assert main(["generate", "out"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "deepsdf generate: error: what went wrong, named"


class _Fixed:
    """A parser whose step runs ``run``."""

    def __init__(self, parser, run):
        self.parser, self.run = parser, run

    def parse_args(self, argv):
        args = self.parser.parse_args(argv)
        args.run = self.run
        return args

    def print_help(self):
        self.parser.print_help()


@pytest.mark.parametrize("value, accepted", [(3, True), (3.0, True), (2.5, False),
                                             (True, False), ("3", False), (float("nan"), False)])
def test_one_rule_for_integers_in_specs_and_in_the_api(value, accepted):
    """specs.json's readers and the Python API's doors read integers by one rule
    (``validate.integer``): 3.0 is 3 in both, a fraction, a bool or text in neither."""
    from deepsdf.config import ConfigError, parse_specs
    from deepsdf_preprocess import validate
    from deepsdf_preprocess.errors import InputError

    specs = {"NumEpochs": value, "CodeLength": 8,
             "NetworkSpecs": {"dims": [16, 16], "latent_in": []}}
    if accepted:
        assert parse_specs(specs).epochs == 3
        assert validate.integer(value, what="x") == 3
    else:
        with pytest.raises(ConfigError, match="NumEpochs must be an integer"):
            parse_specs(specs)
        with pytest.raises(InputError):
            validate.integer(value, what="x")

"""The ``deepsdf`` command line: one command, one subcommand per pipeline step.

Each step group has its own module (its options and a thin runner that calls one library
function): ``data_steps`` (generate, preprocess, preprocess-scans, split), ``training_steps``
(new, train, export), ``fitting_steps`` (reconstruct, mesh, evaluate, complete, interpolate) and
``report_steps`` (report, demo); ``options`` holds what they share.  Subcommands import their
modules lazily, so ``deepsdf --help`` and the preprocessing steps never load torch, and nothing
but ``preprocess --backend pyrender`` loads OpenGL.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys

from deepsdf import __version__
from deepsdf.cli.data_steps import add_generate, add_preprocess, add_preprocess_scans, add_split
from deepsdf.cli.fitting_steps import (add_complete, add_evaluate, add_interpolate, add_mesh,
                                       add_reconstruct)
from deepsdf.cli.options import NEGATIVE_NUMBER, StepFormatter
from deepsdf.cli.report_steps import add_demo, add_explore, add_report
from deepsdf.cli.training_steps import add_export, add_new, add_train
from deepsdf_preprocess.errors import DeepSDFError

DESCRIPTION = """\
DeepSDF made practical: meshes -> signed-distance training data -> shape models.

Pipeline steps:
  generate    write the embedded example categories (procedural chairs, tables, vessels)
  preprocess  turn a folder of meshes into DeepSDF training data (100 depth cameras)
  preprocess-scans  the same from depth scans of objects, without meshes
  split       make a seeded train/test split file
  new         write an experiment's specs.json sized to your shapes, machine and budget
  train       train a decoder and its latent codes (specs.json)
  reconstruct fit codes of unseen shapes, write meshes
  mesh        extract one mesh from a code
  evaluate    metrics of reconstructions beside the retrieval baseline
  report      an HTML page of an evaluated experiment: tables, pictures, 3D view
  complete    complete shapes from partial depth scans
  interpolate meshes, pictures and a GIF along a path in the shape space
  explore     walk a trained shape space in a browser (a local web app)
  export      write an experiment in the original release's layout
  demo        the main job on the embedded data: generate, preprocess, split, train,
              reconstruct, evaluate and complete (one depth view each) the held-out
              shapes, interpolate, write an HTML report

Run `deepsdf <step> --help` for the options of a step.
"""


#: The steps in the order ``deepsdf --help`` lists them.
STEPS = (add_generate, add_preprocess, add_preprocess_scans, add_split, add_new, add_train,
         add_reconstruct, add_mesh, add_evaluate, add_report, add_complete, add_interpolate,
         add_explore, add_export, add_demo)


class _ConsoleHandler(logging.StreamHandler):
    """The command's console log: lines go through tqdm, so they never cut through a progress
    bar.  Quiet by default (warnings and errors; third-party INFO chatter such as OpenGL's
    "No OpenGL_accelerate module loaded" stays hidden); verbose: this project's INFO and DEBUG
    lines (which sample path training takes, caches packed, ...) and others' INFO."""

    def __init__(self, verbose: bool):
        super().__init__()
        self.verbose = verbose
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record):
        ours = record.name.split(".")[0] in ("deepsdf", "deepsdf_preprocess")
        threshold = (logging.DEBUG if ours else logging.INFO) if self.verbose else logging.WARNING
        if record.levelno < threshold:
            return
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _configure_logging(verbose: bool) -> None:
    """Install the console handler, unless the embedding program configured logging."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, _ConsoleHandler):
            handler.verbose = verbose
            return
    if root.handlers:  # an application (or a test runner) that logs its own way
        return
    root.addHandler(_ConsoleHandler(verbose))
    root.setLevel(logging.DEBUG)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepsdf", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser._negative_number_matcher = NEGATIVE_NUMBER
    parser.add_argument("--version", action="version", version=f"deepsdf {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="more output: progress details, and a traceback on errors")
    commands = parser.add_subparsers(dest="command", metavar="<step>")
    for add in STEPS:
        add(commands)
    for subparser in commands.choices.values():
        subparser.formatter_class = StepFormatter
    commands._choices_actions = []  # the description lists the steps once
    return parser


#: The errnos of "not allowed here": answered in one line by :func:`main`.
PERMISSION_ERRORS = (errno.EACCES, errno.EPERM, errno.EROFS)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _configure_logging(args.verbose)
    # This project's errors (one hierarchy, deepsdf_preprocess.errors.DeepSDFError): one line
    # (-v: the traceback).  Anything else is a bug and shows its traceback.
    try:
        return args.run(args)
    except DeepSDFError as error:
        if args.verbose:  # -v: the whole story, for a bug report
            raise
        message = str(error).strip().splitlines() or [type(error).__name__]
        print(f"deepsdf {args.command}: error: {message[0]}"
              + (" (-v for details)" if len(message) > 1 else ""), file=sys.stderr)
        return 2
    except OSError as error:  # a read-only folder, another user's file: the door for all
        if args.verbose or error.errno not in PERMISSION_ERRORS:
            raise
        where = f" {error.filename}" if error.filename else ""
        print(f"deepsdf {args.command}: error: {error.strerror}:{where} (a read-only folder, "
              "or another user's? this step needs to read its inputs and write its outputs)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deepsdf {args.command}: interrupted; {_how_to_resume(args)}", file=sys.stderr)
        return 130


def _how_to_resume(args) -> str:
    """The one line after Ctrl-C: the exact way to go on, per command."""
    if args.command == "train":
        return (f"resume with: deepsdf train {args.experiment_dir} --resume"
                + (f" --data {args.data}" if args.data else ""))
    if args.command == "reconstruct":
        return "rerun it with --skip to keep the shapes already reconstructed"
    if args.command in ("preprocess", "demo"):
        return "rerun the same command to resume (finished work is kept)"
    return "rerun the same command (nothing of this run is kept)"

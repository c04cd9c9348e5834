"""What the step groups of the command line share: the help layout, the argument types
(through the one validator of numbers), and the choices every step offers."""

from __future__ import annotations

import argparse
import re
import sys

from deepsdf.settings import SOLVER_PRESETS

SOLVERS = tuple(SOLVER_PRESETS)  # the first is the default
DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"


class StepFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written, and every option's default after its help (unless the help
    already says it, or there is none to say: flags, options that default to the spec)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default is False or "default" in text:
            return text
        return super()._get_help_string(action)

    def _fill_text(self, text, width, indent):
        if "\n" in text:  # laid out by hand
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


def int_at_least(least: int, most: int | None = None):
    """An argparse type: an integer >= ``least`` (and <= ``most``; a one-line usage error
    otherwise)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"must be at most {most:,}, got {value:,}")
        return value
    parse.__name__ = f"integer >= {least}"
    return parse


def number_in(low: float | None = None, high: float | None = None, *,
               positive: bool = False):
    """An argparse type: a finite number in ``[low, high]`` (``positive``: above 0), through
    the one validator of numbers (:func:`deepsdf_preprocess.validate.number`)."""
    from deepsdf_preprocess.errors import InputError
    from deepsdf_preprocess.validate import number

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            return number(value, what="the value", minimum=low, maximum=high,
                          positive=positive)
        except InputError as error:
            raise argparse.ArgumentTypeError(str(error).replace("the value ", "")) from None
    parse.__name__ = "number"
    return parse


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def shard(text: str) -> tuple[int, int]:
    """An argparse type: ``I/N`` with 0 <= I < N."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 0 <= int(index) < int(count):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return int(index), int(count)


def checkpoint_name(text: str):
    """An argparse type: ``latest`` or a snapshot epoch (an int)."""
    if text == "latest":
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected an epoch number or latest, got {text!r}")


#: argparse reads "-6.27e-01" as an option unless told that it is a number.
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def listed(problems: dict, what: str) -> int:
    """Print one stderr line per instance of ``problems`` (key -> reason); the exit status:
    1 when there is any, else 0."""
    from deepsdf_preprocess.contract import printable

    for key, reason in sorted(problems.items()):
        print(f"  {what} {printable(key)}: {printable(reason)}", file=sys.stderr)
    return 1 if problems else 0

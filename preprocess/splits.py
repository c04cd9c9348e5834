"""Seeded train/test splits in the original split-file format."""

from __future__ import annotations

import numpy as np
from .errors import InputError

__all__ = ["make_split"]


def make_split(instances: dict, *, test_fraction: float, seed: int = 0) -> tuple[dict, dict]:
    """Split ``{dataset: {class: [instance, ...]}}`` into train and test, per class.

    Each class is shuffled by its own generator, seeded from ``seed`` and the class name, so
    adding a class does not change the others.  Every class with at least two instances gets
    at least one of each; ``round(test_fraction * n)`` instances go to test.

    Returns
    -------
    train, test : dict
        Split dictionaries of the same shape as ``instances``, instance lists sorted.
    """
    if not 0 <= test_fraction <= 1:
        raise InputError(f"test_fraction must lie in [0, 1], got {test_fraction}")
    train: dict = {}
    test: dict = {}
    for dataset, classes in instances.items():
        for class_name, names in classes.items():
            names = sorted(set(names))
            class_seed = [seed] + list(class_name.encode())
            order = np.random.default_rng(class_seed).permutation(len(names))
            n_test = int(round(test_fraction * len(names)))
            if len(names) >= 2:
                n_test = min(max(n_test, 1 if test_fraction > 0 else 0),
                             len(names) - (1 if test_fraction < 1 else 0))
            chosen = {names[i] for i in order[:n_test]}
            train.setdefault(dataset, {})[class_name] = [n for n in names if n not in chosen]
            test.setdefault(dataset, {})[class_name] = sorted(chosen)
    return train, test


def write_split_pair(train_path, test_path, train: dict, test: dict, *, source=None,
                     overwrite: bool = False) -> None:
    """Write a train and a test split without losing a file.

    Refused, before anything is written: the two paths being one file, either being the
    ``source`` split the pair was drawn from, an existing file that is not a split file (a
    manifest, a user's notes, a folder: ``overwrite`` or not), and (without ``overwrite``) an
    existing split file that holds another split (a rerun with the same seed writes the same
    files, which is allowed).
    """
    from pathlib import Path

    from .contract import read_split, write_split

    train_path, test_path = Path(train_path), Path(test_path)
    if _same_file(train_path, test_path):
        raise InputError(f"the train and test splits are the same file ({train_path}); the "
                         "test split would overwrite the train split")
    if source is not None:
        for path in (train_path, test_path):
            if _same_file(path, Path(source)):
                raise InputError(f"{path} is the source split; writing it would lose it "
                                 "(write the new splits to other files)")
    for path, split in ((train_path, train), (test_path, test)):
        if not (path.exists() or path.is_symlink()):
            continue
        try:
            held = read_split(path)
        except InputError as error:  # a manifest, a user's notes, a folder: never replaced
            raise InputError(f"{path} exists and is not a split file ({error}); overwrite "
                             "(--overwrite) replaces only split files: write the split "
                             "elsewhere") from None
        if not overwrite and _sorted(held) != _sorted(split):
            raise InputError(f"{path} exists and holds another split; pass overwrite "
                             "(--overwrite) to replace it, or write elsewhere")
    write_split(train_path, train)
    write_split(test_path, test)


def check_split_out(path, *, source=None):
    """``path`` as a Path if a split may be written there (``--split-out``); else
    :class:`InputError`, before any work.

    Refused: the split read as input (``source``, ``--split``: writing over it would lose
    the entries that did not succeed), and an existing file that is not a split file (a
    user's notes, a scan view, a folder).  An existing split file may be replaced: that is
    what ``--split-out`` asks.
    """
    import os
    from pathlib import Path

    from .contract import read_split

    path = Path(path)
    if source is not None and _same_file(path, Path(source)):
        raise InputError(f"the split output {path} is the split read as input; writing it "
                         "would lose the entries that do not succeed (write the split to "
                         "another file)")
    if os.path.lexists(path):
        if path.is_dir():
            raise InputError(f"the split output {path} is a folder; a split is a .json file")
        try:
            read_split(path)
        except InputError:
            raise InputError(f"the split output {path} exists and is not a split file; "
                             "refusing to replace it (choose another name)") from None
    return path


def _same_file(a, b) -> bool:
    import os

    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return os.path.abspath(a) == os.path.abspath(b)


def _sorted(split: dict) -> dict:
    return {d: {c: sorted(v) for c, v in classes.items() if v} for d, classes in split.items()}

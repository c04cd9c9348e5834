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

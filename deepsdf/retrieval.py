"""The retrieval baseline of the DeepSDF paper: answer a test shape with a training shape.

A model that does not beat retrieval only recognizes; reports put both side by side.

- :func:`nearest_by_code`: the training shape whose code is nearest (L2) to the test shape's
  fitted code.
- :func:`nearest_by_observation`: for shape completion, the training shape whose surface is
  nearest to the observed (partial) points.
- :func:`oracle_nearest`: the training shape nearest by Chamfer distance to the test shape's
  ground truth (an oracle: it looks at the answer).  All pairs are first compared on small
  subsamples, then the ``top_k`` candidates exactly, so it finishes on the paper's 832 x 3281
  chairs.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from .metrics import chamfer

__all__ = ["nearest_by_code", "nearest_by_observation", "oracle_nearest"]


def nearest_by_code(query_codes, train_codes) -> np.ndarray:
    """(q,) index of the nearest (L2) training code for each (q, d) query code."""
    query = torch.as_tensor(query_codes, dtype=torch.float32)
    train = torch.as_tensor(train_codes, dtype=torch.float32)
    return torch.cdist(query, train).argmin(dim=1).numpy()


def nearest_by_observation(observed, train_clouds, *, points: int = 2000,
                           seed: int = 0) -> int:
    """Index of the training cloud nearest to a partial observation.

    The score is one-sided (the observation covers only part of the shape): the mean squared
    distance from (a subsample of) the observed points to each training cloud, all in the
    same frame (the normalized frame for a completion).
    """
    observed = np.asarray(observed)
    rng = np.random.default_rng(seed)
    if len(observed) > points:
        observed = observed[rng.choice(len(observed), points, replace=False)]
    scores = [(cKDTree(cloud).query(observed)[0] ** 2).mean() for cloud in train_clouds]
    return int(np.argmin(scores))


def oracle_nearest(query_clouds, train_clouds, *, shortlist_points: int = 256,
                   top_k: int = 8, seed: int = 0) -> np.ndarray:
    """(q,) index of the training cloud nearest by Chamfer to each query cloud.

    Parameters
    ----------
    query_clouds, train_clouds : lists of (n_i, 3) arrays (same frame)
    shortlist_points : int
        Points per cloud in the all-pairs shortlist pass.
    top_k : int
        Candidates compared exactly on the full clouds.
    """
    rng = np.random.default_rng(seed)

    def subsample(cloud):
        cloud = np.asarray(cloud)
        return cloud[rng.choice(len(cloud), min(shortlist_points, len(cloud)), replace=False)]

    train_small = [subsample(c) for c in train_clouds]
    train_trees = [cKDTree(c) for c in train_small]
    answers = np.empty(len(query_clouds), dtype=np.int64)
    for q, cloud in enumerate(query_clouds):
        small = subsample(cloud)
        tree = cKDTree(small)
        rough = np.array([(t.query(small)[0] ** 2).mean() + (tree.query(c)[0] ** 2).mean()
                          for t, c in zip(train_trees, train_small)])
        candidates = np.argsort(rough)[:top_k]
        exact = [chamfer(cloud, train_clouds[c]) for c in candidates]
        answers[q] = candidates[int(np.argmin(exact))]
    return answers

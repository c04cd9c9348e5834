"""Paths and draws in the code space: pure math on code tensors, no model, no files.

- :func:`lerp`: straight line between two codes.
- :func:`slerp`: the direction moves along the great circle between the codes' directions
  while the norm moves linearly between their norms.  Codes of a trained table concentrate
  near a sphere (the Gaussian prior in high dimension), so the straight line's midpoint,
  whose norm dips (to ``|a| cos(angle / 2)`` between equal norms), leaves the region the
  decoder was trained on; slerp stays on it.
- :func:`sample_codes`: codes drawn from the Gaussian fitted to the training codes.
"""

from __future__ import annotations

import numpy as np
import torch

from deepsdf_preprocess.errors import InputError

from .settings import INTERPOLATIONS

__all__ = ["lerp", "slerp", "sample_codes", "principal_directions", "INTERPOLATIONS"]


def _weights(steps: int | None, at=None) -> torch.Tensor:
    """``linspace(0, 1, steps)``, or the fractions ``at`` (each in [0, 1]) instead."""
    if at is not None:
        t = torch.as_tensor(at, dtype=torch.float64).reshape(-1)
        if not bool(torch.all((t >= 0) & (t <= 1))):
            raise InputError(f"interpolation fractions must lie in [0, 1], got {t.tolist()}")
        return t
    if steps is None or steps < 2:
        raise InputError(f"an interpolation needs at least 2 steps, got {steps}")
    return torch.linspace(0.0, 1.0, steps, dtype=torch.float64)


def lerp(a, b, steps: int | None = None, *, at=None) -> torch.Tensor:
    """(steps, d) float32 codes ``(1 - t) a + t b`` for ``t`` in ``linspace(0, 1, steps)``
    (or for the fractions ``at``: (len(at), d))."""
    a, b = (torch.as_tensor(x, dtype=torch.float64).reshape(-1) for x in (a, b))
    t = _weights(steps, at)[:, None]
    return ((1 - t) * a + t * b).float()


def slerp(a, b, steps: int | None = None, *, at=None) -> torch.Tensor:
    """(steps, d) float32 codes: great-circle direction, linearly interpolated norm (or for the
    fractions ``at`` instead of ``linspace(0, 1, steps)``: (len(at), d)).

    Endpoints are returned exactly (up to float32).  Parallel directions reduce to
    :func:`lerp`; opposite directions have no unique great circle and raise ``ValueError``.
    """
    a, b = (torch.as_tensor(x, dtype=torch.float64).reshape(-1) for x in (a, b))
    norm_a, norm_b = a.norm(), b.norm()
    if norm_a == 0 or norm_b == 0:
        raise InputError("slerp needs non-zero codes (use linear interpolation)")
    u, v = a / norm_a, b / norm_b
    cosine = float(torch.clamp(u @ v, -1.0, 1.0))
    t = _weights(steps, at)[:, None]
    if cosine > 1 - 1e-12:
        return lerp(a, b, steps, at=at)
    if cosine < -1 + 1e-9:
        raise InputError("the codes point in opposite directions: slerp is not unique")
    angle = np.arccos(cosine)
    direction = (torch.sin((1 - t) * angle) * u + torch.sin(t * angle) * v) / np.sin(angle)
    return (direction * ((1 - t) * norm_a + t * norm_b)).float()


def sample_codes(train_codes, count: int, *, seed: int = 0) -> torch.Tensor:
    """(count, d) codes drawn from ``N(mean, covariance)`` of the (n, d) training codes.

    With fewer codes than dimensions the covariance is singular; the draw then stays in the
    span the training codes occupy (eigen-decomposition sampling), which is what a fitted
    Gaussian can say.
    """
    codes = np.asarray(torch.as_tensor(train_codes, dtype=torch.float64))
    if codes.ndim != 2 or len(codes) < 2:
        raise InputError("fitting a Gaussian needs at least 2 training codes")
    rng = np.random.default_rng(seed)
    draws = rng.multivariate_normal(codes.mean(axis=0), np.cov(codes, rowvar=False),
                                    size=count, method="eigh")
    return torch.from_numpy(draws).float()


def principal_directions(codes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The principal directions of (n, d) codes (PCA): ``(mean (d,), directions (k, d),
    spreads (k,))``, the directions orthonormal and ordered by the codes' standard deviation
    along each (``spreads``, with n - 1 in the denominator); directions along which the codes
    do not spread are left out, so k <= min(n - 1, d).  A code's map coordinates in σ are
    ``(code - mean) @ directions.T / spreads``."""
    codes = np.asarray(torch.as_tensor(codes, dtype=torch.float64))
    if codes.ndim != 2 or len(codes) < 2:
        raise InputError("principal directions need at least 2 codes")
    mean = codes.mean(axis=0)
    _, singular, rows = np.linalg.svd(codes - mean, full_matrices=False)
    spreads = singular / np.sqrt(len(codes) - 1)
    keep = spreads > 1e-9 * max(float(spreads[0]), 1e-300)
    return mean, rows[keep], spreads[keep]

"""Where SDF samples are drawn: presets and the sample generator (normalized frame)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .surface import VisibleSurface
from .errors import InputError

__all__ = ["SamplingConfig", "PRESETS", "draw_samples"]


@dataclass(frozen=True)
class SamplingConfig:
    """How many samples and where (see ``docs/preprocessing.md``).

    ``near_fraction`` of the samples are visible-surface points perturbed by Gaussian noise:
    each surface point gives one sample per entry of ``variances``.  The rest are uniform in
    ``[-bound, bound]^3``.
    """

    count: int = 500_000  # samples drawn per shape (before unanimous-vote dropping)
    near_fraction: float = 47 / 50  # fraction of samples near the surface
    variances: tuple = (0.005, 0.0005)  # noise variances (not standard deviations) per copy
    bound: float = 1.0  # half-side of the cube for the uniform samples

    def __post_init__(self):
        if self.count < 1:
            raise InputError(f"sample count must be positive, got {self.count}")
        if not 0 <= self.near_fraction <= 1:
            raise InputError(f"near_fraction must lie in [0, 1], got {self.near_fraction}")
        if not self.variances or min(self.variances) <= 0:
            raise InputError(f"variances must be positive, got {self.variances}")

    @property
    def stddevs(self) -> np.ndarray:
        return np.sqrt(np.asarray(self.variances, dtype=np.float64))

    def overridden(self, *, count: int | None = None, near_fraction: float | None = None,
                   variances: tuple | None = None) -> "SamplingConfig":
        """This config with ``count``, ``near_fraction`` and ``variances`` replaced where they
        are given (``None`` keeps the preset's)."""
        changes = {"count": count, "near_fraction": near_fraction,
                   "variances": None if variances is None else tuple(variances)}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def counts(self) -> tuple[int, int]:
        """(surface points, uniform samples); near samples = surface points * len(variances)."""
        copies = len(self.variances)
        surface = int(round(self.count * self.near_fraction / copies))
        return surface, self.count - surface * copies


#: Named presets.  ``train`` and ``test`` are the original code's; ``paper`` uses the
#: variances stated in the paper (0.0025 / 0.00025) with the training count.
PRESETS = {
    "train": SamplingConfig(),
    "test": SamplingConfig(count=250_000, variances=(0.05, 0.0005)),
    "paper": SamplingConfig(variances=(0.0025, 0.00025)),
}


def draw_samples(surface: VisibleSurface, config: SamplingConfig, rng: np.random.Generator):
    """Draw the sample positions.

    Returns
    -------
    points : (n, 3) float32, normalized frame
        Near-surface samples first (all copies of the first variance, then the next), then the
        uniform ones.  float32 is the precision ``SdfSamples`` stores, so distances are
        computed for exactly the positions written.
    noise_std : (n,) float64
        Standard deviation of each sample's perturbation (``inf`` for uniform samples).
    """
    n_surface, n_uniform = config.counts()
    base, _ = surface.sample(n_surface, rng)
    points = np.empty((n_surface * len(config.stddevs) + n_uniform, 3), dtype=np.float32)
    noise_std = np.empty(len(points))
    for block, std in enumerate(config.stddevs):
        rows = slice(block * n_surface, (block + 1) * n_surface)
        points[rows] = base + rng.normal(0.0, std, size=base.shape)
        noise_std[rows] = std
    points[len(points) - n_uniform:] = rng.uniform(-config.bound, config.bound,
                                                   size=(n_uniform, 3))
    noise_std[len(points) - n_uniform:] = np.inf
    return points, noise_std

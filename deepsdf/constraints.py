"""Constraint sampling for shape completion: a model-frame :class:`~deepsdf.sensing.Observation`
to rows ``[x, y, z, target, one_sided]`` for :func:`deepsdf.reconstruct.reconstruct_codes`
(see :mod:`deepsdf.observations`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepsdf_preprocess import validate
from deepsdf_preprocess.errors import InputError

from .sensing import Observation

__all__ = ["ConstraintConfig", "sdf_constraints"]


@dataclass(frozen=True)
class ConstraintConfig:
    """How observations become constraint rows (model-frame units)."""

    eta: float = 0.01  # the surface samples' offset along the normal (SDF +eta / -eta)
    # Free-space samples per observed point (0 = surface samples only) and on empty rays (per
    # observed point).  Weighting free space this much (9 of every 11 rows) was measured best:
    # docs/completion.md.
    free_space: int = 8
    empty_rays: float = 1.0
    free_margin: float = 0.02  # free-space samples stay this far in front of the surface
    radius: float = 1.0  # free-space samples lie inside this sphere (the model's domain)

    #: The largest ``eta``: surface samples farther out than half the model's unit sphere
    #: would describe another shape (the reference uses 0.01 against a clamp of 0.1).
    MAX_ETA = 0.5

    def __post_init__(self):
        if not 0 < self.eta <= self.MAX_ETA:
            raise InputError(f"eta must lie in (0, {self.MAX_ETA}] model units (the model "
                             f"frame is the unit sphere), got {self.eta}")
        if self.free_space < 0 or not 0 <= self.free_margin < self.radius:
            raise InputError("free_space must be non-negative and free_margin in "
                             f"[0, radius {self.radius})")


def sdf_constraints(observation: Observation, config: ConstraintConfig = ConstraintConfig(),
                    *, rng: np.random.Generator) -> np.ndarray:
    """(n, 5) float32 rows ``[x, y, z, target, one_sided]`` of a model-frame observation.

    Two two-sided rows per observed point (``p +- eta n`` with target ``+-eta``), then
    ``config.free_space`` one-sided rows per point with target 0: points ``p - t d`` on the
    ray from the sensor (``d`` the unit ray direction), ``t`` uniform between
    ``free_margin`` and where the ray enters the sphere of ``config.radius`` (or reaches the
    sensor, if that is inside).  With ``free_space > 0``, the observation's empty rays that
    cross that sphere add ``empty_rays`` one-sided rows per observed point (one point per
    ray, uniform on its chord through the sphere; rays drawn at random if there are more).
    """
    p, n = observation.points, observation.normals
    if len(p) == 0:
        raise InputError("the observation has no usable surface point")
    rows_per_point = 2 + config.free_space + max(config.empty_rays, 0.0)
    # float64 rows of 5 values, and the temporaries of building them (about three times).
    validate.require_memory(len(p) * rows_per_point * 5 * 8 * 4,
                            what=f"{len(p):,} observed points with {config.free_space} "
                            f"free-space and {config.empty_rays:g} empty-ray rows each",
                            hint="lower free_space / empty_rays, or subsample the observation")
    eta = config.eta
    rows = [np.concatenate([p + eta * n, np.full((len(p), 1), eta), np.zeros((len(p), 1))], 1),
            np.concatenate([p - eta * n, np.full((len(p), 1), -eta), np.zeros((len(p), 1))], 1)]
    if config.free_space:
        towards = observation.sensors - p
        reach = np.linalg.norm(towards, axis=1)
        d = towards / reach[:, None]  # from the point back to the sensor
        # Distance from p along d to the sphere's far side: |p + t d| = radius.
        b = np.einsum("ij,ij->i", p, d)
        c = np.einsum("ij,ij->i", p, p) - config.radius ** 2
        exit_ = -b + np.sqrt(np.maximum(b * b - c, 0.0))
        limit = np.minimum(reach, np.maximum(exit_, 0.0))
        usable = limit > config.free_margin
        for _ in range(config.free_space):
            t = config.free_margin + rng.uniform(0.0, 1.0, len(p)) * (limit - config.free_margin)
            free = (p + t[:, None] * d)[usable]
            rows.append(_one_sided(free))
        rows.append(_one_sided(_empty_ray_points(observation, config, rng)))
    return np.concatenate(rows).astype(np.float32)


def _one_sided(points) -> np.ndarray:
    """Rows ``[x, y, z, 0, 1]``: "outside", whatever the distance."""
    return np.concatenate([points, np.zeros((len(points), 1)), np.ones((len(points), 1))], 1)


def _empty_ray_points(observation: Observation, config: ConstraintConfig, rng) -> np.ndarray:
    """One point per empty ray, uniform on the ray's chord through the sphere."""
    origins, directions = observation.empty_origins, observation.empty_directions
    if len(origins) == 0 or config.empty_rays <= 0:
        return np.zeros((0, 3))
    b = np.einsum("ij,ij->i", origins, directions)
    c = np.einsum("ij,ij->i", origins, origins) - config.radius ** 2
    discriminant = b * b - c
    crossing = np.nonzero(discriminant > 0)[0]
    root = np.sqrt(discriminant[crossing])
    near = np.maximum(-b[crossing] - root, 0.0)  # a sensor inside the sphere starts at 0
    far = -b[crossing] + root
    keep = far > near
    crossing, near, far = crossing[keep], near[keep], far[keep]
    wanted = int(round(config.empty_rays * len(observation.points)))
    if len(crossing) > wanted:
        chosen = rng.choice(len(crossing), wanted, replace=False)
        crossing, near, far = crossing[chosen], near[chosen], far[chosen]
    t = near + rng.uniform(0.0, 1.0, len(crossing)) * (far - near)
    return origins[crossing] + t[:, None] * directions[crossing]

"""Dropping the pieces of a decoded surface that the observations rule out.

A code fitted to one shape's SdfSamples can decode to the right surface *and* to pieces far
from it: blobs the fit never paid for, because few samples fall where they are.  Squared
Chamfer punishes such a piece heavily, and a user sees debris.  The samples themselves rule
these pieces out.

**The bound.**  A row ``[x, y, z, t, ...]`` with ``t > 0`` at point ``s`` says the shape's
signed distance there is ``t`` (an SDF sample) or at least ``t`` (a one-sided row with a
positive target).  A signed distance is 1-Lipschitz, so at any point ``p``
``sdf(p) >= t - |p - s|``: each row certifies a ball of radius ``t`` around it as outside the
shape.  :func:`outside_bound` takes, at each point, the ``rank``-th largest of these bounds
over its ``neighbours`` nearest rows: a lower bound on the true SDF that up to ``rank - 1``
wrong rows nearby cannot raise (a flipped sign, a noisy scan).

**The rule.**  The decoded mesh is split into connected pieces (faces sharing edges).  A piece
whose area lies, for more than ``share`` of it, where the bound exceeds ``margin`` (certainly
outside the shape, by more than ``margin``) is contradicted by the observations and dropped.
Nothing else changes: the field is never edited, every kept triangle is the decoder's own, and
a model that decodes no surface still has none.  (Clipping the field by the bound instead
would be a reconstruction from the samples alone, which dense SdfSamples allow without any
model: not what a shape model is asked for.)  The default margin is the paper's clamping
distance, 0.1: a piece nearer the truth than that is the model's error and stays.

**Completion** has no distances to certify with: its rule is what the sensor saw
(:func:`seen_empty`: a ball of ``margin`` crossed only by rays running free beyond it, every
measured pixel blocking its ray, the cone covered by rays, no return of any view nearby), and
a piece thinner than ``margin`` is never dropped there (it could lie between the rays).  Unseen
space keeps what the model put there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from deepsdf_preprocess.errors import InputError

from .settings import PruneConfig

__all__ = ["outside_bound", "seen_empty", "drop_contradicted_parts", "drop_seen_empty_parts",
           "drop_ruled_out", "Pruned", "observed_mesh"]

logger = logging.getLogger(__name__)


def outside_bound(rows, *, neighbours: int = 16, rank: int = 3):
    """A function ``bound(points (m, 3)) -> (m,)``: at each point, a lower bound on the true
    signed distance certified by ``rows`` (n, >= 4) ``[x, y, z, target, ...]`` (normalized
    frame).  Only rows with ``target > 0`` certify; the bound is the ``rank``-th largest of
    ``target - distance`` over the point's ``neighbours`` nearest such rows, ``-inf`` where
    fewer than ``rank`` rows exist."""
    from scipy.spatial import cKDTree

    if not (1 <= rank <= neighbours):
        raise InputError(f"rank must lie in 1..neighbours ({neighbours}), got {rank}")
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] < 4:
        raise InputError(f"rows must be (n, 4) or wider, got {rows.shape}")
    rows = rows[np.isfinite(rows[:, :4]).all(axis=1) & (rows[:, 3] > 0)]
    if len(rows) < rank:
        return lambda points: np.full(len(points), -np.inf)
    tree = cKDTree(rows[:, :3])
    k = min(neighbours, len(rows))
    targets = rows[:, 3]

    def bound(points) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        out = np.full(len(points), -np.inf)  # a point that is not finite: nothing certified
        finite = np.isfinite(points).all(axis=1)
        if not finite.any():
            return out
        distance, index = tree.query(points[finite], k=k)
        if k == 1:
            distance, index = distance[:, None], index[:, None]
        certified = targets[index] - distance  # (m, k) each row's bound at each point
        out[finite] = -np.partition(-certified, rank - 1, axis=1)[:, rank - 1]
        return out

    return bound


@dataclass(frozen=True)
class Pruned:
    """What :func:`drop_contradicted_parts` did: the mesh kept, the pieces dropped and their
    share of the decoded area; ``kept_all`` when every piece was contradicted and the mesh was
    kept whole (a fit the observations reject everywhere: reported, not hidden)."""

    mesh: object
    dropped: int
    dropped_area: float
    kept_all: bool = False


def drop_contradicted_parts(mesh, rows, config: PruneConfig | None = None) -> Pruned:
    """``mesh`` (normalized frame) without the connected pieces the sample ``rows`` rule out
    (see the module docstring).  ``config`` None keeps every piece.  Pieces are sets of faces
    joined by edges, coincident vertices counting as one."""
    if config is None or len(mesh.faces) == 0:
        return Pruned(mesh, 0, 0.0)
    bound = outside_bound(rows, neighbours=config.neighbours, rank=config.rank)
    return drop_ruled_out(mesh, lambda points: bound(points) > config.margin, config.share,
                          config.most)


def drop_ruled_out(mesh, outside, share: float, most: float = 0.5,
                   thinnest: float = 0.0) -> Pruned:
    """``mesh`` without the connected pieces of which more than ``share`` of the area has
    all three corners ``outside`` (a function ``(m, 3) points -> (m,) bool``: certainly
    empty).  When the pieces ruled out hold more than ``most`` of the area, the mesh is kept
    whole (``kept_all``): a fit the observations reject that widely is a wrong fit, not one
    with debris, and dropping most of it would hide that.  A piece thinner than ``thinnest``
    in some direction (:func:`_thickness` of its vertices: a ball of diameter ``thinnest``,
    a plate about 0.6 ``thinnest`` thick) is never dropped: a sensor can miss such a part
    between its rays."""
    import trimesh

    if len(mesh.faces) == 0:
        return Pruned(mesh, 0, 0.0)
    # pieces by shared edges once coincident vertices are merged (a mesh stored as a soup of
    # triangles is still cut into its surfaces, not into single faces)
    joined = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    joined.merge_vertices()
    labels = trimesh.graph.connected_component_labels(joined.face_adjacency,
                                                      node_count=len(joined.faces))
    face_outside = np.asarray(outside(mesh.vertices), dtype=bool)[mesh.faces].all(axis=1)
    area = np.nan_to_num(mesh.area_faces, nan=0.0, posinf=0.0)
    total = np.bincount(labels, weights=area)
    contradicted = np.bincount(labels, weights=area * face_outside, minlength=len(total))
    ruled_out = contradicted > share * np.maximum(total, 1e-30)
    if thinnest > 0:
        for piece in np.flatnonzero(ruled_out):
            if _thickness(mesh.vertices[np.unique(mesh.faces[labels == piece])]) < thinnest:
                ruled_out[piece] = False
    if not ruled_out.any():
        return Pruned(mesh, 0, 0.0)
    if total[ruled_out].sum() > most * total.sum():
        return Pruned(mesh, 0, 0.0, kept_all=True)
    keep = ~ruled_out[labels]
    kept = mesh.copy()
    kept.update_faces(keep)
    kept.remove_unreferenced_vertices()
    return Pruned(kept, int(ruled_out.sum()), float(total[ruled_out].sum() / total.sum()))


def drop_seen_empty_parts(mesh, observation, config: PruneConfig | None = None) -> Pruned:
    """``mesh`` (model frame) without the connected pieces lying, for more than
    ``config.share`` of their area, in what ``observation`` (model frame,
    :class:`~deepsdf.sensing.Observation`) saw as empty with ``config.margin`` all around
    (:func:`seen_empty`).  ``config`` None keeps every piece."""
    if config is None or len(mesh.faces) == 0:
        return Pruned(mesh, 0, 0.0)
    return drop_ruled_out(mesh, seen_empty(observation, margin=config.margin), config.share,
                          config.most, thinnest=config.margin)


def _thickness(points) -> float:
    """``sqrt(12 * variance)`` of ``points`` (n, 3) along their least principal axis: for a
    piece's surface vertices, a ball's diameter, about 1.7 times a thin plate's thickness;
    0 for fewer than 4 finite points."""
    points = np.asarray(points, dtype=np.float64)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < 4:
        return 0.0
    variance = np.linalg.eigvalsh(np.cov(points.T))[0]
    return float(np.sqrt(12.0 * max(variance, 0.0)))


#: At most this many distinct sensor positions are used by :func:`seen_empty` (a cloud whose
#: every point names its own sensor certifies nothing).
MAX_SENSORS = 64

#: A probe direction counts as covered when a ray lies within this many typical ray spacings
#: (a hole of two missing pixels is not covered).
COVERED_SPACINGS = 1.5

#: Vertices per block in :func:`seen_empty` (bounds the memory of its cone queries).
BLOCK = 2048


def _rim(axes: np.ndarray, half_angle: np.ndarray, count: int = 8) -> np.ndarray:
    """(m, count, 3) unit directions on the rim of each cone (axis (m, 3), half-angle (m,))."""
    helper = np.where(np.abs(axes[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    first = np.cross(axes, helper)
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    second = np.cross(axes, first)
    angles = 2.0 * np.pi * np.arange(count) / count
    spread = np.tan(half_angle)[:, None, None] * (
        np.cos(angles)[None, :, None] * first[:, None] + np.sin(angles)[None, :, None]
        * second[:, None])
    rim = axes[:, None] + spread
    return rim / np.linalg.norm(rim, axis=2, keepdims=True)


def seen_empty(observation, *, margin: float):
    """A function ``outside(points (m, 3)) -> (m,) bool``: the ball of radius ``margin``
    around each point was seen empty by one sensor of ``observation``.

    Per sensor position ``c``, its rays are its measured returns (free up to the return,
    ``observation.hit_points``: every measured pixel, those dropped as depth edges or grazing
    included) and its empty rays (free all along).  The ball around ``p``, at distance ``z``
    from ``c``, fills the cone of half-angle ``asin(margin / z)``; it was seen empty when
    every ray in that cone runs free beyond ``z + margin`` and the cone is covered: its axis
    and eight directions on its rim each have a ray within :data:`COVERED_SPACINGS` typical
    spacings (a cone reaching well past the image border, over a hole of missing pixels, or
    between a lidar's rings finds none there).  No point within ``margin`` of any measured
    return of any sensor is certified (a surface one view saw is not emptied by another view
    that missed it).  An observation without measured returns certifies nothing; a margin of 0
    certifies nothing."""
    from scipy.spatial import cKDTree

    hits = np.asarray(observation.hit_points, dtype=np.float64)
    if not len(hits):
        return lambda points: np.zeros(len(points), dtype=bool)
    origins = np.concatenate([observation.hit_sensors, observation.empty_origins])
    ends = hits - observation.hit_sensors
    lengths = np.concatenate([np.linalg.norm(ends, axis=1),
                              np.full(len(observation.empty_origins), np.inf)])
    directions = np.concatenate([ends, observation.empty_directions])
    directions = directions / np.maximum(np.linalg.norm(directions, axis=1), 1e-12)[:, None]
    sensors, which = np.unique(np.round(origins, 9), axis=0, return_inverse=True)
    which = which.reshape(-1)
    returns = cKDTree(hits[np.isfinite(hits).all(axis=1)])
    views = []
    for index, sensor in enumerate(sensors if len(sensors) <= MAX_SENSORS else []):
        mine = which == index
        unique = np.unique(np.round(directions[mine], 12), axis=0)  # repeated frames: once
        if len(unique) < 16:
            continue
        tree = cKDTree(directions[mine])
        spacing = float(np.median(cKDTree(unique).query(unique, k=2)[0][:, 1]))
        views.append((sensor, tree, lengths[mine], spacing))

    def outside(points) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if len(points) > BLOCK:
            return np.concatenate([outside(points[i:i + BLOCK])
                                   for i in range(0, len(points), BLOCK)])
        result = np.zeros(len(points), dtype=bool)
        finite = np.isfinite(points).all(axis=1)
        near_return = np.ones(len(points), dtype=bool)
        if finite.any():
            near_return[finite] = returns.query(points[finite], distance_upper_bound=margin)[
                0] <= margin
        for sensor, tree, free, spacing in views:
            offset = points - sensor
            z = np.linalg.norm(offset, axis=1)
            ask = np.flatnonzero(np.isfinite(z) & (z > margin) & ~result & ~near_return)
            if not len(ask):
                continue
            axes = offset[ask] / z[ask, None]
            half = np.arcsin(margin / z[ask])
            probes = np.concatenate([axes[:, None], _rim(axes, half)], axis=1)
            gaps = tree.query(probes.reshape(-1, 3))[0].reshape(len(ask), -1)
            covered = gaps.max(axis=1) <= COVERED_SPACINGS * spacing
            ask, axes, half = ask[covered], axes[covered], half[covered]
            if not len(ask):
                continue
            cones = tree.query_ball_point(axes, 2.0 * np.sin(half / 2.0))
            seen = np.array([len(cone) > 0 and free[cone].min() > z[i] + margin
                             for cone, i in zip(cones, ask)], dtype=bool)
            result[ask[seen]] = True
        return result

    return outside


def observed_mesh(decoder, code, rows, resolution: int, *, clamp: float,
                  config: PruneConfig | None) -> Pruned:
    """The mesh of ``code`` (:func:`deepsdf.mesh.code_mesh`, normalized frame) without the
    pieces its observation ``rows`` rule out (none dropped with ``config`` None).  Raises
    :class:`~deepsdf.mesh.NoSurfaceError` as ``code_mesh`` does."""
    from .mesh import code_mesh

    pruned = drop_contradicted_parts(code_mesh(decoder, code, resolution, clamp=clamp),
                                     rows, config)
    if pruned.kept_all:
        logger.warning("the pieces of the decoded surface that lie where the samples say empty "
                       "space hold most of its area: the fit disagrees with them (mesh kept "
                       "whole)")
    return pruned

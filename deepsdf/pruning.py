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

Completion does not prune.  A scan's free-space rows say "outside" with target 0, which
certifies no ball; and a certificate of what the sensor saw empty (every ray through a ball
running free beyond it) was tried on one-view completions of the hard categories: their
extra surface is attached to the body, not in separate pieces, and it dropped almost nothing
(docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from deepsdf_preprocess.errors import InputError

from .settings import PruneConfig

__all__ = ["outside_bound", "drop_contradicted_parts", "drop_ruled_out", "Pruned",
           "observed_mesh"]

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
    return drop_ruled_out(mesh, lambda points: bound(points) > config.margin, config.share)


def drop_ruled_out(mesh, outside, share: float) -> Pruned:
    """``mesh`` without the connected pieces of which more than ``share`` of the area has
    all three corners ``outside`` (a function ``(m, 3) points -> (m,) bool``: certainly
    empty).  Every piece ruled out keeps the mesh whole (``kept_all``)."""
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
    area = mesh.area_faces
    total = np.bincount(labels, weights=area)
    contradicted = np.bincount(labels, weights=area * face_outside, minlength=len(total))
    ruled_out = contradicted > share * np.maximum(total, 1e-30)
    if not ruled_out.any():
        return Pruned(mesh, 0, 0.0)
    if ruled_out.all():
        return Pruned(mesh, 0, 0.0, kept_all=True)
    keep = ~ruled_out[labels]
    kept = mesh.copy()
    kept.update_faces(keep)
    kept.remove_unreferenced_vertices()
    return Pruned(kept, int(ruled_out.sum()), float(total[ruled_out].sum() / total.sum()))


def observed_mesh(decoder, code, rows, resolution: int, *, clamp: float,
                  config: PruneConfig | None) -> Pruned:
    """The mesh of ``code`` (:func:`deepsdf.mesh.code_mesh`, normalized frame) without the
    pieces its observation ``rows`` rule out (none dropped with ``config`` None).  Raises
    :class:`~deepsdf.mesh.NoSurfaceError` as ``code_mesh`` does."""
    from .mesh import code_mesh

    pruned = drop_contradicted_parts(code_mesh(decoder, code, resolution, clamp=clamp),
                                     rows, config)
    if pruned.kept_all:
        logger.warning("every piece of the decoded surface lies where the observations say "
                       "empty space: the fit disagrees with them everywhere (mesh kept whole)")
    return pruned

"""Independent checks of one instance's samples before they are written.

The scan-based sign is fast and works on open meshes, but a bug or a numerical accident
upstream of it (a mesh far from the origin, a wrongly culled side) turns every label
inside-out while everything still looks fine.  :func:`sign_disagreement` checks a few hundred
samples far from the surface against a method that shares nothing with the scan and whose
truth holds on soups too: **ray reachability**.  From each sample, rays in
:data:`RAY_DIRECTIONS` fixed directions are cast against every triangle of the mesh (hidden
ones included).  A sample from which no ray escapes is enclosed: inside any solid the mesh can
mean.  A sample from which at least :data:`OPEN_SHARE` of the rays escape lies in open space:
outside.  Anything between (a cup's inside, the foot of an open leg) is not judged.

(The generalized winding number, the check before this one, is an oracle only on closed,
consistently wound meshes: faces wound at random cancel it, parts that overlap double it, and
it rejected good ShapeNet chairs.)  :func:`sample_count_problem` says when too few samples
survived the sign vote for the instance to be usable for training.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sign_disagreement", "sample_count_problem", "SIGN_CHECK_THRESHOLD",
           "RAY_DIRECTIONS", "OPEN_SHARE"]

#: Samples checked per instance, at most (evenly spaced over the candidates, no randomness).
CHECK_COUNT = 300
#: Only samples at least this far from the surface are checked (normalized units).
CHECK_MARGIN = 0.05
#: Rays cast from each checked sample (a Fibonacci sphere: fixed, no randomness).
RAY_DIRECTIONS = 64
#: A sample from which at least this share of the rays escape is in open space (outside).
OPEN_SHARE = 0.5
#: Fewer judged samples than this: the check says nothing (recorded as such).
MIN_DECISIVE = 20
#: An instance whose judged samples disagree more often than this fails.
SIGN_CHECK_THRESHOLD = 0.1


def sphere_directions(count: int = RAY_DIRECTIONS) -> np.ndarray:
    """(count, 3) float64 unit vectors spread evenly over the sphere (Fibonacci lattice)."""
    k = np.arange(count) + 0.5
    y = 1.0 - 2.0 * k / count
    radius = np.sqrt(1.0 - y * y)
    angle = np.pi * (3.0 - np.sqrt(5.0)) * k
    return np.stack([radius * np.cos(angle), y, radius * np.sin(angle)], axis=1)


def escaping_share(vertices, faces, points, *, directions: int = RAY_DIRECTIONS) -> np.ndarray:
    """(n,) float64: the share of rays from each point that meet no triangle of the mesh.

    Parameters
    ----------
    vertices : (v, 3) float ; faces : (f, 3) int
        The whole mesh (hidden faces included).
    points : (n, 3) float
    directions : int, keyword-only
    """
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64),
                           process=False)
    rays = sphere_directions(directions)
    points = np.asarray(points, dtype=np.float64)
    origins = np.repeat(points, len(rays), axis=0)
    hit = mesh.ray.intersects_any(origins, np.tile(rays, (len(points), 1)))
    return 1.0 - np.asarray(hit, dtype=np.float64).reshape(len(points), len(rays)).mean(axis=1)


def sign_disagreement(vertices, faces, points, sdf, *, margin: float = CHECK_MARGIN,
                      count: int = CHECK_COUNT) -> dict:
    """How many far-from-surface samples ray reachability labels otherwise than ``sdf``.

    Parameters
    ----------
    vertices : (v, 3) float, normalized frame
    faces : (f, 3) int
        The whole mesh (hidden faces included).
    points : (n, 3) float, normalized frame
    sdf : (n,) float
        Their signed distances, > 0 outside.
    margin : float, keyword-only
        Only samples with ``|sdf| >= margin`` are judged.
    count : int, keyword-only
        At most this many samples are judged, evenly spaced over the candidates.

    Returns
    -------
    dict
        ``method`` ("rays"), ``checked`` (samples the rays could judge: enclosed or open),
        ``disagree`` (of those, labelled otherwise), ``fraction`` (their ratio; 0 when fewer
        than :data:`MIN_DECISIVE` samples could be judged: the check then says nothing),
        ``enclosed`` and ``open`` (how many judged samples were each).
    """
    sdf = np.asarray(sdf, dtype=np.float64)
    candidates = np.nonzero(np.abs(sdf) >= margin)[0]
    if len(candidates) > count:
        candidates = candidates[np.linspace(0, len(candidates) - 1, count).astype(np.int64)]
    result = {"method": "rays", "checked": 0, "disagree": 0, "fraction": 0.0, "enclosed": 0,
              "open": 0}
    if len(candidates) == 0:
        return result
    share = escaping_share(vertices, faces, np.asarray(points)[candidates])
    enclosed = share == 0.0
    open_ = share >= OPEN_SHARE
    labelled_outside = sdf[candidates] > 0
    disagree = int(np.count_nonzero((enclosed & labelled_outside) | (open_ & ~labelled_outside)))
    checked = int(np.count_nonzero(enclosed | open_))
    result.update(checked=checked, disagree=disagree,
                  fraction=disagree / checked if checked >= MIN_DECISIVE else 0.0,
                  enclosed=int(enclosed.sum()), open=int(open_.sum()))
    return result


def sample_count_problem(drawn: int, positive: int, negative: int, *,
                         min_fraction: float) -> str | None:
    """A one-line reason when too few samples of either sign were kept, else None.

    Parameters
    ----------
    drawn : int
        Samples drawn before the sign vote.
    positive, negative : int
        Kept samples outside (sdf > 0) and inside (sdf <= 0).
    min_fraction : float
        Each sign needs at least ``max(1, ceil(min_fraction * drawn))`` kept samples.
    """
    needed = max(1, int(np.ceil(min_fraction * drawn)))
    if positive >= needed and negative >= needed:
        return None
    return (f"too few samples kept: {positive} outside and {negative} inside of {drawn} drawn "
            f"(each sign needs at least {needed}, {100 * min_fraction:g}% of those drawn); "
            "the mesh is open, flat or mostly unseen by the cameras")

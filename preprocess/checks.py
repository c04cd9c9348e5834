"""Independent checks of one instance's samples before they are written.

The scan-based sign (the reference vote) is fast and works on open meshes, but a bug or a
numerical accident upstream of it (a mesh far from the origin, a wrongly culled side) turns
every label inside-out while everything still looks fine.  :func:`sign_disagreement` checks a
few hundred samples far from the surface against a method that shares nothing with the scan:
the generalized winding number of the whole mesh.  :func:`sample_count_problem` says when too
few samples survived the sign vote for the instance to be usable for training.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sign_disagreement", "sample_count_problem", "SIGN_CHECK_THRESHOLD"]

#: Samples checked per instance, at most (evenly spaced over the candidates, no randomness).
CHECK_COUNT = 300
#: Only samples at least this far from the surface are checked (normalized units).
CHECK_MARGIN = 0.05
#: A winding number within this of 0 reads "outside", within this of +-1 "inside"; the rest
#: (open sheets, nested shells) is ambiguous and not checked.
WINDING_TOLERANCE = 0.2
#: Fewer decisive samples than this: the check says nothing (recorded as such).
MIN_DECISIVE = 20
#: An instance whose judged samples disagree more often than this fails.
SIGN_CHECK_THRESHOLD = 0.1


def sign_disagreement(vertices, faces, points, sdf, *, margin: float = CHECK_MARGIN,
                      count: int = CHECK_COUNT) -> dict:
    """How many far-from-surface samples the winding number labels otherwise than ``sdf``.

    Parameters
    ----------
    vertices : (v, 3) float, normalized frame
    faces : (f, 3) int
        The whole mesh (hidden faces included: the winding number needs them).
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
        ``checked`` (samples the winding number could judge), ``disagree`` (of those, labelled
        otherwise) and ``fraction`` (their ratio; 0 when fewer than :data:`MIN_DECISIVE`
        samples could be judged: the check then says nothing).
    """
    import igl

    sdf = np.asarray(sdf, dtype=np.float64)
    candidates = np.nonzero(np.abs(sdf) >= margin)[0]
    if len(candidates) > count:
        candidates = candidates[np.linspace(0, len(candidates) - 1, count).astype(np.int64)]
    if len(candidates) == 0:
        return {"checked": 0, "disagree": 0, "fraction": 0.0}
    winding = np.abs(igl.fast_winding_number(
        np.ascontiguousarray(vertices, dtype=np.float64),
        np.ascontiguousarray(faces, dtype=np.int64),
        np.ascontiguousarray(np.asarray(points)[candidates], dtype=np.float64)))
    outside = winding < WINDING_TOLERANCE
    inside = np.abs(winding - 1.0) < WINDING_TOLERANCE
    decisive = outside | inside
    labelled_outside = sdf[candidates] > 0
    disagree = int(np.count_nonzero(decisive & (outside != labelled_outside)))
    checked = int(np.count_nonzero(decisive))
    fraction = disagree / checked if checked >= MIN_DECISIVE else 0.0
    return {"checked": checked, "disagree": disagree, "fraction": fraction}


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

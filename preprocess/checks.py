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

**Deciding at the promised accuracy.**  The project promises at most 0.5% wrong signs; a fixed
share of a few hundred samples cannot tell 0.2% from 2%.  The check judges up to
:data:`CHECK_COUNT` samples (rays are cheap) and fails an instance when its disagreements
exceed :func:`disagreement_limit`: the count a binomial draw at :data:`GOOD_RATE` exceeds with
probability at most :data:`FALSE_ALARM`.  An instance at :data:`BAD_RATE` or worse then fails
with the probability the record calls ``power`` (above 0.97 from about 2 000 judged samples).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["sign_disagreement", "view_consistency", "sample_count_problem", "disagreement_limit",
           "binomial_tail", "RAY_DIRECTIONS", "OPEN_SHARE", "GOOD_RATE", "BAD_RATE"]

#: Samples checked per instance, at most (evenly spaced over the candidates, no randomness).
CHECK_COUNT = 4000
#: Only samples at least this far from the surface are checked (normalized units): the
#: accuracy promised is of signs beyond 0.01, and wrong signs gather there (the insides of thin
#: legs, slats and walls), not far from the surface.
CHECK_MARGIN = 0.01
#: Rays cast from each checked sample (a Fibonacci sphere: fixed, no randomness).
RAY_DIRECTIONS = 64
#: A sample from which at least this share of the rays escape is in open space (outside).
OPEN_SHARE = 0.5
#: A wrong-sign rate an instance may have and still pass (almost always).
GOOD_RATE = 0.002
#: A wrong-sign rate at which an instance should fail (with the recorded ``power``).
BAD_RATE = 0.01
#: The chance that an instance at :data:`GOOD_RATE` fails the check.
FALSE_ALARM = 0.001


def binomial_tail(count: int, trials: int, rate: float) -> float:
    """P(X > count) for X ~ Binomial(trials, rate), summed exactly in log space."""
    if count >= trials:
        return 0.0
    if rate <= 0.0:
        return 0.0 if count >= 0 else 1.0
    if rate >= 1.0:
        return 1.0
    log_p, log_q = math.log(rate), math.log1p(-rate)
    head = 0.0
    for k in range(0, count + 1):
        head += math.exp(math.lgamma(trials + 1) - math.lgamma(k + 1)
                         - math.lgamma(trials - k + 1) + k * log_p + (trials - k) * log_q)
    return max(0.0, 1.0 - head)


def disagreement_limit(checked: int, *, rate: float = GOOD_RATE,
                       false_alarm: float = FALSE_ALARM) -> int:
    """The most disagreements of ``checked`` judged samples that still pass: the smallest
    ``k`` with P(Binomial(checked, rate) > k) <= ``false_alarm``."""
    limit = 0
    while binomial_tail(limit, checked, rate) > false_alarm:
        limit += 1
    return limit


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
                      count: int = CHECK_COUNT, closed: bool = False) -> dict:
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
    closed : bool, keyword-only
        The mesh is closed (by position) and the samples were signed with its sealed
        cavities (:func:`~.surface.sealed_surfaces`).  Then an enclosed sample (no ray
        escapes) is judged by the generalized winding number, exact on such a mesh: 0 in a
        cavity sealed inside the solid (empty space no ray reaches), inside anywhere else.

    Returns
    -------
    dict
        ``method`` ("rays"), ``checked`` (samples the rays could judge: enclosed or open),
        ``disagree`` (of those, labelled otherwise), ``fraction`` (their ratio),
        ``enclosed`` and ``open`` (how many judged samples were each; with ``closed``,
        ``cavity``: how many of the enclosed lay in a sealed cavity), ``limit``
        (:func:`disagreement_limit` of ``checked``), ``failed`` (``disagree > limit``) and
        ``power`` (the chance that an instance at :data:`BAD_RATE` would have failed).
    """
    sdf = np.asarray(sdf, dtype=np.float64)
    candidates = np.nonzero(np.abs(sdf) >= margin)[0]
    if len(candidates) > count:
        candidates = candidates[np.linspace(0, len(candidates) - 1, count).astype(np.int64)]
    result = {"method": "rays", "checked": 0, "disagree": 0, "fraction": 0.0, "enclosed": 0,
              "open": 0, "limit": 0, "failed": False, "power": 0.0}
    if len(candidates) == 0:
        return result
    share = escaping_share(vertices, faces, np.asarray(points)[candidates])
    enclosed = share == 0.0
    open_ = share >= OPEN_SHARE
    cavity = np.zeros_like(enclosed)
    if closed and enclosed.any():
        import igl

        winding = igl.fast_winding_number(np.asarray(vertices, np.float64),
                                          np.asarray(faces, np.int64),
                                          np.asarray(points, np.float64)[candidates[enclosed]])
        cavity[np.nonzero(enclosed)[0][np.abs(winding) < 0.5]] = True
    solid = enclosed & ~cavity
    labelled_outside = sdf[candidates] > 0
    disagree = int(np.count_nonzero((solid & labelled_outside)
                                    | ((open_ | cavity) & ~labelled_outside)))
    checked = int(np.count_nonzero(enclosed | open_))
    limit = disagreement_limit(checked)
    result.update(checked=checked, disagree=disagree,
                  fraction=disagree / checked if checked else 0.0,
                  enclosed=int(enclosed.sum()), open=int(open_.sum()),
                  **({"cavity": int(cavity.sum())} if closed else {}), limit=limit,
                  failed=disagree > limit,
                  power=round(binomial_tail(limit, checked, BAD_RATE), 4))
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


#: A scan sample is in front of a view's measurement when its depth is smaller than the
#: pixel's measured depth by more than this (normalized units), or by more than
#: :data:`NOISE_TOLERANCE` times the view's noise when that is larger.
VIEW_TOLERANCE = 0.005
NOISE_TOLERANCE = 3.0


def view_consistency(points, sdf, views, *, margin: float = CHECK_MARGIN,
                     count: int = CHECK_COUNT, mask_margin: int = 1) -> dict:
    """How many far-from-surface scan samples the raw views contradict.

    The scan preprocessor's sign rules read each pixel's 3x3 neighbourhood, a noise-scaled
    margin, the fused cloud's normals and a carved grid; this check reads only the pixel a
    sample projects to, in every view:

    - a sample labelled **inside** must not lie in front of every measurement of the 3x3
      pixels around its own in any view that measured its pixel (by more than the view's
      tolerance: :data:`VIEW_TOLERANCE`, or
      :data:`NOISE_TOLERANCE` times the view's noise, estimated from the image's own pixel
      differences), and must lie on the object in every view with a mask (the mask grown by
      ``mask_margin`` and one more pixel: a segmentation's edge is uncertain);
    - a sample labelled **outside** must be seen in front of a measurement (by more than the
      smaller of that tolerance and half its own distance) or more than ``mask_margin``
      pixels off the object's mask in at least one view; without masks, an unmeasured pixel 3 pixels or more
      from any measurement counts as off the object.

    Parameters
    ----------
    points : (n, 3) float, the views' frame (normalized)
    sdf : (n,) float, > 0 outside
    views : list of (depth (h, w), camera, mask (h, w) bool or None)
        Depth along the optical axis, 0 where nothing was measured; a
        :class:`~.pinhole.PinholeCamera` in the points' frame.
    margin, count : keyword-only
        Only samples with ``|sdf| >= margin`` are judged, at most ``count`` of them evenly
        spaced.
    mask_margin : int, keyword-only
        The pixels around a mask that the signing took for the object (never free space).

    Returns
    -------
    dict
        ``method`` ("views"), ``checked``, ``disagree``, ``fraction``, ``inside_contradicted``,
        ``outside_unsupported``, ``limit``, ``failed``, ``power`` (as :func:`sign_disagreement`).
    """
    from scipy import ndimage

    from .depth import depth_noise

    sdf = np.asarray(sdf, dtype=np.float64)
    candidates = np.nonzero(np.abs(sdf) >= margin)[0]
    if len(candidates) > count:
        candidates = candidates[np.linspace(0, len(candidates) - 1, count).astype(np.int64)]
    points = np.asarray(points, dtype=np.float64)[candidates]
    outside = sdf[candidates] > 0
    contradicted = np.zeros(len(points), bool)
    supported = np.zeros(len(points), bool)
    distance = np.abs(sdf[candidates])
    for depth, camera, mask in views:
        measured = depth > 0
        tolerance = max(VIEW_TOLERANCE, NOISE_TOLERANCE * depth_noise(depth))
        if mask is not None:
            near_object = ndimage.binary_dilation(np.asarray(mask, bool) | measured,
                                                  iterations=mask_margin)
            on_object = ndimage.binary_dilation(near_object)  # lenient for contradictions
        else:
            near_object = on_object = ndimage.binary_dilation(measured, iterations=3)
        uv, z = camera.project(points)
        with np.errstate(invalid="ignore"):
            cols, rows = np.rint(uv[:, 0]), np.rint(uv[:, 1])
            seen = (z > 0) & (cols >= 0) & (cols < camera.width) & (rows >= 0) & (
                rows < camera.height)
        index = np.nonzero(seen)[0]
        r, c = rows[index].astype(np.int64), cols[index].astype(np.int64)
        gap = depth[r, c] - z[index]
        nearest = ndimage.minimum_filter(np.where(measured, depth, np.inf), size=3)[r, c]
        off_object = ~on_object[r, c]
        supported[index] |= (measured[r, c] & (gap > np.minimum(tolerance, 0.5 * distance[index]))
                             ) | ~near_object[r, c]
        # In front of every measurement around its pixel (a sample half a pixel off the ray
        # of a depth edge, or a flying pixel's depth, says nothing against it).
        contradicted[index] |= (measured[r, c] & (z[index] < nearest - tolerance)) | (
            off_object if mask is not None else False)
    inside_contradicted = ~outside & contradicted
    outside_unsupported = outside & ~supported
    disagree = int(np.count_nonzero(inside_contradicted | outside_unsupported))
    checked = len(points)
    limit = disagreement_limit(checked) if checked else 0
    return {"method": "views", "checked": checked, "disagree": disagree,
            "fraction": disagree / checked if checked else 0.0,
            "inside_contradicted": int(inside_contradicted.sum()),
            "outside_unsupported": int(outside_unsupported.sum()), "limit": limit,
            "failed": disagree > limit,
            "power": round(binomial_tail(limit, checked, BAD_RATE), 4) if checked else 0.0}

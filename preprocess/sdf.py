"""Signed distance of sample points to the visible surface (normalized frame, > 0 outside).

Distance
    Exact Euclidean distance to the visible triangles (libigl's AABB tree), so interior faces
    never attract samples.  The original approximates it from scan points (point-to-plane near
    the surface, point-to-point beyond); :func:`reference_signed_distance` keeps that form for
    cross-checks.

Sign, ``method="vote"`` (default)
    The original's rule: the ``neighbours`` (11) nearest scan points vote with their
    camera-facing normals and a sample is kept only when the vote is unanimous.  It works on
    open, non-watertight meshes because it only uses what the cameras saw.  Most samples need
    no vote: when a sample's closest visible point lies *inside* a triangle seen from one side
    only, ``x - closest`` is parallel to that triangle's normal, so the sign of
    ``(x - closest) . n_seen`` is exact.  An open sheet (``surface.sheet``: seen from both
    sides, no inside) makes the samples beside it outside.  Only the remaining samples
    (closest point on an edge or a vertex where the rules below do not decide, on a sheet's
    rim, or on a triangle whose side is undecided) vote, over a cloud of points spread on the
    visible surface at pixel spacing with the normals of the sides seen (sheets do not vote).
    ``exhaustive=True`` makes every sample vote (the plain reference rule).

Sign, ``method="winding"``
    Generalized winding number of the whole mesh (libigl's fast approximation): inside where
    it exceeds 1/2.  Robust to small holes and keeps every sample, but interior or doubled
    faces of ShapeNet-style meshes change it, which is why it is not the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from .surface import VisibleSurface, welded_corners
from .errors import InputError

__all__ = [
    "SignedDistance",
    "signed_distance",
    "closest_visible_points",
    "vote_cloud",
    "vote_signs",
    "reference_signed_distance",
    "morton_order",
    "SIGN_METHODS",
]

SIGN_METHODS = ("vote", "winding")

#: Barycentric coordinates below this put a closest point on an edge or a vertex.
_EDGE_TOLERANCE = 1e-9

#: Samples per chunk: bounds the per-sample temporaries, yet large enough for libigl to
#: spread a query over its threads.
_CHUNK = 1 << 14

#: Cap on the number of points in the vote cloud.
_MAX_CLOUD = 2_000_000


@dataclass
class SignedDistance:
    """Result of :func:`signed_distance`.

    Attributes
    ----------
    sdf : (n,) float64
        Signed distance, > 0 outside; meaningless where ``keep`` is False.
    keep : (n,) bool
        False for samples whose sign vote was not unanimous.
    counts : dict
        How many samples the face rule decided, how many voted, how many were dropped.
    """

    sdf: np.ndarray
    keep: np.ndarray
    counts: dict = field(default_factory=dict)


def closest_visible_points(surface: VisibleSurface, points):
    """Exact closest points on the visible triangles.

    Parameters
    ----------
    surface : VisibleSurface
    points : (n, 3) float, normalized frame

    Returns
    -------
    distance : (n,) float64
    face : (n,) int64
        Row of ``surface.faces`` holding the closest point.
    closest : (n, 3) float64
    """
    points = np.asarray(points)
    distance = np.empty(len(points))
    face = np.empty(len(points), dtype=np.int64)
    closest = np.empty((len(points), 3))
    for rows, chunk_distance, chunk_face, chunk_closest in _closest_chunks(surface, points):
        distance[rows], face[rows], closest[rows] = chunk_distance, chunk_face, chunk_closest
    return distance, face, closest


def _closest_chunks(surface: VisibleSurface, points):
    """Yield ``(rows, distance, face, closest)`` for chunks of ``points``.

    Queries run in Morton (Z-curve) order through one AABB tree: neighbouring queries walk the
    same branches, which about halves the time on random sample orders, and chunks bound the
    memory of everything computed per sample.
    """
    import igl

    if len(surface.faces) == 0:
        raise InputError("the visible surface is empty: no distance can be computed")
    tree = igl.AABB()
    tree.init(surface.vertices, surface.faces)
    order = morton_order(points)
    for start in range(0, len(points), _CHUNK):
        rows = order[start:start + _CHUNK]
        chunk = np.ascontiguousarray(points[rows], dtype=np.float64)
        squared, face, closest = tree.squared_distance(surface.vertices, surface.faces, chunk)
        yield rows, np.sqrt(squared), face, closest


def morton_order(points) -> np.ndarray:
    """(n,) int64 permutation sorting (n, 3) points along a Z-order curve.

    The cube [-1.5, 1.5]^3 is cut into 1024^3 cells (points outside are clamped to it).
    """
    bits = 10
    points = np.asarray(points)
    code = np.zeros(len(points), dtype=np.int32)  # 3 * 10 bits
    for axis in range(3):  # one column at a time keeps the temporaries small
        value = np.clip((points[:, axis] + 1.5) * ((1 << bits) / 3.0), 0, (1 << bits) - 1)
        value = value.astype(np.int32)
        value = (value | (value << 16)) & 0x030000FF
        value = (value | (value << 8)) & 0x0300F00F
        value = (value | (value << 4)) & 0x030C30C3
        value = (value | (value << 2)) & 0x09249249
        code |= value << axis
    return np.argsort(code, kind="stable")


def _face_rule(surface: VisibleSurface, points, face, closest):
    """(n,) int8 exact signs where the closest point is interior to a one-sided triangle, else 0."""
    corners = surface.vertices[surface.faces[face]]
    e0 = corners[:, 1] - corners[:, 0]
    e1 = corners[:, 2] - corners[:, 0]
    rel = closest - corners[:, 0]
    d00 = np.einsum("ij,ij->i", e0, e0)
    d01 = np.einsum("ij,ij->i", e0, e1)
    d11 = np.einsum("ij,ij->i", e1, e1)
    d20 = np.einsum("ij,ij->i", rel, e0)
    d21 = np.einsum("ij,ij->i", rel, e1)
    denom = d00 * d11 - d01 * d01
    safe = np.where(denom > 0, denom, 1.0)
    b1 = (d11 * d20 - d01 * d21) / safe
    b2 = (d00 * d21 - d01 * d20) / safe
    interior = (denom > 0) & (np.minimum(np.minimum(b1, b2), 1 - b1 - b2) > _EDGE_TOLERANCE)
    side = np.einsum("ij,ij->i", points - closest, surface.normals[face])
    # an open sheet has no inside: whichever side the sample is on is outside
    sign = np.where(surface.sheet[face], 1, np.sign(side) * surface.outward[face]).astype(np.int8)
    return np.where(interior, sign, 0).astype(np.int8), np.stack([1 - b1 - b2, b1, b2], axis=1)


class _VertexRings:
    """Exact signs for closest points on an edge or a vertex of the visible surface.

    Two rules, in order:

    1. *Agreement*: the visible triangles around the closest feature (the rings of the
       vertices with a non-zero barycentric coordinate: a superset of the faces incident to
       the feature) each give ``sign((x - closest) . n_outward)``.  When all of them agree,
       the angle-weighted pseudonormal, a positive combination of the incident normals,
       agrees too.
    2. *Pseudonormal*: where they disagree (concave edges and saddles) but the feature is
       *clean* -- every edge at its vertices is shared by exactly two one-sided triangles
       whose outward orientations agree -- the sign of ``(x - closest) . N`` with the
       angle-weighted pseudonormal ``N`` (the sum of the two normals on an edge) is exact
       (Baerentzen & Aanaes 2005).

    Anything else (two-sided sheets, boundaries, non-manifold edges, zeros) returns 0 and is
    left to the vote.  Duplicate vertices (STL files, unwelded seams) are welded first.
    """

    def __init__(self, surface: VisibleSurface):
        self.surface = surface
        self.corners = welded_corners(surface.vertices, surface.faces)  # (k, 3) welded ids
        count = int(self.corners.max()) + 1
        flat = self.corners.ravel()
        order = np.argsort(flat, kind="stable")
        self.ring_faces = order // 3
        self.starts = np.searchsorted(flat[order], np.arange(count + 1))
        self.clean = self._clean_vertices(count)
        self.sheet_inner = (self._sheet_inner_vertices(count) if surface.sheet.any()
                            else np.zeros(count, dtype=bool))

    def _clean_vertices(self, count: int) -> np.ndarray:
        """(count,) bool: every edge at the vertex joins two one-sided, co-oriented faces."""
        oriented = np.where((self.surface.outward < 0)[:, None], self.corners[:, ::-1],
                            self.corners)
        tail = oriented.ravel()
        head = oriented[:, [1, 2, 0]].ravel()
        key = tail * count + head
        twin = head * count + tail
        keys, multiplicity = np.unique(key, return_counts=True)
        found = np.searchsorted(keys, twin).clip(max=len(keys) - 1)
        has_twin = keys[found] == twin
        one_sided = np.repeat(self.surface.outward != 0, 3)
        good = (multiplicity[np.searchsorted(keys, key)] == 1) & has_twin & one_sided
        good &= np.where(has_twin, multiplicity[found] == 1, False)
        clean = np.ones(count, dtype=bool)
        clean[tail[~good]] = False
        clean[head[~good]] = False
        return clean

    def _sheet_inner_vertices(self, count: int) -> np.ndarray:
        """(count,) bool: every edge at the vertex is shared by exactly two open-sheet
        triangles (the vertex lies inside a sheet, away from its rim and from where it
        enters a solid or was cut by what the cameras saw)."""
        tail = self.corners.ravel()
        head = self.corners[:, [1, 2, 0]].ravel()
        key = np.minimum(tail, head) * count + np.maximum(tail, head)
        keys, multiplicity = np.unique(key, return_counts=True)
        on_sheet = np.repeat(self.surface.sheet, 3)
        good = (multiplicity[np.searchsorted(keys, key)] == 2) & on_sheet
        inner = np.ones(count, dtype=bool)
        inner[tail[~good]] = False
        inner[head[~good]] = False
        return inner

    def signs(self, points, face, closest, barycentric) -> np.ndarray:
        """(n,) int8 signs (+1, -1, or 0 when undecided) of (n, 3) points."""
        n = len(points)
        if n == 0:
            return np.zeros(0, np.int8)
        surface = self.surface
        feature = barycentric > _EDGE_TOLERANCE
        sample, corner = np.nonzero(feature)  # one row per (sample, feature vertex)
        vertex = self.corners[face[sample], corner]
        lengths = self.starts[vertex + 1] - self.starts[vertex]
        entry = np.repeat(np.arange(len(sample)), lengths)
        entry_sample = sample[entry]
        first = np.repeat(self.starts[vertex] - np.cumsum(lengths) + lengths, lengths)
        entry_face = self.ring_faces[first + np.arange(lengths.sum())]
        offset = points[entry_sample] - closest[entry_sample]
        outward_normal = surface.normals[entry_face] * surface.outward[entry_face, None]
        vote = np.sign(np.einsum("ij,ij->i", offset, outward_normal))
        # An open sheet has no inside, so it says nothing of the space beyond its edges (a
        # sheet whose edge enters a solid part): only the other faces around vote.
        solid = ~surface.sheet[entry_face]
        low = np.full(n, 2.0)
        high = np.full(n, -2.0)
        np.minimum.at(low, entry_sample[solid], vote[solid])
        np.maximum.at(high, entry_sample[solid], vote[solid])
        sign = np.where((low == high) & (np.abs(low) == 1), low, 0).astype(np.int8)
        # Only open-sheet triangles around a feature inside a sheet: outside, as beside it.
        sheet_inner = np.ones(n, dtype=bool)
        np.logical_and.at(sheet_inner, sample, self.sheet_inner[vertex])
        sign[(low == 2.0) & sheet_inner] = 1

        # Pseudonormals for the clean features the agreement rule left open.
        vertices_per_sample = feature.sum(axis=1)
        clean = np.ones(n, dtype=bool)
        np.logical_and.at(clean, sample, self.clean[vertex])
        open_ = (sign == 0) & clean & (vertices_per_sample <= 2)
        if not open_.any():
            return sign
        keep = open_[entry_sample]  # only the entries of the samples still open
        entry, entry_sample, entry_face = entry[keep], entry_sample[keep], entry_face[keep]
        outward_normal = outward_normal[keep]
        own = vertex[entry]  # the ring's centre vertex, per entry
        ring_corners = self.corners[entry_face]
        at = np.argmax(ring_corners == own[:, None], axis=1)
        # The other vertex of an edge feature (-1 for a vertex feature).
        feature_vertices = np.where(feature, self.corners[face], -1)[entry_sample]
        other = np.where(feature_vertices == own[:, None], -1, feature_vertices).max(axis=1)
        is_edge = vertices_per_sample[entry_sample] == 2
        on_edge = (ring_corners == other[:, None]).any(axis=1)
        first_of_edge = np.r_[True, sample[1:] != sample[:-1]][entry]
        rows = np.arange(len(at))
        corner_points = surface.vertices[surface.faces[entry_face]]
        a = corner_points[rows, (at + 1) % 3] - corner_points[rows, at]
        b = corner_points[rows, (at + 2) % 3] - corner_points[rows, at]
        cosine = np.einsum("ij,ij->i", a, b) / np.maximum(
            np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)
        angle = np.arccos(np.clip(cosine, -1.0, 1.0))
        # vertex: angle-weighted ring; edge: the faces on the edge, counted once
        edge_face = is_edge & on_edge & first_of_edge
        weight = np.where(is_edge, edge_face.astype(float), angle)
        normal = np.zeros((n, 3))
        np.add.at(normal, entry_sample, weight[:, None] * outward_normal)
        edge_faces = np.bincount(entry_sample, weights=edge_face.astype(float), minlength=n)
        side = np.sign(np.einsum("ij,ij->i", points - closest, normal))
        valid = open_ & (side != 0) & ((vertices_per_sample == 1) | (edge_faces == 2))
        sign[valid] = side[valid]
        return sign


def vote_cloud(surface: VisibleSurface, rng: np.random.Generator, *, spacing: float = 0.005):
    """Oriented points spread on the visible surface, for the sign vote.

    About one point per ``spacing^2`` of area (the scan's pixel density); open sheets
    (``surface.sheet``) contribute none, other triangles seen from both sides each point
    twice, once per side.

    Returns
    -------
    points : (m, 3) float64
    normals : (m, 3) float32
        Unit normals pointing to the side the cameras saw.
    """
    count = int(min(_MAX_CLOUD, max(1000, np.ceil(surface.area / spacing**2))))
    points, face = surface.sample(count, rng)
    voting = ~surface.sheet[face]  # open sheets have no inside to vote for
    points, face = points[voting], face[voting]
    normals = surface.outward_normals().astype(np.float32)[face]
    two_sided = np.nonzero(surface.outward[face] == 0)[0]
    if len(two_sided) == 0:
        return points, normals
    return (np.concatenate([points, points[two_sided]]),
            np.concatenate([normals, -normals[two_sided]]))


def vote_signs(tree: cKDTree, normals, points, *, neighbours: int = 11):
    """The reference unanimous vote.

    Parameters
    ----------
    tree : cKDTree over the cloud points
    normals : (m, 3) float, the cloud's normals
    points : (n, 3) float, query samples
    neighbours : int, keyword-only

    Returns
    -------
    sign : (n,) int8
        +1 (all neighbours see the sample in front of their normal: outside), -1 (all behind:
        inside) or 0 (not unanimous: the sample is to be dropped).
    nearest : (n,) int64
        Index of the nearest cloud point.
    nearest_distance : (n,) float64
    """
    k = min(neighbours, tree.n)
    distance, index = tree.query(points, k=k, workers=-1)
    if k == 1:
        distance, index = distance[:, None], index[:, None]
    cloud = tree.data[index]  # (n, k, 3)
    side = np.einsum("nkj,nkj->nk", points[:, None, :] - cloud, normals[index])
    outside = np.all(side > 0, axis=1)
    inside = np.all(side <= 0, axis=1)
    sign = np.where(outside, 1, np.where(inside, -1, 0)).astype(np.int8)
    return sign, index[:, 0], distance[:, 0]


def signed_distance(surface: VisibleSurface, points, *, method: str = "vote",
                    neighbours: int = 11, rng: np.random.Generator | None = None,
                    exhaustive: bool = False, mesh_vertices=None, mesh_faces=None,
                    spacing: float = 0.005) -> SignedDistance:
    """Signed distance of ``points`` to the visible surface (see the module docstring).

    Parameters
    ----------
    surface : VisibleSurface
    points : (n, 3) float, normalized frame
    method : {"vote", "winding"}, keyword-only
    neighbours : int, keyword-only
        Voters per sample (reference 11).
    rng : numpy Generator, keyword-only
        Draws the vote cloud (required for ``method="vote"``).
    exhaustive : bool, keyword-only
        Every sample votes (no face-rule shortcut).
    mesh_vertices, mesh_faces : arrays, keyword-only
        The whole mesh, normalized frame (required for ``method="winding"``).
    spacing : float, keyword-only
        Vote-cloud spacing (reference pixel size 0.005).
    """
    if method not in SIGN_METHODS:
        raise InputError(f"unknown sign method {method!r}; choose one of {SIGN_METHODS}")
    points = np.asarray(points)
    if method == "winding":
        import igl

        if mesh_vertices is None or mesh_faces is None:
            raise InputError("method='winding' needs mesh_vertices and mesh_faces")
        distance = closest_visible_points(surface, points)[0]
        winding = igl.fast_winding_number(np.asarray(mesh_vertices, np.float64),
                                          np.asarray(mesh_faces, np.int64),
                                          np.asarray(points, np.float64))
        sign = np.where(winding > 0.5, -1, 1)
        return SignedDistance(sdf=sign * distance, keep=np.ones(len(points), bool),
                              counts={"winding": len(points)})
    if rng is None:
        raise InputError("method='vote' needs rng (a numpy Generator) for its vote cloud")
    distance = np.empty(len(points), dtype=np.float32)  # the precision SdfSamples stores
    sign = np.zeros(len(points), np.int8)
    by_face, by_ring = _exact_signs(surface, points, distance, None if exhaustive else sign)
    undecided = np.nonzero(sign == 0)[0]
    if surface.sheet.all():  # nothing but open sheets: there is no inside anywhere
        sign[undecided] = 1
        undecided = undecided[:0]
    cloud_points, cloud_normals = (vote_cloud(surface, rng, spacing=spacing) if len(undecided)
                                   else (np.zeros((0, 3)), None))
    if len(cloud_points):
        tree = cKDTree(cloud_points)
        sign[undecided], _, _ = vote_signs(tree, cloud_normals,
                                           points[undecided].astype(np.float64),
                                           neighbours=neighbours)
    keep = sign != 0
    counts = {"face_rule": by_face, "ring_rule": by_ring, "voted": int(len(undecided)),
              "dropped": int(np.count_nonzero(~keep))}
    return SignedDistance(sdf=np.where(keep, sign * distance, 0.0), keep=keep, counts=counts)


def _exact_signs(surface: VisibleSurface, points, distance, sign) -> tuple[int, int]:
    """Fill ``distance`` (and ``sign``, unless None) in place, chunk by chunk.

    Signs come from the face rule, then the ring rules; 0 is left where neither applies.
    Returns how many samples each rule decided.
    """
    by_face = by_ring = 0
    rings = None if sign is None else _VertexRings(surface)
    for rows, chunk_distance, face, closest in _closest_chunks(surface, points):
        distance[rows] = chunk_distance
        if sign is None:
            continue
        chunk_points = points[rows].astype(np.float64)
        chunk, barycentric = _face_rule(surface, chunk_points, face, closest)
        by_face += int(np.count_nonzero(chunk))
        rest = np.nonzero(chunk == 0)[0]
        chunk[rest] = rings.signs(chunk_points[rest], face[rest], closest[rest],
                                  barycentric[rest])
        by_ring += int(np.count_nonzero(chunk[rest]))
        sign[rows] = chunk
    return by_face, by_ring


def reference_signed_distance(cloud_points, cloud_normals, points, *, plane_radius,
                              neighbours: int = 11) -> SignedDistance:
    """The original preprocessor's rule, written plainly (for tests and cross-checks).

    Every sample votes; distance to the nearest cloud point ``p`` with normal ``n`` is
    ``|(x - p) . n|`` when ``|x - p| < plane_radius`` (the noise standard deviation in the
    original), ``|x - p|`` beyond.

    Parameters
    ----------
    cloud_points, cloud_normals : (m, 3) float
    points : (n, 3) float
    plane_radius : float or (n,) float
    """
    tree = cKDTree(np.asarray(cloud_points, dtype=np.float64))
    normals = np.asarray(cloud_normals, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    sign, nearest, nearest_distance = vote_signs(tree, normals, points, neighbours=neighbours)
    plane = np.abs(np.einsum("ij,ij->i", points - tree.data[nearest], normals[nearest]))
    distance = np.where(nearest_distance < plane_radius, plane, nearest_distance)
    keep = sign != 0
    return SignedDistance(sdf=np.where(keep, sign * distance, 0.0), keep=keep,
                          counts={"voted": len(points), "dropped": int(np.count_nonzero(~keep))})

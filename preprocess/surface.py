"""The visible surface: the triangles the cameras saw, oriented by the side they saw.

Interior faces (ShapeNet's hidden inner walls, doubled sheets) are never seen and so are not
part of it: distances, near-surface samples and ``SurfaceSamples`` all refer to this surface,
as in the original preprocessor.

On a mesh that is not one closed, consistently wound surface (a soup), what was seen is decided per
cell (:mod:`.cells`, about a pixel wide), not per triangle: a triangle whose cells were all
seen stays whole (a lone unseen cell among seen ones counts as seen: a gap in the sampling);
of any other triangle only the seen cells are kept, less two layers of them beside unseen
cells (they may straddle the line where the surface went out of sight).  So the hidden piece of
a part that penetrates another, or the face two touching parts share, never acts as surface.  Which side was seen is decided per triangle, where the
counts are many, from the pixels that are no slips (:mod:`.scan`).  One closed, consistently
wound surface has no hidden pieces, only concave corners few cameras reach: there a triangle
counts as a whole once any pixel saw it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scan import MINORITY, SHEET_BALANCE, TriangleSides, face_normals
from .errors import InputError
from .mesh_io import closed_orientation, position_ids, two_manifold

__all__ = ["VisibleSurface", "surface_pieces", "welded_corners", "one_closed_surface",
           "sealed_surfaces"]


@dataclass
class VisibleSurface:
    """Visible triangles of a mesh, normalized frame.

    Attributes
    ----------
    vertices : (v, 3) float64
        All mesh vertices, then the corners of the kept cells (normalized frame).
    faces : (k, 3) int64
        The visible triangles only: whole mesh triangles and cells of partly seen ones.
    face_index : (k,) int64
        Index of the mesh triangle each visible triangle is (or is a cell of).
    outward : (k,) int8
        +1 when the winding normal points to the side the cameras saw, -1 when it points
        away, 0 when both sides were seen (an open sheet: no inside there).
    normals : (k, 3) float64
        Unit winding normals.
    areas : (k,) float64
    sheet : (k,) bool
        Seen from both sides in comparable measure (:meth:`~.scan.TriangleSides.clean_sheet`):
        an open sheet, free space on both sides.  (``outward`` is 0 for these, and also for
        triangles seen from both sides unevenly, whose sides stay undecided.)
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_index: np.ndarray
    outward: np.ndarray
    normals: np.ndarray
    areas: np.ndarray
    sheet: np.ndarray | None = None

    def __post_init__(self):
        if self.sheet is None:
            self.sheet = np.zeros(len(self.faces), dtype=bool)

    @classmethod
    def from_scan(cls, vertices, faces, sides: TriangleSides, *,
                  whole_triangles: bool | None = None, minority: float = MINORITY,
                  balance: float = SHEET_BALANCE) -> "VisibleSurface":
        """Build from a mesh and its :class:`~.scan.TriangleSides` (see the module docstring).

        ``whole_triangles`` is :func:`one_closed_surface` of the mesh (computed when None):
        one closed, consistently wound surface has no piece hidden inside another, only
        concave corners few cameras reach, so its triangles count as wholes once any pixel
        saw them.  Any other mesh (closed parts that overlap included) is judged per cell.
        ``minority`` and ``balance`` are the thresholds of
        :meth:`~.scan.TriangleSides.clean_outward_sign` and
        :meth:`~.scan.TriangleSides.clean_sheet`.
        """
        vertices = np.asarray(vertices, dtype=np.float64)
        faces = np.asarray(faces, dtype=np.int64)
        if whole_triangles is None:
            whole_triangles = one_closed_surface(vertices, faces)
        if whole_triangles:
            index = np.nonzero(sides.visible)[0]
            return cls._of(vertices, faces[index], index, sides.outward_sign()[index],
                           face_normals(vertices, faces)[index], np.zeros(len(index), bool))
        lattice = sides.lattice
        whole, cells = _seen_pieces(lattice, sides.cell_seen)
        corners = lattice.corners(vertices, faces, cells)
        visible = np.concatenate([faces[whole],
                                  len(vertices) + np.arange(3 * len(cells)).reshape(-1, 3)])
        index = np.concatenate([whole, lattice.cell_face[cells]])
        sheet = sides.clean_sheet(surface_pieces(vertices, faces), balance=balance)
        return cls._of(np.concatenate([vertices, corners.reshape(-1, 3)]), visible, index,
                       sides.clean_outward_sign(minority=minority)[index],
                       face_normals(vertices, faces)[index], sheet[index])

    @classmethod
    def _of(cls, vertices, faces, index, outward, normals, sheet) -> "VisibleSurface":
        corners = vertices[faces]
        cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        return cls(vertices=vertices, faces=faces, face_index=index,
                   outward=np.asarray(outward, dtype=np.int8), normals=normals,
                   areas=0.5 * np.linalg.norm(cross, axis=1), sheet=np.asarray(sheet, bool))

    def with_triangles(self, vertices, faces, index, outward) -> "VisibleSurface":
        """This surface and the whole mesh triangles ``faces[index]`` with the given outward
        sides: triangles no camera saw whose sides are known all the same
        (:func:`sealed_surfaces`).  ``vertices`` and ``faces`` are the mesh this surface was
        built from (its vertices come first in :attr:`vertices`)."""
        index = np.asarray(index, dtype=np.int64)
        if len(index) == 0:
            return self
        vertices = np.asarray(vertices, dtype=np.float64)
        faces = np.asarray(faces, dtype=np.int64)
        if not np.array_equal(self.vertices[:len(vertices)], vertices):
            raise InputError("with_triangles needs the mesh this surface was built from")
        added = VisibleSurface._of(vertices, faces[index], index, outward,
                                   face_normals(vertices, faces)[index],
                                   np.zeros(len(index), bool))
        sheet = self.sheet if self.sheet is not None else np.zeros(len(self.faces), bool)
        return VisibleSurface(
            vertices=self.vertices, faces=np.concatenate([self.faces, added.faces]),
            face_index=np.concatenate([self.face_index, index]),
            outward=np.concatenate([self.outward, added.outward]),
            normals=np.concatenate([self.normals, added.normals]),
            areas=np.concatenate([self.areas, added.areas]),
            sheet=np.concatenate([sheet, added.sheet]))

    @property
    def area(self) -> float:
        """Total visible area (normalized units squared)."""
        return float(self.areas.sum())

    def outward_normals(self) -> np.ndarray:
        """(k, 3) normals pointing to the seen side (winding normal for two-sided faces)."""
        return self.normals * np.where(self.outward < 0, -1.0, 1.0)[:, None]

    def sample(self, count: int, rng: np.random.Generator):
        """Area-weighted uniform points on the visible surface.

        Returns
        -------
        points : (count, 3) float64, normalized frame
        faces : (count,) int64
            Row of :attr:`faces` each point lies on.
        """
        if len(self.faces) == 0 or not self.area > 0:
            raise InputError("the visible surface is empty: nothing to sample")
        cumulative = np.cumsum(self.areas)
        faces = np.searchsorted(cumulative, rng.random(count) * cumulative[-1], side="right")
        faces = np.minimum(faces, len(self.faces) - 1)
        r1 = np.sqrt(rng.random(count))
        r2 = rng.random(count)
        # p = (1 - r1) a + r1 (1 - r2) b + r1 r2 c, accumulated in place (no (count, 3, 3)
        # temporary of corners)
        corners = self.faces[faces]
        points = self.vertices[corners[:, 0]]
        points *= (1 - r1)[:, None]
        points += self.vertices[corners[:, 1]] * (r1 * (1 - r2))[:, None]
        points += self.vertices[corners[:, 2]] * (r1 * r2)[:, None]
        return points, faces


def _seen_pieces(lattice, seen):
    """The triangles seen whole, (w,) int64, and the seen cells of the others, (c,) int64.

    A lone unseen cell among seen ones (three seen neighbours in its triangle) is a gap in the
    sampling, not hidden surface: it counts as seen.  (A cell on the triangle's edge is never
    filled: the corner cell of a sliver, with one neighbour, may be all of the sliver that a
    part hides.)  A seen cell near an unseen one may straddle the line where the surface went out
    of sight (into another part): two rounds of dropping the seen cells beside unseen ones keep
    every hidden piece out (one round leaves, of a band of cells across that line, the half
    that touches the next band only at corners).
    """
    neighbours = lattice.neighbours(np.arange(lattice.count))
    inside = neighbours >= 0

    def all_around(flags):
        return np.where(inside, flags[np.maximum(neighbours, 0)], True).all(axis=1)

    seen = seen | (all_around(seen) & inside.all(axis=1))
    is_whole = np.minimum.reduceat(seen.astype(np.int8), lattice.offsets[:-1]) == 1
    kept = seen & ~is_whole[lattice.cell_face]
    for _ in range(2):
        kept &= all_around(kept)
    return np.nonzero(is_whole)[0], np.nonzero(kept)[0]


def surface_pieces(vertices, faces) -> np.ndarray:
    """(f,) int64 label of the connected piece of surface each triangle belongs to: triangles
    sharing an edge (its end positions compared exactly, so unwelded copies join) are one
    piece; triangles touching at a single corner are not."""
    return _pieces(welded_corners(vertices, faces))


def _pieces(corners) -> np.ndarray:
    """(f,) int64 piece labels of triangles given as (f, 3) corner ids: triangles sharing an
    edge (both corner ids) are one piece."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    corners = np.asarray(corners, dtype=np.int64)
    if len(corners) == 0:
        return np.zeros(0, dtype=np.int64)
    count = int(corners.max()) + 1
    tail = corners.ravel()
    head = corners[:, [1, 2, 0]].ravel()
    _, edge = np.unique(np.minimum(tail, head) * count + np.maximum(tail, head),
                        return_inverse=True)
    rows = np.repeat(np.arange(len(corners)), 3)
    size = len(corners) + int(edge.max()) + 1  # triangles and edges as one bipartite graph
    graph = coo_matrix((np.ones(rows.size), (rows, len(corners) + edge.reshape(-1))),
                       shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    return labels[:len(corners)].astype(np.int64)


def welded_corners(vertices, faces) -> np.ndarray:
    """(f, 3) int64 corner ids of ``faces`` in which corners at the same position (compared
    exactly) share one id, numbered 0.. over the positions the faces use
    (:func:`~.mesh_io.position_ids`)."""
    return position_ids(vertices, faces)


def one_closed_surface(vertices, faces, *, orientation: int | None = None) -> bool:
    """Whether the mesh is one connected, closed, consistently wound surface: then no triangle
    can be partly hidden inside another part, and culling the far side is safe.

    That is: one 2-manifold (:func:`~.mesh_io.two_manifold`: every edge used by exactly one
    triangle in each direction, by vertex index and by position), connected through its
    edges.  Several closed parts that overlap (ShapeNet's usual construction) are closed
    (:func:`~.mesh_io.closed_orientation`) but not one surface; neither are closed parts
    that touch with welded or coinciding vertices at the contact (a CAD export: the
    contact's edges have more than two faces), nor parts meeting at T-junctions (not joined
    through edges).  One surface, connected through the edges of its stored indices, that
    touches itself only along an edge, no two of its faces there at the same angle about it
    (``pinched_edges``: a mesh boolean's union of parts that touch along an edge), is one
    closed surface: nothing of it is hidden.

    ``orientation``: :func:`~.mesh_io.closed_orientation` of the same vertices and faces, if
    already known.
    """
    if orientation is None:
        orientation = closed_orientation(vertices, faces)
    if not orientation or not two_manifold(vertices, faces, pinched_edges=True):
        return False
    # connected through edges of the stored indices: with pinches allowed, parts that only
    # touch along an edge would be one piece by position
    return int(_pieces(faces).max()) == 0


#: Triangles of each hidden part on which :func:`sealed_surfaces` reads the winding number.
SEALED_PROBES = 5


def sealed_surfaces(vertices, faces, seen_faces, orientation: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The hidden parts of a closed mesh that still part solid from empty space, and the side
    of each of their triangles that faces the empty space.

    No camera sees a cavity sealed inside a solid (a hollow shell: an outer surface and an
    inner one wound the other way), nor a solid sealed inside such a cavity; sampling only
    what was seen would fill the cavity.  On a closed, consistently wound mesh
    (``orientation`` is :func:`~.mesh_io.closed_orientation`, not 0) the generalized winding
    number is exact: it is 0 in empty space and nonzero inside.  Each connected part of which
    no triangle was seen (``seen_faces``: indices of faces any camera saw) is probed just off
    a few of its largest triangles, on both sides: where one side is empty and the other is
    not, the part is a boundary of the solid and its triangles count as surface; where both
    sides are inside (a part buried in another, ShapeNet's overlapping parts) it is not.  On
    any other mesh (open, inconsistently wound: a soup) the winding number means nothing and
    nothing is returned.

    Parameters
    ----------
    vertices : (v, 3) float, normalized frame
    faces : (f, 3) int
    seen_faces : (k,) int
    orientation : int

    Returns
    -------
    index : (m,) int64
        Faces of the sealed boundaries.
    outward : (m,) int8
        +1 where the winding normal points to the empty side, -1 where it points away.
    """
    import igl

    none = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8)
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if not orientation or len(faces) == 0:
        return none
    labels = surface_pieces(vertices, faces)
    seen = np.zeros(int(labels.max()) + 1, dtype=bool)
    seen[labels[np.unique(np.asarray(seen_faces, dtype=np.int64))]] = True
    if seen.all():
        return none
    corners = vertices[faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    doubled_area = np.linalg.norm(cross, axis=1)
    order = np.lexsort((-doubled_area, labels))  # by part, largest triangle first
    bounds = np.searchsorted(labels[order], np.arange(len(seen) + 1))  # part p: [b[p], b[p+1])
    parts = np.nonzero(~seen)[0]
    probes, spans, count = [], [], 0  # each hidden part's probe triangles, and their span
    for part in parts:
        members = order[bounds[part]:min(bounds[part] + SEALED_PROBES, bounds[part + 1])]
        members = members[doubled_area[members] > 0]
        probes.append(members)
        spans.append((count, count + len(members)))
        count += len(members)
    probes = np.concatenate(probes).astype(np.int64)
    if len(probes) == 0:
        return none
    normal = cross[probes] / doubled_area[probes, None]
    # a step well inside the triangle's own size and any wall's thickness
    step = np.minimum(1e-4, 0.05 * np.sqrt(doubled_area[probes]))[:, None]
    centre = corners[probes].mean(axis=1)
    query = np.concatenate([centre + step * normal, centre - step * normal])
    winding = igl.fast_winding_number(vertices, faces, query)
    empty_front, empty_back = np.abs(winding[:len(probes)]) < 0.5, \
        np.abs(winding[len(probes):]) < 0.5
    boundary = empty_front != empty_back
    index, outward = [none[0]], [none[1]]
    for part, (low, high) in zip(parts, spans):
        judged = boundary[low:high]
        if np.count_nonzero(judged) * 2 <= high - low:
            continue  # buried in another part (or undecided): not surface
        front = np.count_nonzero(empty_front[low:high] & judged)
        side = 1 if 2 * front > np.count_nonzero(judged) else -1
        members = order[bounds[part]:bounds[part + 1]]
        index.append(np.sort(members))
        outward.append(np.full(len(members), side, dtype=np.int8))
    return np.concatenate(index), np.concatenate(outward)

"""From per-pixel triangle ids to what the scan saw: exact pixel points and per-triangle sides.

A scanner backend (:mod:`.raycast` or :mod:`.render_gl`) decides only *which triangle* each
pixel centre's ray hits first.  Everything geometric is derived here from the mesh itself, in
float64, so both backends agree exactly wherever they agree on the triangle:

- :func:`pixel_observations` gives each hit pixel's exact surface point (the pixel ray meets
  the hit triangle's plane), the triangle index, and the triangle's geometric normal flipped to
  face the camera; pixels that see their triangle at a grazing angle
  (``|n . forward| < grazing``) are dropped.
- :class:`ScanAccumulator` counts, over all views, how often each piece of each triangle (a
  cell of its :class:`~.cells.CellLattice`, about two pixels wide) was seen with the winding
  normal facing the camera ("front") and facing away ("back").  These counts define the
  visible surface used for sampling and distances, and the original preprocessor's
  mesh-quality statistics.

A pixel whose centre lies within :data:`SLIP` of its triangle's edge, in the image plane, is a
*slip*: where two triangles meet (a silhouette, a seam between touching parts), the scanner may
give the pixel to either.  Slips count towards the statistics but decide neither that a piece
was seen nor that it was seen from both sides.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .cameras import CameraRig
from .cells import CellLattice
from .errors import InputError

__all__ = ["Scanner", "NO_HIT", "face_normals", "plane_depth", "pixel_observations", "ScanAccumulator",
           "TriangleSides"]


class Scanner(Protocol):
    """What the pipeline needs of a scanner: per-pixel first-hit triangle ids of a mesh from
    every view of its :class:`~.cameras.CameraRig`.  Two implement it:
    :class:`~.raycast.RayCastScanner` (Embree/trimesh ray casting, no OpenGL) and
    :class:`~.render_gl.OpenGLScanner` (EGL rasterization); ``make_scanner`` picks one."""

    rig: CameraRig

    def triangle_ids(self, vertices, faces, *,
                     orientation: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(view, ids)``: ids (res, res) int64 of the first triangle each pixel
        centre's ray meets (row 0 = top), :data:`NO_HIT` for background.  ``orientation``
        (+1 outward, -1 inward, 0 unknown: :func:`~.mesh_io.closed_orientation`) lets a
        scanner skip faces turned away from the camera."""

    def close(self) -> None:
        """Release what the scanner holds (an OpenGL context)."""

#: Value of a pixel whose ray hits nothing, in triangle-id images.
NO_HIT = -1

#: Default grazing threshold on ``|n . forward|`` (reference).
GRAZING = 1e-3

#: Cell side in pixels (see :mod:`.cells`).
CELL_PIXELS = 1.0

#: A hit within this many pixels of its triangle's edge (image plane) is a slip.
SLIP = 0.01

#: A connected piece of surface whose triangles were seen from their less-seen side at least
#: this share of the other side's hits is an open sheet (:meth:`TriangleSides.clean_sheet`).
#: On the soup corpus: seats, slats and table tops as one plane score about 0.9, open cups
#: 0.2-0.3, closed parts with an open foot or a missing face below 0.05.
SHEET_BALANCE = 0.1

#: Outside open sheets: a triangle seen from its less-seen side less than this share of the
#: other side's hits is one-sided (those few hits are slips or glimpses through a gap); above
#: it its side is undecided and samples by it are left to the vote.
MINORITY = 0.1


def face_normals(vertices, faces) -> np.ndarray:
    """(f, 3) float64 unit geometric normals (right-hand rule); zero rows for degenerate faces."""
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    length = np.linalg.norm(cross, axis=1, keepdims=True)
    return np.divide(cross, length, out=np.zeros_like(cross), where=length > 0)


def plane_depth(vertices, faces, triangles, origins, direction, *, normals=None):
    """Distance along ``direction`` from each origin to the plane of its triangle.

    Parameters
    ----------
    vertices : (v, 3) float ; faces : (f, 3) int
    triangles : (m,) int, one triangle per origin
    origins : (m, 3) float
    direction : (3,) float, one direction for every ray, or (m, 3), one per ray
    normals : (m, 3) float, optional
        The triangles' normals (any length), if already at hand.

    Returns
    -------
    (m,) float64; ``inf`` or ``nan`` where the ray is parallel to the plane.
    """
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)[triangles]]
    if normals is None:
        normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        along = np.einsum("ij,ij->i", normals, np.broadcast_to(direction, normals.shape))
        return np.einsum("ij,ij->i", normals, corners[:, 0] - origins) / along


def pixel_observations(vertices, faces, rig: CameraRig, view: int, triangle_ids, *,
                       grazing: float = GRAZING, normals=None):
    """Exact surface point, triangle and camera-facing normal of every usable pixel of a view.

    Parameters
    ----------
    vertices : (v, 3) float, normalized frame
    faces : (f, 3) int
    rig : CameraRig
    view : int
    triangle_ids : (res, res) int
        A scanner's id image (row 0 = top), :data:`NO_HIT` for background.
    grazing : float, keyword-only
        Pixels with ``|n . forward|`` below this are dropped.
    normals : (f, 3) float, optional
        Precomputed :func:`face_normals`.

    Returns
    -------
    pixels : (m, 2) int64
        ``(row, col)`` of each kept pixel.
    points : (m, 3) float64
        Surface points, normalized frame.
    triangles : (m,) int64
    normals : (m, 3) float64
        Unit normals facing the camera (``n . forward < 0``).
    depth : (m,) float64
        Distance from the camera plane along ``forward``.
    """
    ids = np.asarray(triangle_ids)
    normals_all = face_normals(vertices, faces) if normals is None else normals
    rows, cols = np.nonzero(ids != NO_HIT)
    tri = ids[rows, cols].astype(np.int64)
    origins, forward = rig.rays(view)
    normal = normals_all[tri]
    facing = normal @ forward
    keep = np.abs(facing) >= grazing
    rows, cols, tri, normal, facing = rows[keep], cols[keep], tri[keep], normal[keep], facing[keep]
    origin = origins[rows * rig.resolution + cols]
    depth = plane_depth(vertices, faces, tri, origin, forward, normals=normal)
    points = origin + depth[:, None] * forward
    normal = normal * -np.sign(facing)[:, None]
    return np.stack([rows, cols], axis=1), points, tri, normal, depth


@dataclass
class TriangleSides:
    """How often each triangle, and each cell of it, was seen from each side, over all views.

    Attributes
    ----------
    front : (f,) int64
        Pixels that saw the triangle with its winding normal facing the camera.
    back : (f,) int64
        Pixels that saw it with the winding normal facing away.
    stats : dict
        Scan statistics (see :meth:`ScanAccumulator.finish`).
    lattice : CellLattice
        The triangles' cells.
    cell_counts : (c, 4) int64
        Per cell: front hits, back hits, front hits that are not slips, back hits that are
        not slips.
    """

    front: np.ndarray
    back: np.ndarray
    stats: dict
    lattice: CellLattice
    cell_counts: np.ndarray

    @property
    def visible(self) -> np.ndarray:
        """(f,) bool: seen by at least one non-grazing pixel."""
        return (self.front + self.back) > 0

    @property
    def cell_seen(self) -> np.ndarray:
        """(c,) bool: the cell was seen by at least one pixel that is no slip."""
        return self.cell_counts[:, 2:].sum(axis=1) > 0

    def outward_sign(self, *, minority: float = MINORITY) -> np.ndarray:
        """(f,) int8 per triangle: +1 if the winding normal points to the seen side, -1 if it
        points away, 0 for unseen triangles and for triangles seen substantially from both
        sides (the smaller count at least ``minority`` times the larger).

        A few back observations of a closed mesh come from silhouette pixels where the
        rasterizer or ray caster slips onto the far side; ``minority`` keeps them from marking
        the triangle two-sided.
        """
        return _outward(self.front, self.back, minority)

    @property
    def clean_counts(self) -> np.ndarray:
        """(f, 2) int64 per triangle: front and back hits that are no slips."""
        return np.add.reduceat(self.cell_counts[:, 2:], self.lattice.offsets[:-1], axis=0)

    def clean_outward_sign(self, *, minority: float = MINORITY) -> np.ndarray:
        """(f,) int8 per triangle, as :meth:`outward_sign` but counting only the hits that
        are no slips."""
        counts = self.clean_counts
        return _outward(counts[:, 0], counts[:, 1], minority)

    def clean_sheet(self, pieces, *, balance: float = SHEET_BALANCE) -> np.ndarray:
        """(f,) bool per triangle: part of an open sheet, free space on both sides.

        A triangle is judged with the connected piece of surface it belongs to
        (``pieces``: (f,) int labels): a piece whose triangles were seen from their
        less-seen side at least ``balance`` times as often as from the other (summed over the
        piece) is a sheet, and so is each of its triangles that was seen from both sides.  A
        closed part seen inside only through a small opening (a leg with an open foot, a
        missing face) falls far short of it, however much its triangles near the opening were
        seen from inside; a seat modelled as one plane, or a cup's wall, does not.
        """
        counts = self.clean_counts
        low, high = counts.min(axis=1), counts.max(axis=1)
        pieces = np.asarray(pieces, dtype=np.int64)
        piece_low = np.bincount(pieces, weights=low)
        piece_high = np.bincount(pieces, weights=high)
        piece_sheet = (piece_low > 0) & (piece_low >= balance * piece_high)
        return piece_sheet[pieces] & (low > 0)


def _outward(front, back, minority: float) -> np.ndarray:
    """(k,) int8 orientation from (k,) front and back counts (see
    :meth:`TriangleSides.outward_sign`)."""
    sign = np.sign(front - back).astype(np.int8)
    both = np.minimum(front, back) >= minority * np.maximum(front, back)
    sign[both & ((front + back) > 0)] = 0
    return sign


class ScanAccumulator:
    """Collects the id images of successive views of one mesh into :class:`TriangleSides`.

    Parameters
    ----------
    vertices : (v, 3) float, normalized frame
    faces : (f, 3) int
    rig : CameraRig
        The cameras that produced the id images.
    grazing : float, keyword-only
        Pixels with ``|n . forward|`` below this are dropped (reference 1e-3).
    cell : float, keyword-only
        Cell side (normalized units); default :data:`CELL_PIXELS` pixels.
    per_cell : bool, keyword-only
        Locate every hit in its cell and tell slips apart (what a soup needs).  False: one
        cell per triangle and every hit counts as clean (enough for a closed, consistently
        wound mesh, and cheaper).
    """

    def __init__(self, vertices, faces, rig: CameraRig, *, grazing: float = GRAZING,
                 cell: float | None = None, per_cell: bool = True):
        self.rig = rig
        self.vertices = np.asarray(vertices, dtype=np.float64)
        self.faces = np.asarray(faces, dtype=np.int64)
        self.face_count = len(self.faces)
        self.normals = face_normals(self.vertices, self.faces)
        self.grazing = float(grazing)
        self.per_cell = bool(per_cell)
        size = CELL_PIXELS * rig.pixel_size if cell is None else cell
        self.lattice = (CellLattice.for_mesh(self.vertices, self.faces, size=size) if per_cell
                        else CellLattice.whole(len(self.faces)))
        self._bases = rig.bases()
        self._u, self._v = rig.pixel_offsets()
        self._counts = np.zeros(4 * self.lattice.count, dtype=np.int64)
        self._hit_pixels = 0
        self._grazing_pixels = 0
        self._views_with_hits = 0

    def add_view(self, view: int, triangle_ids) -> None:
        """Add the (res, res) id image of ``view`` (row 0 = top, :data:`NO_HIT` = background)."""
        ids = np.asarray(triangle_ids)
        expected = (self.rig.resolution, self.rig.resolution)
        if ids.shape != expected:
            raise InputError(f"triangle-id image has shape {ids.shape}, expected {expected}")
        rows, cols = np.nonzero(ids != NO_HIT)
        if len(rows) == 0:
            return
        tri = ids[rows, cols].astype(np.int64)
        if tri.max() >= self.face_count or tri.min() < 0:
            raise InputError("triangle-id image holds indices outside the mesh")
        self._views_with_hits += 1
        self._hit_pixels += len(tri)
        right, up, forward = self._bases[view]
        facing = self.normals[tri] @ forward  # < 0: winding normal faces the camera
        usable = np.abs(facing) >= self.grazing
        self._grazing_pixels += int(np.count_nonzero(~usable))
        rows, cols, tri, facing = rows[usable], cols[usable], tri[usable], facing[usable]
        if self.per_cell:
            b1, b2, slip = self._image_barycentric(tri, cols, rows, right, up)
            cells = self.lattice.cell_ids(tri, b1, b2)
        else:
            cells, slip = tri, False
        code = 4 * cells + np.where(facing < 0, 0, 1) + np.where(slip, 0, 2)
        self._counts += np.bincount(code, minlength=len(self._counts))

    def _image_barycentric(self, tri, cols, rows, right, up):
        """Barycentrics ``b1, b2`` of each pixel centre in its triangle's image (an orthographic
        view keeps them) and whether the centre is a slip (:data:`SLIP` pixels from an
        edge).  What depends on the triangle alone is computed once per triangle."""
        x = (self.vertices @ right)[self.faces]  # (f, 3) image coordinates of the corners
        y = (self.vertices @ up)[self.faces]
        x1, y1 = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]
        x2, y2 = x[:, 2] - x[:, 0], y[:, 2] - y[:, 0]
        det = x1 * y2 - x2 * y1
        inverse = np.divide(1.0, det, out=np.zeros_like(det), where=det != 0)
        # distance to the edge opposite corner k is b_k * |det| / |that edge|: b_k * height_k
        height = np.abs(det)[:, None] / np.maximum(np.stack([
            np.hypot(x[:, 2] - x[:, 1], y[:, 2] - y[:, 1]), np.hypot(x2, y2),
            np.hypot(x1, y1)], axis=1), 1e-300)
        xp = self._u[cols] - x[tri, 0]
        yp = self._v[rows] - y[tri, 0]
        b1 = (xp * y2[tri] - x2[tri] * yp) * inverse[tri]
        b2 = (x1[tri] * yp - xp * y1[tri]) * inverse[tri]
        limit = SLIP * self.rig.pixel_size
        h = height[tri]
        slip = (((1.0 - b1 - b2) * h[:, 0] < limit) | (b1 * h[:, 1] < limit)
                | (b2 * h[:, 2] < limit) | (inverse[tri] == 0))
        return b1, b2, slip

    def finish(self) -> TriangleSides:
        """The per-triangle and per-cell counts and the mesh-quality statistics.

        Statistics (plain numbers, for the manifest):

        - ``hit_pixels``, ``grazing_pixels``: pixels that saw the mesh / dropped as grazing;
        - ``views_with_hits``: views in which the mesh was seen at all;
        - ``visible_triangles``: triangles seen by at least one kept pixel;
        - ``triangles_seen_from_both_sides``: seen with the winding normal facing the camera
          in some pixels and facing away in others (open surfaces, inconsistent winding);
        - ``back_observation_fraction``: fraction of kept pixels that saw a triangle's back.
          A closed, consistently wound mesh scores about 0: these are the original
          preprocessor's "wrong observations";
        - ``slip_pixels``: kept pixels within :data:`SLIP` pixels of their triangle's edge.
        """
        cell_counts = self._counts.reshape(-1, 4).copy()
        counts = np.add.reduceat(cell_counts, self.lattice.offsets[:-1], axis=0)
        front = counts[:, 0] + counts[:, 2]
        back = counts[:, 1] + counts[:, 3]
        kept = self._hit_pixels - self._grazing_pixels
        sides = TriangleSides(front=front, back=back, stats={}, lattice=self.lattice,
                              cell_counts=_as_sides(cell_counts))
        sides.stats = {
            "hit_pixels": int(self._hit_pixels),
            "grazing_pixels": int(self._grazing_pixels),
            "slip_pixels": int(counts[:, :2].sum()),
            "views_with_hits": int(self._views_with_hits),
            "visible_triangles": int(np.count_nonzero(sides.visible)),
            "triangles_seen_from_both_sides": int(np.count_nonzero((front > 0) & (back > 0))),
            "back_observation_fraction": float(back.sum() / kept) if kept else 0.0,
        }
        return sides


def _as_sides(codes) -> np.ndarray:
    """(c, 4) counts in code order (slip front, slip back, clean front, clean back) to
    (front, back, clean front, clean back)."""
    slip_front, slip_back, clean_front, clean_back = codes.T
    return np.stack([slip_front + clean_front, slip_back + clean_back, clean_front, clean_back],
                    axis=1)

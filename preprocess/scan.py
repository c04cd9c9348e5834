"""From per-pixel triangle ids to what the scan saw: exact pixel points and per-triangle sides.

A scanner backend (:mod:`.raycast` or :mod:`.render_gl`) decides only *which triangle* each
pixel centre's ray hits first.  Everything geometric is derived here from the mesh itself, in
float64, so both backends agree exactly wherever they agree on the triangle:

- :func:`pixel_observations` gives each hit pixel's exact surface point (the pixel ray meets
  the hit triangle's plane), the triangle index, and the triangle's geometric normal flipped to
  face the camera; pixels that see their triangle at a grazing angle
  (``|n . forward| < grazing``) are dropped.
- :class:`ScanAccumulator` counts, over all views, how often each triangle was seen with its
  winding normal facing the camera ("front") and facing away ("back").  These counts define
  the visible surface used for sampling and distances, and the original preprocessor's
  mesh-quality statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .cameras import CameraRig
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
    """How often each triangle was seen from each side, over all views.

    Attributes
    ----------
    front : (f,) int64
        Pixels that saw the triangle with its winding normal facing the camera.
    back : (f,) int64
        Pixels that saw it with the winding normal facing away.
    stats : dict
        Scan statistics (see :meth:`ScanAccumulator.finish`).
    """

    front: np.ndarray
    back: np.ndarray
    stats: dict

    @property
    def visible(self) -> np.ndarray:
        """(f,) bool: seen by at least one non-grazing pixel."""
        return (self.front + self.back) > 0

    def outward_sign(self, *, minority: float = 0.1) -> np.ndarray:
        """(f,) int8: +1 if the winding normal points to the seen side, -1 if it points away,
        0 for unseen triangles and for triangles seen substantially from both sides (the
        smaller count at least ``minority`` times the larger).

        A few back observations of a closed mesh come from silhouette pixels where the
        rasterizer or ray caster slips onto the far side; ``minority`` keeps them from marking
        the triangle two-sided.
        """
        sign = np.sign(self.front - self.back).astype(np.int8)
        both = np.minimum(self.front, self.back) >= minority * np.maximum(self.front, self.back)
        sign[both & self.visible] = 0
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
    """

    def __init__(self, vertices, faces, rig: CameraRig, *, grazing: float = GRAZING):
        self.rig = rig
        self.face_count = len(faces)
        self.normals = face_normals(vertices, faces)
        self.grazing = float(grazing)
        self._forward = rig.bases()[:, 2]
        self._front = np.zeros(self.face_count, dtype=np.int64)
        self._back = np.zeros(self.face_count, dtype=np.int64)
        self._hit_pixels = 0
        self._grazing_pixels = 0
        self._views_with_hits = 0

    def add_view(self, view: int, triangle_ids) -> None:
        """Add the (res, res) id image of ``view`` (row 0 = top, :data:`NO_HIT` = background)."""
        ids = np.asarray(triangle_ids)
        expected = (self.rig.resolution, self.rig.resolution)
        if ids.shape != expected:
            raise InputError(f"triangle-id image has shape {ids.shape}, expected {expected}")
        hits = ids[ids != NO_HIT]
        if len(hits) == 0:
            return
        if hits.max() >= self.face_count or hits.min() < 0:
            raise InputError("triangle-id image holds indices outside the mesh")
        self._views_with_hits += 1
        counts = np.bincount(hits, minlength=self.face_count)
        facing = self.normals @ self._forward[view]  # < 0: winding normal faces the camera
        usable = np.abs(facing) >= self.grazing
        self._hit_pixels += len(hits)
        self._grazing_pixels += int(counts[~usable].sum())
        counts = np.where(usable, counts, 0)
        front = facing < 0
        self._front += np.where(front, counts, 0)
        self._back += np.where(front, 0, counts)

    def finish(self) -> TriangleSides:
        """The per-triangle counts and the mesh-quality statistics.

        Statistics (plain numbers, for the manifest):

        - ``hit_pixels``, ``grazing_pixels``: pixels that saw the mesh / dropped as grazing;
        - ``views_with_hits``: views in which the mesh was seen at all;
        - ``visible_triangles``: triangles seen by at least one kept pixel;
        - ``triangles_seen_from_both_sides``: seen with the winding normal facing the camera
          in some pixels and facing away in others (open surfaces, inconsistent winding);
        - ``back_observation_fraction``: fraction of kept pixels that saw a triangle's back.
          A closed, consistently wound mesh scores about 0: these are the original
          preprocessor's "wrong observations".
        """
        kept = self._hit_pixels - self._grazing_pixels
        stats = {
            "hit_pixels": int(self._hit_pixels),
            "grazing_pixels": int(self._grazing_pixels),
            "views_with_hits": int(self._views_with_hits),
            "visible_triangles": int(np.count_nonzero(self._front + self._back)),
            "triangles_seen_from_both_sides": int(np.count_nonzero(
                (self._front > 0) & (self._back > 0))),
            "back_observation_fraction": float(self._back.sum() / kept) if kept else 0.0,
        }
        return TriangleSides(front=self._front.copy(), back=self._back.copy(), stats=stats)

"""The visible surface: the triangles the cameras saw, oriented by the side they saw.

Interior faces (ShapeNet's hidden inner walls, doubled sheets) are never seen and so are not
part of it: distances, near-surface samples and ``SurfaceSamples`` all refer to this surface,
as in the original preprocessor.  A triangle counts as visible as a whole once any pixel saw it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scan import TriangleSides, face_normals
from .errors import InputError

__all__ = ["VisibleSurface"]


@dataclass
class VisibleSurface:
    """Visible triangles of a mesh, normalized frame.

    Attributes
    ----------
    vertices : (v, 3) float64
        All mesh vertices (normalized frame).
    faces : (k, 3) int64
        The visible triangles only.
    face_index : (k,) int64
        Index of each visible triangle in the full mesh.
    outward : (k,) int8
        +1 when the winding normal points to the side the cameras saw, -1 when it points
        away, 0 when both sides were seen (an open sheet: no inside there).
    normals : (k, 3) float64
        Unit winding normals.
    areas : (k,) float64
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_index: np.ndarray
    outward: np.ndarray
    normals: np.ndarray
    areas: np.ndarray

    @classmethod
    def from_scan(cls, vertices, faces, sides: TriangleSides) -> "VisibleSurface":
        """Build from a mesh and its :class:`~.scan.TriangleSides`."""
        vertices = np.asarray(vertices, dtype=np.float64)
        faces = np.asarray(faces, dtype=np.int64)
        index = np.nonzero(sides.visible)[0]
        visible = faces[index]
        corners = vertices[visible]
        cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
        return cls(vertices=vertices, faces=visible, face_index=index,
                   outward=sides.outward_sign()[index], normals=face_normals(vertices, visible),
                   areas=0.5 * np.linalg.norm(cross, axis=1))

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

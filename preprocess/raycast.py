"""OpenGL-free scanner: cast the pixel-centre rays of every view with trimesh.

trimesh uses Embree (through ``embreex``) when it is installed and falls back to its pure
numpy triangle intersector otherwise (correct but slow: use small resolutions without Embree).
This backend is the reference the OpenGL backend is tested against, and the one to use where
no OpenGL context can be created (macOS without EGL, some clusters).
"""

from __future__ import annotations

import numpy as np
import trimesh

from .cameras import CameraRig
from .scan import NO_HIT, plane_depth

__all__ = ["RayCastScanner", "first_hits"]


class RayCastScanner:
    """Per-pixel triangle ids by ray casting (see :mod:`preprocess.cameras` for the pixels)."""

    name = "raycast"

    def __init__(self, rig: CameraRig):
        self.rig = rig

    def triangle_ids(self, vertices, faces, *, orientation: int = 0):
        """Yield ``(view, ids)`` for every view of the rig.

        Parameters
        ----------
        vertices : (v, 3) float, normalized frame
        faces : (f, 3) int
        orientation : int, keyword-only
            Accepted for symmetry with the OpenGL scanner (which culls the far side of closed
            meshes); ray casting finds the same first hits without it.

        Yields
        ------
        view : int
        ids : (resolution, resolution) int32
            First triangle hit by each pixel centre's ray, :data:`NO_HIT` where none is hit
            within ``[near, far]``.
        """
        mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
        intersector = mesh.ray
        res = self.rig.resolution
        for view in range(self.rig.count):
            origins, direction = self.rig.rays(view)
            directions = np.broadcast_to(direction, origins.shape)
            ids = np.full(res * res, NO_HIT, dtype=np.int32)
            tri, ray = first_hits(intersector, origins, directions)
            depth_ok = np.ones(len(ray), bool)
            if len(ray):
                depth = plane_depth(vertices, faces, tri, origins[ray], direction)
                depth_ok = (depth >= self.rig.near) & (depth <= self.rig.far)
            ids[ray[depth_ok]] = tri[depth_ok]
            yield view, ids.reshape(res, res)

    def close(self):
        """Nothing to release (for symmetry with the OpenGL scanner)."""


def first_hits(intersector, origins, directions):
    """The first hit of every ray that hits anything: ``(triangles (h,), rays (h,))`` int64
    index arrays, ray ``rays[i]`` first meeting triangle ``triangles[i]``.

    ``intersector`` is a trimesh ray intersector (``mesh.ray``: Embree when installed);
    ``origins`` and ``directions`` are (n, 3).  The one first-hit cast of both packages (the
    scanner, virtual depth scans, pictures)."""
    tri = np.asarray(intersector.intersects_first(origins, directions), dtype=np.int64)
    ray = np.nonzero(tri >= 0)[0]
    return tri[ray], ray


"""The virtual depth cameras of the original DeepSDF preprocessor.

OpenGL-free: the rendering backends and :mod:`deepsdf` both use these definitions, so the
pixel geometry is written down exactly once.

Frames and conventions
----------------------
All positions are in the **normalized frame** (the mesh fits in the unit sphere).  A camera
sits on a sphere of radius ``radius`` and looks at the origin.  Its orthonormal basis is
``right``, ``up`` and ``forward`` (``forward`` points from the camera to the origin).  The
projection is orthographic over ``[-extent, extent]^2`` in (right, up) coordinates.

Pixel ``(row, col)`` of an image of ``height x width`` pixels has its **centre** at::

    u = -extent + (col + 0.5) * 2 * extent / width     (along ``right``)
    v = +extent - (row + 0.5) * 2 * extent / height    (along ``up``; row 0 is the top)

and its ray starts at ``eye + u * right + v * up`` and travels along ``forward``.  Depth is the
distance along ``forward`` from the camera plane, in ``[near, far]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from .errors import InputError

__all__ = [
    "CameraRig",
    "golden_spiral_positions",
    "look_at_basis",
    "default_rig",
]


def golden_spiral_positions(count: int, radius: float) -> np.ndarray:
    """Camera positions on a golden-angle spiral, as in the original preprocessor.

    Parameters
    ----------
    count : int
        Number of cameras (reference: 100).
    radius : float
        Sphere radius (reference: 1.1).

    Returns
    -------
    positions : (count, 3) float64
        Point ``i`` has height ``y_i = -1 + (2 i + 1) / count`` (times ``radius``) and azimuth
        ``(i + 1) * pi * (3 - sqrt(5))``.
    """
    if count < 1:
        raise InputError(f"camera count must be at least 1, got {count}")
    i = np.arange(count, dtype=np.float64)
    y = -1.0 + (2.0 * i + 1.0) / count
    r = np.sqrt(np.maximum(0.0, 1.0 - y * y))
    phi = (i + 1.0) * np.pi * (3.0 - np.sqrt(5.0))
    return radius * np.stack([np.cos(phi) * r, y, np.sin(phi) * r], axis=1)


def look_at_basis(eye: np.ndarray, *, up_hint=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Orthonormal camera basis for a camera at ``eye`` looking at the origin.

    Parameters
    ----------
    eye : (3,) float
        Camera position (must not be the origin).
    up_hint : (3,) float, keyword-only
        World direction that should appear "up" in the image (reference: +y).  When it is
        parallel to the viewing direction, +z is used instead.

    Returns
    -------
    basis : (3, 3) float64
        Rows ``right``, ``up``, ``forward``; ``forward = -eye / |eye|``; right-handed
        (``right x up = -forward``, the OpenGL camera convention).
    """
    eye = np.asarray(eye, dtype=np.float64)
    norm = np.linalg.norm(eye)
    if norm == 0:
        raise InputError("camera position must not be the origin")
    forward = -eye / norm
    hint = np.asarray(up_hint, dtype=np.float64)
    right = np.cross(forward, hint)
    if np.linalg.norm(right) < 1e-8:
        right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.stack([right, up, forward])


@dataclass(frozen=True)
class CameraRig:
    """A set of orthographic cameras looking at the origin.

    Attributes are the reference constants by default (see :func:`default_rig`).
    """

    count: int = 100  # number of views on the golden-angle spiral
    radius: float = 1.1  # distance of every camera from the origin
    resolution: int = 400  # image width and height in pixels
    extent: float = 1.0  # half-width of the orthographic window (pixel = 2*extent/resolution)
    near: float = 0.0  # near clipping distance along the view direction
    far: float = 2.5  # far clipping distance along the view direction

    def __post_init__(self):
        if self.resolution < 1:
            raise InputError(f"resolution must be positive, got {self.resolution}")
        if not self.far > self.near >= 0:
            raise InputError(f"need 0 <= near < far, got near={self.near}, far={self.far}")

    @property
    def pixel_size(self) -> float:
        """Width of one pixel in normalized units (reference: 0.005)."""
        return 2.0 * self.extent / self.resolution

    def positions(self) -> np.ndarray:
        """(count, 3) float64 camera positions."""
        return golden_spiral_positions(self.count, self.radius)

    def bases(self) -> np.ndarray:
        """(count, 3, 3) float64; ``bases[k]`` has rows right, up, forward of view ``k``."""
        return np.stack([look_at_basis(p) for p in self.positions()])

    def pixel_offsets(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates ``(u, v)``, each (resolution,) float64.

        ``u[col]`` runs along ``right`` (left to right); ``v[row]`` runs along ``up`` (top to
        bottom, so ``v`` decreases with the row index).
        """
        centres = -self.extent + (np.arange(self.resolution) + 0.5) * self.pixel_size
        return centres, centres[::-1].copy()

    def rays(self, view: int) -> tuple[np.ndarray, np.ndarray]:
        """Ray origins and the shared direction of every pixel of one view.

        Returns
        -------
        origins : (resolution * resolution, 3) float64
            Pixel centres on the camera plane, row-major (row 0 = top of the image).
        direction : (3,) float64
            The view's ``forward`` vector.
        """
        eye = self.positions()[view]
        right, up, forward = look_at_basis(eye)
        u, v = self.pixel_offsets()
        vv, uu = np.meshgrid(v, u, indexing="ij")
        origins = eye + uu.reshape(-1, 1) * right + vv.reshape(-1, 1) * up
        return origins, forward

    def view_matrix(self, view: int) -> np.ndarray:
        """(4, 4) float64 world-to-camera matrix (OpenGL convention: camera looks down -z)."""
        eye = self.positions()[view]
        right, up, forward = look_at_basis(eye)
        rotation = np.stack([right, up, -forward])
        matrix = np.eye(4)
        matrix[:3, :3] = rotation
        matrix[:3, 3] = -rotation @ eye
        return matrix

    def projection_matrix(self) -> np.ndarray:
        """(4, 4) float64 OpenGL orthographic projection over the window and [near, far]."""
        e, n, f = self.extent, self.near, self.far
        matrix = np.eye(4)
        matrix[0, 0] = 1.0 / e
        matrix[1, 1] = 1.0 / e
        matrix[2, 2] = -2.0 / (f - n)
        matrix[2, 3] = -(f + n) / (f - n)
        return matrix


def default_rig() -> CameraRig:
    """The reference rig: 100 views, radius 1.1, 400 x 400, window [-1, 1]^2, depth [0, 2.5]."""
    return CameraRig()

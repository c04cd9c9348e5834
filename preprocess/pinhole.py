"""Perspective pinhole cameras: depth images to points and back, ray generation.

OpenGL-free and torch-free; virtual partial scans (:mod:`.partial_scan`), shape completion from
real depth images (:mod:`deepsdf.observations`) and the picture renderer's fallback all use
these definitions, so the pixel geometry is written down once.

Conventions
-----------
Intrinsics ``K`` (3, 3) map camera coordinates to pixel coordinates, OpenCV style::

    [u, v, 1]^T ~ K [x, y, z]^T,   u = fx x / z + cx,   v = fy y / z + cy

where pixel ``(row, col)`` of the image has its **centre** at ``(u, v) = (col, row)`` (the
centre of the top-left pixel is (0, 0); ``u`` grows to the right, ``v`` downwards).

A **depth image** holds, per pixel, the distance along the optical axis (camera ``z``, not the
length of the ray) in world units; 0, negative or non-finite values mean "no measurement".

A **pose** is the camera-to-world (4, 4) rigid transform.  Its camera axes follow one of two
conventions:

``"opencv"``  x right, y down, z forward (into the scene) — OpenCV, ROS optical frames, most
              RGB-D datasets;
``"opengl"``  x right, y up, z backward (the camera looks down -z) — OpenGL, pyrender,
              Blender, NeRF datasets.

The two differ by a rotation of 180 degrees about the camera's x axis, so
``pose_opencv = pose_opengl @ diag(1, -1, -1, 1)``.  Everything here converts to OpenCV first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import validate
from .errors import InputError

__all__ = ["CONVENTIONS", "PinholeCamera", "intrinsics_from_fov", "look_at_pose",
           "to_opencv_pose", "to_opengl_pose", "is_rotation", "spherical_direction"]

CONVENTIONS = ("opencv", "opengl")

#: Maps an OpenGL-convention camera frame to the OpenCV one (and back: it is its own inverse).
_FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


def is_rotation(matrix, *, atol: float = 1e-5) -> bool:
    """Whether ``matrix`` is a (3, 3) proper rotation (orthonormal, determinant +1)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return (matrix.shape == (3, 3) and np.allclose(matrix @ matrix.T, np.eye(3), atol=atol)
            and np.linalg.det(matrix) > 0)


def spherical_direction(azimuth: float, elevation: float) -> np.ndarray:
    """(3,) unit vector at ``azimuth`` about the y axis (0: +z, towards +x) and ``elevation``
    above the xz plane, both in radians (y is up, as in ShapeNet)."""
    return np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                     np.cos(elevation) * np.cos(azimuth)])


def to_opencv_pose(pose, convention: str = "opencv") -> np.ndarray:
    """(4, 4) float64 camera-to-world pose in the OpenCV convention."""
    if convention not in CONVENTIONS:
        raise InputError(f"unknown camera convention {convention!r}; choose one of "
                         f"{CONVENTIONS}")
    pose = validate.rigid_pose(pose, source="the camera")
    return pose @ _FLIP_YZ if convention == "opengl" else pose.copy()


def to_opengl_pose(pose) -> np.ndarray:
    """(4, 4) OpenGL-convention pose of an OpenCV-convention camera-to-world ``pose``."""
    return np.asarray(pose, dtype=np.float64) @ _FLIP_YZ


def intrinsics_from_fov(width: int, height: int, fov_y_degrees: float) -> np.ndarray:
    """(3, 3) K of square pixels with the principal point at the image centre.

    ``fov_y_degrees`` is the full vertical field of view.
    """
    if not 0 < fov_y_degrees < 180:
        raise InputError(f"the field of view must be in (0, 180) degrees, got {fov_y_degrees}")
    focal = 0.5 * height / np.tan(np.radians(fov_y_degrees) / 2)
    return np.array([[focal, 0.0, (width - 1) / 2],
                     [0.0, focal, (height - 1) / 2],
                     [0.0, 0.0, 1.0]])


def look_at_pose(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """(4, 4) OpenCV camera-to-world pose of a camera at ``eye`` looking at ``target``.

    The world direction ``up`` appears upwards in the image (``-y`` of the camera); when it is
    parallel to the viewing direction, world +z is used instead.
    """
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    if np.linalg.norm(forward) == 0:
        raise InputError("the camera position and its target coincide")
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(right) < 1e-8:
        right = np.cross(forward, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = eye
    return pose


@dataclass(frozen=True)
class PinholeCamera:
    """A perspective camera: intrinsics, image size and an OpenCV camera-to-world pose.

    Build one from any convention with :meth:`create`.
    """

    K: np.ndarray  # (3, 3) intrinsics
    pose: np.ndarray  # (4, 4) camera-to-world, OpenCV convention
    width: int
    height: int

    @classmethod
    def create(cls, K, pose, width: int, height: int, *, convention: str = "opencv"):
        K = validate.intrinsics(K, source="the camera")
        if width < 1 or height < 1:
            raise InputError(f"image size must be positive, got {width} x {height}")
        return cls(K=K, pose=to_opencv_pose(pose, convention), width=int(width),
                   height=int(height))

    @property
    def centre(self) -> np.ndarray:
        """(3,) the camera's position in the world frame."""
        return self.pose[:3, 3].copy()

    def pixel_directions(self) -> np.ndarray:
        """(height * width, 3) camera-frame directions ``[x/z, y/z, 1]`` of every pixel centre,
        row-major (row 0 is the top of the image)."""
        rows, cols = np.meshgrid(np.arange(self.height), np.arange(self.width), indexing="ij")
        pixels = np.stack([cols.ravel(), rows.ravel(), np.ones(rows.size)], axis=1)
        return pixels @ np.linalg.inv(self.K).T

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """World-frame ray origins (the centre, repeated) and unit directions, (h*w, 3) each."""
        directions = self.pixel_directions() @ self.pose[:3, :3].T
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        return np.broadcast_to(self.centre, directions.shape).copy(), directions

    def depth_to_points(self, depth) -> tuple[np.ndarray, np.ndarray]:
        """World points of the valid pixels of a depth image.

        Parameters
        ----------
        depth : (height, width) float
            Distance along the optical axis; invalid where not finite and positive.

        Returns
        -------
        points : (n, 3) float64, world frame
        pixels : (n,) int64, row-major pixel indices of those points
        """
        depth = np.asarray(depth, dtype=np.float64)
        if depth.shape != (self.height, self.width):
            raise InputError(f"depth image has shape {depth.shape}, the camera expects "
                             f"{(self.height, self.width)}")
        flat = depth.ravel()
        pixels = np.nonzero(np.isfinite(flat) & (flat > 0))[0]
        camera = self.pixel_directions()[pixels] * flat[pixels, None]
        return camera @ self.pose[:3, :3].T + self.pose[:3, 3], pixels

    def project(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates ``(u, v)`` (n, 2) and depths (n,) of world points (n, 3)."""
        camera = (np.asarray(points, dtype=np.float64) - self.pose[:3, 3]) @ self.pose[:3, :3]
        z = camera[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = (camera @ self.K.T)[:, :2] / z[:, None]
        return uv, z

    def points_to_depth(self, points) -> np.ndarray:
        """(height, width) depth image of world points: each point lands on the pixel whose
        centre is nearest to its projection; the nearest point wins; 0 where none lands."""
        uv, z = self.project(points)
        cols, rows = np.rint(uv[:, 0]), np.rint(uv[:, 1])
        keep = ((z > 0) & (cols >= 0) & (cols < self.width) & (rows >= 0)
                & (rows < self.height))
        index = rows[keep].astype(np.int64) * self.width + cols[keep].astype(np.int64)
        depth = np.full(self.height * self.width, np.inf)
        np.minimum.at(depth, index, z[keep])
        depth[np.isinf(depth)] = 0.0
        return depth.reshape(self.height, self.width)

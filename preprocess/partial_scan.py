"""Virtual partial scans: the depth image a perspective camera would measure of a mesh.

Shape completion treats these exactly like real depth images (depth + K + pose, see
:mod:`.pinhole`), so the completion experiment exercises the code path real scans take.
Depth is ray cast (trimesh, Embree when installed): no OpenGL context is needed.

A scan is taken in the mesh's **original frame**, as a real sensor would see the object: the
viewpoint is chosen in the normalized frame (a camera on a sphere around the unit sphere,
looking at its centre) and mapped back with the shape's normalization parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from .formats import storage_dtype
from .normalize import to_original
from .pinhole import PinholeCamera, intrinsics_from_fov, look_at_pose, spherical_direction
from .raycast import first_hits
from .scan import plane_depth
from .errors import InputError

__all__ = ["VirtualScanConfig", "render_depth", "random_viewpoint", "virtual_scan",
           "instance_scan"]

#: Generator stream of an instance's virtual scan, beside its sampling stream (0): asking for
#: scans leaves an instance's samples unchanged.
SCAN_STREAM = 1


@dataclass(frozen=True)
class VirtualScanConfig:
    """Settings of a virtual depth camera (normalized-frame units)."""

    width: int = 256  # image width in pixels
    height: int = 256  # image height in pixels
    fov: float = 60.0  # vertical field of view in degrees (the unit sphere fills it)
    distance: float = 2.2  # camera distance from the centre of the unit sphere
    elevation: tuple = (10.0, 50.0)  # range of the viewpoint's elevation above y = 0, degrees

    def __post_init__(self):
        if self.distance <= 1.0:
            raise InputError(f"the camera must be outside the unit sphere, got distance "
                             f"{self.distance}")
        low, high = self.elevation
        if not -90.0 <= low <= high <= 90.0:
            raise InputError(f"elevation range must lie in [-90, 90], got {self.elevation}")


def random_viewpoint(rng: np.random.Generator, config: VirtualScanConfig) -> np.ndarray:
    """(3,) normalized-frame camera position: azimuth uniform, elevation uniform in the range
    (y is up, as in ShapeNet)."""
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    elevation = np.radians(rng.uniform(*config.elevation))
    return config.distance * spherical_direction(azimuth, elevation)


def render_depth(vertices, faces, camera: PinholeCamera) -> np.ndarray:
    """(height, width) float64 depth (distance along the optical axis; 0 where no surface).

    The first hit of every pixel-centre ray is found by ray casting and its depth computed
    exactly from the hit triangle's plane.
    """
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    origins, directions = camera.rays()
    triangles, hit = first_hits(mesh.ray, origins, directions)
    depth = np.zeros(len(origins))
    if len(hit):
        length = plane_depth(vertices, faces, triangles, origins[hit], directions[hit])
        axis = camera.pose[:3, 2]
        depth[hit] = np.nan_to_num(length * (directions[hit] @ axis), nan=0.0, posinf=0.0)
    return depth.reshape(camera.height, camera.width)


def virtual_scan(mesh: trimesh.Trimesh, offset, scale, rng: np.random.Generator,
                 config: VirtualScanConfig = VirtualScanConfig(), *, eye=None) -> dict:
    """A seeded single-view scan of ``mesh`` (original frame).

    Parameters
    ----------
    offset, scale
        The mesh's normalization parameters (``normalized = (x + offset) * scale``).
    eye : (3,) float, optional
        Normalized-frame camera position; default :func:`random_viewpoint`.

    Returns
    -------
    dict with ``depth`` (h, w) (original-frame units; float32, or float64 where float32 cannot
    hold it: :func:`~.formats.storage_dtype`), ``K`` (3, 3), ``pose`` (4, 4) OpenCV
    camera-to-world in the original frame: the content of a ``PartialScans`` file.
    """
    eye = random_viewpoint(rng, config) if eye is None else np.asarray(eye, dtype=np.float64)
    pose = look_at_pose(to_original(eye[None], offset, scale)[0],
                        target=to_original(np.zeros((1, 3)), offset, scale)[0])
    camera = PinholeCamera.create(intrinsics_from_fov(config.width, config.height, config.fov),
                                  pose, config.width, config.height)
    depth = render_depth(np.asarray(mesh.vertices, np.float64),
                         np.asarray(mesh.faces, np.int64), camera)
    measured = depth[depth > 0]
    return {"depth": depth.astype(storage_dtype(measured)), "K": camera.K, "pose": camera.pose}


def instance_scan(mesh: trimesh.Trimesh, offset, scale, seed: int,
                  config: VirtualScanConfig | None = None) -> dict:
    """The scan the preprocessor writes for an instance whose seed is ``seed``
    (:func:`~.pipeline.instance_seed`); rendering it again gives the same scan."""
    return virtual_scan(mesh, offset, scale, np.random.default_rng([seed, SCAN_STREAM]),
                        config or VirtualScanConfig())

"""Pictures of meshes: one camera, shaded renders, strips, grids, animated GIFs.

Two renderers give the same framing (the same :class:`~deepsdf_preprocess.pinhole.
PinholeCamera`): ``"pyrender"`` (OpenGL offscreen, EGL when headless) and ``"raycast"``
(no OpenGL: trimesh ray casting, Lambertian shading with a light at the camera).  ``"auto"``
tries pyrender and falls back to ray casting when no OpenGL context can be made.

By default the camera frames the meshes given (:func:`framing_camera`: their joint bounding
sphere fills the view, so one strip shares one scale, in whatever frame the meshes are), from
30 degrees above the horizon and 35 degrees around the vertical axis (y up).
:func:`default_camera` is the fixed view of the normalized frame (the unit sphere fills it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from deepsdf_preprocess.pinhole import (PinholeCamera, intrinsics_from_fov, look_at_pose,
                                        spherical_direction)
from deepsdf_preprocess.raycast import first_hits
from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess import validate

__all__ = ["default_camera", "framing_camera", "render_meshes", "tile", "save_png", "save_gif",
           "RENDERERS"]

logger = logging.getLogger(__name__)

#: How pictures are drawn; the first is the default (pyrender where EGL works, else raycast).
RENDERERS = ("auto", "pyrender", "raycast")

_BACKGROUND = np.array([255, 255, 255], np.uint8)
_COLOUR = np.array([0.55, 0.65, 0.8])


_FOV = 50.0  # degrees


def default_camera(size: int = 256, *, azimuth: float = 35.0, elevation: float = 30.0,
                   distance: float = 2.6) -> PinholeCamera:
    """A square camera looking at the origin of the normalized frame (degrees, y up); the unit
    sphere fills its view."""
    eye = distance * spherical_direction(np.radians(azimuth), np.radians(elevation))
    return PinholeCamera.create(intrinsics_from_fov(size, size, _FOV), look_at_pose(eye), size,
                                size)


def framing_camera(meshes, size: int = 256, *, azimuth: float = 35.0,
                   elevation: float = 30.0) -> PinholeCamera:
    """A square camera that frames ``meshes`` together: it looks at the centre of their joint
    bounding box from ``azimuth`` / ``elevation`` (degrees, y up), far enough that the box's
    bounding sphere fills the view.  Any frame and unit; ``None`` or empty meshes are ignored
    (none left: :func:`default_camera`)."""
    corners = [np.asarray(m.bounds) for m in meshes if m is not None and len(m.faces)]
    if not corners:
        return default_camera(size, azimuth=azimuth, elevation=elevation)
    stacked = np.vstack(corners)
    low, high = stacked.min(axis=0), stacked.max(axis=0)
    centre, radius = (low + high) / 2, max(float(np.linalg.norm(high - low)) / 2, 1e-9)
    distance = radius / np.sin(np.radians(_FOV) / 2)
    eye = centre + distance * spherical_direction(np.radians(azimuth), np.radians(elevation))
    return PinholeCamera.create(intrinsics_from_fov(size, size, _FOV),
                                look_at_pose(eye, target=centre), size, size)


def render_meshes(meshes, camera: PinholeCamera | None = None, *,
                  renderer: str = "auto") -> list:
    """(height, width, 3) uint8 images of each mesh (``None`` entries give blank images).

    ``camera`` defaults to :func:`framing_camera` of the meshes given (all of them: one scale
    for a strip); pass :func:`default_camera` for the normalized frame's fixed view."""
    if renderer not in RENDERERS:
        raise InputError(f"unknown renderer {renderer!r}; choose one of {RENDERERS}")
    meshes = list(meshes)
    if camera is not None:  # ray directions and hits: about 100 bytes a pixel per picture
        validate.require_memory(100 * camera.width * camera.height,
                                what=f"pictures of {camera.width} x {camera.height} pixels",
                                hint="ask for smaller pictures")
    camera = camera or framing_camera(meshes)
    if renderer in ("auto", "pyrender"):
        try:
            return _render_pyrender(meshes, camera)
        except Exception as error:  # noqa: BLE001 - any OpenGL failure means "no OpenGL here"
            if renderer == "pyrender":
                raise
            logger.info("pyrender unavailable (%s); rendering by ray casting", error)
    return [_render_raycast(mesh, camera) for mesh in meshes]


def _blank(camera: PinholeCamera) -> np.ndarray:
    return np.broadcast_to(_BACKGROUND, (camera.height, camera.width, 3)).copy()


def _render_raycast(mesh, camera: PinholeCamera) -> np.ndarray:
    image = _blank(camera)
    if mesh is None or len(mesh.faces) == 0:
        return image
    origins, directions = camera.rays()
    triangles, hit = first_hits(mesh.ray, origins, directions)
    cosine = np.abs(np.einsum("ij,ij->i", mesh.face_normals[triangles], directions[hit]))
    shade = 0.4 + 0.6 * cosine
    flat = image.reshape(-1, 3)
    flat[hit] = np.clip(255 * shade[:, None] * _COLOUR, 0, 255).astype(np.uint8)
    return image


def _render_pyrender(meshes, camera: PinholeCamera) -> list:
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    import pyrender

    from deepsdf_preprocess.pinhole import to_opengl_pose
    from deepsdf_preprocess.render_gl import release_offscreen

    K = camera.K
    lens = pyrender.IntrinsicsCamera(K[0, 0], K[1, 1], K[0, 2], K[1, 2], znear=0.05, zfar=10.0)
    pose = to_opengl_pose(camera.pose)  # pyrender's cameras follow the OpenGL convention
    material = pyrender.MetallicRoughnessMaterial(baseColorFactor=[*_COLOUR, 1.0],
                                                  metallicFactor=0.0, roughnessFactor=0.8)
    renderer = pyrender.OffscreenRenderer(camera.width, camera.height)
    try:
        images = []
        for mesh in meshes:
            if mesh is None or len(mesh.faces) == 0:
                images.append(_blank(camera))
                continue
            scene = pyrender.Scene(bg_color=[*(_BACKGROUND / 255.0), 1.0],
                                   ambient_light=[0.3, 0.3, 0.3])
            scene.add(pyrender.Mesh.from_trimesh(mesh, material=material, smooth=False))
            scene.add(lens, pose=pose)
            scene.add(pyrender.DirectionalLight(intensity=2.0), pose=pose)
            colour, _ = renderer.render(scene)
            images.append(np.ascontiguousarray(colour[:, :, :3]))
        return images
    finally:
        release_offscreen(renderer)


def tile(images, columns: int | None = None, *, gap: int = 4) -> np.ndarray:
    """One (H, W, 3) uint8 image of equally sized images in a grid (a strip by default),
    separated by ``gap`` white pixels."""
    images = [np.asarray(image, np.uint8) for image in images]
    if not images:
        raise InputError("no image to tile")
    columns = len(images) if columns is None else max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    height, width = images[0].shape[:2]
    canvas = np.full((rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap,
                      3), 255, np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        canvas[top:top + height, left:left + width] = image
    return canvas


def save_png(path, image) -> Path:
    """Write an (H, W, 3) uint8 image as PNG (atomically)."""
    from PIL import Image

    from deepsdf_preprocess.contract import atomic_path

    with atomic_path(path) as temporary:
        Image.fromarray(np.asarray(image, np.uint8)).save(temporary, format="PNG")
    return Path(path)


def save_gif(path, images, *, duration_ms: int = 120, bounce: bool = True) -> Path:
    """Write frames as a looping animated GIF (played forwards then backwards with
    ``bounce``)."""
    from PIL import Image

    from deepsdf_preprocess.contract import atomic_path

    frames = [Image.fromarray(np.asarray(image, np.uint8)) for image in images]
    if bounce and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    with atomic_path(path) as temporary:
        frames[0].save(temporary, format="GIF", save_all=True, append_images=frames[1:],
                       duration=duration_ms, loop=0, optimize=False)
    return Path(path)

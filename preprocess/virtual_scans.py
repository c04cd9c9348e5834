"""Virtual depth captures of meshes: the scans ``deepsdf generate --style scans`` writes, and
the truth the scan preprocessor is measured against (tests, ``benchmarks/scans.py``).

The object (a mesh, scaled so that its bounding sphere's diameter is ``object_size`` metres)
sits at the world origin; ``views`` cameras stand on a sphere of radius ``distance`` metres
around it, at evenly spaced azimuths and elevations cycling through ``elevations`` (default
-30, 10 and 45 degrees: a hand-held capture around the object, from below too; a turntable's
(15, 45) never sees the underside, and what no view sees is dropped or guessed wrong), each
looking at the origin.

Two sensor models:

- ``CaptureConfig.sensor`` a :class:`~.sensor_model.DepthSensor` (:data:`KINECT` and
  :func:`write_scans`, hence ``deepsdf generate --style scans``, use
  :data:`~.sensor_model.KINECT_V1`): the physically based model of :mod:`.sensor_model`,
  from the published Kinect measurements (axial and lateral noise after Nguyen, Izadi &
  Lovell 2012, no return beyond 75 degrees of incidence, projector shadows, flying pixels,
  1/8-pixel disparity steps; or a time-of-flight variant).  Each view also carries the exact
  object ``mask``.
- ``sensor=None`` (``CaptureConfig()``'s default, for the tests that measure the scan
  preprocessor on it): the earlier toy model :class:`SensorNoise` (``CaptureConfig.noise``):

  - depth noise: Gaussian with standard deviation ``base + quadratic * z^2`` (metres, z the
    depth), independent per pixel;
  - grazing dropouts: a pixel whose surface meets the ray at ``cos < grazing`` is lost with
    probability ``1 - cos / grazing`` (at random: real sensors lose such pixels
    deterministically, see :mod:`.sensor_model`);
  - random dropouts: each pixel lost with probability ``dropout``;
  - quantisation: depths rounded to ``quantum`` metres (16-bit millimetre PNGs: 0.001).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from .contract import atomic_path
from .errors import InputError
from .pinhole import PinholeCamera, intrinsics_from_fov, look_at_pose, spherical_direction
from .raycast import first_hits
from .scan import plane_depth
from .sensor_model import KINECT_V1, DepthSensor, SensorScene, simulate_view

__all__ = ["SensorNoise", "NOISELESS", "CaptureConfig", "KINECT", "capture_views",
           "write_views", "object_scale", "write_scans", "MAX_VIEWS"]


@dataclass(frozen=True)
class SensorNoise:
    """The toy noise model of the module's docstring (metres); used when
    ``CaptureConfig.sensor`` is ``None``."""

    base: float = 0.0005
    quadratic: float = 0.0015
    grazing: float = 0.2
    dropout: float = 0.01
    quantum: float = 0.001


NOISELESS = SensorNoise(base=0.0, quadratic=0.0, grazing=0.0, dropout=0.0, quantum=0.0)


@dataclass(frozen=True)
class CaptureConfig:
    views: int = 8
    object_size: float = 0.3  # metres across the bounding sphere
    distance: float = 0.7  # metres from the object's centre
    width: int = 320
    height: int = 240
    fov: float = 45.0  # vertical, degrees
    elevations: tuple = (-30.0, 10.0, 45.0)  # degrees above the horizon, cycled over views
    noise: SensorNoise = SensorNoise()  # the toy model, used when sensor is None
    sensor: DepthSensor | None = None  # the physical model (:mod:`.sensor_model`)


#: Captures through the physical Kinect v1 model: what ``deepsdf generate --style scans``
#: writes (with its ``--views``).
KINECT = CaptureConfig(sensor=KINECT_V1)


def object_scale(mesh: trimesh.Trimesh, config: CaptureConfig) -> tuple[np.ndarray, float]:
    """(centre (3,), metres per mesh unit): the world frame is ``(x - centre) * scale``."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    radius = np.linalg.norm(vertices - centre, axis=1).max()
    return centre, config.object_size / (2 * radius)


def _depth_and_cosine(vertices, faces, camera: PinholeCamera):
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    origins, directions = camera.rays()
    triangles, hit = first_hits(mesh.ray, origins, directions)
    depth = np.zeros(len(origins))
    cosine = np.zeros(len(origins))
    if len(hit):
        length = plane_depth(vertices, faces, triangles, origins[hit], directions[hit])
        depth[hit] = np.nan_to_num(length * (directions[hit] @ camera.pose[:3, 2]), nan=0.0,
                                   posinf=0.0)
        cosine[hit] = np.abs(np.einsum("ij,ij->i", mesh.face_normals[triangles],
                                       directions[hit]))
    shape = (camera.height, camera.width)
    return depth.reshape(shape), cosine.reshape(shape)


def capture_views(mesh: trimesh.Trimesh, config: CaptureConfig,
                  rng: np.random.Generator) -> list:
    """``config.views`` noisy depth views of ``mesh``: dicts with ``depth`` (h, w) metres (0:
    no measurement), ``K`` (3, 3), ``pose`` (4, 4) OpenCV camera-to-world, in the world frame
    of :func:`object_scale`; with ``config.sensor`` (the physical model) also ``mask`` (h, w)
    bool, the pixels whose ray hits the object."""
    centre, scale = object_scale(mesh, config)
    vertices = (np.asarray(mesh.vertices, dtype=np.float64) - centre) * scale
    faces = np.asarray(mesh.faces, dtype=np.int64)
    K = intrinsics_from_fov(config.width, config.height, config.fov)
    noise = config.noise
    scene = None if config.sensor is None else SensorScene(
        trimesh.Trimesh(vertices=vertices, faces=faces, process=False))
    views = []
    for index in range(config.views):
        azimuth = 2 * np.pi * index / config.views
        elevation = np.radians(config.elevations[index % len(config.elevations)])
        pose = look_at_pose(config.distance * spherical_direction(azimuth, elevation))
        camera = PinholeCamera.create(K, pose, config.width, config.height)
        if scene is not None:
            view = simulate_view(scene, camera, config.sensor, rng)
            views.append({"depth": view.depth, "mask": view.mask, "K": K,
                          "pose": camera.pose})
            continue
        depth, cosine = _depth_and_cosine(vertices, faces, camera)
        seen = depth > 0
        depth = depth + seen * rng.normal(size=depth.shape) * (noise.base
                                                               + noise.quadratic * depth ** 2)
        lost = rng.random(depth.shape) < noise.dropout
        if noise.grazing > 0:
            lost |= rng.random(depth.shape) < 1 - np.clip(cosine / noise.grazing, 0, 1)
        depth = np.where(seen & ~lost, depth, 0.0)
        if noise.quantum > 0:
            depth = np.round(depth / noise.quantum) * noise.quantum
        views.append({"depth": np.maximum(depth, 0.0).astype(np.float32), "K": K,
                      "pose": camera.pose})
    return views


def write_views(folder, views: list) -> list:
    """Write ``views`` as ``folder/view_XX.npz`` (the scan layout of :mod:`.scan_io`; a view's
    ``mask`` too when it has one)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, view in enumerate(views):
        path = folder / f"view_{index:02d}.npz"
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as stream:
                np.savez_compressed(stream, **_arrays(view))
        paths.append(path)
    return paths


def _arrays(view: dict) -> dict:
    """The arrays of a view file: depth, K, pose, and mask when the capture has one."""
    return {name: view[name] for name in ("depth", "K", "pose", "mask") if name in view}


#: The most views ``write_scans`` takes per shape (``deepsdf generate --views``): a capture
#: around an object needs tens; each view is a (height, width) depth image in memory and on
#: disk.
MAX_VIEWS = 1000


def capture_memory(config: CaptureConfig) -> float:
    """Bytes :func:`capture_views` needs at its peak: every view's float32 depth and mask
    kept, their compressed copy, and one view's rays, hits and noise (about 200 bytes a
    pixel for the toy model, 800 for the physical one's several casts)."""
    pixels = config.width * config.height
    return config.views * pixels * 10.0 + pixels * (200.0 if config.sensor is None else 800.0)


def write_scans(out_dir, category: str, count: int, seed: int,
                config: CaptureConfig = KINECT) -> list:
    """Scan ``count`` seeded procedural shapes of ``category`` (the meshes ``deepsdf
    generate`` writes with the same seed) into ``out_dir/<category>/<name>/view_XX.npz``;
    returns the instance folders.

    Every path is made by the output folder's :class:`~.paths.Tree` (a link out of it is
    refused); a view already at one of the names is kept when it holds exactly the arrays
    this run would write and refused otherwise, before anything is written
    (:func:`.generated.write_generated`).  ``config.views`` above :data:`MAX_VIEWS`, or a
    capture that would not fit in memory, is refused at once.
    """
    import io

    from . import validate
    from .generated import GeneratedItem, write_generated
    from .paths import Tree
    from .procedural import CATEGORIES, generate_shape, shape_files

    if category not in CATEGORIES:
        raise InputError(f"unknown category {category!r}; choose one of {sorted(CATEGORIES)}")
    validate.integer(count, what="count", minimum=1)
    validate.integer(config.views, what="views (--views, depth views per shape)", minimum=1,
                     maximum=MAX_VIEWS)
    validate.integer(config.width, what="width", minimum=1, maximum=16384)
    validate.integer(config.height, what="height", minimum=1, maximum=16384)
    validate.require_memory(capture_memory(config),
                            what=f"scanning {config.views} views of {config.width} x "
                                 f"{config.height} pixels per shape",
                            hint="ask for fewer views")
    tree = Tree(out_dir, "output folder")

    def views(index: int) -> dict:
        # The mesh goes through its OBJ text, as the meshes of ``deepsdf generate`` are read.
        shape = generate_shape(category, index, seed)
        obj = shape_files(category, index, seed, shape)[f"{category}/{category}_{index:04d}.obj"]
        mesh = trimesh.load(io.BytesIO(obj), file_type="obj", force="mesh", process=False)
        rng = np.random.default_rng([seed, index])
        captured = capture_views(mesh, config, rng)
        return {_view_name(category, index, number): _arrays(view)
                for number, view in enumerate(captured)}

    items = [GeneratedItem([_view_name(category, index, number)
                            for number in range(config.views)],
                           lambda index=index: views(index))
             for index in range(count)]
    write_generated(tree, items)
    return [tree.folder(category, f"{category}_{index:04d}") for index in range(count)]


def _view_name(category: str, index: int, number: int) -> str:
    return f"{category}/{category}_{index:04d}/view_{number:02d}.npz"

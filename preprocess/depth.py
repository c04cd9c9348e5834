"""Depth images and point clouds to oriented surface points (world frame).

The one reading of depth sensors' output, torch-free: shape completion
(:mod:`deepsdf.sensing` wraps these as observations) and preprocessing from scans
(:mod:`.scans`) both use it.

- :func:`load_depth`: a depth file (16-bit PNG with a depth scale, ``.npy`` / ``.npz`` metres).
- :func:`read_point_cloud`: points from ``.npy``, ``.xyz`` or a point/mesh file.
- :func:`depth_surface`: surface points, normals turned towards the sensor, and the empty rays
  of a depth image; :func:`cloud_surface` the same of a point cloud and its sensor position.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import validate
from .errors import InputError
from .pinhole import PinholeCamera

__all__ = ["SurfacePoints", "load_depth", "read_point_cloud", "depth_surface", "cloud_surface",
           "depth_noise"]


def _no_rays() -> np.ndarray:
    return np.zeros((0, 3))


class SurfacePoints(NamedTuple):
    """Observed points (n, 3), unit normals towards the sensor's side (n, 3), the sensor
    position each was seen from (n, 3), the rays (m, 3) origins and unit directions of
    pixels that measured nothing (the object is nowhere on them), and every measured return
    (k, 3) with its sensor (k, 3), whether or not its point was kept (depth edges and grazing
    pixels included: the ray is free up to it), all float64, world frame."""

    points: np.ndarray
    normals: np.ndarray
    sensors: np.ndarray
    empty_origins: np.ndarray
    empty_directions: np.ndarray
    hit_points: np.ndarray = np.zeros((0, 3))
    hit_sensors: np.ndarray = np.zeros((0, 3))


def load_depth(path, *, depth_scale: float | None = None) -> np.ndarray:
    """(h, w) float64 depth in metres (world units) from a file.

    ``.npy`` / ``.npz`` (key ``depth``, or the only array) hold metres unless ``depth_scale``
    is given (then they are divided by it, as PNGs are); a 16-bit (or 32-bit) PNG holds
    integers divided by ``depth_scale`` (e.g. 1000 for millimetres; required for PNGs).  An
    8-bit, palette or colour PNG is refused: it is a picture, not a depth image.
    Zero stays zero (no measurement); NaN (how many sensors write "no measurement") becomes
    zero.

    Raises
    ------
    ValueError
        One line naming the file: missing, unreadable, not 2-D, negative or infinite depths.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".png"):
        raise InputError(f"{path}: unsupported depth file (use .png, .npy or .npz)")
    if suffix == ".png" and depth_scale is None:
        raise InputError(f"{path}: a PNG depth image needs depth_scale (units per metre, "
                         "e.g. 1000 for millimetres)")
    if depth_scale is not None:
        depth_scale = validate.depth_scale(depth_scale)
    if not path.is_file():
        raise InputError(f"depth image {path} does not exist")
    try:
        depth = _read_depth_array(path, suffix, depth_scale)
    except InputError as error:
        raise InputError(f"{path}: {error}") from None
    except Exception as error:  # corrupt PNG / npy / npz files raise many types
        raise InputError(f"cannot read depth image {path}: {type(error).__name__}: "
                         f"{error}") from error
    return validate.depth_image(depth, source=path)


def _read_depth_array(path: Path, suffix: str, depth_scale) -> np.ndarray:
    if suffix in (".npy", ".npz"):
        if suffix == ".npy":
            depth = np.asarray(np.load(path, allow_pickle=False))
        else:
            with np.load(path, allow_pickle=False) as data:
                if "depth" in data.files:
                    depth = np.asarray(data["depth"])
                elif len(data.files) == 1:
                    depth = np.asarray(data[data.files[0]])
                else:
                    raise InputError(f"no 'depth' array among {data.files}")
        if depth_scale is None or depth.dtype == bool or depth.dtype.kind not in "iuf":
            return depth  # the depth door names a wrong dtype
        return depth.astype(np.float64) / depth_scale
    from PIL import Image

    with Image.open(path) as image:
        if image.mode not in ("I;16", "I;16B", "I;16L", "I", "F"):
            raise InputError(f"a {image.mode!r} PNG is a picture, not a depth image (depth "
                             "PNGs hold 16-bit integers)")
        return np.asarray(image).astype(np.float64) / float(depth_scale)


def read_point_cloud(path) -> np.ndarray:
    """(n, 3) float64 points from ``.npy``, ``.xyz`` (text, first three columns) or any point
    or mesh file trimesh reads (its vertices).

    Raises
    ------
    ValueError
        One line naming the file when it is missing, unreadable, empty or not finite.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"point cloud {path} does not exist")
    try:
        if path.suffix == ".npy":
            cloud = np.load(path)
        elif path.suffix == ".xyz":
            cloud = np.loadtxt(path, ndmin=2)[:, :3]
        else:
            import trimesh

            cloud = trimesh.load(path, process=False).vertices
        cloud = np.asarray(cloud, dtype=np.float64)
    except Exception as error:  # parse errors, foreign or corrupt files
        raise InputError(f"cannot read points from {path}: {type(error).__name__}: "
                         f"{error}") from error
    return validate.points(cloud, source=path)


def depth_surface(depth, camera: PinholeCamera, *, max_jump: float = 0.05,
                  min_cosine: float = 0.1, background: bool = True) -> SurfacePoints:
    """Surface points and normals (world frame) of a depth image.

    Normals come from central differences of the back-projected neighbours (right - left,
    down - up); a pixel is kept only where its four neighbours are measured, no neighbour's
    depth differs from its own by more than ``max_jump`` times its depth (depth edges, flying
    pixels), and the normal is not grazing (``|cos| >= min_cosine`` with the viewing ray).

    With ``background``, the rays of pixels without a measurement are kept as empty rays
    (free space along their whole length): right for virtual scans and for real depth images
    in which everything but the object was masked to 0, wrong where the sensor failed on the
    object itself (dark or shiny surfaces) -- pass ``False`` then.
    """
    depth = np.asarray(depth, dtype=np.float64)
    height, width = depth.shape
    points, pixels = camera.depth_to_points(depth)
    returns = points  # every measured pixel, before edges and grazing normals are dropped
    grid = np.full((height, width, 3), np.nan)
    grid.reshape(-1, 3)[pixels] = points
    z = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan)
    keep = np.zeros((height, width), bool)
    inner = (slice(1, -1), slice(1, -1))
    neighbours = [z[1:-1, 2:], z[1:-1, :-2], z[2:, 1:-1], z[:-2, 1:-1]]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(z[inner])
        for other in neighbours:
            ok &= np.isfinite(other) & (np.abs(other - z[inner]) <= max_jump * z[inner])
    keep[inner] = ok
    across = grid[1:-1, 2:] - grid[1:-1, :-2]
    down = grid[2:, 1:-1] - grid[:-2, 1:-1]
    normals = np.zeros_like(grid)
    normals[inner] = np.cross(down, across)
    rows, cols = np.nonzero(keep)
    points, normals = grid[rows, cols], normals[rows, cols]
    observed = _oriented(points, normals, np.broadcast_to(camera.centre, points.shape),
                         min_cosine)
    observed = observed._replace(hit_points=np.array(returns, dtype=np.float64),
                                 hit_sensors=np.repeat(np.reshape(camera.centre, (1, 3)),
                                                       len(returns), axis=0))
    if background:
        origins, directions = camera.rays()
        empty = ~(np.isfinite(depth) & (depth > 0)).ravel()
        observed = observed._replace(empty_origins=origins[empty],
                                     empty_directions=directions[empty])
    return observed


def cloud_surface(points, sensor, *, neighbours: int = 16,
                  min_cosine: float = 0.1) -> SurfacePoints:
    """Surface points of a partial point cloud (world frame) seen from ``sensor`` (3,).

    Normals are the smallest principal axis of each point's ``neighbours`` nearest neighbours,
    turned towards the sensor.
    """
    from scipy.spatial import cKDTree

    points = validate.points(points, source="the point cloud", minimum=3)
    sensor = validate.numeric_array(sensor, source="the sensor position", shape=(3,))
    # The neighbourhoods: indices, gathered points and their centred copies per point.
    validate.require_memory(len(points) * neighbours * 80,
                            what=f"normals of {len(points):,} points",
                            hint="subsample the point cloud")
    count = min(neighbours, len(points))
    _, index = cKDTree(points).query(points, k=count)
    local = points[index] - points[index].mean(axis=1, keepdims=True)
    _, vectors = np.linalg.eigh(np.einsum("nki,nkj->nij", local, local))
    sensors = np.broadcast_to(sensor, points.shape)
    return _oriented(points, vectors[:, :, 0], sensors, min_cosine)._replace(
        hit_points=np.array(points, dtype=np.float64), hit_sensors=np.array(sensors))


def _oriented(points, normals, sensors, min_cosine: float) -> SurfacePoints:
    """Unit normals turned towards the sensor; grazing and degenerate ones dropped."""
    length = np.linalg.norm(normals, axis=1)
    view = sensors - points
    view_length = np.linalg.norm(view, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        normals = normals / length[:, None]
        cosine = np.einsum("ij,ij->i", normals, view) / view_length
    keep = (length > 0) & (view_length > 0) & (np.abs(cosine) >= min_cosine)
    normals = np.where(cosine[:, None] < 0, -normals, normals)
    return SurfacePoints(points[keep], normals[keep], np.array(sensors[keep]), _no_rays(),
                         _no_rays())


def depth_noise(depth) -> float:
    """An estimate of a depth image's noise (its units): from the mean absolute difference
    between each measured pixel and the median of its 3x3 neighbourhood, over pixels whose
    neighbourhood is fully measured (surface slope and curvature add to it: it errs high)."""
    from scipy import ndimage

    measured = depth > 0
    full = ndimage.minimum_filter(measured.astype(np.uint8), size=3, mode="constant") > 0
    if not full.any():
        return 0.0
    local = ndimage.median_filter(depth, size=3, mode="nearest")
    # The mean absolute deviation (sigma * sqrt(2 / pi) for Gaussian noise): the median would
    # read 0 on quantised depths, where most pixels equal their neighbourhood's median.
    return float(np.sqrt(np.pi / 2) * np.mean(np.abs(depth - local)[full]))

"""Partial observations (depth images, point clouds) to SDF constraints for shape completion.

As in the DeepSDF paper (section 6.3): every observed surface point ``p`` with normal ``n``
(estimated from the depth image, oriented towards the sensor) gives two samples
``p + eta n`` (SDF ``+eta``) and ``p - eta n`` (SDF ``-eta``); points on the camera ray in front
of ``p`` are **free space**: they only say "outside", so they become one-sided rows
(``f >= 0``), never a made-up positive distance.

Frames
------
Observations come in the sensor's **world frame** (depth + intrinsics K + camera-to-world pose,
see :mod:`deepsdf_preprocess.pinhole`).  The shape model works in its **model frame**
(the normalized frame of the training data: shapes inside the unit sphere).  A
:class:`Similarity` maps world to model: ``x_model = scale * R @ x_world + t``; normals are
rotated only, distances multiply by ``scale``.  When the world frame is a shape's original
mesh frame, :meth:`Similarity.from_normalization` derives it from the shape's
``NormalizationParameters``.

Constraint rows are (n, 5) float32 ``[x, y, z, target, one_sided]`` in the model frame, the
format :func:`deepsdf.reconstruct.reconstruct_codes` fits codes to.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from deepsdf_preprocess.pinhole import PinholeCamera, is_rotation

__all__ = ["Similarity", "Observation", "observe_depth", "observe_points", "load_depth",
           "read_matrix", "read_point_cloud", "sdf_constraints", "ConstraintConfig"]


@dataclass(frozen=True)
class Similarity:
    """``x_model = scale * rotation @ x_world + translation``."""

    rotation: np.ndarray  # (3, 3) proper rotation
    translation: np.ndarray  # (3,)
    scale: float

    def __post_init__(self):
        rotation = np.asarray(self.rotation, dtype=np.float64)
        if not is_rotation(rotation):
            raise ValueError("the similarity's rotation is not a proper rotation matrix")
        if not self.scale > 0:
            raise ValueError(f"the similarity's scale must be positive, got {self.scale}")
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation",
                           np.asarray(self.translation, dtype=np.float64).reshape(3))
        object.__setattr__(self, "scale", float(self.scale))

    @classmethod
    def identity(cls) -> "Similarity":
        return cls(np.eye(3), np.zeros(3), 1.0)

    @classmethod
    def from_normalization(cls, offset, scale) -> "Similarity":
        """The map original frame -> normalized frame, ``(x + offset) * scale``."""
        return cls(np.eye(3), np.asarray(offset, dtype=np.float64) * float(scale), float(scale))

    @classmethod
    def from_matrix(cls, matrix) -> "Similarity":
        """From a (4, 4) matrix ``[[s R, t], [0, 0, 0, 1]]``."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.shape != (4, 4) or not np.allclose(matrix[3], [0, 0, 0, 1]):
            raise ValueError("a similarity matrix must be (4, 4) with last row 0 0 0 1")
        determinant = np.linalg.det(matrix[:3, :3])
        if not determinant > 0:
            raise ValueError("the similarity matrix must have a positive determinant")
        scale = float(np.cbrt(determinant))
        return cls(matrix[:3, :3] / scale, matrix[:3, 3], scale)

    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous matrix of the map."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.scale * self.rotation
        matrix[:3, 3] = self.translation
        return matrix

    def points(self, points) -> np.ndarray:
        """(n, 3) world points to the model frame."""
        return self.scale * np.asarray(points, dtype=np.float64) @ self.rotation.T \
            + self.translation

    def inverse_points(self, points) -> np.ndarray:
        """(n, 3) model-frame points back to the world frame."""
        return ((np.asarray(points, dtype=np.float64) - self.translation) / self.scale) \
            @ self.rotation

    def directions(self, vectors) -> np.ndarray:
        """(n, 3) world directions (normals) to the model frame (rotated, not scaled)."""
        return np.asarray(vectors, dtype=np.float64) @ self.rotation.T


def _no_rays() -> np.ndarray:
    return np.zeros((0, 3))


@dataclass
class Observation:
    """Observed surface points with normals and the sensor position each was seen from, and
    optionally rays that returned nothing.

    All arrays (n, 3) or (m, 3) float64, one frame (world or model, see :meth:`transformed`).
    Normals are unit vectors pointing towards the sensor's side of the surface (outside the
    object).  ``empty_origins`` / ``empty_directions`` (unit) are the rays of pixels without
    a measurement (background): the object is nowhere on them.
    """

    points: np.ndarray
    normals: np.ndarray
    sensors: np.ndarray
    empty_origins: np.ndarray = field(default_factory=_no_rays)
    empty_directions: np.ndarray = field(default_factory=_no_rays)

    def __len__(self):
        return len(self.points)

    def transformed(self, similarity: Similarity) -> "Observation":
        return Observation(similarity.points(self.points), similarity.directions(self.normals),
                           similarity.points(self.sensors),
                           similarity.points(self.empty_origins),
                           similarity.directions(self.empty_directions))

    @staticmethod
    def concatenate(observations) -> "Observation":
        observations = list(observations)
        return Observation(*(np.concatenate([getattr(o, name) for o in observations])
                             for name in ("points", "normals", "sensors", "empty_origins",
                                          "empty_directions")))


def load_depth(path, *, depth_scale: float | None = None) -> np.ndarray:
    """(h, w) float64 depth in metres (world units) from a file.

    ``.npy`` / ``.npz`` (key ``depth``, or the only array) hold metres already; a 16-bit PNG
    holds integers divided by ``depth_scale`` (e.g. 1000 for millimetres; required for PNGs).
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
        raise ValueError(f"{path}: unsupported depth file (use .png, .npy or .npz)")
    if suffix == ".png" and depth_scale is None:
        raise ValueError(f"{path}: a PNG depth image needs depth_scale (units per metre, "
                         "e.g. 1000 for millimetres)")
    if suffix == ".png" and not depth_scale > 0:
        raise ValueError(f"{path}: depth_scale must be positive, got {depth_scale}")
    if not path.is_file():
        raise ValueError(f"depth image {path} does not exist")
    try:
        depth = _read_depth_array(path, suffix, depth_scale)
    except Exception as error:  # corrupt PNG / npy / npz files raise many types
        raise ValueError(f"cannot read depth image {path}: {type(error).__name__}: "
                         f"{error}") from error
    if depth.ndim != 2:
        raise ValueError(f"{path}: a depth image must be 2-D, got shape {depth.shape}")
    depth = np.nan_to_num(depth, nan=0.0, posinf=np.inf, neginf=-np.inf)
    if not np.all(np.isfinite(depth)) or np.any(depth < 0):
        raise ValueError(f"{path}: depth must be finite and >= 0 (0 = no measurement)")
    return depth


def _read_depth_array(path: Path, suffix: str, depth_scale) -> np.ndarray:
    if suffix == ".npy":
        return np.asarray(np.load(path), dtype=np.float64)
    if suffix == ".npz":
        with np.load(path) as data:
            if "depth" in data.files:
                return np.asarray(data["depth"], dtype=np.float64)
            if len(data.files) == 1:
                return np.asarray(data[data.files[0]], dtype=np.float64)
            raise ValueError(f"no 'depth' array among {data.files}")
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image).astype(np.float64) / float(depth_scale)


def read_matrix(path, shape: tuple) -> np.ndarray:
    """A float64 matrix of ``shape`` from a text file (whitespace-separated) or ``.npy``.

    Raises
    ------
    ValueError
        One line naming the file: missing, unreadable, wrong shape, or not finite.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"matrix file {path} does not exist")
    try:
        matrix = np.load(path) if path.suffix == ".npy" else np.loadtxt(path)
        matrix = np.asarray(matrix, dtype=np.float64)
    except Exception as error:  # parse errors, pickled or corrupt files
        raise ValueError(f"cannot read a matrix from {path}: {type(error).__name__}: "
                         f"{error}") from error
    if matrix.shape != tuple(shape):
        raise ValueError(f"{path}: expected a {shape[0]}x{shape[1]} matrix, got shape "
                         f"{matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{path}: the matrix holds NaN or infinite values")
    return matrix


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
        raise ValueError(f"point cloud {path} does not exist")
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
        raise ValueError(f"cannot read points from {path}: {type(error).__name__}: "
                         f"{error}") from error
    if cloud.ndim != 2 or cloud.shape[1] != 3 or len(cloud) == 0:
        raise ValueError(f"{path}: expected (n, 3) points, got shape {cloud.shape}")
    if not np.all(np.isfinite(cloud)):
        raise ValueError(f"{path}: the points hold NaN or infinite values")
    return cloud


def observe_depth(depth, camera: PinholeCamera, *, max_jump: float = 0.05,
                  min_cosine: float = 0.1, background: bool = True) -> Observation:
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
    observation = _oriented(points, normals, np.broadcast_to(camera.centre, points.shape),
                            min_cosine)
    if background:
        origins, directions = camera.rays()
        empty = ~(np.isfinite(depth) & (depth > 0)).ravel()
        observation = replace(observation, empty_origins=origins[empty],
                              empty_directions=directions[empty])
    return observation


def observe_points(points, sensor, *, neighbours: int = 16,
                   min_cosine: float = 0.1) -> Observation:
    """Surface points of a partial point cloud (world frame) seen from ``sensor`` (3,).

    Normals are the smallest principal axis of each point's ``neighbours`` nearest neighbours,
    turned towards the sensor.
    """
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3:
        raise ValueError(f"a point cloud must be (n >= 3, 3), got shape {points.shape}")
    count = min(neighbours, len(points))
    _, index = cKDTree(points).query(points, k=count)
    local = points[index] - points[index].mean(axis=1, keepdims=True)
    _, vectors = np.linalg.eigh(np.einsum("nki,nkj->nij", local, local))
    sensors = np.broadcast_to(np.asarray(sensor, dtype=np.float64).reshape(3), points.shape)
    return _oriented(points, vectors[:, :, 0], sensors, min_cosine)


def _oriented(points, normals, sensors, min_cosine: float) -> Observation:
    """Unit normals turned towards the sensor; grazing and degenerate ones dropped."""
    length = np.linalg.norm(normals, axis=1)
    view = sensors - points
    view_length = np.linalg.norm(view, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        normals = normals / length[:, None]
        cosine = np.einsum("ij,ij->i", normals, view) / view_length
    keep = (length > 0) & (view_length > 0) & (np.abs(cosine) >= min_cosine)
    normals = np.where(cosine[:, None] < 0, -normals, normals)
    return Observation(points[keep], normals[keep], np.array(sensors[keep]))


@dataclass(frozen=True)
class ConstraintConfig:
    """How observations become constraint rows (model-frame units)."""

    eta: float = 0.01  # the surface samples' offset along the normal (SDF +eta / -eta)
    # Free-space samples per observed point (0 = surface samples only) and on empty rays (per
    # observed point).  Weighting free space this much (9 of every 11 rows) was measured best:
    # docs/completion.md.
    free_space: int = 8
    empty_rays: float = 1.0
    free_margin: float = 0.02  # free-space samples stay this far in front of the surface
    radius: float = 1.0  # free-space samples lie inside this sphere (the model's domain)

    def __post_init__(self):
        if self.eta <= 0 or self.free_space < 0 or self.free_margin < 0:
            raise ValueError("eta must be positive; free_space and free_margin non-negative")


def sdf_constraints(observation: Observation, config: ConstraintConfig = ConstraintConfig(),
                    *, rng: np.random.Generator) -> np.ndarray:
    """(n, 5) float32 rows ``[x, y, z, target, one_sided]`` of a model-frame observation.

    Two two-sided rows per observed point (``p +- eta n`` with target ``+-eta``), then
    ``config.free_space`` one-sided rows per point with target 0: points ``p - t d`` on the
    ray from the sensor (``d`` the unit ray direction), ``t`` uniform between
    ``free_margin`` and where the ray enters the sphere of ``config.radius`` (or reaches the
    sensor, if that is inside).  With ``free_space > 0``, the observation's empty rays that
    cross that sphere add ``empty_rays`` one-sided rows per observed point (one point per
    ray, uniform on its chord through the sphere; rays drawn at random if there are more).
    """
    p, n = observation.points, observation.normals
    if len(p) == 0:
        raise ValueError("the observation has no usable surface point")
    eta = config.eta
    rows = [np.concatenate([p + eta * n, np.full((len(p), 1), eta), np.zeros((len(p), 1))], 1),
            np.concatenate([p - eta * n, np.full((len(p), 1), -eta), np.zeros((len(p), 1))], 1)]
    if config.free_space:
        towards = observation.sensors - p
        reach = np.linalg.norm(towards, axis=1)
        d = towards / reach[:, None]  # from the point back to the sensor
        # Distance from p along d to the sphere's far side: |p + t d| = radius.
        b = np.einsum("ij,ij->i", p, d)
        c = np.einsum("ij,ij->i", p, p) - config.radius ** 2
        exit_ = -b + np.sqrt(np.maximum(b * b - c, 0.0))
        limit = np.minimum(reach, np.maximum(exit_, 0.0))
        usable = limit > config.free_margin
        for _ in range(config.free_space):
            t = config.free_margin + rng.uniform(0.0, 1.0, len(p)) * (limit - config.free_margin)
            free = (p + t[:, None] * d)[usable]
            rows.append(_one_sided(free))
        rows.append(_one_sided(_empty_ray_points(observation, config, rng)))
    return np.concatenate(rows).astype(np.float32)


def _one_sided(points) -> np.ndarray:
    """Rows ``[x, y, z, 0, 1]``: "outside", whatever the distance."""
    return np.concatenate([points, np.zeros((len(points), 1)), np.ones((len(points), 1))], 1)


def _empty_ray_points(observation: Observation, config: ConstraintConfig, rng) -> np.ndarray:
    """One point per empty ray, uniform on the ray's chord through the sphere."""
    origins, directions = observation.empty_origins, observation.empty_directions
    if len(origins) == 0 or config.empty_rays <= 0:
        return np.zeros((0, 3))
    b = np.einsum("ij,ij->i", origins, directions)
    c = np.einsum("ij,ij->i", origins, origins) - config.radius ** 2
    discriminant = b * b - c
    crossing = np.nonzero(discriminant > 0)[0]
    root = np.sqrt(discriminant[crossing])
    near = np.maximum(-b[crossing] - root, 0.0)  # a sensor inside the sphere starts at 0
    far = -b[crossing] + root
    keep = far > near
    crossing, near, far = crossing[keep], near[keep], far[keep]
    wanted = int(round(config.empty_rays * len(observation.points)))
    if len(crossing) > wanted:
        chosen = rng.choice(len(crossing), wanted, replace=False)
        crossing, near, far = crossing[chosen], near[chosen], far[chosen]
    t = near + rng.uniform(0.0, 1.0, len(crossing)) * (far - near)
    return origins[crossing] + t[:, None] * directions[crossing]

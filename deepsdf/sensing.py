"""Sensing for shape completion: depth images and point clouds (files and arrays) to
:class:`Observation` s (surface points, camera-facing normals, sensor positions, empty rays),
in the sensor's world frame (see :mod:`deepsdf.observations`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepsdf_preprocess.depth import (cloud_surface, depth_surface, load_depth,
                                     read_point_cloud)
from deepsdf_preprocess.pinhole import PinholeCamera
from deepsdf_preprocess import validate
from deepsdf_preprocess.errors import InputError

from .frames import Similarity

__all__ = ["Observation", "observe_depth", "observe_depth_files", "observe_points", "load_depth",
           "read_point_cloud"]


#: Model-frame coordinates beyond this (the model's domain is the unit sphere) mean the
#: world -> model map does not belong to the observation.
MODEL_FRAME_LIMIT = 1e3


def _no_rays() -> np.ndarray:
    return np.zeros((0, 3))


@dataclass
class Observation:
    """Observed surface points with normals and the sensor position each was seen from, and
    optionally rays that returned nothing.

    All arrays (n, 3) or (m, 3) float64, one frame (world or model, see :meth:`transformed`).
    Normals are unit vectors pointing towards the sensor's side of the surface (outside the
    object).  ``empty_origins`` / ``empty_directions`` (unit) are the rays of pixels without
    a measurement (background): the object is nowhere on them.  ``hit_points`` /
    ``hit_sensors`` (k, 3) are every measured return and its sensor, kept or not (depth edges
    and grazing pixels too): the ray from the sensor is free up to the return.  They say what
    the sensor saw empty (:func:`deepsdf.pruning.seen_empty`); an observation without them
    certifies no empty space.
    """

    points: np.ndarray
    normals: np.ndarray
    sensors: np.ndarray
    empty_origins: np.ndarray = field(default_factory=_no_rays)
    empty_directions: np.ndarray = field(default_factory=_no_rays)
    hit_points: np.ndarray = field(default_factory=_no_rays)
    hit_sensors: np.ndarray = field(default_factory=_no_rays)

    def __post_init__(self):
        # A NaN or infinite point, normal or sensor would poison every loss term while the
        # optimizer still returns a finite code: refuse it when the observation is built.
        for name in ("points", "normals", "sensors", "empty_origins", "empty_directions",
                     "hit_points", "hit_sensors"):
            setattr(self, name, validate.points(getattr(self, name), source="Observation",
                                                field=name, minimum=0))
        if not len(self.points) == len(self.normals) == len(self.sensors):
            raise InputError(f"Observation: points, normals and sensors hold {len(self.points)}"
                             f", {len(self.normals)} and {len(self.sensors)} rows; one row "
                             "each per observed point is needed")
        if len(self.hit_points) != len(self.hit_sensors):
            raise InputError(f"Observation: hit_points and hit_sensors hold "
                             f"{len(self.hit_points)} and {len(self.hit_sensors)} rows; one "
                             "sensor per measured return is needed")
        if len(self.empty_origins) != len(self.empty_directions):
            raise InputError(f"Observation: empty_origins and empty_directions hold "
                             f"{len(self.empty_origins)} and {len(self.empty_directions)} "
                             "rows; one each per empty ray is needed")

    def __len__(self):
        return len(self.points)

    def transformed(self, similarity: Similarity) -> "Observation":
        """The observation in another frame (the model frame, for completion).

        Raises
        ------
        InputError
            When the mapped points leave any sensible model frame (beyond
            :data:`MODEL_FRAME_LIMIT` from the origin, or overflowing): the similarity (a
            normalization of scale 1e300, say) does not fit this observation.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            points = similarity.points(self.points)
            sensors = similarity.points(self.sensors)
        reach = float(np.max(np.abs(points))) if len(points) else 0.0
        if not (np.all(np.isfinite(points)) and np.all(np.isfinite(sensors))
                and reach <= MODEL_FRAME_LIMIT):
            raise InputError(f"the world -> model map (scale {similarity.scale:g}) puts the "
                             f"observed points up to {reach:g} from the origin; the model "
                             "frame is the unit sphere: check the normalization or transform")
        with np.errstate(over="ignore", invalid="ignore"):
            hits, hit_sensors = (similarity.points(self.hit_points),
                                 similarity.points(self.hit_sensors))
        return Observation(points, similarity.directions(self.normals), sensors,
                           similarity.points(self.empty_origins),
                           similarity.directions(self.empty_directions), hits, hit_sensors)

    @staticmethod
    def concatenate(observations) -> "Observation":
        observations = list(observations)
        return Observation(*(np.concatenate([getattr(o, name) for o in observations])
                             for name in ("points", "normals", "sensors", "empty_origins",
                                          "empty_directions", "hit_points", "hit_sensors")))


def observe_depth(depth, camera: PinholeCamera, *, max_jump: float = 0.05,
                  min_cosine: float = 0.1, background: bool = True) -> Observation:
    """:func:`deepsdf_preprocess.depth.depth_surface` as an :class:`Observation`: surface
    points with normals from central differences of the back-projected neighbours (depth
    edges, flying pixels and grazing normals dropped) and, with ``background``, the rays of
    pixels without a measurement as empty rays (wrong where the sensor failed on the object
    itself: pass ``False`` then)."""
    return Observation(*depth_surface(depth, camera, max_jump=max_jump,
                                      min_cosine=min_cosine, background=background))


def observe_points(points, sensor, *, neighbours: int = 16,
                   min_cosine: float = 0.1) -> Observation:
    """:func:`deepsdf_preprocess.depth.cloud_surface` as an :class:`Observation`: a partial
    point cloud's points with normals (smallest principal axis of ``neighbours`` nearest
    neighbours) turned towards ``sensor`` (3,)."""
    return Observation(*cloud_surface(points, sensor, neighbours=neighbours,
                                      min_cosine=min_cosine))


def observe_depth_files(depths, intrinsics, poses, *, depth_scale: float | None = None,
                        convention: str = "opencv") -> Observation:
    """One world-frame observation from depth image files (:func:`load_depth`), their
    intrinsics (3x3 matrix files: one shared by every image, or one per image) and their
    camera-to-world poses (4x4 matrix files, one per image, in ``convention``)."""
    from .frames import read_intrinsics, read_pose

    depths, intrinsics, poses = list(depths), list(intrinsics), list(poses)
    if not depths:
        raise InputError("no depth image given")
    if len(poses) != len(depths) or len(intrinsics) not in (1, len(depths)):
        raise InputError(f"give one pose per depth image ({len(depths)} images, {len(poses)} "
                         f"poses) and one intrinsics matrix, shared or per image "
                         f"({len(intrinsics)} given)")
    views = []
    for index, depth_path in enumerate(depths):
        depth = load_depth(depth_path, depth_scale=depth_scale)
        K = read_intrinsics(intrinsics[min(index, len(intrinsics) - 1)])
        camera = PinholeCamera.create(K, read_pose(poses[index]), depth.shape[1],
                                      depth.shape[0], convention=convention)
        views.append(observe_depth(depth, camera))
    return Observation.concatenate(views)


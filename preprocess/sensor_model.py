"""A physically based depth-sensor model for virtual captures, built from the published
measurements of consumer depth cameras (not from what any preprocessor expects).

The default is a **structured-light** sensor like the Kinect v1 (PrimeSense): an infrared
projector sits at a baseline ``b`` (7.5 cm) along the camera's +x axis and depth comes from
the disparity of the projected pattern.  Per pixel:

1. **Lateral noise** (Nguyen, Izadi & Lovell, "Modeling Kinect sensor noise for improved 3D
   reconstruction and tracking", 3DIMPVT 2012, their lateral fit):
   ``sigma_L(theta) = 0.8 + 0.035 theta / (pi/2 - theta)`` pixels, ``theta`` the incidence
   angle (radians) between the surface normal and the pixel's ray.  Implemented by jittering
   each pixel's ray by a Gaussian of that standard deviation (pixels, along u and v) and
   casting it again: edges fray, and a ray jittered off the object measures nothing of it.
2. **Axial noise** (same paper, their axial fits; metres, ``z`` the depth):
   ``sigma_z = 0.0012 + 0.0019 (z - 0.4)^2`` for ``theta <= 60`` degrees, plus
   ``0.0001 / sqrt(z) * theta^2 / (pi/2 - theta)^2`` beyond 60 degrees, as they give it.
   Gaussian, independent per pixel.
3. **No return beyond a maximum incidence** (``max_incidence``, 75 degrees; Nguyen et al.
   could not measure beyond about 70-80 degrees): deterministic, so a table top or a chair
   seat seen from 10 degrees elevation is a solid invalid band *inside* the silhouette.
4. **Projector shadows**: a surface point the projector cannot see receives no pattern and
   returns nothing (a ray cast from the point to the projector; anything in between, or the
   surface facing away from the projector, invalidates the pixel).  With the projector at
   +x the shadow lies on the -x side (the image's left) of a foreground edge (Khoshelham &
   Oude Elberink, "Accuracy and resolution of Kinect depth data for indoor mapping
   applications", Sensors 12(2), 2012, describe the triangulation geometry).
5. **Flying (mixed) pixels** at depth discontinuities: the matching window (structured light)
   or the pixel footprint (time of flight) straddles the edge and returns a depth between the
   two sides (Sabov & Krueger, "Identification and correction of flying pixels in range
   camera data", SCCG 2008; Reynolds et al., "Capturing time-of-flight data with
   confidence", CVPR 2011).  A pixel is at an edge when one of its 8 neighbours is farther
   or nearer by more than ``edge_jump`` times its depth (the neighbour of a silhouette pixel
   sees the background: a wall ``background`` metres from the camera along its axis); a
   fraction ``flying_fraction`` of the edge pixels (our choice: those papers report that
   most edge pixels are affected, at a rate depending on the scene) get
   ``z + u (z_other - z)``, ``u`` uniform in [0, 1].
6. **Disparity quantisation** (Khoshelham & Oude Elberink 2012): the Kinect measures the
   disparity ``d = f b / z`` in steps of 1/8 pixel, so ``z = f b / d`` with ``d`` rounded,
   and the depth step grows like ``z^2 / (8 f b)``.  ``f`` is the focal length of the
   *native* disparity image: K's ``fx`` scaled to ``native_width`` (640, the Kinect's
   disparity image; ``None``: K's ``fx`` as it is), so a 160 x 120 rendering does not get a
   4x coarser depth step than the sensor it imitates.
7. Outside ``[min_range, max_range]`` (0.4 to 4 m; Khoshelham & Oude Elberink give 0.5 to
   5 m for the Kinect) nothing is returned.

``kind="tof"``: a time-of-flight sensor like the Kinect v2: no projector (no shadows, no
disparity; depths in 1 mm steps as its 16-bit output), the axial noise fit of Fankhauser et
al., "Kinect v2 for mobile robot navigation: evaluation and modeling", ICAR 2015:
``sigma_z = 1.5 - 0.5 z + 0.3 z^2 + 0.1 z^1.5 theta^2 / (pi/2 - theta)^2`` millimetres, a
constant lateral noise of ``tof_lateral`` pixels (our choice, 0.5), and **multipath**
interference in concave corners (Fuchs, "Multipath interference compensation in
time-of-flight camera images", ICPR 2010; Freedman et al., "SRA: fast removal of general
multipath for ToF sensors", ECCV 2014): light bounced off a nearby surface arrives late, so
depth is biased *away* from the camera.  Our model of it: from each measured point, 5 rays
(along the normal and tilted 45 degrees four ways) look for another surface within
``multipath_range`` metres (0.1); the bias is ``multipath_gain * mean(max(0, 1 - s /
multipath_range))`` over the 5 rays, ``s`` the distance a ray travels to the other surface
(inf: none), ``multipath_gain`` 5 cm: in a right-angle corner one ray of five meets the
other face, so the bias is 1 cm at the fold and fades to 0 about 7 cm from it (an order of
magnitude, our choice: the cited papers measure errors of centimetres in corners).

The **mask** of a view is exact: the pixels whose pixel-centre ray hits the object.  Depth is
0 outside it and wherever the sensor returns nothing; flying pixels inside it keep their
wrong depths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from .errors import InputError
from .pinhole import PinholeCamera
from .raycast import first_hits
from .scan import plane_depth

__all__ = ["DepthSensor", "KINECT_V1", "KINECT_V2", "SensorView", "SensorScene",
           "simulate_view", "axial_sigma", "lateral_sigma", "quantise_disparity",
           "disparity_focal", "VALID", "NO_HIT", "JITTERED_OFF", "OUT_OF_RANGE", "GRAZING",
           "SHADOW"]

KINDS = ("structured_light", "tof")

#: Per-pixel reasons of :attr:`SensorView.reason` (why a pixel holds no depth).
VALID, NO_HIT, JITTERED_OFF, OUT_OF_RANGE, GRAZING, SHADOW = range(6)

#: Offset (metres) of secondary rays from the surface they leave (Embree works in float32).
_EPSILON = 1e-4


@dataclass(frozen=True)
class DepthSensor:
    """The sensor of the module docstring.  Lengths in metres, angles in degrees.

    ``axial_noise`` and ``lateral_noise`` scale the published standard deviations (1: as
    published, 0: none); ``disparity_step`` 0 and ``flying_fraction`` 0 switch those effects
    off, ``shadows=False`` the projector shadows, ``multipath_gain`` 0 the multipath bias.
    """

    kind: str = "structured_light"
    max_incidence: float = 75.0
    min_range: float = 0.4
    max_range: float = 4.0
    axial_noise: float = 1.0
    lateral_noise: float = 1.0
    baseline: float = 0.075  # projector along the camera's +x (structured light)
    shadows: bool = True
    disparity_step: float = 0.125  # pixels
    native_width: int | None = 640
    flying_fraction: float = 0.5
    edge_jump: float = 0.05  # relative depth difference that makes an edge
    background: float = 1.8  # the wall behind the object, metres from the camera
    tof_lateral: float = 0.5  # pixels
    depth_quantum: float = 0.001  # time of flight: its millimetre output
    multipath_gain: float = 0.05
    multipath_range: float = 0.1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"sensor kind {self.kind!r} is not one of {list(KINDS)}")
        if not 0 < self.max_incidence <= 90:
            raise InputError(f"max_incidence must be in (0, 90] degrees, got "
                             f"{self.max_incidence}")
        if not 0 <= self.min_range < self.max_range:
            raise InputError(f"need 0 <= min_range < max_range, got {self.min_range}, "
                             f"{self.max_range}")
        if not 0 <= self.flying_fraction <= 1:
            raise InputError(f"flying_fraction must be in [0, 1], got {self.flying_fraction}")
        for name in ("axial_noise", "lateral_noise", "disparity_step", "edge_jump",
                     "tof_lateral", "depth_quantum", "multipath_gain", "multipath_range"):
            if not getattr(self, name) >= 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.kind == "structured_light" and self.disparity_step > 0 and self.baseline == 0:
            raise InputError("a structured-light sensor needs a non-zero baseline")


#: The defaults: a Kinect v1 (structured light); and its time-of-flight successor.
KINECT_V1 = DepthSensor()
KINECT_V2 = DepthSensor(kind="tof")


def axial_sigma(z, theta, kind: str = "structured_light") -> np.ndarray:
    """Axial standard deviation (metres) at depth ``z`` (metres) and incidence ``theta``
    (radians): Nguyen et al. 2012 (structured light) or Fankhauser et al. 2015 (tof)."""
    z = np.asarray(z, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        angular = theta ** 2 / (np.pi / 2 - theta) ** 2
    if kind == "tof":
        return 1e-3 * (1.5 - 0.5 * z + 0.3 * z ** 2 + 0.1 * z ** 1.5 * angular)
    sigma = 0.0012 + 0.0019 * (z - 0.4) ** 2
    return np.where(theta > np.radians(60.0),
                    sigma + 0.0001 / np.sqrt(np.maximum(z, 1e-9)) * angular, sigma)


def lateral_sigma(theta, kind: str = "structured_light", tof_lateral: float = 0.5):
    """Lateral standard deviation (pixels) at incidence ``theta`` (radians): Nguyen et al.
    2012 for structured light, the constant ``tof_lateral`` for time of flight."""
    theta = np.asarray(theta, dtype=np.float64)
    if kind == "tof":
        return np.full(theta.shape, float(tof_lateral))
    return 0.8 + 0.035 * theta / (np.pi / 2 - theta)


def disparity_focal(K, width: int, native_width: int | None) -> float:
    """The focal length (pixels) of the disparity image: ``K[0, 0]`` scaled from ``width``
    to ``native_width`` pixels across (``None``: K's own)."""
    fx = float(np.asarray(K)[0, 0])
    return fx if native_width is None else fx * native_width / width


def quantise_disparity(z, focal: float, baseline: float, step: float) -> np.ndarray:
    """Depths ``z`` (metres, > 0) through a disparity ``d = focal * baseline / z`` rounded to
    ``step`` pixels, back to depth."""
    z = np.asarray(z, dtype=np.float64)
    fb = focal * abs(baseline)
    disparity = np.round(fb / z / step) * step
    with np.errstate(divide="ignore"):
        return np.where(disparity > 0, fb / np.maximum(disparity, 1e-300), 0.0)


class SensorScene:
    """A mesh in the world frame (metres) with its ray intersector (Embree when installed),
    built once and shared by every view."""

    def __init__(self, mesh: trimesh.Trimesh):
        self.vertices = np.asarray(mesh.vertices, dtype=np.float64)
        self.faces = np.asarray(mesh.faces, dtype=np.int64)
        self.mesh = trimesh.Trimesh(vertices=self.vertices, faces=self.faces, process=False)
        self.normals = np.asarray(self.mesh.face_normals, dtype=np.float64)
        self.intersector = self.mesh.ray

    def cast(self, origins, directions):
        """``(distance (n,), triangle (n,))`` of the first hit of each ray (unit
        ``directions``); ``inf`` and -1 where nothing is hit."""
        origins = np.ascontiguousarray(origins, dtype=np.float64)
        directions = np.ascontiguousarray(directions, dtype=np.float64)
        distance = np.full(len(origins), np.inf)
        triangle = np.full(len(origins), -1, dtype=np.int64)
        if len(origins) == 0:
            return distance, triangle
        tri, ray = first_hits(self.intersector, origins, directions)
        if len(ray):
            length = plane_depth(self.vertices, self.faces, tri, origins[ray],
                                 directions[ray], normals=self.normals[tri])
            good = np.isfinite(length) & (length >= 0)
            distance[ray[good]] = length[good]
            triangle[ray[good]] = tri[good]
        return distance, triangle


@dataclass(frozen=True)
class SensorView:
    """One simulated capture: ``depth`` (h, w) float32 metres (0: nothing returned),
    ``mask`` (h, w) bool (the pixel-centre ray hits the object), ``reason`` (h, w) int8
    (:data:`VALID`, :data:`NO_HIT`, :data:`JITTERED_OFF`, :data:`OUT_OF_RANGE`,
    :data:`GRAZING`, :data:`SHADOW`) and ``flying`` (h, w) bool (a mixed depth)."""

    depth: np.ndarray
    mask: np.ndarray
    reason: np.ndarray
    flying: np.ndarray


def _pixel_rays(camera: PinholeCamera, uv):
    """World unit directions through pixel positions ``uv`` (n, 2)."""
    homogeneous = np.column_stack([uv, np.ones(len(uv))]) @ np.linalg.inv(camera.K).T
    directions = homogeneous @ camera.pose[:3, :3].T
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def _facing(normals, directions):
    """Normals turned towards the viewer of ``directions``, and the cosine of incidence."""
    along = np.einsum("ij,ij->i", normals, directions)
    normals = normals * np.where(along > 0, -1.0, 1.0)[:, None]
    return normals, np.clip(np.abs(along), 0.0, 1.0)


def _edges(geometric, relative: float):
    """Per pixel of the (h, w) depth map ``geometric``: whether a neighbour (8-connected)
    differs by more than ``relative`` times its depth, and that neighbour's depth minus its
    own (the largest such difference)."""
    h, w = geometric.shape
    padded = np.pad(geometric, 1, mode="edge")
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    differences = np.stack([padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] - geometric
                            for dy, dx in shifts])
    index = np.abs(differences).argmax(axis=0)
    largest = np.take_along_axis(differences, index[None], axis=0)[0]
    return np.abs(largest) > relative * geometric, largest


def _multipath(scene: SensorScene, points, normals, sensor: DepthSensor):
    """The time-of-flight multipath bias (metres, >= 0) of each point (module docstring)."""
    helper = np.where(np.abs(normals[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    first = np.cross(normals, helper)
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    second = np.cross(normals, first)
    directions = [normals] + [(normals + sign * axis) / np.sqrt(2.0)
                              for axis in (first, second) for sign in (1.0, -1.0)]
    total = np.zeros(len(points))
    for direction in directions:
        distance, _ = scene.cast(points + _EPSILON * normals, direction)
        total += np.clip(1.0 - distance / sensor.multipath_range, 0.0, 1.0)
    return sensor.multipath_gain * total / len(directions)


def simulate_view(scene: SensorScene, camera: PinholeCamera, sensor: DepthSensor,
                  rng: np.random.Generator) -> SensorView:
    """One capture of ``scene`` by ``camera`` through ``sensor``: the module docstring's
    effects, applied as the light goes: the exact mask, the laterally jittered rays, range
    and incidence, projector shadows, axial noise, flying pixels, multipath (time of
    flight), quantisation.  Random draws from ``rng`` only (a seeded generator gives the
    same capture)."""
    h, w = camera.height, camera.width
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    uv = np.column_stack([cols.ravel(), rows.ravel()]).astype(np.float64)
    centre = camera.centre
    axis = camera.pose[:3, 2]
    tof = sensor.kind == "tof"
    limit = np.radians(sensor.max_incidence)

    # the exact silhouette and geometry: pixel-centre rays
    directions = _pixel_rays(camera, uv)
    distance, triangle = scene.cast(np.broadcast_to(centre, directions.shape), directions)
    mask = triangle >= 0
    seen = np.nonzero(mask)[0]
    reason = np.full(h * w, NO_HIT, dtype=np.int8)
    # the depth map the edges are found on: the wall behind where no object is hit
    geometric = np.full(h * w, float(sensor.background))
    geometric[seen] = distance[seen] * (directions[seen] @ axis)

    # 1. lateral noise: re-cast each seen pixel's ray through a jittered pixel position
    directions = _pixel_rays(camera, uv[seen])
    _, cosine = _facing(scene.normals[triangle[seen]], directions)
    theta = np.minimum(np.arccos(cosine), limit)
    sigma_l = sensor.lateral_noise * lateral_sigma(theta, sensor.kind, sensor.tof_lateral)
    jittered = uv[seen] + rng.normal(size=(len(seen), 2)) * sigma_l[:, None]
    directions = _pixel_rays(camera, jittered)
    distance, triangle = scene.cast(np.broadcast_to(centre, directions.shape), directions)
    hit = triangle >= 0
    depth = np.where(hit, distance * (directions @ axis), 0.0)
    points = centre + np.where(hit, distance, 0.0)[:, None] * directions
    normals, cosine = _facing(scene.normals[np.maximum(triangle, 0)], directions)
    theta = np.arccos(cosine)
    why = np.where(hit, VALID, JITTERED_OFF).astype(np.int8)

    # 7. range; 3. no return beyond the maximum incidence
    why[(why == VALID) & ((depth < sensor.min_range) | (depth > sensor.max_range))] = \
        OUT_OF_RANGE
    why[(why == VALID) & (theta > limit)] = GRAZING

    # 4. projector shadows
    if not tof and sensor.shadows and sensor.baseline != 0:
        projector = centre + sensor.baseline * camera.pose[:3, 0]
        test = np.nonzero(why == VALID)[0]
        towards = projector - points[test]
        length = np.linalg.norm(towards, axis=1)
        towards /= length[:, None]
        faces_away = np.einsum("ij,ij->i", normals[test], towards) <= 0
        blocked, _ = scene.cast(points[test] + _EPSILON * (normals[test] + towards), towards)
        why[test[faces_away | (blocked < length)]] = SHADOW

    # 2. axial noise
    valid = why == VALID
    sigma_z = sensor.axial_noise * axial_sigma(depth, theta, sensor.kind)
    noise = rng.normal(size=len(seen))
    measured = np.where(valid, depth + noise * np.nan_to_num(sigma_z), 0.0)

    # 5. flying pixels at the edges of the noiseless geometry
    at_edge, other = _edges(geometric.reshape(h, w), sensor.edge_jump)
    at_edge, other = at_edge.ravel()[seen], other.ravel()[seen]
    flying = valid & at_edge & (rng.random(len(seen)) < sensor.flying_fraction)
    mix = rng.random(len(seen))
    measured = np.where(flying, measured + mix * other, measured)

    # the time-of-flight multipath bias
    if tof and sensor.multipath_gain > 0 and valid.any():
        bias = np.zeros(len(seen))
        bias[valid] = _multipath(scene, points[valid], normals[valid], sensor)
        measured = measured + bias

    # 6. quantisation
    if tof:
        if sensor.depth_quantum > 0:
            measured = np.round(measured / sensor.depth_quantum) * sensor.depth_quantum
    elif sensor.disparity_step > 0:
        focal = disparity_focal(camera.K, w, sensor.native_width)
        measured = np.where(valid, quantise_disparity(np.maximum(measured, 1e-9), focal,
                                                      sensor.baseline,
                                                      sensor.disparity_step), 0.0)
    measured = np.where(valid & (measured > 0), measured, 0.0)
    why[valid & (measured <= 0)] = OUT_OF_RANGE

    reason[seen] = why
    out = np.zeros(h * w)
    out[seen] = measured
    flags = np.zeros(h * w, dtype=bool)
    flags[seen] = flying & (measured > 0)
    return SensorView(depth=out.reshape(h, w).astype(np.float32), mask=mask.reshape(h, w),
                      reason=reason.reshape(h, w), flying=flags.reshape(h, w))

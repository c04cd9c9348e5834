"""The layout of a folder of scanned objects, and reading one object's views.

::

    SCAN_DIR/<class>/<instance>/
        cameras.json            optional: defaults for every view of the instance:
                                {"K": 3x3, "convention": "opencv"|"opengl", "depth_scale": s}
        <view>.npz              one depth view: depth (h, w), K (3, 3), pose (4, 4)
                                camera-to-world; optional mask (h, w), convention, depth_scale
        <view>.png              or a 16-bit depth PNG with <view>.json beside it
                                ({"pose": 4x4, "K": ..., "convention": ..., "depth_scale": ...})
                                and optionally <view>.mask.png (non-zero = the object)
        <view>.ply / .xyz       or a point cloud (metres, world frame) seen from one position,
                                with <view>.json {"sensor": [x, y, z]}: read as a depth view
                                of a camera there (:func:`cloud_view`)

Depth is the distance along the optical axis (0 or NaN: no measurement), in metres, or in
integer units divided by ``depth_scale`` (1000 for millimetres; required for PNGs).  A mask
sets every pixel outside the object to "no measurement".  Hidden files and folders (names
starting with ".") are skipped, and links are not followed in scan folders (a link there,
an instance folder that is a link included, fails its instance).  Two views of one name
(``view_00.npz`` beside ``view_00.png``) are ambiguous and fail the instance.  Every value
passes the validators of :mod:`.validate` (a rigid pose, an invertible K with focal lengths
in range, numbers and never true/false, a depth scale in range, a finite, non-empty depth
image): a bad view fails its instance with a one-line reason naming the file.  Nothing in a
scan folder is executed or unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import validate
from .depth import load_depth, read_point_cloud
from .errors import InputError
from .pinhole import CONVENTIONS, PinholeCamera

__all__ = ["DepthView", "ScanJob", "discover_scans", "read_views", "cloud_view",
           "VIEW_SUFFIXES"]

VIEW_SUFFIXES = (".npz", ".png", ".ply", ".xyz")
#: Point-cloud views: a cloud seen from one sensor position, given in <view>.json.
CLOUD_SUFFIXES = (".ply", ".xyz")
#: Per-instance defaults file.
CAMERAS_FILE = "cameras.json"
#: A point cloud's sensor farther from the cloud's centre than this many times the cloud's
#: radius is refused as implausible (a position in other units or another frame).
MAX_SENSOR_DISTANCE = 1e4
#: Why links are refused in scan folders.
_NO_LINKS = ("links are not followed in scan folders (a link's target could change unseen "
             "by the rerun check)")


@dataclass(frozen=True)
class DepthView:
    """One depth image and its camera (world frame, the sensor's units)."""

    name: str
    depth: np.ndarray  # (h, w) float64, 0 where nothing was measured
    camera: PinholeCamera  # OpenCV convention, camera-to-world
    #: (h, w) bool, True where the object is (its segmentation), or None when the view has no
    #: mask.  An unmeasured pixel the mask calls object is unknown, never free space.
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class ScanJob:
    """One scanned instance to preprocess: ``folder`` holds its views."""

    class_name: str
    instance: str
    folder: Path
    problem: str | None = None

    @property
    def key(self) -> str:
        return f"{self.class_name}/{self.instance}"

    def files(self) -> list:
        """The instance's regular files (its identity: a change to any redoes it)."""
        return sorted(p for p in self.folder.iterdir() if p.is_file() and not p.is_symlink())


def discover_scans(scan_dir, *, split: dict | None = None, dataset: str | None = None) -> list:
    """The :class:`ScanJob` s of ``scan_dir`` (``<class>/<instance>/`` folders holding views),
    or of the instances ``split`` lists for ``dataset`` (one missing there is a job with a
    problem).  Links are not followed out of ``scan_dir``: an instance folder that is a link
    is a job with a problem."""
    from .contract import check_name

    root = Path(scan_dir)
    if not root.is_dir():
        raise InputError(f"scan folder {root} does not exist or is not a folder")
    jobs = []
    for class_dir in sorted(p for p in root.iterdir()
                            if p.is_dir() and not p.name.startswith(".")):
        for folder in sorted(p for p in class_dir.iterdir()
                             if p.is_dir() and not p.name.startswith(".")):
            problem = None
            if class_dir.is_symlink() or folder.is_symlink():
                problem = f"a symbolic link: {_NO_LINKS}"
            else:
                try:
                    check_name(class_dir.name, "class")
                    check_name(folder.name, "instance")
                except InputError as error:
                    problem = str(error)
            jobs.append(ScanJob(class_dir.name, folder.name, folder, problem))
    if split is not None:
        if dataset not in split:
            raise InputError(f"the split lists no instance of dataset {dataset!r} (it has "
                             f"{sorted(split)})")
        wanted = {(c, i) for c, items in split.get(dataset, {}).items() for i in items}
        found = {(job.class_name, job.instance) for job in jobs}
        jobs = [job for job in jobs if (job.class_name, job.instance) in wanted]
        jobs += [ScanJob(c, i, root / c / i, "listed in the split but no scan folder was "
                         "found") for c, i in sorted(wanted - found)]
    return jobs


def _regular(path: Path, what: str = "a file") -> bool:
    """Whether ``path`` is a regular file (``False``: nothing there); a link there is
    refused (links are not followed in scan folders), and so is a folder where ``what``
    goes."""
    if path.is_symlink():
        raise InputError(f"{path} is a symbolic link: {_NO_LINKS}")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not {what}")
    if os.path.lexists(path) and not path.is_file():
        raise InputError(f"{path} is not a regular file ({what} is needed)")
    return path.is_file()


def _defaults(folder: Path) -> dict:
    """The instance's ``cameras.json`` (``{}`` when there is none); its values are validated
    for each view that takes them (:func:`_checked_settings`)."""
    path = folder / CAMERAS_FILE
    if not _regular(path, f"a JSON file of camera defaults ({CAMERAS_FILE})"):
        return {}
    return _json(path)


def _checked_settings(settings: dict, source) -> dict:
    """``settings`` (read from ``source``, a JSON file) with K, pose, depth_scale and
    convention validated where they stand, so an error names the file that holds them."""
    settings = dict(settings)
    if "K" in settings:
        settings["K"] = validate.intrinsics(settings["K"], source=source)
    if "pose" in settings:
        settings["pose"] = validate.rigid_pose(settings["pose"], source=source)
    if "depth_scale" in settings:
        settings["depth_scale"] = validate.depth_scale(settings["depth_scale"],
                                                       what=f"{source}: depth_scale")
    if "convention" in settings:
        settings["convention"] = _convention(settings["convention"], source)
    return settings


def _json(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as error:
        raise InputError(f"{path}: not valid JSON ({str(error)[:200]})") from None
    if not isinstance(payload, dict):
        raise InputError(f"{path}: expected a JSON object")
    return payload


def _convention(value, source) -> str:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if not isinstance(value, str) or value not in CONVENTIONS:
        raise InputError(f"{source}: convention {str(value)[:80]!r} is not one of "
                         f"{list(CONVENTIONS)}")
    return value


def _mask(value, source) -> np.ndarray:
    """A mask as booleans (non-zero: the object): a boolean or numeric 2-D array, finite."""
    array = np.asarray(value)
    if array.dtype == bool:
        return array
    return validate.numeric_array(array, source=source, field="mask") > 0


def zipfile_like(path: Path) -> bool:
    """Whether ``path`` starts as a zip archive (an .npz) does."""
    with open(path, "rb") as stream:
        return stream.read(4) == b"PK\x03\x04"


def _npz_view(path: Path, defaults: dict) -> tuple:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
    except Exception as error:  # truncated or foreign files raise many types
        if not zipfile_like(path):
            raise InputError(f"cannot read {path}: not an .npz archive") from None
        reason = ("it holds Python objects, which are never loaded" if "pickle" in str(error)
                  else f"{type(error).__name__}: {str(error)[:200]}")
        raise InputError(f"cannot read {path}: {reason}") from None
    if "depth" not in arrays or "pose" not in arrays:
        raise InputError(f"{path}: a view needs the arrays 'depth' and 'pose' (has "
                         f"{sorted(arrays)})")
    settings = dict(defaults)
    for name in ("K", "convention", "depth_scale"):
        if name in arrays:
            value = arrays[name]
            settings[name] = value.item() if value.ndim == 0 else value
    depth = arrays["depth"]
    if "depth_scale" in settings:  # integer or float depth in units of 1 / depth_scale m
        scale = validate.depth_scale(settings["depth_scale"], what=f"{path}: depth_scale")
        if depth.dtype.kind in "iuf" and depth.dtype != bool:
            depth = depth.astype(np.float64) / scale
    elif depth.dtype.kind in "iu":
        raise InputError(f"{path}: integer depth needs depth_scale (units per metre)")
    return depth, arrays["pose"], settings, arrays.get("mask")


def _png_view(path: Path, defaults: dict) -> tuple:
    sidecar = path.with_suffix(".json")
    if not _regular(sidecar, "a JSON sidecar"):
        raise InputError(f"{path}: a PNG view needs {sidecar.name} beside it (its pose)")
    settings = dict(defaults, **_checked_settings(_json(sidecar), sidecar))
    if "pose" not in settings:
        raise InputError(f"{sidecar}: no 'pose' (the 4x4 camera-to-world matrix)")
    if "depth_scale" not in settings:
        raise InputError(f"{path}: a PNG depth image needs depth_scale (units per metre, "
                         f"e.g. 1000 for millimetres) in {sidecar.name} or {CAMERAS_FILE}")
    scale = validate.depth_scale(settings["depth_scale"], what=f"{sidecar}: depth_scale")
    depth = load_depth(path, depth_scale=scale)
    mask = None
    mask_path = path.with_name(path.stem + ".mask.png")
    if _regular(mask_path, "a mask image"):
        from PIL import Image

        try:
            with Image.open(mask_path) as image:
                mask = np.asarray(image.convert("L")) > 0
        except Exception as error:
            raise InputError(f"cannot read mask {mask_path}: {type(error).__name__}: "
                             f"{error}") from None
    return depth, settings["pose"], settings, mask


def cloud_view(points, sensor, name: str, *, source, sensor_source=None) -> DepthView:
    """A point cloud seen from ``sensor`` (3,) as a depth view: a pinhole camera at the sensor
    looking at the cloud's centroid, its pixels a little coarser than the points' angular
    spacing, each pixel the nearest point on it.  Every rule for depth images (normals, free
    space in front of what was measured) then holds for the cloud."""
    from scipy.spatial import cKDTree

    from .pinhole import look_at_pose

    points = validate.points(points, source=source, minimum=10)
    sensor_source = source if sensor_source is None else sensor_source
    sensor = validate.numeric_array(sensor, source=sensor_source, field="sensor", shape=(3,))
    centre = points.mean(axis=0)
    with np.errstate(over="ignore", invalid="ignore"):
        radius = float(np.linalg.norm(points - centre, axis=1).max())
        distance = float(np.linalg.norm(sensor - centre))
    if radius > 0 and not distance <= MAX_SENSOR_DISTANCE * radius:
        raise InputError(f"{sensor_source}: the sensor position lies {distance:.3g} from the "
                         f"cloud's centre, {distance / radius:.3g} times the cloud's radius "
                         f"({radius:.3g}): implausibly far (at most {MAX_SENSOR_DISTANCE:g} "
                         "times; give the position the cloud was seen from, in its units and "
                         "frame)")
    pose = look_at_pose(sensor, centre)
    local = (points - sensor) @ pose[:3, :3]
    if np.any(local[:, 2] <= 0):
        raise InputError(f"{source}: some points lie behind the sensor {sensor.tolist()} "
                         "(a cloud seen from one position, all in front of it, is needed)")
    plane = local[:, :2] / local[:, 2:3]
    spacing = float(np.median(cKDTree(plane).query(plane, k=2)[0][:, 1]))
    if not spacing > 0:
        raise InputError(f"{source}: the points do not spread across the sensor's view")
    focal = 0.7 / spacing  # pixels per unit of tangent: slightly coarser than the points
    if focal > validate.FOCAL_RANGE[1]:
        raise InputError(f"{source}: neighbouring points lie {spacing:.3g} radians apart as "
                         "seen from the sensor: the sensor position is implausibly far, or "
                         "the points are duplicated")
    half = np.abs(plane).max(axis=0) * focal
    width, height = (2 * np.ceil(half) + 3).astype(int)
    if width * height > 4_000_000:
        raise InputError(f"{source}: the cloud spans {width} x {height} pixels at its point "
                         "spacing; subsample it or split it into views")
    K = np.array([[focal, 0.0, (width - 1) / 2], [0.0, focal, (height - 1) / 2],
                  [0.0, 0.0, 1.0]])
    camera = PinholeCamera.create(K, pose, int(width), int(height))
    return DepthView(name, camera.points_to_depth(points), camera)


def read_views(folder) -> list:
    """The :class:`DepthView` s of one instance folder, in name order.

    Raises
    ------
    InputError
        One line naming the file and the field, for any view that cannot be used, or when
        the folder holds no view.
    """
    folder = Path(folder)
    defaults = _defaults(folder)
    paths = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in VIEW_SUFFIXES and not p.name.endswith(".mask.png")
                   and not p.name.startswith("."))  # hidden files (._x.npz) are not views
    named: dict = {}
    for path in paths:  # one view per name: view_00.npz beside view_00.png is ambiguous
        other = named.setdefault(path.stem, path)
        if other is not path:
            raise InputError(f"{other} and {path.name} are both view {path.stem!r}: "
                             "ambiguous (keep one of them)")
    views = []
    for path in paths:
        if not _regular(path, "a view file"):
            raise InputError(f"{path}: not a regular file")
        if path.suffix.lower() in CLOUD_SUFFIXES:
            sidecar = path.with_suffix(".json")
            if not _regular(sidecar, "a JSON sidecar"):
                raise InputError(f"{path}: a point-cloud view needs {sidecar.name} beside it "
                                 "with the sensor position ({\"sensor\": [x, y, z]})")
            settings = _json(sidecar)
            if "sensor" not in settings:
                raise InputError(f"{sidecar}: no 'sensor' (the position the cloud was seen "
                                 "from)")
            views.append(cloud_view(read_point_cloud(path), settings["sensor"], path.stem,
                                    source=path, sensor_source=sidecar))
            continue
        reader = _npz_view if path.suffix.lower() == ".npz" else _png_view
        view_defaults = _checked_settings(defaults, f"{folder / CAMERAS_FILE} (read for "
                                                    f"{path.name})")
        depth, pose, settings, mask = reader(path, view_defaults)
        depth = validate.depth_image(depth, source=path)
        if mask is not None:
            mask = _mask(mask, path)
            if mask.shape != depth.shape:
                raise InputError(f"{path}: mask of shape {mask.shape} for a depth image of "
                                 f"shape {depth.shape}")
            depth = np.where(mask, depth, 0.0)
        if "K" not in settings:
            raise InputError(f"{path}: no intrinsics K (in the view or {CAMERAS_FILE})")
        convention = _convention(settings.get("convention", "opencv"), path)
        if not np.any(depth > 0):
            raise InputError(f"{path} measures nothing (every pixel 0"
                             + (" after its mask)" if mask is not None else ")"))
        pose = validate.rigid_pose(pose, source=path)
        K = validate.intrinsics(settings["K"], source=path)
        camera = PinholeCamera.create(K, pose, depth.shape[1], depth.shape[0],
                                      convention=convention)
        views.append(DepthView(path.stem, depth, camera, mask))
    if not views:
        raise InputError(f"{folder} holds no view ({', '.join(VIEW_SUFFIXES)} files)")
    return views

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

Depth is the distance along the optical axis (0 or NaN: no measurement), in metres, or in
integer units divided by ``depth_scale`` (1000 for millimetres; required for PNGs).  A mask
sets every pixel outside the object to "no measurement".  Every value passes the validators of
:mod:`.validate` (a rigid pose, an invertible K with focal lengths in range, a finite depth
image): a bad view fails its instance with a one-line reason naming the file.  Nothing in
a scan folder is executed or unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import validate
from .depth import load_depth
from .errors import InputError
from .pinhole import CONVENTIONS, PinholeCamera

__all__ = ["DepthView", "ScanJob", "discover_scans", "read_views", "VIEW_SUFFIXES"]

VIEW_SUFFIXES = (".npz", ".png")
#: Per-instance defaults file.
CAMERAS_FILE = "cameras.json"


@dataclass(frozen=True)
class DepthView:
    """One depth image and its camera (world frame, the sensor's units)."""

    name: str
    depth: np.ndarray  # (h, w) float64, 0 where nothing was measured
    camera: PinholeCamera  # OpenCV convention, camera-to-world


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
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for folder in sorted(p for p in class_dir.iterdir() if p.is_dir()):
            problem = None
            if class_dir.is_symlink() or folder.is_symlink():
                problem = "a symbolic link: scan folders are read only inside SCAN_DIR"
            else:
                try:
                    check_name(class_dir.name, "class")
                    check_name(folder.name, "instance")
                except InputError as error:
                    problem = str(error)
            jobs.append(ScanJob(class_dir.name, folder.name, folder, problem))
    if split is not None:
        wanted = {(c, i) for c, items in split.get(dataset, {}).items() for i in items}
        found = {(job.class_name, job.instance) for job in jobs}
        jobs = [job for job in jobs if (job.class_name, job.instance) in wanted]
        jobs += [ScanJob(c, i, root / c / i, "listed in the split but no scan folder was "
                         "found") for c, i in sorted(wanted - found)]
    return jobs


def _json(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(payload, dict):
        raise InputError(f"{path}: expected a JSON object")
    return payload


def _convention(value, source) -> str:
    if value not in CONVENTIONS:
        raise InputError(f"{source}: convention {value!r} is not one of {list(CONVENTIONS)}")
    return str(value)


def _npz_view(path: Path, defaults: dict) -> tuple:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
    except Exception as error:  # truncated or foreign files raise many types
        raise InputError(f"cannot read {path}: {type(error).__name__}: {error}") from None
    if "depth" not in arrays or "pose" not in arrays:
        raise InputError(f"{path}: a view needs the arrays 'depth' and 'pose' (has "
                         f"{sorted(arrays)})")
    settings = dict(defaults)
    for name in ("K", "convention", "depth_scale"):
        if name in arrays:
            value = arrays[name]
            settings[name] = value.item() if value.ndim == 0 else value
    depth = arrays["depth"]
    if "depth_scale" in settings and depth.dtype.kind in "iu":
        scale = validate.number(settings["depth_scale"], what=f"{path}: depth_scale",
                                positive=True)
        depth = depth.astype(np.float64) / scale
    elif depth.dtype.kind in "iu":
        raise InputError(f"{path}: integer depth needs depth_scale (units per metre)")
    return depth, arrays["pose"], settings, arrays.get("mask")


def _png_view(path: Path, defaults: dict) -> tuple:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise InputError(f"{path}: a PNG view needs {sidecar.name} beside it (its pose)")
    settings = dict(defaults, **_json(sidecar))
    if "pose" not in settings:
        raise InputError(f"{sidecar}: no 'pose' (the 4x4 camera-to-world matrix)")
    depth = load_depth(path, depth_scale=settings.get("depth_scale"))
    mask = None
    mask_path = path.with_name(path.stem + ".mask.png")
    if mask_path.is_file():
        from PIL import Image

        try:
            with Image.open(mask_path) as image:
                mask = np.asarray(image.convert("L")) > 0
        except Exception as error:
            raise InputError(f"cannot read mask {mask_path}: {type(error).__name__}: "
                             f"{error}") from None
    return depth, settings["pose"], settings, mask


def read_views(folder) -> list:
    """The :class:`DepthView` s of one instance folder, in name order.

    Raises
    ------
    InputError
        One line naming the file and the field, for any view that cannot be used, or when
        the folder holds no view.
    """
    folder = Path(folder)
    defaults = _json(folder / CAMERAS_FILE) if (folder / CAMERAS_FILE).is_file() else {}
    paths = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in VIEW_SUFFIXES and not p.name.endswith(".mask.png"))
    views = []
    for path in paths:
        if path.is_symlink() or not path.is_file():
            raise InputError(f"{path}: not a regular file (links are not followed)")
        reader = _npz_view if path.suffix.lower() == ".npz" else _png_view
        depth, pose, settings, mask = reader(path, defaults)
        depth = validate.depth_image(depth, source=path)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != depth.shape:
                raise InputError(f"{path}: mask of shape {mask.shape} for a depth image of "
                                 f"shape {depth.shape}")
            depth = np.where(mask.astype(bool), depth, 0.0)
        if "K" not in settings:
            raise InputError(f"{path}: no intrinsics K (in the view or {CAMERAS_FILE})")
        convention = _convention(settings.get("convention", "opencv"), path)
        pose = validate.rigid_pose(pose, source=path)
        K = validate.intrinsics(settings["K"], source=path)
        camera = PinholeCamera.create(K, pose, depth.shape[1], depth.shape[0],
                                      convention=convention)
        views.append(DepthView(path.stem, depth, camera))
    if not views:
        raise InputError(f"{folder} holds no view ({', '.join(VIEW_SUFFIXES)} files)")
    return views

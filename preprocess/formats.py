"""The data tree's files, compatible with the original DeepSDF release.

::

    DATA/SdfSamples/<dataset>/<class>/<instance>.npz               pos, neg: (n, 4) float32
    DATA/SurfaceSamples/<dataset>/<class>/<instance>.ply           points (+ normals), original frame
    DATA/NormalizationParameters/<dataset>/<class>/<instance>.npz  offset (3,), scale (1,)
    DATA/OccupancySamples/<dataset>/<class>/<instance>.npz         points (n, 3), occupied (n,)
    DATA/PartialScans/<dataset>/<class>/<instance>.npz             depth (h, w), K, pose (optional)

Every writer is atomic (:func:`~.contract.atomic_path`), and dataset, class and instance names
are single path components (:func:`~.contract.check_name`): the shared data contract,
:mod:`~.contract`, whose names this module also offers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .contract import (InstanceKey, atomic_path, check_name, read_split,  # noqa: F401
                       remove_stale_temporaries, split_key, write_json, write_split)
from . import validate
from .errors import InputError
from .paths import Tree

__all__ = [
    "SDF_SAMPLES", "SURFACE_SAMPLES", "NORMALIZATION_PARAMETERS", "OCCUPANCY_SAMPLES",
    "PARTIAL_SCANS", "write_occupancy", "read_occupancy", "write_partial_scan",
    "read_partial_scan",
    "instance_outputs", "split_path", "SPLITS", "InstanceFiles", "DataTree", "atomic_path",
    "write_sdf_samples",
    "read_sdf_samples",
    "write_surface_samples", "read_surface_samples", "write_normalization",
    "read_normalization", "write_json", "read_split", "write_split", "storage_dtype",
    "check_name", "remove_stale_temporaries", "InstanceKey", "split_key",
]

SDF_SAMPLES = "SdfSamples"
SURFACE_SAMPLES = "SurfaceSamples"
NORMALIZATION_PARAMETERS = "NormalizationParameters"
OCCUPANCY_SAMPLES = "OccupancySamples"
PARTIAL_SCANS = "PartialScans"
SPLITS = "splits"


def split_path(data_dir, name: str) -> Path:
    """``DATA_DIR/splits/<name>.json``: a split file kept in a data tree (the preprocessor's
    ``<dataset>.json`` of the instances that succeeded, the demo's train and test splits);
    ``name`` is a single path component."""
    tree = data_dir if isinstance(data_dir, Tree) else Tree(data_dir, "data root")
    return tree.file(SPLITS, f"{check_name(name, 'split name')}.json")


def instance_outputs(data_dir, key, *, partial_scans: bool = False) -> dict:
    """The files of instance ``key`` (``dataset/class/instance`` or an :class:`InstanceKey`)
    under ``data_dir``, keyed by folder name (``PartialScans`` only with ``partial_scans``: the
    preprocessor writes it on request).  Each path is made by the data root's
    :class:`~.paths.Tree` (no link out of it is followed, no folder stands where a file goes).

    The one way to an instance's paths; :class:`DataTree` and the preprocessor use it.
    """
    key = InstanceKey.parse(key)
    tree = data_dir if isinstance(data_dir, Tree) else Tree(data_dir, "data root")
    folders = [SDF_SAMPLES, SURFACE_SAMPLES, NORMALIZATION_PARAMETERS, OCCUPANCY_SAMPLES]
    return {folder: _instance_file(tree, key, folder)
            for folder in folders + ([PARTIAL_SCANS] if partial_scans else [])}


#: Each folder's file suffix.
_SUFFIXES = {SDF_SAMPLES: ".npz", SURFACE_SAMPLES: ".ply", NORMALIZATION_PARAMETERS: ".npz",
             OCCUPANCY_SAMPLES: ".npz", PARTIAL_SCANS: ".npz"}


def _instance_file(tree: Tree, key: InstanceKey, folder: str) -> Path:
    return tree.file(folder, key.dataset, key.class_name, key.instance + _SUFFIXES[folder])


class InstanceFiles:
    """One instance of a data tree: its files (:func:`instance_outputs`) and their readers."""

    def __init__(self, tree: Tree, key):
        self.key = InstanceKey.parse(key)
        self._tree = tree

    def __repr__(self) -> str:
        return f"InstanceFiles({str(self.key)!r} in {self._tree.root})"

    def outputs(self, *, partial_scans: bool = False) -> dict:
        """``{folder name: path}`` (see :func:`instance_outputs`)."""
        return instance_outputs(self._tree, self.key, partial_scans=partial_scans)

    @property
    def sdf_samples(self) -> Path:
        return _instance_file(self._tree, self.key, SDF_SAMPLES)

    @property
    def surface_samples(self) -> Path:
        return _instance_file(self._tree, self.key, SURFACE_SAMPLES)

    @property
    def normalization_parameters(self) -> Path:
        return _instance_file(self._tree, self.key, NORMALIZATION_PARAMETERS)

    @property
    def occupancy_samples(self) -> Path:
        return _instance_file(self._tree, self.key, OCCUPANCY_SAMPLES)

    @property
    def partial_scan(self) -> Path:
        return _instance_file(self._tree, self.key, PARTIAL_SCANS)

    def normalization(self) -> tuple[np.ndarray, float]:
        """(offset (3,), scale): ``normalized = (original + offset) * scale``."""
        return read_normalization(self.normalization_parameters)

    def surface(self) -> dict:
        """The SurfaceSamples (original frame): ``points``, and ``normals`` when stored."""
        return read_surface_samples(self.surface_samples)

    def occupancy(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(points, occupied) of the OccupancySamples (normalized frame), None when absent."""
        path = self.occupancy_samples
        return read_occupancy(path) if path.is_file() else None

    def scan(self) -> dict:
        """The PartialScans file (:func:`read_partial_scan`)."""
        return read_partial_scan(self.partial_scan)


class DataTree:
    """A data root (``DATA_DIR``): its instances' files, its manifests and source meshes.

    Every path goes through the root's :class:`~.paths.Tree`; manifests are read once per
    dataset.
    """

    def __init__(self, root):
        self.tree = root if isinstance(root, Tree) else Tree(root, "data root")
        self.root = self.tree.root
        self._manifests: dict = {}

    def __repr__(self) -> str:
        return f"DataTree({str(self.root)!r})"

    def instance(self, key) -> InstanceFiles:
        """The files of ``dataset/class/instance`` (or an :class:`InstanceKey`)."""
        return InstanceFiles(self.tree, key)

    def datasets(self) -> list:
        """The datasets the tree holds samples of (folders under ``SdfSamples``), sorted."""
        folder = self.tree.path(SDF_SAMPLES, kind="folder")
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir())

    def manifest(self, dataset: str) -> dict:
        """The dataset's manifest ({} when there is none)."""
        from .manifest import read_manifest

        if dataset not in self._manifests:
            self._manifests[dataset] = read_manifest(self.root, dataset)
        return self._manifests[dataset]

    def source_mesh(self, key) -> Path | None:
        """The mesh an instance was made from, as its manifest records it, when it still
        exists."""
        from .manifest import manifest_mesh

        key = InstanceKey.parse(key)
        return manifest_mesh(self.manifest(key.dataset), key.local)

    def normalized_source_mesh(self, key):
        """The source mesh in the instance's normalized frame (a ``trimesh.Trimesh``), or
        None when the manifest records none that still exists."""
        from .mesh_io import load_mesh
        from .normalize import to_normalized

        path = self.source_mesh(key)
        if path is None:
            return None
        mesh = load_mesh(path)
        mesh.vertices = to_normalized(mesh.vertices, *self.instance(key).normalization())
        return mesh


def _load_npz(path, keys, what: str, *, optional=()) -> dict:
    """The arrays ``keys`` (and those of ``optional`` it holds) of an ``.npz`` file, read once
    without unpickling; one line naming the file when it is missing, damaged, pickled or lacks
    a key."""
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise InputError(f"{path} holds a single array, not a {what} file (an .npz "
                             "archive with named arrays)")
        with data:
            missing = set(keys) - set(data.files)
            if missing:
                raise InputError(f"{path} lacks the key(s) {sorted(missing)}; not a {what} "
                                 "file")
            return {key: np.asarray(data[key]) for key in (*keys, *optional)
                    if key in data.files}
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{what} file {path} does not exist") from None
    except Exception as error:  # truncated zips, pickles, foreign files raise many types
        raise InputError(f"cannot read {what} file {path}: {type(error).__name__}: "
                         f"{(str(error).splitlines() or [''])[0]}") from error


def _save_npz(path, **arrays):
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            np.savez(stream, **arrays)


def write_sdf_samples(path, points, sdf) -> tuple[int, int]:
    """Write ``pos`` (sdf > 0) and ``neg`` (sdf <= 0) as (n, 4) float32 ``[x, y, z, sdf]``.

    Returns the (positive, negative) counts.
    """
    rows = np.empty((len(points), 4), dtype=np.float32)
    rows[:, :3] = points
    rows[:, 3] = sdf
    positive = rows[:, 3] > 0
    _save_npz(path, pos=rows[positive], neg=rows[~positive])
    return int(positive.sum()), int((~positive).sum())


def read_sdf_samples(path, *, keep_nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(pos, neg), each (n, 4) float32; rows with a NaN are dropped unless ``keep_nan``.

    Arrays are read without unpickling (``allow_pickle=False``)."""
    data = _load_npz(path, ("pos", "neg"), "SdfSamples")
    pos, neg = (validate.numeric_array(data[k], source=path, field=k, shape=(None, 4),
                                       finite=False).astype(np.float32) for k in ("pos", "neg"))
    if keep_nan:
        return pos, neg
    return pos[~np.isnan(pos).any(axis=1)], neg[~np.isnan(neg).any(axis=1)]


def write_occupancy(path, points, occupied) -> None:
    """Uniform points of the cube (normalized frame, float32) and whether each is inside."""
    _save_npz(path, points=np.asarray(points, dtype=np.float32),
              occupied=np.asarray(occupied, dtype=bool))


def read_occupancy(path) -> tuple[np.ndarray, np.ndarray]:
    """(points (n, 3) float32, occupied (n,) bool) from an OccupancySamples file."""
    data = _load_npz(path, ("points", "occupied"), "OccupancySamples")
    points = validate.points(data["points"], source=path, field="points")
    occupied = data["occupied"]
    if occupied.dtype != bool or occupied.shape != (len(points),):
        raise InputError(f"{path}: 'occupied' is {occupied.dtype} of shape {occupied.shape}; "
                         f"{len(points)} booleans are needed")
    return points.astype(np.float32), occupied


def write_partial_scan(path, depth, K, pose) -> None:
    """A depth image (h, w), its intrinsics K (3, 3) and its camera-to-world pose (4, 4) in the
    OpenCV convention (x right, y down, z forward; see ``deepsdf_preprocess.pinhole``).

    Depth is float32 unless float32 cannot hold it (see :func:`storage_dtype`; a scan of a
    small object far from the origin), then float64."""
    depth = np.asarray(depth, dtype=np.float64)
    measured = depth[np.isfinite(depth) & (depth > 0)]
    _save_npz(path, depth=depth.astype(storage_dtype(measured)),
              K=np.asarray(K, dtype=np.float64).reshape(3, 3),
              pose=np.asarray(pose, dtype=np.float64).reshape(4, 4),
              convention=np.array("opencv"))


def read_partial_scan(path) -> dict:
    """``depth`` (h, w) float32 (float64 if stored so), ``K`` (3, 3), ``pose`` (4, 4) and
    ``convention`` of a scan."""
    data = _load_npz(path, ("depth", "K", "pose"), "PartialScans", optional=("convention",))
    depth = validate.depth_image(data["depth"], source=path)
    stored = data["depth"].dtype
    convention = str(data["convention"]) if "convention" in data else "opencv"
    return {"depth": depth.astype(np.float64 if stored == np.float64 else np.float32),
            "K": validate.intrinsics(data["K"], source=path),
            "pose": validate.rigid_pose(data["pose"], source=path),
            "convention": convention}


def write_normalization(path, offset, scale) -> None:
    """Write ``offset`` (3,) and ``scale`` (1,) as float64 (``normalized = (x + offset) * scale``)."""
    _save_npz(path, offset=np.asarray(offset, dtype=np.float64).reshape(3),
              scale=np.asarray(scale, dtype=np.float64).reshape(1))


def read_normalization(path) -> tuple[np.ndarray, float]:
    """(offset (3,), scale) from a NormalizationParameters file (a scalar scale is accepted):
    a finite offset and a positive finite scale (:func:`~.validate.normalization`)."""
    data = _load_npz(path, ("offset", "scale"), "NormalizationParameters")
    return validate.normalization(data["offset"], data["scale"], source=path)


_PLY_TYPES = {"float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
              "uchar": "u1", "uint8": "u1", "char": "i1", "int8": "i1", "short": "i2",
              "int16": "i2", "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4",
              "uint": "u4", "uint32": "u4"}


#: float32 is kept while its rounding moves no coordinate by more than this fraction of the
#: array's extent; beyond, the array is stored in float64.
_FLOAT32_TOLERANCE = 1e-6


def storage_dtype(array) -> np.dtype:
    """float32 when it holds ``array`` to :data:`_FLOAT32_TOLERANCE` of its extent, else float64.

    Far from the origin (a 1 cm part at 10^4, a box at 10^8) or beyond float32's range
    (10^39) float32 collapses or overflows the points; float64 keeps them.

    Raises
    ------
    ValueError
        When ``array`` holds NaN or infinite values.
    """
    array = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise InputError("refusing to store NaN or infinite coordinates")
    if array.size == 0:
        return np.dtype(np.float32)
    extent = float(array.max() - array.min()) if array.ndim == 1 else float(
        np.max(array.max(axis=0) - array.min(axis=0)))
    with np.errstate(over="ignore"):
        single = array.astype(np.float32)
    if not np.all(np.isfinite(single)):
        return np.dtype(np.float64)
    error = float(np.max(np.abs(single.astype(np.float64) - array)))
    return np.dtype(np.float32 if error <= _FLOAT32_TOLERANCE * max(extent, 0.0) or error == 0
                    else np.float64)


def write_surface_samples(path, points, normals=None) -> None:
    """Binary little-endian PLY with a vertex element ``x y z [nx ny nz]``, no faces.

    Coordinates are ``float`` (float32, as the original release) unless float32 cannot hold
    them to 1e-6 of the cloud's extent (see :func:`storage_dtype`): then they are ``double``,
    which every PLY reader accepts.  Normals are always float32.
    """
    points = np.asarray(points, dtype=np.float64)
    position = storage_dtype(points)
    fields = [(name, "<" + position.str[1:]) for name in ("x", "y", "z")]
    if normals is not None:
        fields += [(name, "<f4") for name in ("nx", "ny", "nz")]
    data = np.empty(len(points), dtype=fields)
    for axis, name in enumerate("xyz"):
        data[name] = points[:, axis]
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float32)
        for axis, name in enumerate(("nx", "ny", "nz")):
            data[name] = normals[:, axis]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(points)}"]
    header += [f"property {'double' if code == '<f8' else 'float'} {name}"
               for name, code in fields]
    header.append("end_header")
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            stream.write(("\n".join(header) + "\n").encode("ascii"))
            stream.write(data.tobytes())


def read_surface_samples(path) -> dict:
    """Read the vertex element of a PLY point file.

    Accepts this project's files and the original release's (points without normals, then a
    face element of ``3 i i+1 i+2`` rows): only the vertex element is read, anything after it
    is ignored.

    Returns
    -------
    dict
        ``points`` (n, 3) float32 (float64 when the file stores doubles), and ``normals``
        (n, 3) float32 when the file has them.

    Raises
    ------
    InputError
        Naming the file when it is missing, damaged, or holds no or non-finite points.
    """
    try:
        result = _read_ply_vertices(path)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"SurfaceSamples file {path} does not exist") from None
    except Exception as error:  # truncated or foreign files raise many types
        raise InputError(f"cannot read SurfaceSamples file {path}: {type(error).__name__}: "
                         f"{(str(error).splitlines() or [''])[0]}") from error
    validate.points(result["points"], source=path, field="points")
    if "normals" in result:
        validate.numeric_array(result["normals"], source=path, field="normals")
    return result


def _read_ply_vertices(path) -> dict:
    size = Path(path).stat().st_size
    with open(path, "rb") as stream:
        if stream.readline().strip() != b"ply":
            raise InputError(f"{path} is not a PLY file")
        fmt, count, properties, in_vertex = None, None, [], False
        while True:
            line = stream.readline()
            if not line:
                raise InputError(f"{path}: PLY header has no end_header")
            words = line.decode("ascii", "replace").split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "end_header":
                break
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                in_vertex = words[1] == "vertex"
                if in_vertex:
                    count = int(words[2])
            elif words[0] == "property" and in_vertex:
                if words[1] == "list":
                    raise InputError(f"{path}: list properties in the vertex element")
                properties.append((words[2], _PLY_TYPES[words[1]]))
        if count is None:
            raise InputError(f"{path}: PLY file has no vertex element")
        if fmt == "ascii":
            table = np.loadtxt(stream, max_rows=count, ndmin=2, usecols=range(len(properties)))
            columns = {name: table[:, i] for i, (name, _) in enumerate(properties)}
        else:
            order = "<" if fmt == "binary_little_endian" else ">"
            dtype = np.dtype([(name, order + code) for name, code in properties])
            if dtype.itemsize * count > size:
                raise InputError(f"{path}: the header promises {count} points, more than the "
                                 "file holds (truncated?)")
            table = np.frombuffer(stream.read(dtype.itemsize * count), dtype=dtype, count=count)
            columns = {name: table[name] for name, _ in properties}
    points = np.stack([columns[k] for k in "xyz"], axis=1)
    wide = dict(properties).get("x") == "f8"
    result = {"points": points.astype(np.float64 if wide else np.float32)}
    if all(k in columns for k in ("nx", "ny", "nz")):
        result["normals"] = np.stack([columns[k] for k in ("nx", "ny", "nz")],
                                     axis=1).astype(np.float32)
    return result

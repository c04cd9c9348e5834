"""Loading meshes of any format trimesh reads into one validated triangle mesh."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import trimesh

from .errors import MeshError

__all__ = ["load_mesh", "validate_mesh", "closed_orientation", "two_manifold", "position_ids",
           "distinct_triangles", "MESH_SUFFIXES"]

logger = logging.getLogger(__name__)

#: File suffixes the directory walker treats as meshes.
MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")


def load_mesh(path) -> trimesh.Trimesh:
    """Read a mesh file, merging a scene's geometries (with their transforms) into one mesh.

    Materials and textures are skipped (ShapeNet's ``model_normalized.obj`` often names
    missing texture files).  Vertices are not merged or reordered, so triangle indices match
    the file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    mesh : trimesh.Trimesh
        Validated by :func:`validate_mesh`.

    Raises
    ------
    MeshError
        With a one-line reason when the file cannot be read or holds no usable triangles.
    """
    path = Path(path)
    if not path.is_file():
        raise MeshError(f"no such file: {path}")
    try:
        suffix = path.suffix.lower()
        loaded = (_load_obj_polygons(path) if suffix == ".obj" else
                  _load_ply(path) if suffix == ".ply" else None)
        if loaded is None:
            loaded = trimesh.load(path, force="mesh", process=False, skip_materials=True)
    except MeshError:
        raise
    except Exception as error:  # trimesh raises many types for corrupt files
        raise MeshError(f"cannot read {path.name}: {type(error).__name__}: {error}") from error
    if isinstance(loaded, trimesh.PointCloud):
        raise MeshError(f"{path.name} is a point cloud, not a triangle mesh")
    if not isinstance(loaded, trimesh.Trimesh):
        raise MeshError(f"{path.name} holds no triangle mesh (got {type(loaded).__name__})")
    if len(loaded.faces) == 0:
        raise MeshError(f"{path.name} is not a triangle mesh: no faces could be read from it "
                        "(an empty, corrupt or foreign file, or a point cloud)")
    return validate_mesh(loaded, name=path.name)


#: An OBJ face line with four or more corners.
_POLYGON_FACE = re.compile(rb"^[ \t]*f(?:[ \t]+\S+){4,}", re.MULTILINE)


def _load_obj_polygons(path: Path):
    """An OBJ holding polygon faces, read with its non-convex polygons ear-clipped
    (:mod:`.polygons`; a reader's fan would cross their notches); None for an OBJ of
    triangles and convex polygons only (read as it is)."""
    import io

    from .polygons import rewrite_obj_polygons

    raw = path.read_bytes()
    if not _POLYGON_FACE.search(raw):
        return None
    text, rewritten, refused = rewrite_obj_polygons(raw.decode("utf-8", errors="replace"))
    if refused:
        raise MeshError(f"{path.name}: the polygon face on line {refused[0]} (and "
                        f"{len(refused)} in all) crosses itself or has no area; it cannot be "
                        "split into triangles inside it")
    if not rewritten:
        return None
    logger.info("%s: %d non-convex polygon face(s) split into triangles inside them",
                path.name, rewritten)
    return trimesh.load(io.StringIO(text), file_type="obj", force="mesh", process=False,
                        skip_materials=True)


_PLY_FACE_COUNT = re.compile(rb"^element[ \t]+face[ \t]+(\d+)[ \t]*\r?$", re.MULTILINE)


def _ply_face_count(path: Path) -> int | None:
    """The face count a PLY header declares (None without a face element or a header)."""
    with open(path, "rb") as stream:
        head = stream.read(1 << 16)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        return None
    found = _PLY_FACE_COUNT.search(head[:end])
    return int(found.group(1)) if found else None


def _load_ply(path: Path):
    """A PLY file as trimesh reads it, unless it holds polygon faces: then (when trimesh read
    more triangles than the header declares faces, or could not read the mixed polygons at
    all) it is read again through plyfile, its convex polygons fanned and its non-convex
    ones ear-clipped (:mod:`.polygons`; trimesh fans them across their notches)."""
    try:
        loaded = trimesh.load(path, force="mesh", process=False, skip_materials=True)
    except Exception:  # noqa: BLE001 - e.g. "PLY is unexpected length!" on mixed polygons
        if _ply_face_count(path) is None:
            raise
        return _load_ply_polygons(path, always=True)
    declared = _ply_face_count(path)
    if declared is None or not isinstance(loaded, trimesh.Trimesh) \
            or len(loaded.faces) <= declared:
        return loaded
    return _load_ply_polygons(path) or loaded


def _load_ply_polygons(path: Path, *, always: bool = False):
    """A PLY's polygon faces read through plyfile and triangulated inside themselves; None
    when none needed clipping (unless ``always``)."""
    from plyfile import PlyData

    from .polygons import triangulate_faces

    ply = PlyData.read(str(path))
    vertex = ply["vertex"].data
    points = np.stack([np.asarray(vertex[axis], dtype=np.float64) for axis in "xyz"], axis=1)
    face = ply["face"].data
    name = next((n for n in ("vertex_indices", "vertex_index") if n in face.dtype.names), None)
    if name is None:
        return None
    triangles, rewritten, refused = triangulate_faces(points, face[name])
    if refused:
        raise MeshError(f"{path.name}: polygon face {refused[0]} (and {len(refused)} in all) "
                        "crosses itself, has no area or names a missing vertex; it cannot be "
                        "split into triangles inside it")
    if not rewritten and not always:
        return None
    logger.info("%s: %d non-convex polygon face(s) split into triangles inside them",
                path.name, rewritten)
    return trimesh.Trimesh(points, triangles, process=False)


def validate_mesh(mesh: trimesh.Trimesh, *, name: str = "mesh") -> trimesh.Trimesh:
    """Check that a mesh has finite vertices and triangles of positive total area.

    Faces that index missing vertices are an error; degenerate faces are kept (they are
    harmless to the scanners).

    Raises
    ------
    MeshError
        Naming what is wrong.
    """
    vertices = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.faces)
    if faces.ndim != 2 or len(faces) == 0:
        raise MeshError(f"{name} has no triangles (empty, or a point cloud)")
    if faces.shape[1] != 3:
        raise MeshError(f"{name} has faces of {faces.shape[1]} vertices, expected triangles")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshError(f"{name} has faces that index missing vertices")
    used = vertices[np.unique(faces)]
    if not np.all(np.isfinite(used)):
        raise MeshError(f"{name} has NaN or infinite vertex coordinates")
    corners = vertices[faces]
    area = 0.5 * np.linalg.norm(
        np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()
    if not area > 0:
        raise MeshError(f"{name} has zero surface area")
    return mesh


def closed_orientation(vertices, faces) -> int:
    """+1 for a closed mesh wound outward, -1 wound inward, 0 for anything else.

    Closed and consistently wound means: every directed edge ``(a, b)`` of the triangles
    occurs exactly once, and so does its reverse ``(b, a)`` (judged on vertex indices as
    stored: unwelded meshes count as open; non-manifold edges make a mesh open).  The sign of
    the enclosed volume then tells outward from inward.  Several closed parts are closed too,
    also when they touch with their own vertices at the same positions (an edge then has
    more than two faces by position, not by index): whether the mesh is one 2-manifold
    surface is :func:`two_manifold` and :func:`~.surface.one_closed_surface`.

    Parameters
    ----------
    vertices : (v, 3) float
    faces : (f, 3) int
    """
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0 or not _each_edge_once_each_way(faces):
        return 0
    # The volume is translation-invariant in exact arithmetic, not in floating point: far from
    # the origin (a 1 cm sphere at 10^4) the triple products cancel catastrophically and the
    # sign comes out wrong.  Centring first keeps it exact to the mesh's own size.
    used = np.asarray(vertices, dtype=np.float64)
    centre = 0.5 * (used[faces].min(axis=(0, 1)) + used[faces].max(axis=(0, 1)))
    corners = used[faces] - centre
    volume = np.einsum("ij,ij->i", corners[:, 0],
                       np.cross(corners[:, 1], corners[:, 2])).sum() / 6.0
    return 1 if volume > 0 else (-1 if volume < 0 else 0)


def two_manifold(vertices, faces, *, pinched_edges: bool = False) -> bool:
    """Whether the triangles form a closed, consistently wound 2-manifold: every edge used by
    exactly one triangle in each direction, judged both on the vertex indices as stored and on
    the corner positions (:func:`position_ids`, compared exactly).

    The positions catch what the indices cannot see: closed parts that touch face to face or
    along an edge with their own vertices at the same positions (an exporter's coinciding or
    welded vertices; a contact edge then has three or four faces), and faces of one part
    lying back to back on another's.  Parts that share positions only at T-junctions (a
    vertex on another part's edge) or at single corners pass; they are not one connected
    surface (:func:`~.surface.one_closed_surface`).

    ``pinched_edges``: also accept an edge of more than two faces by position where a surface
    closed by its indices only touches itself: no two of the faces lie at the same angle
    about the edge, so every wedge between them, solid or empty, has some width (what a mesh
    boolean such as manifold3d writes where two parts of a union touch along an edge, the
    touching vertices kept apart).  Faces back to back or overlapping (a wedge of no width:
    the contact of parts touching face to face, a doubled sheet) are never accepted;
    triangles of no width across the edge (a third corner on its line, within
    ``1e-6`` of its length: a boolean's slivers) are passed over there.

    Parameters
    ----------
    vertices : (v, 3) float
    faces : (f, 3) int
    """
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0 or not _each_edge_once_each_way(faces):
        return False
    corners = position_ids(vertices, faces)
    if _each_edge_once_each_way(corners):
        return True
    return pinched_edges and _only_pinched(vertices, faces, corners)


def _each_edge_once_each_way(faces) -> bool:
    """Every directed edge of the (f, 3) corner ids occurs once, and so does its reverse."""
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    count = int(faces.max()) + 1
    forward = np.sort(directed[:, 0] * count + directed[:, 1])
    backward = np.sort(directed[:, 1] * count + directed[:, 0])
    return not np.any(forward[1:] == forward[:-1]) and np.array_equal(forward, backward)


def _only_pinched(vertices, faces, corners) -> bool:
    """Whether, about every edge of more than two faces by position (``corners``), no two
    faces of some width across it lie at the same angle (see :func:`two_manifold`).  The
    faces are closed by index, so the edge is used as often in each direction."""
    count = int(corners.max()) + 1
    position = np.empty((count, 3))
    position[corners.ravel()] = np.asarray(vertices, dtype=np.float64)[faces.ravel()]
    tail, head = corners.ravel(), corners[:, [1, 2, 0]].ravel()
    third = corners[:, [2, 0, 1]].ravel()
    low, high = np.minimum(tail, head), np.maximum(tail, head)
    real = tail != head  # two corners at one position: no edge
    _, edge, uses = np.unique((low * count + high)[real], return_inverse=True,
                              return_counts=True)
    edge = edge.reshape(-1)
    many = uses[edge] > 2
    rows = np.nonzero(real)[0][many]
    edge = edge[many]
    # each face's wing: the direction from the edge to its third corner, as an angle in a
    # frame about the edge (low -> high: one frame for all faces of an edge)
    start = position[low[rows]]
    axis = position[high[rows]] - start
    length = np.linalg.norm(axis, axis=1)
    axis /= length[:, None]
    helper = np.eye(3)[np.argmin(np.abs(axis), axis=1)]
    first = np.cross(axis, helper)
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    second = np.cross(axis, first)
    wing = position[third[rows]] - start
    wing -= np.einsum("ij,ij->i", wing, axis)[:, None] * axis
    wide = np.linalg.norm(wing, axis=1) > _PINCH_TOLERANCE * length
    edge, wing, first, second = edge[wide], wing[wide], first[wide], second[wide]
    if len(edge) == 0:  # only zero-length edges and slivers: no surface touches itself
        return True
    angle = np.arctan2(np.einsum("ij,ij->i", wing, second), np.einsum("ij,ij->i", wing, first))
    order = np.lexsort((angle, edge))
    edge, angle = edge[order], angle[order]
    same = edge[1:] == edge[:-1]
    if np.any(same & (np.diff(angle) < _PINCH_TOLERANCE)):
        return False
    # the gap that closes each edge's circle, from its last face round to its first
    opening, closing = np.r_[True, ~same], np.r_[~same, True]
    several = opening != closing
    gap = angle[opening] + 2 * np.pi - angle[closing]
    return not np.any(several[opening] & (gap < _PINCH_TOLERANCE))


#: Faces about an edge closer in angle than this (radians) lie back to back; a triangle
#: narrower across an edge than this fraction of the edge's length has no width there.
_PINCH_TOLERANCE = 1e-6


def position_ids(vertices, faces) -> np.ndarray:
    """(f, 3) int64 corner ids of ``faces`` in which corners at the same position (compared
    exactly) share one id, numbered 0.. over the positions the faces use."""
    faces = np.asarray(faces, dtype=np.int64)
    if faces.size == 0:
        return faces.reshape(-1, 3)
    points = np.asarray(vertices, dtype=np.float64)[faces.ravel()]
    order = np.lexsort(points.T[::-1])
    ordered = points[order]
    new = np.r_[True, np.any(ordered[1:] != ordered[:-1], axis=1)]
    ids = np.empty(len(points), dtype=np.int64)
    ids[order] = np.cumsum(new) - 1
    return ids.reshape(faces.shape)


def distinct_triangles(vertices, faces) -> np.ndarray:
    """(k,) int64 rows of ``faces``, in order, keeping the first of every set of triangles
    with the same three corner positions, whatever their order or winding.

    A face doubled back-to-back (ShapeNet's two-sided export) or stored twice is one piece of
    surface: kept twice, a scan would give one copy the pixels of one side and the other copy
    the other side's, and neither would know that the piece is an open sheet.  Positions are
    compared exactly, so unwelded copies (their own vertex indices) are found too.
    """
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return np.zeros(0, dtype=np.int64)
    corners = np.asarray(vertices, dtype=np.float64)[faces]  # (f, 3, 3)
    order = np.lexsort(corners.transpose(2, 0, 1)[::-1])  # (f, 3): corners sorted per face
    key = np.take_along_axis(corners, order[..., None], axis=1).reshape(len(faces), 9)
    _, first = np.unique(key, axis=0, return_index=True)
    return np.sort(first)

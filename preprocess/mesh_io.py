"""Loading meshes of any format trimesh reads into one validated triangle mesh."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import trimesh

from .errors import MeshError

__all__ = ["load_mesh", "validate_mesh", "closed_orientation", "distinct_triangles",
           "MESH_SUFFIXES"]

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
        loaded = trimesh.load(path, force="mesh", process=False, skip_materials=True)
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
    the enclosed volume then tells outward from inward.

    Parameters
    ----------
    vertices : (v, 3) float
    faces : (f, 3) int
    """
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return 0
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    count = int(faces.max()) + 1
    forward = np.sort(directed[:, 0] * count + directed[:, 1])
    backward = np.sort(directed[:, 1] * count + directed[:, 0])
    if np.any(forward[1:] == forward[:-1]) or not np.array_equal(forward, backward):
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

"""Polygon faces as they are written: triangulated without crossing a notch.

A CAD or modelling export writes an L-shaped or notched face as one polygon.  A fan from its
first corner (what mesh readers do) is right only for a convex polygon: from a reflex corner
the fan's triangles cross the notch, and the mesh gains area outside the face and loses area
inside it, so the signs around it go wrong.  :func:`triangulate_polygon` clips ears instead
(every triangle lies inside the polygon), after projecting the polygon onto its own plane
(Newell's normal).  :func:`rewrite_obj_polygons` applies it to the polygon faces of an OBJ
text, leaving triangles, convex polygons and everything else as written;
:func:`triangulate_faces` to the face lists of a PLY file.
"""

from __future__ import annotations

import numpy as np

__all__ = ["triangulate_polygon", "rewrite_obj_polygons", "triangulate_faces", "is_convex"]


def _plane_coordinates(points: np.ndarray) -> np.ndarray | None:
    """(n, 2) coordinates of a 3D polygon in its plane, counter-clockwise about Newell's
    normal; None for a polygon without area."""
    following = np.roll(points, -1, axis=0)
    normal = np.array([np.sum((points[:, 1] - following[:, 1]) * (points[:, 2] + following[:, 2])),
                       np.sum((points[:, 2] - following[:, 2]) * (points[:, 0] + following[:, 0])),
                       np.sum((points[:, 0] - following[:, 0]) * (points[:, 1] + following[:, 1]))])
    length = np.linalg.norm(normal)
    if not length > 0:
        return None
    normal /= length
    helper = np.eye(3)[np.argmin(np.abs(normal))]
    u = np.cross(normal, helper)
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    return np.stack([points @ u, points @ v], axis=1)


def _cross(o, a, b) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _crossing_edges(flat: np.ndarray) -> bool:
    """Whether two edges of a closed 2D polygon that share no corner cross each other (a
    pentagram, a bow tie): such a polygon bounds no single region."""
    n = len(flat)
    for i in range(n):
        a, b = flat[i], flat[(i + 1) % n]
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # the edges before and after corner 0 share it
            c, d = flat[j], flat[(j + 1) % n]
            if (_cross(a, b, c) * _cross(a, b, d) < 0
                    and _cross(c, d, a) * _cross(c, d, b) < 0):
                return True
    return False


def is_convex(points) -> bool:
    """Whether a 3D polygon (n, 3) is convex in its plane: no reflex corner and no two edges
    crossing (a pentagram turns one way at every corner, yet is no convex polygon)."""
    points = np.asarray(points, dtype=np.float64)
    flat = _plane_coordinates(points)
    if flat is None:  # no net area: collinear corners (a sliver), or lobes that cancel
        spread = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
        return bool(spread[1] <= 1e-12 * max(spread[0], 1e-300))  # a sliver: nothing to cross
    n = len(flat)
    return (all(_cross(flat[i - 1], flat[i], flat[(i + 1) % n]) >= 0 for i in range(n))
            and not _crossing_edges(flat))


def triangulate_polygon(points) -> list | None:
    """Triangles (index triples into the polygon's corners, wound as the polygon) covering a
    simple 3D polygon (n, 3) without leaving it; None when no ear can be found (a
    self-intersecting or degenerate polygon)."""
    points = np.asarray(points, dtype=np.float64)
    flat = _plane_coordinates(points)
    n = len(points)
    if flat is None or n < 3 or _crossing_edges(flat):
        return None
    remaining = list(range(n))
    triangles = []
    while len(remaining) > 3:
        for k in range(len(remaining)):
            a, b, c = (remaining[k - 1], remaining[k], remaining[(k + 1) % len(remaining)])
            if _cross(flat[a], flat[b], flat[c]) <= 0:
                continue  # a reflex (or flat) corner is no ear
            others = [p for p in remaining if p not in (a, b, c)]
            if any(_inside(flat[p], flat[a], flat[b], flat[c]) for p in others):
                continue
            triangles.append((a, b, c))
            remaining.pop(k)
            break
        else:
            return None
    triangles.append(tuple(remaining))
    return triangles


def _inside(p, a, b, c) -> bool:
    """Whether ``p`` lies in the closed counter-clockwise triangle ``abc``."""
    return _cross(a, b, p) >= 0 and _cross(b, c, p) >= 0 and _cross(c, a, p) >= 0


def rewrite_obj_polygons(text: str) -> tuple[str, int, list]:
    """OBJ ``text`` with every non-convex polygon face replaced by ear-clipped triangles
    (each keeps its corners' ``v/vt/vn`` references as written).

    Returns (the text, how many faces were rewritten, the line numbers of polygon faces that
    could not be triangulated: self-intersecting or without area)."""
    lines = text.splitlines()
    vertices: list = []
    rewritten, refused = 0, []
    out = []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("v "):
            try:
                vertices.append([float(x) for x in stripped.split()[1:4]])
            except ValueError:
                vertices.append([np.nan] * 3)
        elif stripped.startswith("f ") and len(stripped.split()) > 4:
            tokens = stripped.split()[1:]
            try:
                indices = [int(token.split("/")[0]) for token in tokens]
                corners = np.array([vertices[i - 1 if i > 0 else len(vertices) + i]
                                    for i in indices], dtype=np.float64)
            except (ValueError, IndexError):
                out.append(line)  # the reader judges what this is
                continue
            if np.all(np.isfinite(corners)) and not is_convex(corners):
                triangles = triangulate_polygon(corners)
                if triangles is None:
                    refused.append(number)
                else:
                    out += ["f " + " ".join(tokens[i] for i in triangle)
                            for triangle in triangles]
                    rewritten += 1
                    continue
        out.append(line)
    return "\n".join(out) + "\n", rewritten, refused


def triangulate_faces(vertices, polygons) -> tuple[np.ndarray, int, list]:
    """Triangles of a list of polygon faces (index sequences into ``vertices`` (v, 3)), as
    a PLY file stores them: triangles as they are, convex polygons fanned from their first
    corner, non-convex ones ear-clipped (:func:`triangulate_polygon`).

    Returns ((t, 3) int64 triangles, how many non-convex faces were clipped, the positions
    of faces that could not be triangulated: self-intersecting or without area).  Faces of
    fewer than three corners, or naming a missing vertex, are left to the caller's checks
    (returned among the refused)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    triangles, rewritten, refused = [], 0, []
    for number, polygon in enumerate(polygons):
        polygon = np.asarray(polygon, dtype=np.int64).reshape(-1)
        if len(polygon) < 3 or polygon.min() < 0 or polygon.max() >= len(vertices):
            refused.append(number)
            continue
        if len(polygon) == 3:
            triangles.append(polygon[None])
            continue
        corners = vertices[polygon]
        if not np.all(np.isfinite(corners)) or is_convex(corners):
            fan = np.arange(1, len(polygon) - 1)
            triangles.append(np.stack([np.full_like(fan, polygon[0]), polygon[fan],
                                       polygon[fan + 1]], axis=1))
            continue
        clipped = triangulate_polygon(corners)
        if clipped is None:
            refused.append(number)
            continue
        triangles.append(polygon[np.asarray(clipped, dtype=np.int64)])
        rewritten += 1
    merged = np.concatenate(triangles) if triangles else np.zeros((0, 3), np.int64)
    return merged, rewritten, refused

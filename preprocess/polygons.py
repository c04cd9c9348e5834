"""Polygon faces as they are written: triangulated without crossing a notch.

A CAD or modelling export writes an L-shaped or notched face as one polygon.  A fan from its
first corner (what mesh readers do) is right only for a convex polygon: from a reflex corner
the fan's triangles cross the notch, and the mesh gains area outside the face and loses area
inside it, so the signs around it go wrong.  :func:`triangulate_polygon` clips ears instead
(every triangle lies inside the polygon), after projecting the polygon onto its own plane
(Newell's normal).  :func:`rewrite_obj_polygons` applies it to the polygon faces of an OBJ
text, leaving triangles, convex polygons and everything else as written.
"""

from __future__ import annotations

import numpy as np

__all__ = ["triangulate_polygon", "rewrite_obj_polygons", "is_convex"]


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


def is_convex(points) -> bool:
    """Whether a 3D polygon (n, 3) is convex in its plane (no reflex corner)."""
    points = np.asarray(points, dtype=np.float64)
    flat = _plane_coordinates(points)
    if flat is None:  # no net area: collinear corners (a sliver), or lobes that cancel
        spread = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
        return bool(spread[1] <= 1e-12 * max(spread[0], 1e-300))  # a sliver: nothing to cross
    n = len(flat)
    return all(_cross(flat[i - 1], flat[i], flat[(i + 1) % n]) >= 0 for i in range(n))


def triangulate_polygon(points) -> list | None:
    """Triangles (index triples into the polygon's corners, wound as the polygon) covering a
    simple 3D polygon (n, 3) without leaving it; None when no ear can be found (a
    self-intersecting or degenerate polygon)."""
    points = np.asarray(points, dtype=np.float64)
    flat = _plane_coordinates(points)
    n = len(points)
    if flat is None or n < 3:
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

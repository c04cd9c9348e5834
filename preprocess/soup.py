"""ShapeNet-style triangle soups of the embedded shapes, with the clean truth kept.

ShapeNet and most downloaded models are not closed manifolds: parts are modelled separately and
never welded, they overlap and penetrate, faces are wound at random, thin parts are single
sheets, faces are doubled back-to-back, bottoms are left open.  :func:`soup_shape` turns a
:class:`~.procedural.ProceduralShape` into such a soup with a seeded mix of those defects and
keeps the **truth** beside it: the solid the clean parts bound (their union), where every part
that the soup models as a zero-thickness sheet is a sheet in the truth too (a sheet has no
inside).  :meth:`SoupShape.sdf` is exact in sign everywhere and exact in value outside, so
sign and distance errors of a preprocessor can be measured on the soup.

Every defect, and what it imitates (:data:`DEFECTS`):

=====================  ===========================================================================
``unwelded_parts``     every part is its own shell, its vertices shared with no other part; parts
                       overlap and penetrate, so faces of one lie inside another (interior faces)
``flipped_faces``      a share of a part's faces wound the other way (exporters, mirrored copies)
``flipped_part``       a whole part wound inside-out (a mirrored instance)
``sheet``              a thin part (seat, back, table top, apron, shelf) as one open,
                       single-sided sheet of zero thickness at its mid-plane; a cup's wall and
                       foot as one sheet, open at the top, standing in a solid base
``doubled_faces``      every face of a part repeated with the reverse winding (two-sided export)
``touching_parts``     a part cut in two closed boxes that touch face to face
``internal_wall``      a wall across the inside of a part, meeting its sides (modelling leftovers)
``open_bottom``        an upright leg's foot cap or a cup's lip left out (open ends)
``missing_faces``      a few triangles of a part's side deleted (holes)
``duplicate_faces``    some faces stored twice with the same winding
``degenerate_faces``   zero-area triangles (a repeated vertex, three collinear vertices)
``t_junctions``        part of a face subdivided and its neighbours not (vertices on edges)
``unwelded_triangles`` every triangle of a vessel with its own three vertices (STL-like)
``welded_touching``    a part as two or four closed boxes that tile it, touching face to face (and,
                       four of them, along an edge), written as one part with the coincident
                       vertices merged (a CAD assembly's export): the contact faces kept once,
                       or twice with both windings, the contact's edges have three to eight faces
``coplanar_faces``     a flush inset: a closed box inside a part, one of its faces in the plane of
                       the part's face and overlapping it (a separate part, same outward side)
``t_junction_parts``   a part as two closed boxes touching face to face, one tessellated twice
                       as finely across the contact, coincident vertices merged: the fine box's
                       vertices lie on the coarse box's edges (contact faces kept, or removed)
=====================  ===========================================================================

The last three (CAD exports) are drawn from a second random stream, after every draw of the
others, and replace or add parts: a soup without them is the soup this module wrote before they
existed, part for part.  None of them changes the truth: the boxes tile the part they replace,
and an inset lies inside its part.

Files (:func:`write_soups`): an OBJ with one group (``g``) per part, or a GLB whose parts are
scene nodes with their own (rigid) node transforms, the vertices stored in each node's frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import trimesh

from .errors import InputError
from .procedural import OrientedBox, RevolvedProfile, generate_shapes

__all__ = ["DEFECTS", "SoupPart", "SoupShape", "RevolvedSheet", "Cylinder", "soup_shape",
           "generate_soups", "write_soups"]

DEFECTS = ("unwelded_parts", "flipped_faces", "flipped_part", "sheet", "doubled_faces",
           "touching_parts", "internal_wall", "open_bottom", "missing_faces", "duplicate_faces",
           "degenerate_faces", "t_junctions", "unwelded_triangles", "welded_touching",
           "coplanar_faces", "t_junction_parts")

#: Thin parts (smallest half extent below this, in the shapes' metre-like units) may become
#: sheets.
_THIN = 0.03
#: Soup triangles are subdivided down to this edge length (metre-like units), so that a soup
#: chair has the few thousand to tens of thousands of faces of a ShapeNet chair.
_EDGE = 0.06


@dataclass(frozen=True)
class RevolvedSheet:
    """The open, zero-thickness surface of a :class:`~.procedural.RevolvedProfile` without its
    lip disc (a cup's wall and foot as one sheet).  It has no inside."""

    profile: RevolvedProfile

    def sdf(self, points) -> np.ndarray:
        """(n,) unsigned distance of (n, 3) points to the sheet (>= 0 everywhere)."""
        points = np.asarray(points, dtype=np.float64)
        q = np.stack([np.hypot(points[:, 0], points[:, 2]), points[:, 1]], axis=1)
        polygon = self.profile.polygon()
        a, b = polygon[:-2], polygon[1:-1]  # the foot disc and the wall; no lip, no axis
        edge = b - a
        t = np.clip(np.einsum("nij,ij->ni", q[:, None, :] - a[None], edge)
                    / np.einsum("ij,ij->i", edge, edge), 0.0, 1.0)
        nearest = a[None] + t[..., None] * edge[None]
        return np.linalg.norm(q[:, None, :] - nearest, axis=2).min(axis=1)


@dataclass(frozen=True)
class Cylinder:
    """A solid upright cylinder: axis along y through (0, y, 0), ``radius``, from ``bottom``
    to ``top``."""

    radius: float
    bottom: float
    top: float

    def sdf(self, points) -> np.ndarray:
        """(n,) exact signed distance of (n, 3) points to the cylinder (> 0 outside)."""
        points = np.asarray(points, dtype=np.float64)
        radial = np.hypot(points[:, 0], points[:, 2]) - self.radius
        half = 0.5 * (self.top - self.bottom)
        axial = np.abs(points[:, 1] - 0.5 * (self.top + self.bottom)) - half
        q = np.stack([radial, axial], axis=1)
        return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)

    def mesh(self) -> trimesh.Trimesh:
        """The cylinder with 128 sections (within ``radius * 3e-4`` of it), y up."""
        mesh = trimesh.creation.cylinder(radius=self.radius, height=self.top - self.bottom,
                                         sections=128)
        mesh.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
        mesh.apply_translation([0.0, 0.5 * (self.top + self.bottom), 0.0])
        return mesh


@dataclass
class SoupPart:
    """One part of a soup: triangles in the world frame and the rigid transform a GLB node
    carries for it (the file stores ``inverse(transform) @ world`` vertices)."""

    name: str
    vertices: np.ndarray  # (v, 3) float64, world frame
    faces: np.ndarray  # (f, 3) int64
    transform: np.ndarray = field(default_factory=lambda: np.eye(4))  # (4, 4) rigid
    defects: tuple = ()  # the defects applied to this part


@dataclass
class SoupShape:
    """A soup and its truth.

    Attributes
    ----------
    category : str
    params : dict
        The clean shape's parameters.
    parts : list of SoupPart
    solids : list
        Truth solids (:class:`~.procedural.OrientedBox`, :class:`~.procedural.RevolvedProfile`).
    sheets : list
        Truth sheets (an ``OrientedBox`` with a zero half extent, :class:`RevolvedSheet`).
    defects : dict
        Defect name -> how many times it was applied.
    """

    category: str
    params: dict
    parts: list
    solids: list
    sheets: list
    defects: dict

    @property
    def mesh(self) -> trimesh.Trimesh:
        """Every part's triangles in one mesh (world frame, nothing merged or repaired)."""
        vertices, faces, start = [], [], 0
        for part in self.parts:
            vertices.append(part.vertices)
            faces.append(part.faces + start)
            start += len(part.vertices)
        return trimesh.Trimesh(np.concatenate(vertices), np.concatenate(faces), process=False)

    def sdf(self, points) -> np.ndarray:
        """(n,) truth SDF of (n, 3) points, world frame, > 0 outside.

        Sign exact everywhere; value exact outside (inside: the deepest part's depth, a lower
        bound).  Sheets are zero-thick, so the distance to them is positive."""
        points = np.asarray(points, dtype=np.float64)
        values = [part.sdf(points) for part in self.solids + self.sheets]
        return np.min(values, axis=0)

    def metadata(self) -> dict:
        """JSON-ready description (the ``.json`` written beside the mesh)."""
        return {"category": self.category, "style": "soup", "params": self.params,
                "defects": self.defects,
                "parts": {p.name: list(p.defects) for p in self.parts},
                "faces": int(sum(len(p.faces) for p in self.parts))}


# --------------------------------------------------------------------------- building blocks

def _box_mesh(box: OrientedBox):
    mesh = box.mesh()
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def _sheet_mesh(box: OrientedBox, axis: int):
    """Two triangles: the box's mid-plane across ``axis`` (world frame)."""
    other = [k for k in range(3) if k != axis]
    corners = []
    for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        local = np.zeros(3)
        local[other[0]] = su * box.half[other[0]]
        local[other[1]] = sv * box.half[other[1]]
        corners.append(box.center + box.rotation @ local)
    return np.asarray(corners), np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64)


def _subdivide(vertices, faces, edge: float = _EDGE):
    return trimesh.remesh.subdivide_to_size(vertices, faces, max_edge=edge)


def _flip(faces, rows):
    faces = faces.copy()
    faces[rows] = faces[rows][:, ::-1]
    return faces


def _random_rigid(rng: np.random.Generator) -> np.ndarray:
    """A seeded rigid 4x4 transform (a GLB node's)."""
    rotation = trimesh.transformations.random_rotation_matrix(rng.random(3))
    rotation[:3, 3] = rng.uniform(-0.5, 0.5, 3)
    return rotation


def _thin_axis(box: OrientedBox):
    """The axis across a plate-like part (thin, and at least 3x wider both ways), else None."""
    axis = int(np.argmin(box.half))
    plate = box.half[axis] < _THIN and np.sort(box.half)[1] > 3 * box.half[axis]
    return axis if plate else None


def _split_box(box: OrientedBox):
    """Two boxes that touch face to face and together fill ``box``."""
    axis = int(np.argmax(box.half))
    half = box.half.copy()
    half[axis] /= 2
    shift = np.zeros(3)
    shift[axis] = half[axis]
    return [OrientedBox(box.center + box.rotation @ s, half, box.rotation)
            for s in (shift, -shift)]


def _wall_across(box: OrientedBox):
    """A wall across the middle of ``box`` (perpendicular to its longest axis), its edges on
    the box's sides."""
    axis = int(np.argmax(box.half))
    thin = box.half.copy()
    thin[axis] = 0.0
    return _sheet_mesh(OrientedBox(box.center, thin, box.rotation), axis)


def _bottom_cap(vertices, faces, box: OrientedBox):
    """Rows of ``faces`` on the box's cap facing its lowest end along the longest axis."""
    axis = int(np.argmax(box.half))
    local = (vertices - box.center) @ box.rotation
    direction = 1.0 if box.rotation[1, axis] < 0 else -1.0  # the end with the lower y
    on_cap = np.isclose(local[:, axis] * direction, box.half[axis], atol=1e-9)
    return np.nonzero(on_cap[faces].all(axis=1))[0]


def _degenerate(vertices, faces, rng, count: int):
    """``count`` zero-area triangles appended: repeated vertices and collinear midpoints."""
    rows = rng.integers(0, len(faces), count)
    extra_vertices, extra_faces = [], []
    start = len(vertices)
    for k, row in enumerate(rows):
        a, b, _ = faces[row]
        if k % 2:  # a repeated vertex
            extra_faces.append([a, a, b])
        else:  # three collinear vertices: an edge and its midpoint
            extra_vertices.append(0.5 * (vertices[a] + vertices[b]))
            extra_faces.append([a, start + len(extra_vertices) - 1, b])
    if extra_vertices:
        vertices = np.vstack([vertices, extra_vertices])
    return vertices, np.vstack([faces, np.asarray(extra_faces, np.int64)])


def _soup_part(name, vertices, faces, rng, counts, *, solid: bool, box=None,
               applied: tuple = ()):
    """Apply the per-part defects to one part's triangles (world frame); ``counts`` tallies
    them, ``applied`` names those already applied to the part."""
    applied = list(applied)
    defects = _Tally(counts, applied)
    vertices, faces = _subdivide(vertices, faces)
    if rng.random() < 0.25 and len(faces) > 8:
        rows = rng.choice(len(faces), max(1, len(faces) // 6), replace=False)
        vertices, faces = trimesh.remesh.subdivide(vertices, faces, face_index=rows)
        defects["t_junctions"] += 1
    if solid and box is not None and _is_leg(box) and rng.random() < 0.3:
        cap = _bottom_cap(vertices, faces, box)
        if len(cap):
            faces = np.delete(faces, cap, axis=0)
            defects["open_bottom"] += 1
    if solid and rng.random() < 0.1 and len(faces) > 40:
        faces = np.delete(faces, rng.choice(len(faces), 2, replace=False), axis=0)
        defects["missing_faces"] += 1
    if rng.random() < 0.2:
        faces = faces[:, ::-1].copy()
        defects["flipped_part"] += 1
    if rng.random() < 0.5:
        faces = _flip(faces, rng.random(len(faces)) < 0.3)
        defects["flipped_faces"] += 1
    if rng.random() < 0.15:
        faces = np.vstack([faces, faces[:, ::-1]])
        defects["doubled_faces"] += 1
    if rng.random() < 0.15:
        faces = np.vstack([faces, faces[rng.random(len(faces)) < 0.05]])
        defects["duplicate_faces"] += 1
    if rng.random() < 0.15:
        vertices, faces = _degenerate(vertices, faces, rng, 4)
        defects["degenerate_faces"] += 1
    order = rng.permutation(len(faces))  # exporters do not keep faces in order
    return SoupPart(name, np.asarray(vertices, np.float64), faces[order].astype(np.int64),
                    _random_rigid(rng), tuple(applied))


class _Tally:
    """``tally[name] += 1`` counts a defect for the shape and names it for the part."""

    def __init__(self, counts: dict, applied: list):
        self.counts, self.applied = counts, applied

    def __getitem__(self, name):
        return self.counts[name]

    def __setitem__(self, name, value):
        self.counts[name] = value
        self.applied.append(name)


def _is_leg(box: OrientedBox) -> bool:
    """A long, upright part (a leg, a pedestal column): its lower end is a foot."""
    axis = int(np.argmax(box.half))
    return box.half[axis] > 3 * np.sort(box.half)[1] and abs(box.rotation[1, axis]) > 0.9


def _box_soup(shape, rng, defects):
    parts, solids, sheets = [], [], []
    largest = int(np.argmax([np.prod(p.half) for p in shape.parts]))
    for index, box in enumerate(shape.parts):
        name = f"part{index:02d}"
        thin = _thin_axis(box)
        if thin is not None and rng.random() < 0.5:
            sheet = OrientedBox(box.center, np.where(np.arange(3) == thin, 0.0, box.half),
                                box.rotation)
            vertices, faces = _sheet_mesh(box, thin)
            defects["sheet"] += 1
            parts.append(_soup_part(name + "_sheet", vertices, faces, rng, defects, solid=False,
                                    applied=("sheet",)))
            sheets.append(sheet)
            continue
        solids.append(box)
        pieces, applied = [box], ()
        if index == largest and rng.random() < 0.35:
            pieces, applied = _split_box(box), ("touching_parts",)
            defects["touching_parts"] += 1
        for k, piece in enumerate(pieces):
            vertices, faces = _box_mesh(piece)
            parts.append(_soup_part(f"{name}_{k}", vertices, faces, rng, defects, solid=True,
                                    box=piece, applied=applied))
        if rng.random() < 0.15:
            defects["internal_wall"] += 1
            vertices, faces = _wall_across(box)
            parts.append(_soup_part(name + "_wall", vertices, faces, rng, defects, solid=False,
                                    applied=("internal_wall",)))
    return parts, solids, sheets


def _cad_parts(shape, parts, rng, defects):
    """The CAD-export defects (``welded_touching``, ``coplanar_faces``, ``t_junction_parts``),
    each on its own plain solid box part (one not cut, not a sheet) with probability 0.25, in
    place in ``parts``; ``rng`` is their own stream.  Replaced parts' defects are uncounted."""
    names = [part.name for part in parts]
    plain = [index for index in range(len(shape.parts))
             if f"part{index:02d}_0" in names and f"part{index:02d}_1" not in names]
    for defect in ("welded_touching", "coplanar_faces", "t_junction_parts"):
        if not plain or rng.random() >= 0.25:
            continue
        index = int(plain.pop(int(rng.integers(len(plain)))))
        box = shape.parts[index]
        row = names.index(f"part{index:02d}_0")
        if defect == "coplanar_faces":
            vertices, faces = _subdivide(*_box_mesh(_flush_inset(box, rng)))
            parts.append(SoupPart(f"part{index:02d}_inset", np.asarray(vertices, np.float64),
                                  np.asarray(faces, np.int64)[rng.permutation(len(faces))],
                                  _random_rigid(rng), (defect,)))
            names.append(parts[-1].name)
        else:
            for name in parts[row].defects:
                defects[name] -= 1
            if defect == "welded_touching":
                vertices, faces = _tiled_box(box, int(rng.integers(1, 3)), fine=False,
                                             contact=("once", "twice")[int(rng.integers(2))])
            else:
                vertices, faces = _tiled_box(box, 1, fine=True,
                                             contact=("twice", "removed")[int(rng.integers(2))])
            parts[row] = SoupPart(f"part{index:02d}_{defect}", vertices,
                                  faces[rng.permutation(len(faces))], _random_rigid(rng),
                                  (defect,))
        defects[defect] += 1


def _flush_inset(box: OrientedBox, rng) -> OrientedBox:
    """A box inside ``box`` with one face in the plane of one of ``box``'s two largest faces
    (which one drawn by ``rng``), covering the middle 60% of it and half its depth."""
    axis = int(np.argmin(box.half))
    side = 1.0 if rng.random() < 0.5 else -1.0
    half = 0.6 * box.half
    half[axis] = 0.5 * box.half[axis]
    local = np.zeros(3)
    local[axis] = side * (box.half[axis] - half[axis])
    return OrientedBox(box.center + box.rotation @ local, half, box.rotation)


def _tiled_box(box: OrientedBox, cuts: int, *, fine: bool, contact: str):
    """``box`` cut in closed boxes across its ``cuts`` (1 or 2) longest axes, at the middle,
    written as one part with one vertex per position (world frame).

    Every box face is a grid of rectangles about :data:`_EDGE` wide, two triangles each.
    ``fine``: the second box's grid twice as fine across the contact (its vertices on the
    first box's edges: T-junctions).  ``contact``: the rectangles on a contact are kept
    ``"once"`` (the first box's), ``"twice"`` (each box's own, both windings) or
    ``"removed"``.

    Returns
    -------
    vertices : (v, 3) float64, faces : (f, 3) int64
    """
    axes = list(np.argsort(box.half)[::-1][:cuts])
    pieces = [(-box.half.copy(), box.half.copy())]
    for axis in axes:
        split = []
        for low, high in pieces:
            upper, lower = low.copy(), high.copy()
            upper[axis], lower[axis] = 0.0, 0.0
            split += [(low, lower), (upper, high)]
        pieces = split
    index, vertices, faces, emitted = {}, [], [], set()
    for owner, (low, high) in enumerate(pieces):
        steps = np.maximum(1, np.ceil((high - low) / _EDGE)).astype(int)
        if fine and owner == 1:
            steps = steps * np.where(np.arange(3) == axes[0], 1, 2)
        for quad in _grid_faces(low, high, steps):
            key = tuple(sorted(map(tuple, quad)))
            if any(np.all(quad[:, axis] == 0.0) for axis in axes):  # on a contact
                if contact == "removed" or (contact == "once" and key in emitted):
                    continue
            emitted.add(key)
            ids = []
            for corner in map(tuple, quad):
                if corner not in index:
                    index[corner] = len(vertices)
                    vertices.append(corner)
                ids.append(index[corner])
            faces += [[ids[0], ids[1], ids[2]], [ids[0], ids[2], ids[3]]]
    local = np.asarray(vertices, dtype=np.float64)
    return box.center + local @ box.rotation.T, np.asarray(faces, dtype=np.int64)


def _grid_faces(low, high, steps):
    """The outer faces of the box ``[low, high]`` (3,) as rectangles of a ``steps`` (3,) grid:
    a list of (4, 3) corner arrays, counter-clockwise seen from outside."""
    quads = []
    for axis in range(3):
        u, v = (axis + 1) % 3, (axis + 2) % 3
        grid_u = np.linspace(low[u], high[u], steps[u] + 1)
        grid_v = np.linspace(low[v], high[v], steps[v] + 1)
        for side, value in ((-1, low[axis]), (1, high[axis])):
            for i in range(steps[u]):
                for j in range(steps[v]):
                    quad = np.zeros((4, 3))
                    quad[:, axis] = value
                    quad[:, u] = grid_u[[i, i + 1, i + 1, i]]
                    quad[:, v] = grid_v[[j, j, j + 1, j + 1]]
                    quads.append(quad if side > 0 else quad[::-1])
    return quads


def _vessel_soup(shape, rng, defects):
    body = shape.parts[0]
    mesh = body.mesh()
    vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    solids, sheets = [body], []
    applied = []
    if shape.params["kind"] == "cup" and rng.random() < 0.5:
        top = float(np.asarray(body.profile)[-1, 1])
        normals = trimesh.triangles.normals(vertices[faces])[0]
        lip = np.isclose(vertices[faces][:, :, 1], top).all(axis=1) & (normals[:, 1] > 0.99)
        faces = faces[~lip]
        # a solid base under the sheet (its foot inside it), so that the cup has an inside
        height = float(np.asarray(body.profile)[-1, 1])
        base = Cylinder(float(np.asarray(body.profile)[0, 0]), -0.06 * height, 0.06 * height)
        solids, sheets = [base], [RevolvedSheet(body)]
        defects["open_bottom"] += 1
        defects["sheet"] += 1
        applied += ["open_bottom", "sheet"]
    if rng.random() < 0.5:
        vertices, faces = vertices[faces].reshape(-1, 3), np.arange(3 * len(faces)).reshape(-1, 3)
        defects["unwelded_triangles"] += 1
        applied.append("unwelded_triangles")
    parts = [_soup_part("body", vertices, faces, rng, defects, solid=False,
                        applied=tuple(applied))]
    if solids and isinstance(solids[0], Cylinder):
        base = solids[0].mesh()
        parts.append(_soup_part("base", np.asarray(base.vertices, np.float64),
                                np.asarray(base.faces, np.int64), rng, defects, solid=True))
    return parts, solids, sheets


def soup_shape(shape, rng: np.random.Generator) -> SoupShape:
    """A ShapeNet-style soup of a :class:`~.procedural.ProceduralShape` (seeded by ``rng``)."""
    defects = {name: 0 for name in DEFECTS}
    if all(isinstance(p, OrientedBox) for p in shape.parts):
        parts, solids, sheets = _box_soup(shape, rng, defects)
        # drawn after every other draw, so that the other defects stay as they were
        _cad_parts(shape, parts, np.random.default_rng(rng.integers(2 ** 63)), defects)
        defects["unwelded_parts"] = len(parts)
    elif len(shape.parts) == 1 and isinstance(shape.parts[0], RevolvedProfile):
        parts, solids, sheets = _vessel_soup(shape, rng, defects)
    else:
        raise InputError(f"no soup recipe for the parts of a {shape.category} shape")
    return SoupShape(shape.category, shape.params, parts, solids, sheets,
                     {k: v for k, v in defects.items() if v})


def generate_soups(category: str, count: int, seed: int = 0) -> list:
    """``count`` soups of ``category``; soup ``i`` is the clean shape ``i`` of
    :func:`~.procedural.generate_shapes` with defects drawn from ``(seed, i)``."""
    shapes = generate_shapes(category, count, seed)
    return [soup_shape(shape, np.random.default_rng([seed, index, 1]))
            for index, shape in enumerate(shapes)]


def _obj_text(soup: SoupShape) -> str:
    lines = [f"# ShapeNet-style soup ({soup.category}): "
             + ", ".join(f"{k} x{v}" for k, v in soup.defects.items())]
    start = 1
    for part in soup.parts:
        lines.append(f"g {part.name}")
        lines.extend(f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in part.vertices)
        lines.extend(f"f {a + start} {b + start} {c + start}" for a, b, c in part.faces)
        start += len(part.vertices)
    return "\n".join(lines) + "\n"


def _glb_scene(soup: SoupShape) -> trimesh.Scene:
    scene = trimesh.Scene()
    for part in soup.parts:
        inverse = np.linalg.inv(part.transform)
        local = part.vertices @ inverse[:3, :3].T + inverse[:3, 3]
        scene.add_geometry(trimesh.Trimesh(local, part.faces, process=False),
                           node_name=part.name, geom_name=part.name, transform=part.transform)
    return scene


def write_soups(out_dir, category: str, count: int, seed: int = 0) -> list:
    """Write ``out_dir/<category>/<category>_<i>.obj`` (one group per part) or ``.glb`` (every
    third shape: parts as scene nodes with node transforms), each with a ``.json`` of its
    parameters and defects.  Returns the mesh paths.

    Every path is made by the output folder's :class:`~.paths.Tree` (a link out of it is
    refused); a file already at one of the names is kept when it holds exactly what this run
    would write and refused otherwise, before anything is written
    (:func:`.generated.write_generated`)."""
    from .generated import GeneratedItem, write_generated
    from .paths import Tree
    from .procedural import CATEGORIES, generate_shape

    if category not in CATEGORIES:
        raise InputError(f"unknown category {category!r}; choose one of {sorted(CATEGORIES)}")
    if count < 1:
        raise InputError(f"count must be positive, got {count}")
    tree = Tree(out_dir, "output folder")

    def files(index: int) -> dict:
        soup = soup_shape(generate_shape(category, index, seed),
                          np.random.default_rng([seed, index, 1]))
        stem = f"{category}/{category}_{index:04d}"
        mesh = (_glb_scene(soup).export(file_type="glb") if index % 3 == 2
                else _obj_text(soup).encode("utf-8"))
        return {f"{stem}{_soup_suffix(index)}": mesh,
                f"{stem}.json": (json.dumps({"seed": seed, "index": index, **soup.metadata()},
                                            indent=2) + "\n").encode("utf-8")}

    items = [GeneratedItem([f"{category}/{category}_{index:04d}{_soup_suffix(index)}",
                            f"{category}/{category}_{index:04d}.json"],
                           lambda index=index: files(index))
             for index in range(count)]
    paths = write_generated(tree, items)
    return [path for path in paths if path.suffix != ".json"]


def _soup_suffix(index: int) -> str:
    return ".glb" if index % 3 == 2 else ".obj"

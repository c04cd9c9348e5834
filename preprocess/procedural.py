"""The embedded example categories: seeded procedural chairs and tables built from boxes, and
vessels (vases, bottles, cups) that are surfaces of revolution.

Every chair and table is a union of oriented boxes, merged into one closed, consistently wound manifold
by manifold3d (through trimesh).  Because the parts are returned too, the exact sign of every
shape's SDF is known analytically everywhere, and its exact distance outside (the distance to
a union is the minimum of the distances).

Frame: y is up, the floor is y = 0, the seat's front faces +z; units are metres-like (a chair
is about 0.9 tall).  The preprocessor normalizes them like any other mesh.

Chair parameters (topology changes marked *): seat width, depth, thickness and height; leg
thickness and splay; leg layout* (3 legs, 4 legs, or a pedestal with 4 or 5 feet); back*
(none: a stool; a solid panel; or 2-4 vertical slats under a top rail), back height and tilt;
arm rests*; stretchers between the legs*.

Table parameters: top width, depth, thickness, height; leg thickness; legs* (4 legs or a
pedestal); apron*; lower shelf*.

Vessel parameters: kind* (vase, bottle or cup), height, and a radius profile from the foot to
the lip through seeded control points (belly, waist, neck), smoothly interpolated; closed by flat
discs at the foot and the lip.  A vessel is a solid of revolution about the y axis, so its exact
SDF is the 2D signed distance, in the meridian half-plane, of ``(sqrt(x^2 + z^2), y)`` to its
profile polygon (:class:`RevolvedProfile`); its mesh revolves that polygon with
:data:`VESSEL_SECTIONS` sections, which lie within ``radius * (1 - cos(pi / sections))`` of it.
"""

from __future__ import annotations

import numpy as np
from .errors import InputError
from .procedural_hard import HARD_CATEGORIES
from .shape_parts import (VESSEL_SECTIONS, OrientedBox, ProceduralShape, RevolvedProfile,
                          box as _box, rotation_x as _rotation_x, rotation_y as _rotation_y,
                          union_shape as _finish)

__all__ = ["OrientedBox", "RevolvedProfile", "ProceduralShape", "generate_chair",
           "generate_table", "generate_vessel", "generate_shapes", "generate_shape",
           "write_shapes", "CATEGORIES", "VESSEL_SECTIONS"]



def _leg(top, bottom, thickness) -> OrientedBox:
    """A square leg from ``top`` to ``bottom`` (3,) points."""
    top, bottom = np.asarray(top, float), np.asarray(bottom, float)
    axis = top - bottom
    length = np.linalg.norm(axis)
    y = axis / length
    x = np.cross(y, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-9 else np.array([1.0, 0, 0])
    z = np.cross(x, y)
    return OrientedBox(0.5 * (top + bottom), np.array([thickness, length, thickness]) / 2,
                       np.stack([x, y, z], axis=1))


def _pedestal(rng, height, thickness, reach, feet) -> list:
    parts = [_box([0, height / 2 + 0.02, 0], [thickness * 1.6, height, thickness * 1.6])]
    start = rng.uniform(0, np.pi)
    for k in range(feet):
        angle = start + 2 * np.pi * k / feet
        direction = np.array([np.cos(angle), 0.0, np.sin(angle)])
        rotation = _rotation_y(-angle)
        parts.append(OrientedBox(direction * reach / 2 + [0, 0.025, 0],
                                 np.array([reach / 2, 0.025, thickness / 2]), rotation))
    return parts


def generate_chair(rng: np.random.Generator) -> ProceduralShape:
    """One random chair (see the module docstring for its parameters)."""
    p = {
        "seat_width": rng.uniform(0.40, 0.62),
        "seat_depth": rng.uniform(0.38, 0.58),
        "seat_thickness": rng.uniform(0.03, 0.08),
        "seat_height": rng.uniform(0.40, 0.55),
        "leg_thickness": rng.uniform(0.03, 0.06),
        "leg_splay_deg": rng.uniform(0.0, 8.0),
        "legs": str(rng.choice(["four", "four", "three", "pedestal"])),
        "back": str(rng.choice(["solid", "solid", "slats", "none"], p=[0.35, 0.15, 0.35, 0.15])),
        "back_height": rng.uniform(0.30, 0.55),
        "back_tilt_deg": rng.uniform(0.0, 15.0),
        "slats": int(rng.integers(2, 5)),
        "arms": bool(rng.random() < 0.35),
        "stretchers": bool(rng.random() < 0.4),
    }
    w, d, t, h = p["seat_width"], p["seat_depth"], p["seat_thickness"], p["seat_height"]
    lt = p["leg_thickness"]
    parts = [_box([0, h - t / 2, 0], [w, t, d])]
    under = h - t  # underside of the seat
    splay = np.radians(p["leg_splay_deg"])
    if p["legs"] == "pedestal":
        parts += _pedestal(rng, under, lt, 0.45 * min(w, d) + 0.1, int(rng.integers(4, 6)))
        p["stretchers"] = False
    else:
        if p["legs"] == "four":
            corners = [(sx, sz) for sx in (-1, 1) for sz in (-1, 1)]
        else:
            corners = [(0, -1), (-1, 1), (1, 1)]
        for sx, sz in corners:
            top = np.array([sx * (w / 2 - lt), under + t / 2, sz * (d / 2 - lt)])
            spread = np.tan(splay) * under
            bottom = np.array([top[0] + sx * spread, 0.0, top[2] + sz * spread])
            parts.append(_leg(top, bottom, lt))
        p["stretchers"] = p["stretchers"] and p["legs"] == "four"
        if p["stretchers"]:
            y = 0.35 * under
            inset = np.tan(splay) * (under - y)
            for sx in (-1, 1):
                x = sx * (w / 2 - lt + inset)
                parts.append(_box([x, y, 0], [lt * 0.7, lt * 0.7, d - 2 * lt + 2 * inset]))
    if p["back"] != "none":
        tilt = np.radians(p["back_tilt_deg"])
        rotation = _rotation_x(-tilt)
        bh, bt = p["back_height"], max(0.6 * t, 0.03)
        base = np.array([0.0, h - 0.01, -d / 2 + bt / 2])
        up = rotation @ np.array([0.0, 1.0, 0.0])
        if p["back"] == "solid":
            parts.append(OrientedBox(base + up * bh / 2, np.array([w, bh, bt]) / 2, rotation))
        else:
            rail = 0.06
            parts.append(OrientedBox(base + up * (bh - rail / 2),
                                     np.array([w, rail, bt]) / 2, rotation))
            for k in range(p["slats"]):
                x = -w / 2 + lt / 2 + k * (w - lt) / (p["slats"] - 1)
                parts.append(OrientedBox(base + up * bh / 2 + [x, 0, 0],
                                         np.array([lt, bh, bt]) / 2, rotation))
    if p["arms"]:
        arm_y = h + rng.uniform(0.15, 0.25)
        for sx in (-1, 1):
            x = sx * (w / 2 - lt / 2)
            parts.append(_box([x, arm_y, 0.02], [lt * 1.2, 0.03, d * 0.85]))
            parts.append(_box([x, (arm_y + h) / 2, d / 2 - lt], [lt, arm_y - h + 0.02, lt]))
    return _finish("chairs", p, parts)


def generate_table(rng: np.random.Generator) -> ProceduralShape:
    """One random table (see the module docstring for its parameters)."""
    p = {
        "top_width": rng.uniform(0.8, 1.6),
        "top_depth": rng.uniform(0.6, 1.0),
        "top_thickness": rng.uniform(0.03, 0.07),
        "height": rng.uniform(0.65, 0.8),
        "leg_thickness": rng.uniform(0.04, 0.09),
        "legs": str(rng.choice(["four", "four", "pedestal"])),
        "apron": bool(rng.random() < 0.5),
        "shelf": bool(rng.random() < 0.3),
    }
    w, d, t, h, lt = (p["top_width"], p["top_depth"], p["top_thickness"], p["height"],
                      p["leg_thickness"])
    parts = [_box([0, h - t / 2, 0], [w, t, d])]
    if p["legs"] == "pedestal":
        parts += _pedestal(rng, h - t, lt, 0.35 * min(w, d) + 0.1, 4)
        p["apron"] = p["shelf"] = False
    else:
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(_box([sx * (w / 2 - lt), (h - t / 2) / 2, sz * (d / 2 - lt)],
                                  [lt, h - t / 2, lt]))
        if p["apron"]:
            parts.append(_box([0, h - t - 0.04, d / 2 - lt], [w - 2 * lt, 0.08, 0.02]))
            parts.append(_box([0, h - t - 0.04, -d / 2 + lt], [w - 2 * lt, 0.08, 0.02]))
        if p["shelf"]:
            parts.append(_box([0, 0.18, 0], [w - 2 * lt, 0.025, d - 2 * lt]))
    return _finish("tables", p, parts)


def generate_vessel(rng: np.random.Generator) -> ProceduralShape:
    """One random vessel (see the module docstring for its parameters)."""
    kind = str(rng.choice(["vase", "bottle", "cup"]))
    if kind == "cup":
        height, foot = rng.uniform(0.08, 0.14), rng.uniform(0.03, 0.045)
        controls = [foot, foot * rng.uniform(1.05, 1.3), foot * rng.uniform(1.2, 1.6)]
    elif kind == "bottle":
        height, foot = rng.uniform(0.22, 0.35), rng.uniform(0.03, 0.05)
        body = foot * rng.uniform(1.0, 1.2)
        controls = [foot, body, body, body * rng.uniform(0.85, 1.0), body * 0.45,
                    body * rng.uniform(0.28, 0.36), body * rng.uniform(0.28, 0.36)]
    else:
        height, foot = rng.uniform(0.2, 0.45), rng.uniform(0.04, 0.07)
        belly = foot * rng.uniform(1.4, 2.2)
        controls = [foot, belly, belly * rng.uniform(0.8, 1.0), foot * rng.uniform(0.6, 0.9),
                    foot * rng.uniform(0.8, 1.3)]
    heights = np.linspace(0.0, height, len(controls))
    samples = np.linspace(0.0, height, 48)
    # a smooth interpolation through the control radii (cosine blend between knots)
    position = np.interp(samples, heights, np.arange(len(controls)))
    low = np.floor(position).astype(int).clip(0, len(controls) - 2)
    blend = 0.5 - 0.5 * np.cos(np.pi * (position - low))
    radii = np.asarray(controls)[low] * (1 - blend) + np.asarray(controls)[low + 1] * blend
    profile = np.stack([radii, samples], axis=1)
    params = {"kind": kind, "height": height, "foot_radius": foot,
              "max_radius": float(radii.max())}
    part = RevolvedProfile(profile)
    mesh = part.mesh()
    if not (mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0):
        raise RuntimeError("generated vessel mesh is not a closed, outward-wound manifold")
    clean = {k: (round(float(v), 5) if isinstance(v, float) else v) for k, v in params.items()}
    return ProceduralShape("vessels", clean, [part], mesh)


#: Every category ``generate`` makes: the easy ones of this module, then the hard ones
#: (:mod:`.procedural_hard`: thin parts, articulation, holes).
CATEGORIES = {"chairs": generate_chair, "tables": generate_table, "vessels": generate_vessel,
              **HARD_CATEGORIES}


def generate_shapes(category: str, count: int, seed: int = 0) -> list:
    """``count`` shapes of ``category``; shape ``i`` depends only on ``(seed, i)``."""
    if category not in CATEGORIES:
        raise InputError(f"unknown category {category!r}; choose one of {sorted(CATEGORIES)}")
    if count < 1:
        raise InputError(f"count must be positive, got {count}")
    return [generate_shape(category, index, seed) for index in range(count)]


def generate_shape(category: str, index: int, seed: int = 0):
    """Shape ``index`` of :func:`generate_shapes` (made from ``(seed, index)`` alone)."""
    if category not in CATEGORIES:
        raise InputError(f"unknown category {category!r}; choose one of {sorted(CATEGORIES)}")
    return CATEGORIES[category](np.random.default_rng([seed, index]))


def shape_files(category: str, index: int, seed: int, shape) -> dict:
    """The files :func:`write_shapes` writes for ``shape`` (index ``index``): ``{relative
    path: bytes}``."""
    import json

    stem = f"{category}/{category}_{index:04d}"
    return {f"{stem}.obj": shape.mesh.export(file_type="obj").encode("utf-8"),
            f"{stem}.json": (json.dumps({"seed": seed, "index": index, **shape.params},
                                        indent=2) + "\n").encode("utf-8")}


def write_shapes(out_dir, category: str, count: int, seed: int = 0) -> list:
    """Write ``out_dir/<category>/<category>_<i>.obj`` (+ a ``.json`` of its parameters).

    Returns the mesh paths.  Every path is made by the output folder's
    :class:`~.paths.Tree` (a link out of it is refused); a file already at one of the names
    is kept when it holds exactly what this run would write (a rerun is idempotent) and
    refused otherwise, before anything is written (:func:`.generated.write_generated`).
    """
    from .generated import GeneratedItem, write_generated
    from .paths import Tree

    if category not in CATEGORIES:
        raise InputError(f"unknown category {category!r}; choose one of {sorted(CATEGORIES)}")
    if count < 1:
        raise InputError(f"count must be positive, got {count}")
    tree = Tree(out_dir, "output folder")
    items = []
    for index in range(count):
        stem = f"{category}/{category}_{index:04d}"
        items.append(GeneratedItem(
            [f"{stem}.obj", f"{stem}.json"],
            lambda index=index: shape_files(category, index, seed,
                                            generate_shape(category, index, seed))))
    paths = write_generated(tree, items)
    return [path for path in paths if path.suffix == ".obj"]

"""The hard procedural categories: thin parts, articulation and holes, each with its truth.

What the easy categories (chairs, tables, vessels: boxes and surfaces of revolution) do not
have, and real ones do:

- **airplanes**: a capsule fuselage with thin swept wings (1-2.5% of the span thick), a
  horizontal tail and a fin (conventional or T-tail*), wings low, mid or high*, 0, 2 or 4
  engines*, and a dihedral;
- **lamps**: a base (disc or block*), a thin stem (straight, a desk lamp's two- or three-link
  arm, or a floor lamp's arc*) and a shade (an open conical ring on thin spokes, a closed cone
  or a globe*);
- **humans**: capsule limbs of varied build and proportions in varied poses (standing, walking,
  sitting, reaching, crouching* and continuous joint angles between them);
- **quadrupeds**: a capsule body on four two-segment legs in a gait phase, a neck, a head and a
  curled tail, from dachshund to giraffe proportions;
- **mugs**: a solid body of revolution with one or two handles (a torus or a squared loop of
  boxes*): genus 1 or 2;
- **frames**: bars joined into windows of 1 x 1 to 3 x 3 panes, ladders with 3-7 rungs, or
  easels: genus 1 to 9.

(* topology changes.)  Every shape is a union of :mod:`.shape_parts` solids merged into one
closed manifold; its analytic SDF (:meth:`~.shape_parts.ProceduralShape.sdf`) has the exact
sign, the exact distance outside, and lies within the parts' tessellation error of the mesh.
Frame: y up, the floor at y = 0 where the shape stands, +z its front; metres-like units.
"""

from __future__ import annotations

import numpy as np

from .shape_parts import (Capsule, OrientedBox, ProceduralShape, RevolvedPolygon,
                          RevolvedProfile, Torus, box, frame_along, rotation_x, rotation_y,
                          rotation_z, union_shape)

__all__ = ["generate_airplane", "generate_lamp", "generate_human", "generate_quadruped",
           "generate_mug", "generate_frame", "HARD_CATEGORIES"]


def _on_floor(category, params, parts) -> ProceduralShape:
    """Union the parts after lifting them so that the lowest point touches y = 0."""
    lift = -min(float(part.mesh().bounds[0, 1]) for part in parts)
    if abs(lift) > 1e-12:
        parts = [_lifted(part, lift) for part in parts]
    return union_shape(category, params, parts)


def _lifted(part, lift):
    return _moved(part, np.eye(3), lift)


def _slab(root, direction, length, chord, thickness, up_hint=(0.0, 1.0, 0.0)) -> OrientedBox:
    """A thin plate from ``root`` along ``direction`` (its length), ``chord`` wide across,
    ``thickness`` thin along the normal nearest ``up_hint``."""
    along = np.asarray(direction, float) / np.linalg.norm(direction)
    normal = np.asarray(up_hint, float) - along * (along @ up_hint)
    normal /= np.linalg.norm(normal)
    across = np.cross(along, normal)
    rotation = np.stack([along, normal, across], axis=1)
    return OrientedBox(np.asarray(root, float) + along * length / 2,
                       np.array([length, thickness, chord]) / 2, rotation)


def generate_airplane(rng: np.random.Generator) -> ProceduralShape:
    """One random airplane (see the module docstring)."""
    p = {"length": rng.uniform(0.9, 1.5), "fuselage_radius": rng.uniform(0.035, 0.075),
         "span_ratio": rng.uniform(0.7, 1.5), "chord": rng.uniform(0.12, 0.3),
         "thickness_ratio": rng.uniform(0.01, 0.025), "sweep_deg": rng.uniform(-5.0, 40.0),
         "dihedral_deg": rng.uniform(-3.0, 8.0),
         "wing_mount": str(rng.choice(["low", "mid", "high"])),
         "wing_position": rng.uniform(0.45, 0.6), "engines": int(rng.choice([0, 2, 2, 4])),
         "tail": str(rng.choice(["conventional", "conventional", "t-tail"])),
         "tail_span": rng.uniform(0.25, 0.45), "fin_height": rng.uniform(0.1, 0.25)}
    length, radius = p["length"], p["fuselage_radius"]
    half_span = 0.5 * p["span_ratio"] * length
    parts = [Capsule(np.array([0, 0, -length / 2 + radius]),
                     np.array([0, 0, length / 2 - radius]), radius)]
    mount = {"low": -0.6, "mid": 0.0, "high": 0.6}[p["wing_mount"]] * radius
    wing_z = length / 2 - p["wing_position"] * length
    thickness = p["thickness_ratio"] * half_span * 2
    sweep, dihedral = np.radians(p["sweep_deg"]), np.radians(p["dihedral_deg"])
    for side in (-1.0, 1.0):
        direction = np.array([side * np.cos(sweep) * np.cos(dihedral), np.sin(dihedral),
                              -np.sin(sweep)])
        root = np.array([0.0, mount, wing_z])
        parts.append(_slab(root, direction, half_span, p["chord"], thickness))
        for k in range(p["engines"] // 2):
            at = root + direction * half_span * (0.3 + 0.3 * k)
            nacelle = 0.35 * radius
            parts.append(Capsule(at + [0, -1.6 * nacelle, 0.5 * p["chord"]],
                                 at + [0, -1.6 * nacelle, -0.25 * p["chord"]], nacelle))
            parts.append(box(at + [0, -0.8 * nacelle, 0.1 * p["chord"]],
                             [0.3 * nacelle, 1.7 * nacelle, 0.3 * p["chord"]]))
    tail_z = -length / 2 + 1.5 * radius
    fin_chord = 2.5 * radius + 0.1 * length
    fin = _slab([0, 0.5 * radius, tail_z], [0, 1.0, -0.5], p["fin_height"] * length / 1.2,
                fin_chord, 0.6 * thickness, up_hint=(1.0, 0.0, 0.0))
    parts.append(fin)
    tail_y = (fin.center[1] + fin.half[0] * 0.85 * fin.rotation[1, 0]
              if p["tail"] == "t-tail" else 0.2 * radius)
    tail_z2 = tail_z - (tail_y - 0.2 * radius) * 0.5 if p["tail"] == "t-tail" else tail_z
    for side in (-1.0, 1.0):
        parts.append(_slab([0, tail_y, tail_z2], [side, 0.0, -0.35],
                           p["tail_span"] * half_span, 0.6 * p["chord"], 0.7 * thickness))
    return _on_floor("airplanes", p, parts)


def generate_lamp(rng: np.random.Generator) -> ProceduralShape:
    """One random lamp (see the module docstring)."""
    p = {"stem": str(rng.choice(["straight", "arm", "arc"])),
         "height": rng.uniform(0.35, 1.6), "stem_radius": rng.uniform(0.006, 0.014),
         "base": str(rng.choice(["disc", "disc", "block"])),
         "base_radius": rng.uniform(0.08, 0.16), "base_height": rng.uniform(0.015, 0.05),
         "shade": str(rng.choice(["ring", "ring", "cone", "globe"])),
         "shade_radius": rng.uniform(0.08, 0.2), "shade_height": rng.uniform(0.08, 0.22),
         "shade_thickness": rng.uniform(0.004, 0.01), "tilt_deg": rng.uniform(-30.0, 60.0)}
    if p["stem"] == "straight":
        p["height"] = min(p["height"], 1.0)
    rb, hb, rs = p["base_radius"], p["base_height"], p["stem_radius"]
    parts = ([RevolvedProfile(np.array([[rb, 0.0], [rb, hb]]))] if p["base"] == "disc"
             else [box([0, hb / 2, 0], [1.6 * rb, hb, 1.2 * rb])])
    points = [np.array([0.0, hb * 0.5, 0.0])]
    if p["stem"] == "straight":
        points.append(np.array([0.0, p["height"], 0.0]))
    elif p["stem"] == "arm":
        links = int(rng.integers(2, 4))
        heading = rng.uniform(0, 2 * np.pi)
        outward = np.array([np.cos(heading), 0.0, np.sin(heading)])
        for k in range(links):
            elevation = rng.uniform(0.25, 1.4) * (1 if k % 2 == 0 else -0.5) + (0.6 if k == 0
                                                                                 else 0)
            step = (np.cos(elevation) * outward + [0, np.sin(elevation), 0]) * (
                p["height"] / links)
            nxt = points[-1] + step
            nxt[1] = max(nxt[1], hb + 0.1)
            points.append(nxt)
    else:
        reach = rng.uniform(0.3, 0.6) * p["height"]
        for angle in np.linspace(0.0, np.pi * rng.uniform(0.5, 0.8), 6)[1:]:
            points.append(np.array([reach * (1 - np.cos(angle)),
                                    hb + p["height"] * np.sin(angle) / np.sin(np.pi / 2),
                                    0.0]))
    for a, b in zip(points[:-1], points[1:]):
        parts.append(Capsule(a, b, rs))
    tip = points[-1]
    if p["stem"] == "straight":
        axis = np.array([0.0, 1.0, 0.0])
    else:
        tilt = np.radians(p["tilt_deg"])
        last = (points[-1] - points[-2]) / np.linalg.norm(points[-1] - points[-2])
        horizontal = np.array([last[0], 0.0, last[2]])
        horizontal = (horizontal / np.linalg.norm(horizontal) if np.linalg.norm(horizontal)
                      > 1e-6 else np.array([1.0, 0, 0]))
        axis = np.cos(tilt) * np.array([0, 1.0, 0]) - np.sin(tilt) * horizontal
        axis = -axis if p["stem"] == "arc" else axis
    rotation = frame_along(axis)  # the shade's axis: local y, the opening widening downwards
    r, h, t = p["shade_radius"], p["shade_height"], p["shade_thickness"]
    if p["shade"] == "globe":
        parts.append(Capsule(tip - axis * 0.6 * r, tip - axis * 0.6 * r, 0.6 * r))
    elif p["shade"] == "cone":
        top = 0.25 * r
        parts.append(RevolvedPolygon(np.array([[0.0, -h * 0.8], [r, -h * 0.8], [top, h * 0.2],
                                               [0.0, h * 0.2]]), tip, rotation))
    else:
        top = rng.uniform(0.35, 0.8) * r
        ring = np.array([[r - t, -h], [r, -h], [top + t, 0.0], [top, 0.0]])
        # counter-clockwise in the (radius, height) plane
        parts.append(RevolvedPolygon(ring[::-1] if _area(ring) < 0 else ring,
                                     tip - axis * 0.3 * h, rotation))
        rim = tip - axis * 0.3 * h
        spokes = int(rng.integers(2, 5))
        for k in range(spokes):
            angle = 2 * np.pi * k / spokes
            out = rotation @ np.array([np.cos(angle), 0.0, np.sin(angle)])
            parts.append(Capsule(tip, rim + out * (top + t / 2), max(0.6 * rs, 0.004)))
        parts.append(Capsule(tip, tip, 2.0 * rs))  # the socket where the spokes meet
    if p["stem"] == "straight":
        del p["tilt_deg"]  # a straight stem holds its shade level
    return _on_floor("lamps", p, parts)


def _area(polygon) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


#: Joint angles (degrees) of the pose families; every angle is then jittered.
POSES = {
    # torso bend, (hip flex, hip abduct, knee) x (left, right),
    # (shoulder flex, shoulder abduct, elbow) x (left, right)
    "standing": (0, (0, 4, 0), (0, 4, 0), (0, 8, 10), (0, 8, 10)),
    "walking": (5, (25, 2, 10), (-15, 2, 30), (-25, 5, 20), (25, 5, 20)),
    "sitting": (5, (90, 8, 90), (90, 8, 90), (30, 8, 60), (30, 8, 60)),
    "reaching": (10, (0, 6, 0), (10, 6, 5), (150, 15, 10), (40, 10, 60)),
    "crouching": (35, (110, 15, 130), (110, 15, 130), (60, 20, 40), (60, 20, 40)),
    "t-pose": (0, (0, 8, 0), (0, 8, 0), (0, 90, 0), (0, 90, 0)),
}


def _limb(direction_rotation, bend_degrees) -> tuple:
    """Directions (3,) of a limb's two segments: hanging down, turned by
    ``direction_rotation``, the second bent by ``bend_degrees`` about the limb's x axis."""
    first = direction_rotation @ np.array([0.0, -1.0, 0.0])
    second = direction_rotation @ rotation_x(np.radians(bend_degrees)) @ np.array(
        [0.0, -1.0, 0.0])
    return first, second


def generate_human(rng: np.random.Generator) -> ProceduralShape:
    """One random capsule human (see the module docstring)."""
    pose = str(rng.choice(list(POSES)))
    bend, *joints = POSES[pose]
    jitter = lambda angle, spread=15.0: float(angle + rng.uniform(-spread, spread))  # noqa: E731
    p = {"pose": pose, "height": rng.uniform(1.5, 1.95), "build": rng.uniform(0.8, 1.3),
         "leg_ratio": rng.uniform(0.9, 1.1), "arm_ratio": rng.uniform(0.9, 1.1),
         "torso_bend_deg": jitter(bend), "turn_deg": rng.uniform(-25.0, 25.0)}
    H, build = p["height"], p["build"]
    thigh, shin = 0.245 * H * p["leg_ratio"], 0.245 * H * p["leg_ratio"]
    upper, fore = 0.17 * H * p["arm_ratio"], 0.16 * H * p["arm_ratio"]
    pelvis = np.zeros(3)
    torso = rotation_y(np.radians(p["turn_deg"])) @ rotation_x(np.radians(p["torso_bend_deg"]))
    chest = pelvis + torso @ np.array([0.0, 0.29 * H, 0.0])
    parts = [Capsule(pelvis, chest, 0.075 * H * build),
             Capsule(pelvis + [-0.06 * H, 0, 0], pelvis + [0.06 * H, 0, 0], 0.07 * H * build)]
    head = chest + torso @ np.array([0.0, 0.14 * H, 0.01 * H])
    parts += [Capsule(chest, head, 0.03 * H), Capsule(head, head, 0.065 * H)]
    names = ("left", "right")
    for k, side in enumerate((1.0, -1.0)):
        flex, abduct, knee = (jitter(a) for a in joints[k])
        p[f"{names[k]}_hip_deg"], p[f"{names[k]}_knee_deg"] = flex, max(knee, 0.0)
        turn = rotation_x(-np.radians(flex)) @ rotation_z(side * np.radians(abduct))
        first, second = _limb(turn, max(knee, 0.0))
        hip = pelvis + np.array([side * 0.09 * H, -0.02 * H, 0.0])
        knee_at = hip + first * thigh
        ankle = knee_at + second * shin
        parts += [Capsule(hip, knee_at, 0.055 * H * build),
                  Capsule(knee_at, ankle, 0.04 * H * build)]
        foot = turn @ rotation_x(np.radians(max(knee, 0.0) - 90.0)) @ np.array([0, -1.0, 0])
        parts.append(Capsule(ankle, ankle + foot * 0.12 * H, 0.025 * H))
        flex, abduct, elbow = (jitter(a, 20.0) for a in joints[2 + k])
        p[f"{names[k]}_shoulder_deg"], p[f"{names[k]}_elbow_deg"] = flex, max(elbow, 0.0)
        turn = torso @ rotation_x(-np.radians(flex)) @ rotation_z(side * np.radians(abduct))
        first, second = _limb(turn, -max(elbow, 0.0))
        shoulder = chest + torso @ np.array([side * 0.11 * H, -0.02 * H, 0.0])
        elbow_at = shoulder + first * upper
        wrist = elbow_at + second * fore
        parts += [Capsule(chest, shoulder, 0.04 * H * build),
                  Capsule(shoulder, elbow_at, 0.032 * H * build),
                  Capsule(elbow_at, wrist, 0.026 * H * build),
                  Capsule(wrist, wrist + second * 0.06 * H, 0.022 * H)]
    return _on_floor("humans", p, parts)


def generate_quadruped(rng: np.random.Generator) -> ProceduralShape:
    """One random four-legged animal (see the module docstring)."""
    p = {"body_length": rng.uniform(0.5, 1.4), "body_ratio": rng.uniform(0.12, 0.25),
         "leg_ratio": rng.uniform(0.35, 1.3), "neck_ratio": rng.uniform(0.15, 1.0),
         "neck_deg": rng.uniform(10.0, 80.0), "head_ratio": rng.uniform(0.18, 0.35),
         "tail_ratio": rng.uniform(0.0, 0.8), "tail_curl_deg": rng.uniform(-40.0, 90.0),
         "gait_phase": rng.uniform(0.0, 2 * np.pi), "stride_deg": rng.uniform(0.0, 35.0),
         "knee_deg": rng.uniform(0.0, 40.0), "grazing": bool(rng.random() < 0.25)}
    L = p["body_length"]
    r = p["body_ratio"] * L
    leg = p["leg_ratio"] * L
    hips, shoulders = np.array([0.0, 0.0, -L / 2]), np.array([0.0, 0.0, L / 2])
    parts = [Capsule(hips, shoulders, r)]
    for k, (end, side) in enumerate(((hips, 1.0), (hips, -1.0), (shoulders, 1.0),
                                     (shoulders, -1.0))):
        phase = p["gait_phase"] + np.pi * (k % 2) + (np.pi / 2 if k >= 2 else 0.0)
        swing = np.radians(p["stride_deg"]) * np.sin(phase)
        bend = p["knee_deg"] * (1 if k >= 2 else -1) * (0.5 + 0.5 * np.cos(phase))
        top = end + np.array([side * 0.6 * r, -0.3 * r, 0.0])
        first, second = _limb(rotation_x(-swing), bend)
        knee = top + first * leg / 2
        foot = knee + second * leg / 2
        parts += [Capsule(top, knee, 0.35 * r), Capsule(knee, foot, 0.22 * r)]
    neck_angle = np.radians(-40.0 if p["grazing"] else p["neck_deg"])
    neck_dir = np.array([0.0, np.sin(neck_angle), np.cos(neck_angle)])
    head_at = shoulders + neck_dir * p["neck_ratio"] * L
    parts.append(Capsule(shoulders, head_at, 0.45 * r))
    snout = np.array([0.0, -0.3, 1.0]) / np.hypot(0.3, 1.0)
    parts.append(Capsule(head_at, head_at + snout * p["head_ratio"] * L, 0.4 * r))
    if p["tail_ratio"] > 0.05:
        start, direction = hips, np.array([0.0, 0.3, -1.0]) / np.hypot(0.3, 1.0)
        for _ in range(3):
            direction = rotation_x(np.radians(p["tail_curl_deg"] / 3)) @ direction
            nxt = start + direction * p["tail_ratio"] * L / 3
            parts.append(Capsule(start, nxt, 0.12 * r))
            start = nxt
    return _on_floor("quadrupeds", p, parts)


def generate_mug(rng: np.random.Generator) -> ProceduralShape:
    """One random mug, pitcher or trophy (see the module docstring)."""
    p = {"height": rng.uniform(0.08, 0.2), "radius": rng.uniform(0.035, 0.07),
         "taper": rng.uniform(0.7, 1.3), "handles": int(rng.choice([1, 1, 2])),
         "handle": str(rng.choice(["round", "round", "square"])),
         "handle_size": rng.uniform(0.35, 0.6), "handle_thickness": rng.uniform(0.06, 0.16),
         "foot": bool(rng.random() < 0.3)}
    h, radius = p["height"], p["radius"]
    top = radius * p["taper"]
    profile = [[radius, 0.0], [0.5 * (radius + top), 0.5 * h], [top, h]]
    if p["foot"]:
        profile = [[0.6 * radius, 0.0], [0.35 * radius, 0.25 * h], [radius, 0.35 * h],
                   [top, h]]
    parts = [RevolvedProfile(np.array(profile))]
    size = p["handle_size"] * h
    thick = p["handle_thickness"] * size
    for side in ((1.0,) if p["handles"] == 1 else (1.0, -1.0)):
        wall = max(radius, top) if not p["foot"] else max(radius, top)
        if p["handle"] == "round":
            center = np.array([side * (wall + 0.55 * size - thick), 0.55 * h, 0.0])
            parts.append(Torus(center, 0.55 * size, thick / 2, rotation_x(np.pi / 2)))
        else:
            reach = wall + 0.8 * size
            for y in (0.55 * h - 0.45 * size, 0.55 * h + 0.45 * size):
                parts.append(box([side * (wall + reach) / 2 - side * thick, y, 0],
                                 [reach - wall + 2 * thick, thick, thick]))
            parts.append(box([side * reach, 0.55 * h, 0], [thick, 0.9 * size + thick, thick]))
    return _on_floor("mugs", p, parts)


def generate_frame(rng: np.random.Generator) -> ProceduralShape:
    """One random frame, ladder or easel (see the module docstring)."""
    kind = str(rng.choice(["window", "ladder", "easel"]))
    p = {"kind": kind, "width": rng.uniform(0.3, 0.9), "height": rng.uniform(0.4, 1.2),
         "bar": rng.uniform(0.015, 0.05), "depth": rng.uniform(0.015, 0.06)}
    w, h, bar, depth = p["width"], p["height"], p["bar"], p["depth"]
    parts = []
    if kind == "ladder":
        p["rungs"] = int(rng.integers(3, 8))
        p["height"] = h = max(h, 0.6)
        for x in (-w / 2, w / 2):
            parts.append(box([x, h / 2, 0], [bar, h, depth]))
        for k in range(p["rungs"]):
            y = h * (k + 1) / (p["rungs"] + 1)
            parts.append(Capsule(np.array([-w / 2, y, 0]), np.array([w / 2, y, 0]),
                                 0.4 * min(bar, depth)))
        lean = np.radians(rng.uniform(0.0, 15.0))
        parts = [_moved(part, rotation_x(-lean)) for part in parts]
    else:
        p["columns"], p["rows"] = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        for y in np.linspace(bar / 2, h - bar / 2, p["rows"] + 1):
            parts.append(box([0, y, 0], [w, bar, depth]))
        for x in np.linspace(-w / 2 + bar / 2, w / 2 - bar / 2, p["columns"] + 1):
            parts.append(box([x, h / 2, 0], [bar, h, depth]))
        if kind == "easel":
            lift = rng.uniform(0.1, 0.4) * h
            lean = rotation_x(np.radians(-12.0))
            parts = [_moved(part, lean, lift) for part in parts]
            top = lean @ np.array([0.0, h - bar / 2, 0.0]) + [0.0, lift, 0.0]  # the top bar
            for foot in ([-w / 2, 0, 0.15 * h], [w / 2, 0, 0.15 * h], [0, 0, -0.45 * h]):
                parts.append(Capsule(np.asarray(foot, float), top, 0.5 * bar))
    return _on_floor("frames", p, parts)


def _moved(part, rotation, lift=0.0):
    """``part`` turned by ``rotation`` about the origin, then lifted by ``lift``."""
    up = np.array([0.0, lift, 0.0])
    if isinstance(part, OrientedBox):
        return OrientedBox(rotation @ part.center + up, part.half, rotation @ part.rotation)
    if isinstance(part, Capsule):
        return Capsule(rotation @ part.start + up, rotation @ part.end + up, part.radius)
    if isinstance(part, Torus):
        return Torus(rotation @ part.center + up, part.major, part.minor,
                     rotation @ part.rotation)
    if isinstance(part, RevolvedPolygon):
        return RevolvedPolygon(part.polygon, rotation @ part.center + up,
                               rotation @ part.rotation)
    if isinstance(part, RevolvedProfile):
        return RevolvedPolygon(part.polygon(), up, rotation)
    raise TypeError(f"cannot move a {type(part).__name__}")


HARD_CATEGORIES = {"airplanes": generate_airplane, "lamps": generate_lamp,
                   "humans": generate_human, "quadrupeds": generate_quadruped,
                   "mugs": generate_mug, "frames": generate_frame}

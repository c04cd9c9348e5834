"""The solids the procedural categories are built from, each with its exact SDF and a mesh.

A generated shape is a union of parts (:class:`ProceduralShape`): the sign of the union's SDF is
the sign of the minimum over the parts, exact everywhere; outside, the minimum is the exact
distance too; inside, its magnitude bounds the depth from below.

Parts:

- :class:`OrientedBox`: a box; its mesh is exact.
- :class:`RevolvedProfile`: a solid of revolution about the y axis whose meridian polygon runs
  from the axis at the foot, along a profile, back to the axis at the lip (the vessels).
- :class:`RevolvedPolygon`: any simple meridian polygon in the half-plane radius >= 0, placed
  anywhere (a lamp's open shade is a ring; a hollow mug touches the axis at its floor only).
- :class:`Capsule`: a segment swept by a ball (limbs, fuselages, stems); a zero-length one is a
  ball.
- :class:`Torus`: a ring about a placed axis (handles).

Curved parts are tessellated: their meshes' vertices lie on the exact surface and their faces
within :meth:`tessellation_error` of it, so the SDF of a curved shape's mesh (what the
preprocessor reads) and the analytic SDF differ by at most that much.

Placement: a part with ``center`` (3,) and ``rotation`` (3, 3) has its local axes as the
rotation's columns in the world frame; a world point ``p`` is ``(p - center) @ rotation``
locally.  Frames are y up, metres-like.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

__all__ = ["OrientedBox", "RevolvedProfile", "RevolvedPolygon", "Capsule", "Torus",
           "ProceduralShape", "VESSEL_SECTIONS", "CAPSULE_SECTIONS", "box", "rotation_x",
           "rotation_y", "rotation_z", "frame_along", "union_shape"]

#: Sections around the axis of a vessel's mesh.
VESSEL_SECTIONS = 128
#: Sections around (and along the caps of) a capsule's mesh.
CAPSULE_SECTIONS = 24
#: Sections around a placed revolved polygon's axis; a torus's (major, minor) sections.
REVOLVED_SECTIONS = 64
TORUS_SECTIONS = (48, 20)


def _sagitta(radius: float, sections: int) -> float:
    """How far a chord of a circle of ``radius`` split into ``sections`` lies inside it."""
    return float(radius) * (1.0 - np.cos(np.pi / sections))


def _placement(center, rotation) -> np.ndarray:
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[:3, 3] = center
    return transform


def _polygon_sdf(q: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(n,) signed distance of (n, 2) meridian points ``(radius, height)`` to the solid the
    closed ``polygon`` (m, 2) sweeps about the axis; edges on the axis are no surface."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    edge = b - a
    t = np.clip(np.einsum("nij,ij->ni", q[:, None, :] - a[None], edge)
                / np.einsum("ij,ij->i", edge, edge), 0.0, 1.0)
    nearest = a[None] + t[..., None] * edge[None]
    surface = ~((np.abs(a[:, 0]) < 1e-12) & (np.abs(b[:, 0]) < 1e-12))
    distance = np.linalg.norm(q[:, None, :] - nearest[:, surface], axis=2).min(axis=1)
    # even-odd rule with a ray towards +radius
    crosses = (a[None, :, 1] > q[:, None, 1]) != (b[None, :, 1] > q[:, None, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        at = a[None, :, 0] + (q[:, None, 1] - a[None, :, 1]) * edge[None, :, 0] / edge[None, :, 1]
    inside = (np.count_nonzero(crosses & (q[:, None, 0] < at), axis=1) % 2) == 1
    return np.where(inside, -distance, distance)


def _revolve(polygon: np.ndarray, sections: int) -> trimesh.Trimesh:
    """The closed mesh of ``polygon`` (counter-clockwise in the (radius, height) plane)
    revolved about the local y axis."""
    on_axis = np.abs(polygon[:, 0]) < 1e-12
    if on_axis.any():  # an open line from the axis back to the axis (the axis edge left out)
        ends = np.flatnonzero(on_axis & np.roll(on_axis, -1))
        if len(ends) != 1:
            raise ValueError("a revolved polygon touches the axis along exactly one edge")
        line = np.roll(polygon, -(ends[0] + 1), axis=0)
    else:  # a ring: the closed loop
        line = np.vstack([polygon, polygon[:1]])
    revolved = trimesh.creation.revolve(line, sections=sections)
    # revolve() turns the (radius, height) plane about its y axis into 3D with the height
    # along +z: rotate it to +y.
    revolved.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    return revolved


@dataclass(frozen=True)
class OrientedBox:
    """A box with centre ``center`` (3,), half extents ``half`` (3,) and rotation ``rotation``
    (3, 3) whose columns are the box axes in the world frame."""

    center: np.ndarray
    half: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def sdf(self, points) -> np.ndarray:
        """(n,) exact signed distance of (n, 3) points to the box (> 0 outside)."""
        local = (np.asarray(points, dtype=np.float64) - self.center) @ self.rotation
        q = np.abs(local) - self.half
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
        inside = np.minimum(q.max(axis=1), 0.0)
        return outside + inside

    def mesh(self) -> trimesh.Trimesh:
        return trimesh.creation.box(extents=2 * np.asarray(self.half),
                                    transform=_placement(self.center, self.rotation))

    def tessellation_error(self) -> float:
        return 0.0


@dataclass(frozen=True)
class RevolvedProfile:
    """A solid of revolution about the y axis: the region between the axis and the profile
    ``(radius, height)`` points (m, 2), radius > 0, heights increasing from the foot to the lip.
    """

    profile: np.ndarray

    def polygon(self) -> np.ndarray:
        """(m + 2, 2) closed region in the meridian half-plane, counter-clockwise: the foot's
        centre, the profile, the lip's centre."""
        profile = np.asarray(self.profile, dtype=np.float64)
        return np.vstack([[0.0, profile[0, 1]], profile, [0.0, profile[-1, 1]]])

    def sdf(self, points) -> np.ndarray:
        """(n,) exact signed distance of (n, 3) points to the solid (> 0 outside)."""
        points = np.asarray(points, dtype=np.float64)
        q = np.stack([np.hypot(points[:, 0], points[:, 2]), points[:, 1]], axis=1)
        return _polygon_sdf(q, self.polygon())

    def mesh(self) -> trimesh.Trimesh:
        """The polygon revolved with :data:`VESSEL_SECTIONS` sections, y up."""
        return _revolve(self.polygon(), VESSEL_SECTIONS)

    def tessellation_error(self) -> float:
        return _sagitta(np.max(self.profile[:, 0]), VESSEL_SECTIONS)


@dataclass(frozen=True)
class RevolvedPolygon:
    """The solid a simple meridian polygon ``(radius, height)`` (m, 2), counter-clockwise,
    radius >= 0, sweeps about its local y axis; placed by ``center`` and ``rotation``.  The
    polygon either stays off the axis (a ring) or touches it along one edge."""

    polygon: np.ndarray
    center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def sdf(self, points) -> np.ndarray:
        """(n,) exact signed distance of (n, 3) points to the solid (> 0 outside)."""
        local = (np.asarray(points, dtype=np.float64) - self.center) @ self.rotation
        q = np.stack([np.hypot(local[:, 0], local[:, 2]), local[:, 1]], axis=1)
        return _polygon_sdf(q, np.asarray(self.polygon, dtype=np.float64))

    def mesh(self) -> trimesh.Trimesh:
        mesh = _revolve(np.asarray(self.polygon, dtype=np.float64), REVOLVED_SECTIONS)
        mesh.apply_transform(_placement(self.center, self.rotation))
        return mesh

    def tessellation_error(self) -> float:
        return _sagitta(np.max(np.asarray(self.polygon)[:, 0]), REVOLVED_SECTIONS)


@dataclass(frozen=True)
class Capsule:
    """The points within ``radius`` of the segment from ``start`` (3,) to ``end`` (3,)."""

    start: np.ndarray
    end: np.ndarray
    radius: float

    def sdf(self, points) -> np.ndarray:
        """(n,) exact signed distance of (n, 3) points to the capsule (> 0 outside)."""
        points = np.asarray(points, dtype=np.float64)
        a, b = np.asarray(self.start, float), np.asarray(self.end, float)
        axis = b - a
        length2 = float(axis @ axis)
        t = np.zeros(len(points)) if length2 == 0 else np.clip((points - a) @ axis / length2,
                                                                 0.0, 1.0)
        return np.linalg.norm(points - a - t[:, None] * axis, axis=1) - self.radius

    def mesh(self) -> trimesh.Trimesh:
        a, b = np.asarray(self.start, float), np.asarray(self.end, float)
        length = float(np.linalg.norm(b - a))
        if length < 1e-9:
            mesh = trimesh.creation.uv_sphere(self.radius, count=[CAPSULE_SECTIONS] * 2)
            mesh.apply_translation(a)
            return mesh
        mesh = trimesh.creation.capsule(height=length, radius=self.radius,
                                        count=[CAPSULE_SECTIONS] * 2)
        # the capsule lies along local z; the frame's y column is the segment
        mesh.apply_transform(_placement(0.5 * (a + b), frame_along(b - a)
                                        @ rotation_x(-np.pi / 2)))
        return mesh

    def tessellation_error(self) -> float:
        return 2.0 * _sagitta(self.radius, CAPSULE_SECTIONS // 2)


@dataclass(frozen=True)
class Torus:
    """A ring of tube radius ``minor`` whose centre circle (radius ``major``) lies in the local
    x-z plane, about the local y axis, placed by ``center`` and ``rotation``."""

    center: np.ndarray
    major: float
    minor: float
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def sdf(self, points) -> np.ndarray:
        """(n,) exact signed distance of (n, 3) points to the torus (> 0 outside)."""
        local = (np.asarray(points, dtype=np.float64) - self.center) @ self.rotation
        ring = np.hypot(local[:, 0], local[:, 2]) - self.major
        return np.hypot(ring, local[:, 1]) - self.minor

    def mesh(self) -> trimesh.Trimesh:
        mesh = trimesh.creation.torus(self.major, self.minor, major_sections=TORUS_SECTIONS[0],
                                      minor_sections=TORUS_SECTIONS[1])
        # trimesh's torus turns about its z axis: bring that axis to local y
        mesh.apply_transform(_placement(self.center, self.rotation @ rotation_x(-np.pi / 2)))
        return mesh

    def tessellation_error(self) -> float:
        return (_sagitta(self.major + self.minor, TORUS_SECTIONS[0])
                + 2.0 * _sagitta(self.minor, TORUS_SECTIONS[1]))


@dataclass
class ProceduralShape:
    """A generated shape: its parameters, its parts and its merged mesh."""

    category: str
    params: dict
    parts: list
    mesh: trimesh.Trimesh

    def sdf(self, points) -> np.ndarray:
        """(n,) SDF of the union of the parts, in the shape's own frame.

        The sign is exact everywhere and the value is exact outside; inside, its magnitude is
        a lower bound of the true depth (the minimum over parts).  Curved parts' meshes lie
        within :meth:`tessellation_error` of it.
        """
        return np.min([part.sdf(points) for part in self.parts], axis=0)

    def tessellation_error(self) -> float:
        """How far the mesh's surface may lie from the analytic surface (0 for boxes)."""
        return max(part.tessellation_error() for part in self.parts)


def box(center, size, rotation=None) -> OrientedBox:
    """An :class:`OrientedBox` from its centre and full ``size`` (3,)."""
    return OrientedBox(np.asarray(center, float), 0.5 * np.asarray(size, float),
                       np.eye(3) if rotation is None else rotation)


def rotation_x(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rotation_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rotation_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def frame_along(direction) -> np.ndarray:
    """(3, 3) rotation whose y column is ``direction`` (normalized), x and z completing it."""
    y = np.asarray(direction, float) / np.linalg.norm(direction)
    helper = np.array([0.0, 0.0, 1.0]) if abs(y[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(y, helper)
    x /= np.linalg.norm(x)
    return np.stack([x, y, np.cross(x, y)], axis=1)


def union_shape(category, params, parts) -> ProceduralShape:
    """The parts merged into one closed manifold (manifold3d), as a :class:`ProceduralShape`."""
    mesh = trimesh.boolean.union([part.mesh() for part in parts], engine="manifold")
    if not (mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0):
        raise RuntimeError(f"generated {category} mesh is not a closed, outward-wound manifold")
    clean = {k: (round(float(v), 5) if isinstance(v, float) else v) for k, v in params.items()}
    return ProceduralShape(category, clean, parts, mesh)

"""One mesh to DeepSDF training data: normalize, scan, sample, sign, write."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import trimesh

from . import formats
from .cameras import CameraRig
from .checks import sample_count_problem, sign_disagreement
from .errors import InputError, PreprocessError
from .mesh_io import (closed_orientation, distinct_triangles, load_mesh, position_ids,
                      validate_mesh)
from .normalize import normalization_parameters, to_normalized, to_original
from .partial_scan import VirtualScanConfig, instance_scan
from .provenance import fingerprints
from .sampling import PRESETS, SamplingConfig, draw_samples
from .scan import GRAZING, ScanAccumulator, Scanner
from .sdf import SIGN_METHODS, signed_distance
from .surface import VisibleSurface, one_closed_surface, sealed_surfaces

__all__ = ["PreprocessConfig", "MeshSamples", "sample_mesh", "preprocess_instance",
           "instance_seed", "make_scanner", "BACKENDS"]

logger = logging.getLogger(__name__)

#: The scanners; the first is the default.
BACKENDS = ("pyrender", "raycast")

#: Manifest warnings fire above these fractions.
_BACK_OBSERVATION_WARNING = 0.01
_TWO_SIDED_WARNING = 0.01

@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that decides the output for a mesh (the seed aside)."""

    sampling: SamplingConfig = field(default_factory=lambda: PRESETS["train"])  # sample counts
    rig: CameraRig = field(default_factory=CameraRig)  # the virtual depth cameras
    sign_method: str = "vote"  # "vote" (reference, default) or "winding"
    neighbours: int = 11  # voters per sample for the reference sign vote
    surface_samples: int = 30_000  # points written to SurfaceSamples
    grazing: float = GRAZING  # pixels with |n . view| below this are dropped
    partial_scan: VirtualScanConfig | None = None  # also write a one-view PartialScans file
    min_sign_fraction: float = 0.01  # fail an instance keeping fewer samples of either sign
    #                                  than this fraction of the samples drawn

    def __post_init__(self):
        if self.sign_method not in SIGN_METHODS:
            raise InputError(f"unknown sign method {self.sign_method!r}; "
                             f"choose one of {SIGN_METHODS}")
        if self.neighbours < 1:
            raise InputError(f"neighbours must be at least 1, got {self.neighbours}")
        if not 0 <= self.min_sign_fraction < 0.5:
            raise InputError(f"min_sign_fraction must lie in [0, 0.5), got "
                             f"{self.min_sign_fraction}")

    def to_dict(self) -> dict:
        """A JSON-ready dict (the manifest's ``config``); :meth:`from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "PreprocessConfig":
        """The configuration a manifest records (:meth:`to_dict`, after a JSON round trip:
        lists become the tuples they were).  Keys it does not know are ignored, so a
        manifest written by an older version reads with today's defaults for the rest."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        if isinstance(values.get("sampling"), dict):
            sampling = dict(values["sampling"])
            sampling["variances"] = tuple(sampling.get("variances", ()))
            values["sampling"] = SamplingConfig(**sampling)
        if isinstance(values.get("rig"), dict):
            values["rig"] = CameraRig(**values["rig"])
        if isinstance(values.get("partial_scan"), dict):
            scan = dict(values["partial_scan"])
            scan["elevation"] = tuple(scan.get("elevation", VirtualScanConfig.elevation))
            values["partial_scan"] = VirtualScanConfig(**scan)
        return cls(**values)


#: The camera count of the reference rig (the sign vote is sized for it).
REFERENCE_VIEWS = 100


@dataclass
class MeshSamples:
    """What :func:`sample_mesh` computes for one mesh.

    Attributes
    ----------
    points : (n, 3) float64, normalized frame
        Kept samples.
    sdf : (n,) float64
        Their signed distances (> 0 outside).
    surface_points, surface_normals : (m, 3) float64
        SurfaceSamples, **original** frame (normals are unit and frame-independent).
    occupancy_points : (u, 3) float32 ; occupied : (u,) bool
        The kept uniform samples of the cube and whether each is inside (for volumetric IoU,
        as Occupancy Networks evaluate; works on open meshes because the sign does).
    offset : (3,) float64 ; scale : float
        ``normalized = (original + offset) * scale``.
    stats : dict
        Scan statistics, sample counts, dropped fraction, warnings, timings.
    """

    points: np.ndarray
    sdf: np.ndarray
    surface_points: np.ndarray
    surface_normals: np.ndarray
    occupancy_points: np.ndarray
    occupied: np.ndarray
    offset: np.ndarray
    scale: float
    stats: dict


def instance_seed(key: str, seed: int) -> int:
    """A stable 63-bit seed from an instance key (e.g. ``"chairs/0001"``) and the run seed."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def recorded_scan(manifest: dict, key: str, mesh: trimesh.Trimesh, offset, scale, *,
                  view: int = 0) -> dict:
    """The single-view scan of instance ``key`` (``class/instance``) exactly as the run that
    wrote ``manifest`` made it (its ``PartialScans`` file) or would have: that run's
    virtual-scan settings (default ones when it wrote none) and the instance's seed.
    ``view > 0`` is a further seeded viewpoint (seed + ``view``).

    ``mesh`` is the instance's source mesh (original frame), ``offset`` and ``scale`` its
    NormalizationParameters.  Returns the ``PartialScans`` dict (depth, K, pose).
    """
    config = PreprocessConfig.from_dict(manifest.get("config") or {}).partial_scan
    seed = instance_seed(key, int(manifest.get("seed", 0))) + view
    return instance_scan(mesh, offset, scale, seed, config or VirtualScanConfig())


def make_scanner(backend: str, rig: CameraRig) -> Scanner:
    """Create a :class:`~.scan.Scanner`: ``"pyrender"`` (OpenGL, EGL headless) or
    ``"raycast"`` (no OpenGL)."""
    if backend == "raycast":
        from .raycast import RayCastScanner

        return RayCastScanner(rig)
    if backend == "pyrender":
        from .render_gl import OpenGLScanner

        try:
            return OpenGLScanner(rig)
        except Exception as error:  # EGL/driver failures come in many types
            raise PreprocessError(
                f"cannot create an OpenGL context ({type(error).__name__}: {error}); install "
                "Mesa's EGL (apt-get install libegl1 libgl1-mesa-dri) or use the raycast backend"
            ) from error
    raise InputError(f"unknown scanner backend {backend!r}; choose one of {BACKENDS}")


def sample_mesh(mesh: trimesh.Trimesh, config: PreprocessConfig, scanner: Scanner,
                rng: np.random.Generator | int) -> MeshSamples:
    """Validate (:func:`~.mesh_io.validate_mesh`), normalize, scan, sample and sign one mesh
    (nothing is written).

    Raises
    ------
    MeshError, PreprocessError
        For unusable meshes, for meshes the cameras do not see, when too few samples of
        either sign survive the vote (``config.min_sign_fraction``), when an independent
        check (rays cast from far-from-surface samples) contradicts the signs, and
        when the original frame's surface points are not finite.
    """
    if not isinstance(config, PreprocessConfig):
        raise InputError(f"config must be a PreprocessConfig, got {type(config).__name__}")
    if not isinstance(rng, np.random.Generator):  # a seed: the generator it names
        if isinstance(rng, bool) or not isinstance(rng, (int, np.integer)) or rng < 0:
            raise InputError(f"rng must be a numpy Generator or a non-negative int seed, got "
                             f"{rng!r}")
        rng = np.random.default_rng(int(rng))
    return _sample_valid_mesh(validate_mesh(mesh), config, scanner, rng)


#: How far (in the unit sphere) the frame may move when the unseen parts are left out.
FRAME_TOLERANCE = 0.01


def unseen_parts_that_set_the_frame(vertices, faces, seen_faces) -> dict | None:
    """The connected parts (faces joined through corners at the same position) of which no
    triangle was seen, when leaving them out moves the normalization by more than
    :data:`FRAME_TOLERANCE` (a speck far from the object: it sets the unit sphere but is
    never sampled); else None.  ``vertices`` normalized (m, 3), ``faces`` (f, 3), and
    ``seen_faces`` the indices of faces any camera saw."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = position_ids(vertices, faces)
    count = int(ids.max()) + 1
    edges = np.concatenate([ids[:, [0, 1]], ids[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(count, count))
    labels = connected_components(graph, directed=False)[1][ids[:, 0]]  # (f,) part of a face
    seen = np.zeros(labels.max() + 1, dtype=bool)
    seen[labels[np.unique(seen_faces)]] = True
    hidden = ~seen[labels]
    if not hidden.any():
        return None
    offset, scale = normalization_parameters(vertices, faces[~hidden])
    if abs(scale - 1.0) <= FRAME_TOLERANCE and np.linalg.norm(offset) <= FRAME_TOLERANCE:
        return None  # inside the frame the seen parts set (an inner part, say)
    where = vertices[np.unique(faces[hidden])].mean(axis=0)
    return {"parts": int(np.count_nonzero(~seen)), "faces": int(hidden.sum()),
            "where": "(" + ", ".join(f"{c:.2f}" for c in where) + ")"}


def orientation_by_position(vertices, faces) -> int:
    """:func:`~.mesh_io.closed_orientation` of the mesh with corners at the same position
    merged (+1 closed and wound outward, -1 inward, 0 open): an STL, or any file that stores
    each triangle's corners apart, is closed by position though it shares no index."""
    ids = position_ids(vertices, faces)
    if ids.size == 0:
        return 0
    positions = np.zeros((int(ids.max()) + 1, 3))
    positions[ids.reshape(-1)] = np.asarray(vertices, np.float64)[np.asarray(faces).reshape(-1)]
    return closed_orientation(positions, ids)


def _sample_valid_mesh(mesh: trimesh.Trimesh, config: PreprocessConfig, scanner: Scanner,
                       rng: np.random.Generator) -> MeshSamples:
    """:func:`sample_mesh` of a mesh already validated (by :func:`~.mesh_io.load_mesh`)."""
    timings = {}
    start = time.perf_counter()
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    all_faces = np.asarray(mesh.faces, dtype=np.int64)
    offset, scale = normalization_parameters(vertices, all_faces)
    normalized = to_normalized(vertices, offset, scale)
    faces = all_faces[distinct_triangles(vertices, all_faces)]  # doubled faces count once

    orientation = closed_orientation(normalized, faces)
    whole = one_closed_surface(normalized, faces, orientation=orientation)
    # Culling the far side is safe only on one closed surface: among several closed parts, one
    # wound inside-out would be culled from every view.
    sides = _scan(scanner, normalized, faces, config, orientation if whole else 0,
                  per_cell=not whole)
    timings["scan"] = time.perf_counter() - start
    if sides.stats["visible_triangles"] == 0:
        raise PreprocessError("nothing rendered: no camera saw any triangle")
    surface = VisibleSurface.from_scan(normalized, faces, sides, whole_triangles=whole)
    if not surface.area > 0:
        raise PreprocessError("nothing rendered: the visible triangles have zero area")
    unseen = unseen_parts_that_set_the_frame(normalized, faces, surface.face_index)
    if unseen:
        raise PreprocessError(
            f"{unseen['parts']} part(s) of the mesh ({unseen['faces']} triangle(s), around "
            f"{unseen['where']} in the normalized frame) set the normalization but no camera "
            f"saw them (too small for {config.rig.resolution}-pixel cameras): their "
            "distances would be wrong; remove them from the mesh, or raise --resolution")

    # cavities sealed inside a closed solid (and solids sealed in them): never seen, yet
    # surface; without them the cavity would be filled.  Closed is judged by position here
    # (an STL stores every triangle's corners apart: closed, though no index is shared).
    hidden = np.ones(len(faces), dtype=bool)
    hidden[surface.face_index] = False
    closed = (orientation or orientation_by_position(normalized, faces)) if hidden.any() else 0
    sealed, sealed_outward = sealed_surfaces(normalized, faces, surface.face_index, closed)
    surface = surface.with_triangles(normalized, faces, sealed, sealed_outward)

    mark = time.perf_counter()
    points = draw_samples(surface, config.sampling, rng)[0]
    result = signed_distance(surface, points, method=config.sign_method,
                             neighbours=config.neighbours, rng=rng,
                             mesh_vertices=normalized, mesh_faces=faces,
                             spacing=config.rig.pixel_size)
    timings["sdf"] = time.perf_counter() - mark

    surface_points, surface_faces = surface.sample(config.surface_samples, rng)
    surface_normals = surface.outward_normals()[surface_faces]
    original_points = to_original(surface_points, offset, scale)
    if not np.all(np.isfinite(original_points)):
        raise PreprocessError("the surface points overflow in the original frame (coordinates "
                              "beyond the float64 range); rescale the mesh file")

    stats = dict(sides.stats)
    stats["faces"] = int(len(all_faces))
    stats["repeated_faces"] = int(len(all_faces) - len(faces))
    stats["closed"] = bool(orientation != 0)
    stats["scanned_triangles"] = int(len(faces))  # repeated faces removed
    stats["hidden_triangles"] = int(len(faces) - sides.stats["visible_triangles"])
    stats["sealed_triangles"] = int(len(sealed))  # hidden, yet surface (a sealed cavity)
    stats["two_sided_triangles"] = int(np.count_nonzero(surface.outward == 0))
    stats["sheet_triangles"] = int(np.count_nonzero(surface.sheet))
    stats["samples_drawn"] = int(len(points))
    stats["samples_kept"] = int(result.keep.sum())
    stats["dropped_fraction"] = float(1.0 - result.keep.mean())
    stats["sign"] = {"method": config.sign_method, **result.counts}
    kept_sdf = result.sdf[result.keep]
    problem = sample_count_problem(len(points), int(np.count_nonzero(kept_sdf > 0)),
                                   int(np.count_nonzero(kept_sdf <= 0)),
                                   min_fraction=config.min_sign_fraction)
    if problem:
        raise PreprocessError(problem)
    # where sealed boundaries joined the surface, enclosed samples are judged by the winding
    # number too (elsewhere a part wound inside-out among others would read as a cavity where
    # it overlaps them, though the cameras saw it as a solid)
    check = sign_disagreement(normalized, faces, points[result.keep], kept_sdf,
                              closed=len(sealed) > 0)
    stats["sign_check"] = check
    if check["failed"]:
        views = config.rig.count
        cause = ("inside-out or broken signs" if views >= REFERENCE_VIEWS else
                 f"with {views} camera view(s) (the reference uses {REFERENCE_VIEWS}) much of "
                 "the surface is never seen and its signs go undecided: use more --views")
        raise PreprocessError(
            f"sign check failed: {check['disagree']} of {check['checked']} samples far from "
            "the surface are labelled otherwise than rays cast from them say (enclosed by the "
            f"mesh, or in open space; at most {check['limit']} may be, for 0.2% wrong): "
            f"{cause}; nothing was written")
    stats["warnings"] = _quality_warnings(stats)
    stats["seconds"] = {k: round(v, 4) for k, v in timings.items()}
    uniform = np.zeros(len(points), dtype=bool)
    uniform[len(points) - config.sampling.counts()[1]:] = True
    occupancy = uniform & result.keep
    return MeshSamples(points=points[result.keep], sdf=result.sdf[result.keep],
                       occupancy_points=points[occupancy], occupied=result.sdf[occupancy] <= 0,
                       surface_points=original_points,
                       surface_normals=surface_normals, offset=offset, scale=scale,
                       stats=stats)


def _scan(scanner, vertices, faces, config: PreprocessConfig, orientation: int, *,
          per_cell: bool = True):
    """Run the scanner over every view and return the :class:`~.scan.TriangleSides`."""
    accumulator = ScanAccumulator(vertices, faces, config.rig, grazing=config.grazing,
                                  per_cell=per_cell)
    for view, ids in scanner.triangle_ids(vertices, faces, orientation=orientation):
        accumulator.add_view(view, ids)
    return accumulator.finish()


def _quality_warnings(stats: dict) -> list[str]:
    """Human-readable warnings about the mesh's quality, from the scan statistics."""
    warnings = []
    if stats["back_observation_fraction"] > _BACK_OBSERVATION_WARNING:
        warnings.append(
            f"{100 * stats['back_observation_fraction']:.1f}% of scan pixels saw the back of a "
            "triangle (faces wound at random, or open surfaces); each side is taken from what "
            "the cameras saw")
    visible = max(stats["visible_triangles"], 1)
    if stats["sheet_triangles"] > _TWO_SIDED_WARNING * visible:
        warnings.append(
            f"{stats['sheet_triangles']} of {visible} visible triangles belong to open sheets "
            "(seen from both sides: no inside); samples beside them are outside")
    undecided = stats["two_sided_triangles"] - stats["sheet_triangles"]
    if undecided > _TWO_SIDED_WARNING * visible:
        warnings.append(
            f"{undecided} of {visible} visible triangles were seen from both sides unevenly "
            "(their side is undecided); samples near them are left to the vote or dropped")
    return warnings


def preprocess_instance(mesh_path, outputs: dict, config: PreprocessConfig, scanner,
                        seed: int) -> dict:
    """Load one mesh, compute its samples and write its files atomically.

    ``PartialScans`` (a seeded single-view virtual depth scan) is written when ``outputs``
    asks for it and ``config.partial_scan`` is set.  ``SdfSamples`` is written last, so an
    instance is complete exactly when it exists with the others.

    Returns
    -------
    dict
        The instance's manifest record fields (counts, statistics, timings, and ``outputs``:
        each file's :func:`~.provenance.fingerprint`).
    """
    start = time.perf_counter()
    mesh = load_mesh(mesh_path)  # validated once, here
    samples = _sample_valid_mesh(mesh, config, scanner, np.random.default_rng(seed))
    formats.write_normalization(outputs[formats.NORMALIZATION_PARAMETERS], samples.offset,
                                samples.scale)
    formats.write_surface_samples(outputs[formats.SURFACE_SAMPLES], samples.surface_points,
                                  samples.surface_normals)
    formats.write_occupancy(outputs[formats.OCCUPANCY_SAMPLES], samples.occupancy_points,
                            samples.occupied)
    if formats.PARTIAL_SCANS in outputs:
        scan = instance_scan(mesh, samples.offset, samples.scale, seed, config.partial_scan)
        formats.write_partial_scan(outputs[formats.PARTIAL_SCANS], **scan)
    positive, negative = formats.write_sdf_samples(outputs[formats.SDF_SAMPLES],
                                                   samples.points, samples.sdf)
    stats = samples.stats
    stats["positive"], stats["negative"] = positive, negative
    stats["seconds"]["total"] = round(time.perf_counter() - start, 4)
    stats["outputs"] = fingerprints(outputs)  # what a rerun checks before trusting them
    return stats

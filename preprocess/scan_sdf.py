"""Signed-distance samples from depth views alone (no mesh): what the sensor saw decides.

All in the **normalized frame** of the fused cloud (:func:`normalized_views`), SDF > 0 outside.

Evidence, per sample and view (:func:`view_evidence`): the sample projects onto a pixel of the
view's image; it is **free** when that pixel measured something and the sample lies in front of the
nearest measurement of the pixel and its 8 neighbours by more than the margin (``margin``, or three times the view's
noise estimated from the image itself, :func:`depth_noise`, when that is larger), or the pixel
is background (with ``background``: off the view's object mask, or without a mask unmeasured
and joined to the border, :func:`_neighbourhood_depths`); it is **behind** when it lies beyond
the farthest of those measurements by more than ``margin``.

Signs (:func:`sign_samples`):

- free in any view -> outside (free space seen by a sensor overrides everything);
- otherwise, within ``band`` of the fused cloud: the reference's unanimous vote of the
  ``neighbours`` nearest oriented points (normals from the depth images, turned to the
  sensor): all in front -> outside, all behind -> inside, split -> dropped;
- otherwise (far from the surface): inside when at least ``min_views_inside`` views see it
  behind their measurement (the space-carving hull), else dropped: a sample no view
  constrains is never guessed;
- and a sample not seen free with a part of the hull's surface that no view measured (a
  chair seat's underside, for a camera that never looks up) within :data:`BLIND_FACTOR`
  times its distance to the nearest measured point is dropped too: the vote of the far
  side's normals would guess it;
- and a sample not seen free in a region of the :func:`carve_grid` that no view saw into and
  no measured surface closes off (the lower inside of a deep cup) is dropped: unknown.

Before any of this, stray points far from the object (beyond :data:`OUTLIER_FACTOR` times
the 99th percentile distance from the cloud's median) are dropped, and views that do not see
one object (:func:`_check_agreement`: wrong depth units or pose convention) fail the
instance with a reason.

Distances: to the nearest fused point, point-to-plane within two point spacings of it (the
original's form), point-to-point beyond.

Coverage (:func:`surface_coverage`): on a grid over the unit ball, the boundary cells of the
region no view saw as free (the carved hull's surface) that have a measured point near them,
over all such cells: the share of the object's surface the views covered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .checks import view_consistency
from .depth import depth_noise, depth_surface
from .errors import InputError, PreprocessError
from .normalize import normalization_parameters, to_normalized
from .pinhole import PinholeCamera
from .sdf import vote_signs

__all__ = ["ScanSamplingConfig", "ScanSamples", "normalized_views", "view_evidence",
           "sign_samples", "surface_coverage", "CarvedGrid", "carve_grid", "sample_views",
           "fused_surface", "depth_noise"]


#: A sample not seen free is dropped when an unmeasured part of the hull's surface lies within
#: this many times its distance to the nearest measured point: what lies there (a table top's
#: underside, at some unknown depth) could be nearer than the measured side.
BLIND_FACTOR = 3.0
#: Fused points farther from the cloud's median than this many times the 99th percentile
#: distance are outliers (stray pixels far behind the object), dropped before normalizing.
OUTLIER_FACTOR = 2.0
#: Views whose point centroids spread more than this many times the largest single view's
#: extent do not see one object: depth units or pose conventions disagree.
DISAGREEMENT = 2.0


@dataclass(frozen=True)
class ScanSamplingConfig:
    """Settings of sampling from scans (normalized-frame units)."""

    count: int = 250_000  # samples drawn (before the unconstrained ones are dropped)
    near_fraction: float = 0.8  # of them near the fused surface; the rest uniform in the cube
    variances: tuple = (0.005, 0.0005)  # of the near samples' offsets (half each), as meshes
    neighbours: int = 11  # the vote's
    band: float = 0.1  # within this of the cloud: carving and the vote; beyond: the hull
    margin: float = 0.01  # in front of / behind a measurement by more than this (> depth noise)
    min_views_inside: int = 2  # views that must see a far sample behind their measurement
    min_coverage: float = 0.5  # an instance whose views cover less of its surface fails
    coverage_grid: int = 64  # cells across the unit cube for the coverage
    surface_samples: int = 30_000  # SurfaceSamples written (fused points)
    max_jump: float = 0.05  # depth edges: neighbours farther than this share of the depth
    min_cosine: float = 0.1  # grazing normals dropped
    background: bool = True  # pixels without a measurement are free space (a segmented object)
    mask_margin: int = 1  # pixels around a view's mask that are never free space

    def __post_init__(self):
        if not (self.count >= 2 and 0 <= self.near_fraction <= 1 and self.band > 0
                and self.margin >= 0 and self.min_views_inside >= 1
                and 0 <= self.min_coverage <= 1 and self.coverage_grid >= 8
                and self.surface_samples >= 1 and isinstance(self.mask_margin, int)
                and not isinstance(self.mask_margin, bool) and 1 <= self.mask_margin <= 64):
            raise InputError(f"invalid scan sampling settings: {self}")

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class ScanSamples:
    """What :func:`sample_views` made of one instance's views."""

    points: np.ndarray  # (n, 3) normalized frame
    sdf: np.ndarray  # (n,)
    offset: np.ndarray  # (3,) normalization of the fused cloud
    scale: float
    surface_points: np.ndarray  # (m, 3) original frame
    surface_normals: np.ndarray  # (m, 3)
    stats: dict


def fused_surface(views, config: ScanSamplingConfig):
    """(points (n, 3), normals (n, 3), per-view statistics) of all views fused, in the
    sensor's world frame; normals are unit and face the sensor that saw them."""
    points, normals, stats = [], [], []
    for view in views:
        seen = depth_surface(view.depth, view.camera, max_jump=config.max_jump,
                             min_cosine=config.min_cosine, background=False)
        measured = view.depth > 0
        points.append(seen.points)
        normals.append(seen.normals)
        stats.append({"view": view.name, "measured_pixels": int(measured.sum()),
                      "surface_points": len(seen.points),
                      "median_depth": float(np.median(view.depth[measured]))
                      if measured.any() else None})
    return np.concatenate(points), np.concatenate(normals), stats


def _check_agreement(views) -> None:
    """Fail when the views do not see one object: their points' centroids spread far more
    than the largest extent any one view measured (millimetre depths with metre poses, an
    OpenGL pose read as OpenCV)."""
    centroids, extents = [], []
    for view in views:
        points, _ = view.camera.depth_to_points(view.depth)
        if len(points) < 10:
            continue
        centroids.append(points.mean(axis=0))
        extents.append(float(np.linalg.norm(np.percentile(points, 99, axis=0)
                                            - np.percentile(points, 1, axis=0))))
    if len(centroids) < 2:
        return
    centroids = np.asarray(centroids)
    spread = float(np.linalg.norm(centroids.max(axis=0) - centroids.min(axis=0)))
    if spread > DISAGREEMENT * max(extents):
        raise PreprocessError(
            f"the views do not see one object: their points' centres lie {spread:.3g} apart, "
            f"{spread / max(extents):.0f}x the largest extent one view measured "
            f"({max(extents):.3g}); check the depth units (depth_scale: metres are expected) "
            "and the pose convention (opencv or opengl) of every view")


def normalized_views(views, offset, scale) -> list:
    """[(depth (h, w), camera, mask (h, w) or None)] of ``views`` in the normalized frame
    ``(x + offset) * scale``: the same pixels, depths times ``scale``, camera centres mapped."""
    result = []
    for view in views:
        pose = view.camera.pose.copy()
        pose[:3, 3] = (pose[:3, 3] + offset) * scale
        camera = PinholeCamera(K=view.camera.K, pose=pose, width=view.camera.width,
                               height=view.camera.height)
        result.append((view.depth * scale, camera, view.mask))
    return result


def _neighbourhood_depths(depth, mask=None, mask_margin: int = 1):
    """(nearest, farthest, background, noise, masked): per pixel the nearest measured depth over its
    3x3 neighbourhood where the pixel itself measured one (else inf), the farthest (0 where
    none), whether it belongs to the background, and the image's noise estimate.

    The background is what the view saw as empty space along the whole ray.  With the view's
    object ``mask`` (h, w): the pixels more than ``mask_margin`` pixels away from the mask and
    from every
    measurement (an unmeasured pixel the mask calls object, a grazing band across a table top,
    a shadow band, is unknown: never free space).  Without a mask: unmeasured pixels 3 pixels
    or more from any measurement and joined to the image's border (a hole inside the
    silhouette, or a narrow band lost at a grazing edge, is a dropout, not free space; a wide
    band that opens onto the border cannot be told from the background without a mask)."""
    measured = depth > 0
    nearest = ndimage.minimum_filter(np.where(measured, depth, np.inf), size=3,
                                     mode="constant", cval=np.inf)
    farthest = ndimage.maximum_filter(np.where(measured, depth, 0.0), size=3,
                                      mode="constant", cval=0.0)
    if mask is not None:
        background = ~ndimage.binary_dilation(np.asarray(mask, bool) | measured,
                                              iterations=mask_margin)
    else:
        near_object = ndimage.binary_dilation(measured, iterations=3)
        background = ~ndimage.binary_fill_holes(near_object)
    nearest = np.where(measured, nearest, np.inf)  # a dropout's neighbours say nothing of it
    return nearest, farthest, background, depth_noise(depth), mask is not None


def view_evidence(points, depth, camera: PinholeCamera, *, margin: float,
                  background: bool = True, neighbourhood=None):
    """(free (n,), behind (n,), through_background (n,)) booleans of ``points`` (n, 3) for one
    view (depth and camera in the points' frame): see the module's docstring.
    ``through_background``: free only because the pixel is background (no measurement)."""
    nearest, farthest, background_pixels, noise, _ = (neighbourhood
                                                      or _neighbourhood_depths(depth))
    margin = max(margin, 3 * noise)  # never free or behind within the sensor's noise
    uv, z = camera.project(points)
    with np.errstate(invalid="ignore"):
        cols, rows = np.rint(uv[:, 0]), np.rint(uv[:, 1])
        seen = ((z > 0) & (cols >= 0) & (cols < camera.width) & (rows >= 0)
                & (rows < camera.height))
    free = np.zeros(len(points), bool)
    behind = np.zeros(len(points), bool)
    through = np.zeros(len(points), bool)
    index = np.nonzero(seen)[0]
    r, c = rows[index].astype(np.int64), cols[index].astype(np.int64)
    near, far, depth_here = nearest[r, c], farthest[r, c], z[index]
    empty = np.isinf(near)
    free[index] = np.where(empty, background & background_pixels[r, c],
                           depth_here < near - margin)
    behind[index] = ~empty & (depth_here > far + margin)
    through[index] = empty & free[index]
    return free, behind, through


def _evidence(points, views, config: ScanSamplingConfig):
    """(free (n,), through_background (n,), behind (n,) view counts, conflicting (n,)).

    ``through_background``: free only because some view's pixel is background (no view saw
    the sample in front of a measurement).  ``conflicting``: such samples that a view without
    a mask makes free while another view sees them behind its measurement (without a mask, a
    wide band lost at grazing incidence, a table top seen from its height, looks like
    background): dropped rather than carved."""
    free = np.zeros(len(points), bool)
    measured_free = np.zeros(len(points), bool)
    unmasked_background = np.zeros(len(points), bool)
    behind = np.zeros(len(points), np.int32)
    for depth, camera, neighbourhood in views:
        f, b, through = view_evidence(points, depth, camera, margin=config.margin,
                                      background=config.background,
                                      neighbourhood=neighbourhood)
        free |= f
        measured_free |= f & ~through
        if not neighbourhood[4]:  # no mask: its background is a guess
            unmasked_background |= through
        behind += b
    through_background = free & ~measured_free
    conflicting = through_background & unmasked_background & (behind > 0)
    return free & ~conflicting, through_background & ~conflicting, behind, conflicting


def sign_samples(points, cloud, normals, views, config: ScanSamplingConfig, unseen=None,
                 tree: cKDTree | None = None, grid: CarvedGrid | None = None):
    """(sdf (n,), keep (n,), counts) of normalized-frame ``points`` against the fused
    ``cloud`` (m, 3) with sensor-facing ``normals`` and the normalized ``views``
    ([(depth, camera, neighbourhood depths)]); see the module's docstring.  ``unseen``
    (k, 3): centres of hull-surface cells no view measured (:func:`surface_coverage`); a
    sample nearer to one of them than to any measured point is dropped, not voted.
    ``tree``: a cKDTree of ``cloud``, when the caller has one.  ``grid``: the views'
    :func:`carve_grid`; a sample it finds in an unsealed region is dropped unless a view saw
    it free."""
    tree = cKDTree(cloud) if tree is None else tree
    spacing = float(np.median(tree.query(cloud[:: max(1, len(cloud) // 5000)], k=2)[0][:, 1]))
    free, weak, behind, conflicting = _evidence(points, views, config)
    nearest_distance, nearest = tree.query(points, workers=-1)
    plane = np.abs(np.einsum("ij,ij->i", points - cloud[nearest], normals[nearest]))
    distance = np.where(nearest_distance < 2 * spacing, plane, nearest_distance)
    near = nearest_distance < config.band
    blind = np.zeros(len(points), bool)
    if unseen is not None and len(unseen):
        blind[~free] = cKDTree(unseen).query(points[~free], workers=-1)[0] < \
            BLIND_FACTOR * nearest_distance[~free]
    vote = np.zeros(len(points), np.int8)
    candidates = np.nonzero(near & ((~free & ~blind) | weak))[0]
    if len(candidates):
        vote[candidates] = vote_signs(tree, normals, points[candidates],
                                      neighbours=config.neighbours)[0]
    hull_inside = ~near & ~free & ~blind & (behind >= config.min_views_inside)
    sign = np.zeros(len(points), np.int8)
    sign[free] = 1
    sign[~free & near] = vote[~free & near]
    # Free only through a background pixel while every nearby measured normal says inside: a
    # segmentation a pixel or two short of the object (the inside of a slat or a leg), not
    # free space.  Dropped.
    contested = weak & near & (vote < 0)
    sign[contested] = 0
    sign[hull_inside] = -1
    unsealed = np.zeros(len(points), bool)
    if grid is not None:  # no view saw into it and no measured surface closes it: unknown
        guessed = np.nonzero((sign != 0) & ~free)[0]
        unsealed[guessed] = grid.is_unsealed(points[guessed])
        # Behind a measured wall whose far side nobody measured (a cup's lower wall), the vote
        # says inside to any depth: an unsealed region nearer than the claimed depth (to half a
        # cell) may begin right behind the wall.
        deep = np.nonzero((sign < 0) & ~free & ~unsealed & (distance > config.margin))[0]
        reach = grid.unsealed_distance(points[deep])
        unsealed[deep[reach < distance[deep] + 0.5 * 2.0 / grid.size]] = True
        sign[unsealed] = 0
    sign[conflicting] = 0
    keep = sign != 0
    counts = {"free_space": int(free.sum()),
              "background_conflict": int(conflicting.sum() + contested.sum()),
              "voted": int(len(candidates)),
              "vote_split": int(np.count_nonzero(vote[candidates] == 0)),
              "hull_inside": int(hull_inside.sum()), "unseen_nearby": int(blind.sum()),
              "unsealed": int(unsealed.sum()),
              "unconstrained": int(np.count_nonzero(~near & ~free & ~blind & ~hull_inside)),
              "point_spacing": spacing}
    return np.where(keep, sign * distance, 0.0), keep, counts


@dataclass(frozen=True)
class CarvedGrid:
    """What the views say of the cells of a grid over the unit cube (normalized frame).

    ``free``: seen free by some view at the cell's centre (or outside the unit ball);
    ``walls``: within :attr:`wall_radius` of a measured point (the measured surface, thick
    enough that no 6-connected path crosses it between two measured points);
    ``unsealed``: neither, and joined to a free cell by a path of such cells: a region that no
    view saw into and that no measured surface closes off from free space (the lower inside of
    a deep cup, the space under a seat whose underside nobody measured).  What fills it is
    unknown: a sample there that no view saw free is dropped, whatever the vote says."""

    size: int
    free: np.ndarray  # (size, size, size) bool
    walls: np.ndarray  # (size, size, size) bool
    unsealed: np.ndarray  # (size, size, size) bool
    wall_radius: float

    def cells(self, points) -> tuple:
        """(i, j, k) index arrays of the cells holding (n, 3) points (clipped to the grid)."""
        index = np.clip(np.floor((np.asarray(points) + 1.0) / 2.0 * self.size), 0,
                        self.size - 1).astype(np.int64)
        return index[:, 0], index[:, 1], index[:, 2]

    def is_unsealed(self, points) -> np.ndarray:
        """(n,) bool: the points lie in :attr:`unsealed` cells."""
        return self.unsealed[self.cells(points)]

    def unsealed_distance(self, points) -> np.ndarray:
        """(n,) float: from the centre of each point's cell to the nearest unsealed cell's
        centre (normalized units; inf when there is none)."""
        if not self.unsealed.any():
            return np.full(len(points), np.inf)
        field = ndimage.distance_transform_edt(~self.unsealed) * (2.0 / self.size)
        return field[self.cells(points)]


def carve_grid(cloud, views, config: ScanSamplingConfig, tree: cKDTree | None = None,
               spacing: float | None = None) -> CarvedGrid:
    """The :class:`CarvedGrid` of the fused ``cloud`` (m, 3) and the normalized ``views``
    ([(depth, camera, neighbourhood depths)]) on ``config.coverage_grid`` cells across the unit
    cube.  ``spacing``: the measured points' typical spacing (their 90th percentile nearest-
    neighbour distance when None); the walls reach ``hypot(spacing / sqrt(2), cell)``, so that
    a square lattice of points at that spacing closes a slab at least two cells thick."""
    size = config.coverage_grid
    axis = (np.arange(size) + 0.5) / size * 2 - 1
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    ball = np.linalg.norm(grid, axis=1) <= 1.0
    free = ~ball
    inner = np.nonzero(ball)[0]
    for depth, camera, neighbourhood in views:
        f, _, _ = view_evidence(grid[inner], depth, camera, margin=0.0,
                             background=config.background, neighbourhood=neighbourhood)
        free[inner[f]] = True
    tree = cKDTree(cloud) if tree is None else tree
    if spacing is None:
        subset = cloud[:: max(1, len(cloud) // 5000)]
        spacing = float(np.percentile(tree.query(subset, k=2)[0][:, 1], 90))
    cell = 2.0 / size
    radius = float(np.hypot(spacing / np.sqrt(2.0), cell))
    walls = np.zeros(len(grid), bool)
    walls[inner] = tree.query(grid[inner], distance_upper_bound=radius, workers=-1)[0] < radius
    free, walls = free.reshape((size,) * 3), walls.reshape((size,) * 3)
    labels, _ = ndimage.label(~walls)  # 6-connected: a path between cells shares a face
    leaking = np.unique(labels[free & ~walls])
    unsealed = np.isin(labels, leaking[leaking > 0]) & ~free & ~walls
    return CarvedGrid(size=size, free=free, walls=walls, unsealed=unsealed, wall_radius=radius)


def surface_coverage(cloud, views, config: ScanSamplingConfig, tree: cKDTree | None = None,
                     grid: CarvedGrid | None = None) -> tuple[float, np.ndarray]:
    """(share, unseen (k, 3)): the share of the carved hull's surface cells (a grid over the
    unit ball) with a measured point within 1.5 cells, and the centres of those without.
    ``tree``: a cKDTree of ``cloud``, when the caller has one; ``grid``: the
    :func:`carve_grid` of the views, when the caller has it."""
    grid = carve_grid(cloud, views, config, tree) if grid is None else grid
    size = grid.size
    hull = ~grid.free
    boundary = hull & ndimage.binary_dilation(~hull)
    axis = (np.arange(size) + 0.5) / size * 2 - 1
    cells = np.stack([axis[i] for i in np.nonzero(boundary)], axis=1)
    if len(cells) == 0:
        return 0.0, np.zeros((0, 3))
    distance, _ = (cKDTree(cloud) if tree is None else tree).query(cells, workers=-1)
    seen = distance < 1.5 * 2 / size
    return float(np.mean(seen)), cells[~seen]


def sample_views(views, config: ScanSamplingConfig, rng: np.random.Generator) -> ScanSamples:
    """Signed samples of one instance's :class:`~.scan_io.DepthView` s.

    Raises
    ------
    PreprocessError
        One line: too few measured points, too little coverage, or no sample inside (the
        views do not enclose the object) or outside.
    """
    from .validate import require_memory

    require_memory(config.count * 400 + sum(v.depth.size for v in views) * 120,
                   what=f"{config.count:,} samples of {len(views)} views",
                   hint="lower --samples")
    cloud_world, normals, view_stats = fused_surface(views, config)
    _check_agreement(views)
    centre = np.median(cloud_world, axis=0)
    reach = np.linalg.norm(cloud_world - centre, axis=1)
    inlier = reach <= OUTLIER_FACTOR * np.percentile(reach, 99)
    cloud_world, normals = cloud_world[inlier], normals[inlier]
    if len(cloud_world) < 100:
        raise PreprocessError(f"the views measured {len(cloud_world)} usable surface points "
                              "(at least 100 needed): is the object masked out, or the depth "
                              "scale wrong?")
    offset, scale = normalization_parameters(cloud_world)
    cloud = to_normalized(cloud_world, offset, scale)
    scaled = normalized_views(views, offset, scale)  # raw pixels: the view check reads these
    normalized = [(depth, camera, _neighbourhood_depths(depth, mask, config.mask_margin))
                  for depth, camera, mask in scaled]
    tree = cKDTree(cloud)  # one tree for the coverage and the signs
    grid = carve_grid(cloud, normalized, config, tree)
    coverage, unseen = surface_coverage(cloud, normalized, config, tree, grid)
    if coverage < config.min_coverage:
        raise PreprocessError(f"the {len(views)} view(s) covered {coverage:.0%} of the "
                              f"surface (at least {config.min_coverage:.0%} needed): add "
                              "views from the sides not seen")
    near_count = int(round(config.count * config.near_fraction))
    picks = rng.integers(0, len(cloud), near_count)
    stddevs = np.sqrt(np.asarray(config.variances, dtype=np.float64))
    which = rng.integers(0, len(stddevs), near_count)
    near = cloud[picks] + rng.normal(size=(near_count, 3)) * stddevs[which, None]
    uniform = rng.uniform(-1.0, 1.0, size=(config.count - near_count, 3))
    points = np.concatenate([near, uniform])
    sdf, keep, counts = sign_samples(points, cloud, normals, normalized, config, unseen,
                                     tree, grid)
    inside, outside = int(np.count_nonzero(sdf[keep] < 0)), int(np.count_nonzero(sdf[keep] > 0))
    if inside < 0.01 * keep.sum() or outside < 0.01 * keep.sum():
        raise PreprocessError(f"too few samples on one side ({inside} inside, {outside} "
                              "outside): the views do not enclose the object (a scan of one "
                              "side has no inside)")
    check = view_consistency(points[keep], sdf[keep], scaled, mask_margin=config.mask_margin)
    if check["failed"]:
        raise PreprocessError(
            f"sign check failed: the views contradict {check['disagree']} of "
            f"{check['checked']} samples far from the surface ({check['inside_contradicted']} "
            f"inside seen in front of a measurement or off a mask, "
            f"{check['outside_unsupported']} outside that no view saw free; at most "
            f"{check['limit']} may be, for 0.2% wrong); nothing was written")
    chosen = rng.choice(len(cloud), min(config.surface_samples, len(cloud)), replace=False)
    stats = {"views": view_stats, "coverage": round(coverage, 4),
             "fused_points": len(cloud), "outlier_points": int(np.count_nonzero(~inlier)),
             "samples": int(keep.sum()),
             "dropped": int(np.count_nonzero(~keep)), **counts, "sign_check": check}
    return ScanSamples(points=points[keep], sdf=sdf[keep], offset=offset, scale=scale,
                       surface_points=cloud_world[chosen], surface_normals=normals[chosen],
                       stats=stats)

"""deepsdf.pruning: pieces of a decoded surface that the observations rule out are dropped,
and nothing else; checked against spheres whose signed distance is exact."""

import numpy as np
import pytest
import trimesh

from deepsdf.pruning import drop_contradicted_parts, outside_bound
from deepsdf.settings import PRUNE, PruneConfig
from deepsdf_preprocess.errors import InputError


def _spheres_sdf(points, spheres):
    """Exact signed distance of a union of disjoint balls ``[(centre, radius), ...]``."""
    return np.min([np.linalg.norm(points - np.asarray(c), axis=1) - r for c, r in spheres],
                  axis=0)


def _samples(spheres, seed=0, near=60_000, uniform=15_000):
    """SdfSamples-like rows [x, y, z, sdf] of the balls: points near each surface (the
    preprocessor's two noise widths) and uniform in the unit cube, exact distances."""
    rng = np.random.default_rng(seed)
    clouds = []
    for centre, radius in spheres:
        direction = rng.normal(size=(near // len(spheres), 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        surface = np.asarray(centre) + radius * direction
        half = len(surface) // 2
        clouds += [surface[:half] + rng.normal(0, 0.0707, (half, 3)),
                   surface[half:] + rng.normal(0, 0.0224, (len(surface) - half, 3))]
    points = np.concatenate(clouds + [rng.uniform(-1, 1, (uniform, 3))])
    return np.column_stack([points, _spheres_sdf(points, spheres)]).astype(np.float32)


def _ball(centre, radius):
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    mesh.apply_translation(centre)
    return mesh


BODY = ((0.0, 0.0, 0.0), 0.5)


def test_a_floater_in_empty_space_is_dropped_and_the_body_kept_exactly():
    body, floater = _ball(*BODY), _ball((0.0, 0.8, 0.0), 0.08)
    decoded = trimesh.util.concatenate([body, floater])
    result = drop_contradicted_parts(decoded, _samples([BODY]), PRUNE)
    assert result.dropped == 1 and not result.kept_all
    assert result.dropped_area == pytest.approx(floater.area / decoded.area, rel=1e-6)
    kept = result.mesh
    assert len(kept.faces) == len(body.faces)
    np.testing.assert_allclose(np.sort(kept.vertices, axis=0), np.sort(body.vertices, axis=0))


def test_every_true_part_is_kept_even_a_small_one():
    small = ((0.0, 0.75, 0.0), 0.08)  # the floater's place, but here it is part of the shape
    decoded = trimesh.util.concatenate([_ball(*BODY), _ball(*small)])
    result = drop_contradicted_parts(decoded, _samples([BODY, small]), PRUNE)
    assert result.dropped == 0 and len(result.mesh.faces) == len(decoded.faces)


def test_a_piece_slightly_off_the_truth_is_kept():
    # a decoded body 0.05 too large (within the margin) is the model's error, not debris
    decoded = _ball(BODY[0], BODY[1] + 0.05)
    assert drop_contradicted_parts(decoded, _samples([BODY]), PRUNE).dropped == 0


def test_a_body_decoded_too_large_is_kept_beside_a_small_true_part():
    # a model's typical error: the body 0.06 too thick (a hostile probe's case, where a 0.02
    # margin dropped 97% of the true shape and kept only the small part)
    small = ((0.0, 0.75, 0.0), 0.08)
    decoded = trimesh.util.concatenate([_ball(BODY[0], BODY[1] + 0.06), _ball(*small)])
    result = drop_contradicted_parts(decoded, _samples([BODY, small]), PRUNE)
    assert result.dropped == 0 and len(result.mesh.faces) == len(decoded.faces)


def test_thin_true_parts_decoded_thick_or_shifted_are_kept():
    rod = ((0.0, 0.7, 0.0), 0.01)  # a thin part, its samples exact
    rows = _samples([BODY, rod])
    for decoded_rod in (_ball(rod[0], 0.06), _ball((0.05, 0.7, 0.0), 0.01)):
        decoded = trimesh.util.concatenate([_ball(*BODY), decoded_rod])
        assert drop_contradicted_parts(decoded, rows, PRUNE).dropped == 0


def test_the_inner_wall_of_a_hollow_ball_decoded_too_far_in_is_kept():
    outer, inner = 0.5, 0.47  # a shell 0.03 thick: sdf = max(|p| - 0.5, 0.47 - |p|)
    rng = np.random.default_rng(4)
    points = np.concatenate([rng.normal(size=(60_000, 3)), rng.uniform(-1, 1, (15_000, 3))])
    points[:60_000] *= (rng.choice([outer, inner], 60_000)
                        / np.linalg.norm(points[:60_000], axis=1))[:, None]
    points[:60_000] += rng.normal(0, 0.03, (60_000, 3))
    radius = np.linalg.norm(points, axis=1)
    rows = np.column_stack([points, np.maximum(radius - outer, inner - radius)])
    decoded = trimesh.util.concatenate([_ball((0, 0, 0), outer), _ball((0, 0, 0), inner - 0.04)])
    assert drop_contradicted_parts(decoded, rows.astype(np.float32), PRUNE).dropped == 0


def test_a_triangle_soup_is_cut_into_surfaces_not_faces():
    floater = _ball((0.0, 0.8, 0.0), 0.08)
    decoded = trimesh.util.concatenate([_ball(BODY[0], BODY[1] + 0.06), floater])
    soup = trimesh.Trimesh(decoded.vertices[decoded.faces].reshape(-1, 3),
                           np.arange(3 * len(decoded.faces)).reshape(-1, 3), process=False)
    result = drop_contradicted_parts(soup, _samples([BODY]), PRUNE)
    assert result.dropped == 1
    assert len(result.mesh.faces) == len(decoded.faces) - len(floater.faces)


def test_a_few_wrong_rows_cannot_remove_a_true_part():
    small = ((0.0, 0.75, 0.0), 0.08)
    rows = _samples([BODY, small])
    # two rows on the small part's surface claim to be far outside (flipped signs, noise)
    liars = np.array([[0.0, 0.83, 0.0, 0.3], [0.0, 0.831, 0.0, 0.3]], np.float32)
    lied = np.concatenate([rows, liars])
    decoded = trimesh.util.concatenate([_ball(*BODY), _ball(*small)])
    assert drop_contradicted_parts(decoded, lied, PRUNE).dropped == 0
    # beside them, trusting every row (rank 1) certifies the true surface as outside; the
    # default rank 3 does not: the rank is what protects from up to two wrong rows
    here = np.array([[0.0, 0.829, 0.0]])
    truth = _spheres_sdf(here, [BODY, small])
    assert outside_bound(lied, rank=1)(here)[0] > truth[0] + 0.2
    assert outside_bound(lied, rank=3)(here)[0] <= truth[0] + 1e-6


def test_the_bound_never_exceeds_the_true_distance():
    rows = _samples([BODY], seed=1)
    points = np.random.default_rng(2).uniform(-1, 1, (5000, 3))
    bound = outside_bound(rows, neighbours=16, rank=3)(points)
    assert np.all(bound <= _spheres_sdf(points, [BODY]) + 1e-6)
    assert np.mean(bound > PRUNE.margin) > 0.5  # and it certifies most of the empty cube
    assert np.isneginf(outside_bound(rows)(np.array([[np.nan, 0.0, 0.0]]))).all()


def test_one_sided_rows_rule_out_seen_space_only():
    # one view from +z: free-space rows between the camera and the near side; nothing behind
    rng = np.random.default_rng(3)
    xy = rng.uniform(-0.45, 0.45, (4000, 2))
    xy = xy[np.linalg.norm(xy, axis=1) < 0.45]
    depth = np.sqrt(BODY[1] ** 2 - (xy ** 2).sum(axis=1))  # the front surface's z
    t = rng.uniform(0.05, 1.0, len(xy))
    free = np.column_stack([xy, depth + t * (1.0 - depth)])
    targets = _spheres_sdf(free, [BODY])
    rows = np.column_stack([free, np.maximum(targets, 0.0), np.ones(len(free))])
    seen_floater = _ball((0.0, 0.0, 0.8), 0.06)  # in front of the surface, in the view
    unseen_floater = _ball((0.0, 0.0, -0.8), 0.06)  # behind the body: nothing says empty
    decoded = trimesh.util.concatenate([_ball(*BODY), seen_floater, unseen_floater])
    kept = drop_contradicted_parts(decoded, rows.astype(np.float32), PRUNE).mesh
    assert kept.vertices[:, 2].max() < 0.6  # the seen floater went
    assert kept.vertices[:, 2].min() < -0.7  # the unseen one stays: the model's guess


def test_a_surface_ruled_out_everywhere_is_kept_and_reported():
    decoded = _ball((0.0, 0.8, 0.0), 0.08)  # only debris: the fit missed the body
    result = drop_contradicted_parts(decoded, _samples([BODY]), PRUNE)
    assert result.kept_all and result.dropped == 0 and result.mesh is decoded


def test_none_keeps_every_piece_and_bad_settings_are_refused():
    decoded = trimesh.util.concatenate([_ball(*BODY), _ball((0.0, 0.8, 0.0), 0.08)])
    assert drop_contradicted_parts(decoded, _samples([BODY]), None).mesh is decoded
    for bad in ({"share": 1.0}, {"margin": -0.1}, {"rank": 0}, {"rank": 20, "neighbours": 16},
                {"margin": float("nan")}):
        with pytest.raises(InputError):
            PruneConfig(**bad)
    with pytest.raises(InputError):
        outside_bound(np.zeros((5, 3)))


def test_rows_without_positive_targets_certify_nothing():
    rows = _samples([BODY])
    inside_only = rows[rows[:, 3] <= 0]
    decoded = trimesh.util.concatenate([_ball(*BODY), _ball((0.0, 0.8, 0.0), 0.08)])
    assert drop_contradicted_parts(decoded, inside_only, PRUNE).dropped == 0
    assert np.isneginf(outside_bound(inside_only)(np.zeros((3, 3)))).all()


# ---------------------------------------------------------------- completion: what a view saw

def _render(shapes, size=128, focal=200.0, centre=(0.0, 0.0, -2.5), rotation=np.eye(3)):
    """A depth image (along the optical axis) of balls ``("ball", c, r)`` and boxes
    ``("box", lo, hi)`` seen by an OpenCV camera at ``centre`` (camera-to-world
    ``rotation``; the identity looks along +z), ray-cast analytically here (not by the
    project's renderers); 0 where nothing is hit."""
    k = np.array([[focal, 0, size / 2 - 0.5], [0, focal, size / 2 - 0.5], [0, 0, 1.0]])
    v, u = np.mgrid[0:size, 0:size]
    d = np.stack([(u - k[0, 2]) / focal, (v - k[1, 2]) / focal, np.ones_like(u, float)], -1)
    d = d.reshape(-1, 3) @ np.asarray(rotation).T
    o = np.asarray(centre, float)
    best = np.full(len(d), np.inf)
    for kind, a, b in shapes:
        if kind == "ball":
            oc = o - np.asarray(a)
            qa, qb, qc = (d * d).sum(1), 2 * (d @ oc), oc @ oc - b * b
            disc = qb * qb - 4 * qa * qc
            t = np.where(disc >= 0, (-qb - np.sqrt(np.maximum(disc, 0))) / (2 * qa), np.inf)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                t1, t2 = (np.asarray(a) - o) / d, (np.asarray(b) - o) / d
            near = np.nanmax(np.minimum(t1, t2), axis=1)
            far = np.nanmin(np.maximum(t1, t2), axis=1)
            t = np.where((far >= near) & (near > 0), near, np.inf)
        best = np.minimum(best, np.where(t > 0, t, np.inf))
    depth = np.where(np.isfinite(best), best, 0.0).reshape(size, size)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation, o
    return depth, k, pose


def _seen(shapes, dark=(), background=True, **kw):
    """The project's observation of the rendered view; ``dark`` shapes return nothing (their
    pixels read 0, as a dark or shiny part does on a real sensor)."""
    from deepsdf.observations import observe_depth
    from deepsdf_preprocess.pinhole import PinholeCamera

    depth, k, pose = _render(list(shapes) + list(dark), **kw)
    if dark:
        with_dark = depth
        without = _render(shapes, **kw)[0]
        depth = np.where((with_dark > 0) & ((without == 0) | (with_dark < without - 1e-9)),
                         0.0, with_dark)
    return observe_depth(depth, PinholeCamera.create(k, pose, depth.shape[1], depth.shape[0]),
                         background=background)


def test_debris_the_view_saw_as_empty_is_dropped_and_unseen_space_kept():
    from deepsdf.pruning import drop_seen_empty_parts

    seen = _seen([("ball",) + BODY])
    front = _ball((0.0, 0.0, -0.8), 0.06)  # between the camera and the body: seen empty
    behind = _ball((0.0, 0.0, 0.8), 0.06)  # behind the body: never seen
    beside = _ball((0.9, 0.0, 0.0), 0.06)  # outside the image (it shows |x| < 0.8): unseen
    decoded = trimesh.util.concatenate([_ball(*BODY), front, behind, beside])
    kept = drop_seen_empty_parts(decoded, seen, PRUNE)
    assert kept.dropped == 1
    assert kept.mesh.vertices[:, 2].min() > -0.6  # the front one went
    assert kept.mesh.vertices[:, 2].max() > 0.7 and kept.mesh.vertices[:, 0].max() > 0.8


def test_a_thin_plate_seen_edge_on_is_kept_though_its_pixels_are_dropped():
    """A grazing band: the plate covers about one image row; observe_depth drops those pixels
    (depth edges, grazing normals), yet their returns still block the rays behind them."""
    from deepsdf.pruning import drop_seen_empty_parts
    from deepsdf.sensing import Observation

    plate = ("box", (-0.85, -0.001, -0.3), (-0.75, 0.009, 0.3))  # 0.01 thick, edge-on
    seen = _seen([("ball",) + BODY, plate], size=192)
    on_plate = lambda p: (p[:, 0] < -0.74) & (np.abs(p[:, 1]) < 0.01)  # noqa: E731
    assert on_plate(seen.hit_points).sum() >= 5 and not on_plate(seen.points).any()
    decoded_plate = trimesh.creation.box(extents=(0.1, 0.02, 0.6))  # decoded a bit thick
    decoded_plate.apply_translation((-0.8, 0.004, 0.0))
    decoded = trimesh.util.concatenate([_ball(*BODY), decoded_plate])
    assert drop_seen_empty_parts(decoded, seen, PRUNE).dropped == 0
    # the returns are what clear it: without the dropped pixels' returns, the same view would
    # certify most of the plate's surface empty (the thin-piece rule would still keep it)
    from deepsdf.pruning import seen_empty

    kept_only = Observation(seen.points, seen.normals, seen.sensors, seen.empty_origins,
                            seen.empty_directions, seen.points, seen.sensors)
    probes = trimesh.sample.sample_surface(decoded_plate, 400, seed=0)[0]
    assert not seen_empty(seen, margin=PRUNE.margin)(probes).any()
    assert seen_empty(kept_only, margin=PRUNE.margin)(probes).mean() > 0.5


def test_an_observation_without_returns_certifies_nothing():
    from deepsdf.pruning import drop_seen_empty_parts
    from deepsdf.sensing import Observation

    seen = _seen([("ball",) + BODY])
    bare = Observation(seen.points, seen.normals, seen.sensors, seen.empty_origins,
                       seen.empty_directions)
    decoded = trimesh.util.concatenate([_ball(*BODY), _ball((0.0, 0.0, -0.8), 0.06)])
    assert drop_seen_empty_parts(decoded, bare, PRUNE).dropped == 0
    assert drop_seen_empty_parts(decoded, seen, None).mesh is decoded


def test_a_plate_one_view_saw_is_kept_though_another_saw_past_it():
    from deepsdf.pruning import drop_seen_empty_parts
    from deepsdf.sensing import Observation

    plate = ("box", (-0.4, 0.697, -0.4), (0.4, 0.703, 0.4))
    down = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]).T  # camera z -> world -y
    above = _seen([("ball",) + BODY, plate], centre=(0.0, 2.5, 0.0), rotation=down)
    front = _seen([("ball",) + BODY, plate])  # edge-on: the plate falls between its rows
    decoded_plate = trimesh.creation.box(extents=(0.8, 0.02, 0.8))
    decoded_plate.apply_translation((0.0, 0.7, 0.0))
    decoded = trimesh.util.concatenate([_ball(*BODY), decoded_plate])
    for views in ([front], [above, front], [front, above]):
        both = Observation.concatenate(views)
        assert drop_seen_empty_parts(decoded, both, PRUNE).dropped == 0


def test_a_dark_part_that_returned_nothing_is_kept():
    """Its pixels read 0 and (background=False, as a user told of dark parts passes) say
    nothing: a hole in the view, which certifies nothing."""
    from deepsdf.pruning import drop_seen_empty_parts

    dark = ("ball", (0.0, 0.0, -0.75), 0.1)  # in front of the body, inside its silhouette
    seen = _seen([("ball",) + BODY], dark=[dark], background=False)
    decoded = trimesh.util.concatenate([_ball(*BODY), _ball(*dark[1:])])
    assert drop_seen_empty_parts(decoded, seen, PRUNE).dropped == 0


def test_repeated_frames_certify_as_one_frame_does():
    from deepsdf.pruning import drop_seen_empty_parts
    from deepsdf.sensing import Observation

    seen = _seen([("ball",) + BODY])
    decoded = trimesh.util.concatenate([_ball(*BODY), _ball((0.0, 0.0, -0.8), 0.06)])
    twice = Observation.concatenate([seen, seen])
    assert drop_seen_empty_parts(decoded, twice, PRUNE).dropped == 1

"""ShapeNet-style triangle soups: the corpus, and signs on it against the clean truth."""

import json

import numpy as np
import pytest
import trimesh

from deepsdf_preprocess.cameras import CameraRig
from deepsdf_preprocess.cells import CellLattice
from deepsdf_preprocess.errors import PreprocessError
from deepsdf_preprocess.mesh_io import distinct_triangles, load_mesh
from deepsdf_preprocess.pipeline import PreprocessConfig, make_scanner, sample_mesh
from deepsdf_preprocess.procedural import OrientedBox, generate_shapes
from deepsdf_preprocess.sampling import SamplingConfig
from deepsdf_preprocess.soup import DEFECTS, generate_soups, write_soups

#: The reference rig (the soup thresholds are about pixels of this size), fewer samples.
CONFIG = PreprocessConfig(sampling=SamplingConfig(count=40_000), surface_samples=2000)

#: The issue's bounds: wrong signs among kept samples beyond 0.01, share of samples dropped.
MAX_WRONG = 0.005
MAX_DROPPED = 0.05


def signs_against_truth(samples, truth_sdf):
    """(wrong share beyond 0.01, dropped share) of a MeshSamples against a truth in the
    original frame."""
    truth = truth_sdf(samples.points / samples.scale - samples.offset) * samples.scale
    far = np.abs(truth) > 0.01
    wrong = np.mean(np.sign(samples.sdf[far]) != np.sign(truth[far]))
    return wrong, samples.stats["dropped_fraction"]


# --------------------------------------------------------------------------- the corpus

def test_soups_are_seeded_and_carry_their_defects():
    first = generate_soups("chairs", 4, seed=3)
    again = generate_soups("chairs", 4, seed=3)
    for a, b in zip(first, again):
        assert np.array_equal(a.mesh.vertices, b.mesh.vertices)
        assert np.array_equal(a.mesh.faces, b.mesh.faces)
    applied = set()
    for category in ("chairs", "tables", "vessels"):
        for soup in generate_soups(category, 12, seed=0):
            applied |= set(soup.defects)
            assert set(soup.defects) <= set(DEFECTS)
            assert soup.defects == {name: count for name, count in soup.defects.items() if count}
    assert applied == set(DEFECTS), f"never applied: {set(DEFECTS) - applied}"


def test_the_truth_is_the_clean_union_where_no_part_became_a_sheet():
    rng = np.random.default_rng(0)
    for category in ("chairs", "tables"):
        shapes = generate_shapes(category, 6, seed=0)
        for shape, soup in zip(shapes, generate_soups(category, 6, seed=0)):
            points = rng.uniform(*shape.mesh.bounds, size=(4000, 3))
            clean = shape.sdf(points)
            truth = soup.sdf(points)
            # sheets only take solid away; everything else is the same solid
            assert np.all(truth >= clean - 1e-12)
            if not soup.sheets:
                assert np.allclose(truth, clean)
            for sheet in soup.sheets:
                assert isinstance(sheet, OrientedBox) and np.count_nonzero(sheet.half == 0) == 1


def test_soup_files_load_as_the_soup(tmp_path):
    """OBJ groups and GLB node transforms give back the soup's triangles in its frame."""
    paths = write_soups(tmp_path, "chairs", 3, seed=0)
    assert [p.suffix for p in paths] == [".obj", ".obj", ".glb"]
    for path, soup in zip(paths, generate_soups("chairs", 3, seed=0)):
        loaded = load_mesh(path)
        assert len(loaded.faces) == len(soup.mesh.faces)
        mine = np.sort(soup.mesh.triangles.reshape(-1, 9), axis=0)
        theirs = np.sort(np.asarray(loaded.triangles).reshape(-1, 9), axis=0)
        assert np.allclose(mine, theirs, atol=1e-5)
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["style"] == "soup" and meta["defects"] == soup.defects


def test_cad_export_defects_are_what_they_say():
    """Welded touching parts: one vertex per position, edges of more than two faces; parts at
    T-junctions: one vertex per position, not closed by index; a flush inset: a closed box
    inside the truth with a face on its boundary.  The truth stays the clean solid."""
    from deepsdf_preprocess.mesh_io import two_manifold
    from deepsdf_preprocess.surface import one_closed_surface

    seen = set()
    for category in ("chairs", "tables"):
        for soup in generate_soups(category, 12, seed=0):
            for part in soup.parts:
                new = set(part.defects) & {"welded_touching", "t_junction_parts",
                                           "coplanar_faces"}
                if not new:
                    continue
                seen |= new
                assert len(part.defects) == 1
                welded = len(np.unique(part.vertices, axis=0)) == len(part.vertices)
                edges = np.sort(part.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
                uses = np.unique(edges, axis=0, return_counts=True)[1]
                if "welded_touching" in new:
                    assert welded and uses.max() > 2
                elif "t_junction_parts" in new:
                    assert welded and _vertices_inside_edges(part.vertices, part.faces) > 0
                    assert not one_closed_surface(part.vertices, part.faces)
                else:
                    assert two_manifold(part.vertices, part.faces)
                    depth = soup.sdf(part.vertices)
                    assert depth.max() < 1e-9 and np.count_nonzero(np.abs(depth) < 1e-9) >= 4
    assert seen == {"welded_touching", "t_junction_parts", "coplanar_faces"}


def _vertices_inside_edges(vertices, faces) -> int:
    """How many vertices lie inside an edge of the triangles (T-junctions)."""
    edges = np.unique(np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1), axis=0)
    a, b = vertices[edges[:, 0]], vertices[edges[:, 1]]
    t = np.einsum("vj,ej->ve", vertices, b - a) - np.einsum("ej,ej->e", a, b - a)
    t /= np.einsum("ej,ej->e", b - a, b - a)
    off = vertices[:, None] - (a + t[..., None] * (b - a))
    inside = (np.linalg.norm(off, axis=2) < 1e-9) & (t > 1e-6) & (t < 1 - 1e-6)
    return int(np.count_nonzero(inside.any(axis=1)))


def test_distinct_triangles_counts_doubled_and_repeated_faces_once():
    box = trimesh.creation.box()
    faces = np.vstack([box.faces, box.faces[:, ::-1], box.faces[:3], box.faces[:, [1, 2, 0]]])
    kept = distinct_triangles(box.vertices, faces)
    assert np.array_equal(kept, np.arange(len(box.faces)))
    # unwelded copies (their own vertex indices) are found by position
    vertices = box.vertices[box.faces].reshape(-1, 3)
    soup_faces = np.arange(len(vertices)).reshape(-1, 3)
    doubled = np.vstack([soup_faces, soup_faces[:, ::-1] + 0])
    assert len(distinct_triangles(vertices, doubled)) == len(box.faces)


@pytest.mark.parametrize("divisions", [1, 2, 5])
def test_cells_tile_their_triangle(divisions):
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0.2, 0.9, 0.3]])
    faces = np.array([[0, 1, 2]])
    longest = np.linalg.norm(vertices - np.roll(vertices, 1, axis=0), axis=1).max()
    lattice = CellLattice.for_mesh(vertices, faces, size=1.0001 * longest / divisions)
    cells = np.arange(lattice.count)
    corners = lattice.corners(vertices, faces, cells)
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    whole = np.cross(vertices[1] - vertices[0], vertices[2] - vertices[0])
    assert np.allclose(cross, whole / lattice.divisions[0] ** 2)  # same normal, equal areas
    # every cell's centroid falls in that cell
    centroid = corners.mean(axis=1)
    e0, e1 = vertices[1] - vertices[0], vertices[2] - vertices[0]
    b = np.linalg.lstsq(np.stack([e0, e1], 1), (centroid - vertices[0]).T, rcond=None)[0]
    assert np.array_equal(lattice.cell_ids(np.zeros(len(cells), int), b[0], b[1]), cells)
    neighbours = lattice.neighbours(cells)
    for cell, around in zip(cells, neighbours):
        for other in around[around >= 0]:
            assert cell in neighbours[other]


# --------------------------------------------------------------------------- signs on soups

@pytest.mark.egl
@pytest.mark.parametrize("category,index", [("chairs", 0), ("chairs", 2), ("chairs", 7),
                                            ("tables", 2), ("vessels", 0)])
def test_soups_are_kept_with_right_signs(reference_gl_scanner, category, index):
    """No good soup rejected; signs within the issue's bound of the clean truth (chair 7
    has overlapping, touching and open-footed parts, a flush inset and parts meeting at
    T-junctions; chair 2 welded touching parts; vessel 0 is an open single-sheet cup in a
    solid base, with every face doubled)."""
    soup = generate_soups(category, index + 1, seed=0)[index]
    samples = sample_mesh(soup.mesh, CONFIG, reference_gl_scanner, np.random.default_rng(0))
    wrong, dropped = signs_against_truth(samples, soup.sdf)
    assert wrong <= MAX_WRONG and dropped <= MAX_DROPPED, (wrong, dropped, soup.defects)
    check = samples.stats["sign_check"]
    assert check["method"] == "rays" and check["checked"] >= 2000
    # The check judges samples from 0.01 of the surface on, where a good soup's few wrong
    # signs lie: it may see some, never enough to fail the instance.
    assert not check["failed"] and check["fraction"] <= 0.005, check


def test_soup_with_the_ray_casting_scanner():
    soup = generate_soups("tables", 1, seed=0)[0]
    scanner = make_scanner("raycast", CONFIG.rig)
    samples = sample_mesh(soup.mesh, CONFIG, scanner, np.random.default_rng(0))
    wrong, dropped = signs_against_truth(samples, soup.sdf)
    assert wrong <= MAX_WRONG and dropped <= MAX_DROPPED, (wrong, dropped)


def _boxes(*boxes):
    meshes = [OrientedBox(np.asarray(c, float), np.asarray(h, float)).mesh() for c, h in boxes]
    return meshes, lambda p: np.min([OrientedBox(np.asarray(c, float), np.asarray(h, float))
                                     .sdf(p) for c, h in boxes], axis=0)


SMALL = PreprocessConfig(sampling=SamplingConfig(count=20_000), surface_samples=1000,
                         rig=CameraRig(count=30, resolution=400))


@pytest.mark.parametrize("case", ["touching", "penetrating", "internal wall", "doubled"])
def test_hidden_pieces_never_act_as_surface(case):
    """Two boxes touching face to face, a box run through another, a cube with a wall
    inside, a cube with every face doubled back-to-back: kept, signs right, and no
    SurfaceSample lies inside the solid."""
    if case == "touching":
        meshes, truth = _boxes(([0, 0, 0], [0.5, 0.3, 0.3]), ([1.0, 0, 0], [0.5, 0.3, 0.3]))
    elif case == "penetrating":
        meshes, truth = _boxes(([0, 0, 0], [0.6, 0.2, 0.2]), ([0.3, 0, 0], [0.15, 0.6, 0.6]))
    elif case == "internal wall":
        meshes, truth = _boxes(([0, 0, 0], [0.5, 0.5, 0.5]))
        meshes.append(trimesh.Trimesh([[0, -0.5, -0.5], [0, 0.5, -0.5], [0, 0.5, 0.5],
                                       [0, -0.5, 0.5]], [[0, 1, 2], [0, 2, 3]]))
    else:
        meshes, truth = _boxes(([0, 0, 0], [0.5, 0.4, 0.3]))
        meshes.append(trimesh.Trimesh(meshes[0].vertices, meshes[0].faces[:, ::-1]))
    mesh = trimesh.util.concatenate(meshes)
    samples = sample_mesh(mesh, SMALL, make_scanner("raycast", SMALL.rig),
                          np.random.default_rng(1))
    wrong, dropped = signs_against_truth(samples, truth)
    assert wrong <= MAX_WRONG and dropped <= MAX_DROPPED, (wrong, dropped)
    depth = truth(samples.surface_points)
    assert depth.min() > -0.01 * (mesh.bounds[1] - mesh.bounds[0]).max(), depth.min()


def _cylinder(a, b, radius):
    """A closed cylinder mesh from ``a`` to ``b`` and its exact SDF."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    mesh = trimesh.creation.cylinder(radius=radius, segment=np.array([a, b]), sections=32)
    axis = (b - a) / np.linalg.norm(b - a)
    half = 0.5 * np.linalg.norm(b - a)

    def sdf(points):
        q = points - 0.5 * (a + b)
        along = q @ axis
        across = np.linalg.norm(q - along[:, None] * axis, axis=1)
        d = np.stack([across - radius, np.abs(along) - half], axis=1)
        return np.linalg.norm(np.maximum(d, 0), axis=1) + np.minimum(d.max(axis=1), 0)
    return mesh, sdf


def _union(parts):
    mesh = trimesh.util.concatenate([mesh for mesh, _ in parts])
    return mesh, lambda p: np.min([sdf(p) for _, sdf in parts], axis=0)


#: Closed parts of other shapes than the corpus's boxes (found by a hostile probe): long
#: sliver triangles penetrating each other, parts sharing a single vertex position, a
#: 12-triangle slab with a leg sunk into it.
CLOSED_PARTS = {
    "crossing cylinders": lambda: _union([_cylinder(a, b, 0.12) for a, b in (
        ([-0.6, 0, 0], [0.6, 0, 0]), ([0, -0.6, 0], [0, 0.6, 0]), ([0, 0, -0.6], [0, 0, 0.6]))]),
    "cylinders meeting at a vertex": lambda: _union([
        _cylinder([0, 0, -0.5], [0, 0, 0], 0.3), _cylinder([0, 0, 0], [0, 0, 0.5], 0.15)]),
    "slab with a sunk leg": lambda: _union([
        (OrientedBox(np.zeros(3), np.array([0.6, 0.4, 0.05])).mesh(),
         OrientedBox(np.zeros(3), np.array([0.6, 0.4, 0.05])).sdf),
        _cylinder([0, 0, -0.6], [0, 0, 0], 0.05)]),
    # the legs' hidden strips (0.02 deep) are narrower than a sliver's first cells were
    "table top with thin legs sunk a little": lambda: _union(
        [(OrientedBox(np.array([0, 0, 0.5]), np.array([0.6, 0.4, 0.03])).mesh(),
          OrientedBox(np.array([0, 0, 0.5]), np.array([0.6, 0.4, 0.03])).sdf)]
        + [_cylinder([x, y, -0.2], [x, y, 0.49], 0.04) for x in (-0.5, 0.5) for y in (-0.3, 0.3)]),
}


@pytest.mark.parametrize("case", sorted(CLOSED_PARTS))
def test_closed_parts_that_overlap(case):
    mesh, truth = CLOSED_PARTS[case]()
    config = PreprocessConfig(sampling=SamplingConfig(count=20_000), surface_samples=2000)
    samples = sample_mesh(mesh, config, make_scanner("raycast", config.rig),
                          np.random.default_rng(2))
    wrong, dropped = signs_against_truth(samples, truth)
    assert wrong <= MAX_WRONG and dropped <= MAX_DROPPED, (wrong, dropped)
    assert truth(samples.surface_points).min() > -0.01 * np.ptp(mesh.bounds, axis=0).max()


@pytest.mark.egl
def test_a_closed_part_wound_inside_out_among_others_is_seen(reference_gl_scanner):
    """Two closed spheres, one wound inside-out: the mesh is closed and its total volume
    positive, but culling the far side would hide the inverted part from every view."""
    big = trimesh.creation.icosphere(4, radius=0.5)
    small = trimesh.creation.icosphere(3, radius=0.3)
    small.apply_translation([0.6, 0, 0])
    mesh = trimesh.Trimesh(np.vstack([big.vertices, small.vertices]),
                           np.vstack([big.faces, small.faces[:, ::-1] + len(big.vertices)]),
                           process=False)
    samples = sample_mesh(mesh, CONFIG, reference_gl_scanner, np.random.default_rng(0))
    truth = lambda p: np.minimum(np.linalg.norm(p, axis=1) - 0.5,  # noqa: E731
                                 np.linalg.norm(p - [0.6, 0, 0], axis=1) - 0.3)
    wrong, dropped = signs_against_truth(samples, truth)
    assert wrong <= MAX_WRONG and dropped <= MAX_DROPPED, (wrong, dropped)


def test_inverted_labels_on_a_soup_are_still_caught(inverted_signs):
    """The ray check fails an instance whose labels come out inside-out."""
    soup = generate_soups("chairs", 1, seed=0)[0]
    with pytest.raises(PreprocessError, match="sign check failed"):
        sample_mesh(soup.mesh, SMALL, make_scanner("raycast", SMALL.rig),
                    np.random.default_rng(0))

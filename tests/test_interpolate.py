"""Interpolation between codes, random codes, and the pictures of their meshes."""

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from deepsdf.interpolate import lerp, resolve_code, sample_codes, slerp
from deepsdf.pictures import render_meshes, save_gif, save_png, tile, default_camera


def test_slerp_keeps_the_norm_and_lerp_does_not():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=32), rng.normal(size=32)
    b *= np.linalg.norm(a) / np.linalg.norm(b)  # equal norms
    path = slerp(a, b, 9).double()
    np.testing.assert_allclose(path.norm(dim=1), np.linalg.norm(a), rtol=1e-6)
    np.testing.assert_allclose(path[0], a, rtol=1e-6)
    np.testing.assert_allclose(path[-1], b, rtol=1e-6)
    # Equal angular steps along the great circle.
    unit = path / path.norm(dim=1, keepdim=True)
    angles = torch.arccos((unit[1:] * unit[:-1]).sum(dim=1).clamp(-1, 1))
    np.testing.assert_allclose(angles, angles[0], rtol=1e-4)
    straight = lerp(a, b, 9).double()
    assert straight.norm(dim=1)[4] < 0.95 * np.linalg.norm(a)  # the chord's dip


def test_slerp_interpolates_unequal_norms_linearly():
    a, b = np.array([2.0, 0.0, 0.0]), np.array([0.0, 4.0, 0.0])
    np.testing.assert_allclose(slerp(a, b, 5).norm(dim=1), [2.0, 2.5, 3.0, 3.5, 4.0],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="opposite"):
        slerp(a, -a, 3)


def test_random_codes_follow_the_training_gaussian():
    rng = np.random.default_rng(1)
    train = torch.from_numpy(rng.normal([1.0, -2.0, 0.5], [0.1, 0.2, 0.3], size=(500, 3)))
    drawn = sample_codes(train, 4000, seed=0).double()
    np.testing.assert_allclose(drawn.mean(dim=0), train.mean(dim=0), atol=0.02)
    np.testing.assert_allclose(drawn.std(dim=0), train.std(dim=0), rtol=0.06)
    assert torch.equal(sample_codes(train, 3, seed=5), sample_codes(train, 3, seed=5))


def test_codes_are_named_by_instance_or_file(tmp_path):
    payload = {"instance_ids": ["D/chairs/a", "D/tables/a", "D/chairs/b"],
               "codes": torch.arange(9.0).reshape(3, 3)}
    assert torch.equal(resolve_code("D/tables/a", payload), torch.tensor([3.0, 4.0, 5.0]))
    assert torch.equal(resolve_code("chairs/b", payload), torch.tensor([6.0, 7.0, 8.0]))
    with pytest.raises(ValueError, match="matches 2"):
        resolve_code("a", payload)
    torch.save(torch.ones(1, 3), tmp_path / "c.pth")
    assert torch.equal(resolve_code(str(tmp_path / "c.pth"), payload), torch.ones(3))
    with pytest.raises(ValueError, match="neither"):
        resolve_code("nope", payload)


@pytest.mark.parametrize("renderer", ["raycast", "pyrender"])
def test_pictures_decode_to_the_stated_size_and_frames_differ(renderer, tmp_path):
    shapes = [trimesh.creation.icosphere(radius=r) for r in (0.3, 0.5, 0.7)]
    try:
        images = render_meshes(shapes, default_camera(96), renderer=renderer)
    except Exception as error:  # noqa: BLE001
        import os

        if renderer == "pyrender" and not os.environ.get("CI"):
            pytest.skip(f"no OpenGL context: {error}")
        raise
    assert all(image.shape == (96, 96, 3) and image.dtype == np.uint8 for image in images)
    save_png(tmp_path / "strip.png", tile(images, gap=4))
    with Image.open(tmp_path / "strip.png") as strip:
        assert strip.size == (3 * 96 + 2 * 4, 96)
    save_gif(tmp_path / "a.gif", images, bounce=False)
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.size == (96, 96) and gif.n_frames == 3
        frames = []
        for index in range(gif.n_frames):
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
    for first, second in zip(frames, frames[1:]):
        assert np.mean(np.any(first != second, axis=2)) > 0.02  # bigger sphere, other pixels
    # A bigger sphere covers more of the picture.
    coverage = [np.mean(np.any(image < 250, axis=2)) for image in images]
    assert coverage[0] < coverage[1] < coverage[2]


def test_both_renderers_frame_a_mesh_the_same_way():
    mesh = trimesh.creation.box((1.0, 0.6, 0.4))
    camera = default_camera(80)
    ray = render_meshes([mesh], camera, renderer="raycast")[0]
    try:
        gl = render_meshes([mesh], camera, renderer="pyrender")[0]
    except Exception as error:  # noqa: BLE001
        pytest.skip(f"no OpenGL context: {error}")
    silhouette = [np.any(image < 250, axis=2) for image in (ray, gl)]
    assert np.mean(silhouette[0] != silhouette[1]) < 0.02  # silhouettes agree up to edges


@pytest.mark.slow
def test_interpolate_command_midpoint_differs_from_both_ends(trained, tmp_path):
    from deepsdf.cli import main
    from deepsdf.metrics import chamfer

    experiment, model = trained
    first, last = model.codes.instance_ids[0], model.codes.instance_ids[1]
    out = tmp_path / "walk"
    assert main(["interpolate", str(experiment), "--from", first, "--to", last, "--steps", "5",
                 "--resolution", "48", "--size", "64", "--renderer", "raycast", "--out",
                 str(out), "--device", "cpu"]) == 0
    meshes = [trimesh.load(out / f"step_{i:02d}.ply") for i in range(5)]
    points = [np.asarray(m.sample(3000, seed=0)) for m in meshes]
    ends = chamfer(points[0], points[4])
    assert chamfer(points[2], points[0]) > 0.05 * ends
    assert chamfer(points[2], points[4]) > 0.05 * ends
    with Image.open(out / "strip.png") as strip:
        assert strip.size == (5 * 64 + 4 * 4, 64)
    with Image.open(out / "interpolation.gif") as gif:
        assert gif.size == (64, 64) and gif.n_frames == 8  # there and back


@pytest.mark.parametrize("offset, size", [((0, 0, 0), 0.01), ((100, -40, 7), 50.0),
                                          ((0, 0, 0), 1.0)])
def test_pictures_frame_the_meshes_given_in_any_frame(offset, size):
    box = trimesh.creation.box(extents=(size, 0.6 * size, 0.4 * size))
    box.apply_translation(offset)
    image = render_meshes([box], renderer="raycast")[0]
    covered = (image != 255).any(axis=2).mean()
    assert 0.05 < covered < 0.6  # neither blank nor filling the frame
    rows, cols = np.nonzero((image != 255).any(axis=2))
    # centred: the box's pixels straddle the image centre
    assert rows.min() < image.shape[0] / 2 < rows.max()
    assert cols.min() < image.shape[1] / 2 < cols.max()


def test_a_path_at_given_fractions_is_the_same_path():
    """``at=[t]`` gives the code a sampled path has at t (slerp and lerp), and refuses t
    outside [0, 1]."""
    import pytest
    import torch

    from deepsdf.code_space import lerp, slerp
    from deepsdf_preprocess.errors import InputError

    a, b = torch.tensor([1.0, 0.2, -0.3]), torch.tensor([-0.1, 0.9, 0.4])
    for path in (slerp, lerp):
        assert torch.allclose(path(a, b, at=[0.25, 0.75]), path(a, b, 5)[[1, 3]], atol=1e-6)
        with pytest.raises(InputError):
            path(a, b, at=[1.5])

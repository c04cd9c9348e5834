"""``deepsdf explore`` (``deepsdf.explore``): the shape space's math against its definitions,
the decode queue, the command's one-line refusals, and the app in a real browser (headless
Chromium driven by Playwright): the map and a mesh drawn, a slider redrawing the mesh, an
export written, a second explorer on the port refused."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import torch

from deepsdf.cli import main
from deepsdf.experiment import Experiment
from deepsdf.mesh import code_mesh
from deepsdf_preprocess.errors import InputError

pytest.importorskip("viser", reason="the explore extra: pip install 'deepsdf[explore]'")

from deepsdf.explore import Explorer, LatestOnly, ShapeSpace, port_problem  # noqa: E402


@pytest.fixture(scope="module")
def space(trained):
    experiment, _ = trained
    return ShapeSpace(Experiment(experiment, device="cpu"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # a trained model (the shared fixture)
def test_the_map_is_the_codes_principal_directions_in_standard_deviations(space):
    codes = space.codes
    values = np.array([space.coefficients(code) for code in codes])
    # each direction's coefficients have mean 0 and standard deviation 1 over the codes
    assert np.allclose(values.mean(axis=0), 0, atol=1e-9)
    assert np.allclose(values.std(axis=0, ddof=1), 1, atol=1e-9)
    assert np.all(np.diff(space.spreads) <= 1e-12)  # largest spread first
    # a code of the span comes back from its coefficients; the map shows the first two
    for code, point in zip(codes, space.points):
        assert np.allclose(space.code_at(space.coefficients(code)), code, atol=1e-9)
        assert np.allclose(point.position, space.coefficients(code)[:2])
    # the directions are orthonormal and the spread along each is what the codes show
    assert np.allclose(space.directions @ space.directions.T, np.eye(len(space.spreads)),
                       atol=1e-9)
    assert np.allclose(np.var((codes - codes.mean(0)) @ space.directions.T, axis=0, ddof=1),
                       space.spreads ** 2)


@pytest.mark.slow  # a trained model (the shared fixture)
def test_moving_on_the_map_keeps_the_other_directions(space):
    code = space.codes[1]
    moved = space.with_map_position(code, (1.5, -0.5))
    assert np.allclose(space.coefficients(moved)[:2], [1.5, -0.5])
    assert np.allclose(space.coefficients(moved)[2:], space.coefficients(code)[2:])


@pytest.mark.slow  # a trained model (the shared fixture)
def test_interpolation_and_random_draws(space):
    first, second = space.points[0], space.points[-1]
    assert np.allclose(space.interpolate(first.name, second.name, 0.0), first.code)
    assert np.allclose(space.interpolate(first.name, second.name, 1.0), second.code, atol=1e-6)
    middle = space.interpolate(first.name, second.name, 0.5)
    # slerp: the norm goes linearly, the direction along the great circle
    assert np.linalg.norm(middle) == pytest.approx(
        (np.linalg.norm(first.code) + np.linalg.norm(second.code)) / 2, rel=1e-3)
    cosine = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    assert cosine(middle, first.code) == pytest.approx(cosine(middle, second.code), abs=2e-3)
    assert np.array_equal(space.random(3), space.random(3))
    assert not np.array_equal(space.random(3), space.random(4))


@pytest.mark.slow  # a trained model (the shared fixture)
def test_decoding_is_the_projects_mesh_extraction(space):
    code = space.codes[0]
    mesh = space.decode(code, 24)
    expected = code_mesh(space.decoder, torch.as_tensor(code, dtype=torch.float32), 24,
                         clamp=space.clamp)
    assert np.allclose(mesh.vertices, expected.vertices) and np.array_equal(mesh.faces,
                                                                             expected.faces)
    far = space.code_at(np.zeros(len(space.spreads))) * 0 + 1e4  # no zero crossing
    assert space.decode(far, 16) is None or len(space.decode(far, 16).faces) > 0


def test_latest_only_decodes_the_first_and_the_newest_request():
    done, gate = [], threading.Event()

    def work(request):
        gate.wait(5)
        done.append(request)

    worker = LatestOnly(work, settle=0.05)
    for request in range(20):
        worker.submit(request)
        time.sleep(0.001)
    gate.set()
    deadline = time.time() + 5
    while (not done or done[-1] != 19) and time.time() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert done[-1] == 19 and len(done) <= 3  # the one running, then only the newest


def test_a_port_in_use_is_named(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert "cannot listen on 127.0.0.1:%d" % port in port_problem("127.0.0.1", port)
    assert port_problem("127.0.0.1", _free_port()) is None
    assert "not a name or address" in port_problem("no-such-host.invalid", 8080)


@pytest.mark.slow  # a trained model (the shared fixture)
def test_exports_never_replace_an_earlier_one(space, tmp_path):
    """Each export takes the number after the highest one in the folder: a deleted export
    leaves a gap, never a number used twice; an --out that is a file is said, not raised."""
    out = tmp_path / "out"
    with Explorer(space, port=_free_port(), resolution=16, preview=8, out=out) as explorer:
        app = explorer.app
        first, second = app.export("ply"), app.export("obj")
        assert (first.name, second.name) == ("shape-001.ply", "shape-002.obj")
        kept = second.read_bytes()
        first.unlink()
        (out / "shape-001.code.npy").unlink()
        second.with_name("shape-002.code.npy").unlink()
        third = app.export("ply")
        assert third.name == "shape-003.ply" and second.read_bytes() == kept
        assert np.load(out / "shape-003.code.npy").shape == (space.codes.shape[1],)
        app.out = tmp_path / "a-file"
        app.out.write_text("notes")
        with pytest.raises(InputError, match="is a file"):
            app.export("ply")
        assert app.out.read_text() == "notes"


@pytest.mark.slow  # a trained model (the shared fixture)
def test_explore_refuses_in_one_line(trained, tmp_path, capsys, monkeypatch):
    experiment, _ = trained
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert main(["explore", str(experiment), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "cannot listen" in err and "Traceback" not in err
    assert main(["explore", str(tmp_path / "none"), "--port", str(_free_port())]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["explore", str(tmp_path / "file"), "--port", str(_free_port())]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["explore", str(experiment), "--out", str(tmp_path / "file"), "--port",
                 str(_free_port())]) == 2
    assert "is a file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["explore", str(tmp_path / "empty"), "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    monkeypatch.setitem(__import__("sys").modules, "viser", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert main(["explore", str(experiment), "--port", str(_free_port())]) == 2
    assert "pip install 'deepsdf[explore]'" in capsys.readouterr().err


# ---------------------------------------------------------------------- in a browser

def _mesh_pixels(png: bytes) -> int:
    """Pixels of the shown shape's colour family (warm, 200:170:120 shaded)."""
    import io

    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return int(np.count_nonzero((r > g + 10) & (g > b + 15) & (r > 60)))


def _blue_pixels(png: bytes) -> int:
    """Pixels of the first class's colour on the map (31, 119, 180), shaded."""
    import io

    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return int(np.count_nonzero((b > r + 60) & (b > g + 20)))


def _wait(condition, seconds=60.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow  # a trained model (the shared fixture)
def test_the_explorer_in_a_browser(space, trained, tmp_path, capsys):
    from browser import chromium

    executable = chromium()
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    port = _free_port()
    with Explorer(space, port=port, resolution=32, preview=16, out=tmp_path / "out") as explorer:
        app = explorer.app
        assert _wait(lambda: app.shown_resolution == 32)  # the mean shape, full resolution
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable,
                args=["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox"])
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.goto(explorer.address)
            page.get_by_text("decode", exact=False).first.wait_for(timeout=60_000)
            time.sleep(3)  # the first frames (software WebGL)
            before = page.screenshot()
            assert _mesh_pixels(before) > 200, "no shape drawn"
            assert _blue_pixels(before) > 20, "no map drawn"
            # a slider change redraws the mesh
            attempts = app.attempts
            box = page.locator("input:visible").first  # PC1's number box
            box.click()  # typed as a user types (a filled value sends no change event)
            box.press("Control+a")
            box.type("1.2")
            box.press("Enter")
            assert _wait(lambda: app.attempts > attempts)
            assert space.coefficients(app.code)[0] == pytest.approx(1.2, abs=1e-6)
            assert _wait(lambda: app.shown_resolution == 32 and np.allclose(
                app.mesh.vertices, space.decode(app.code, 32).vertices)), "not redrawn"
            time.sleep(3)
            after = page.screenshot()
            assert after != before and _mesh_pixels(after) > 200
            # an export writes the mesh of the shown code
            page.get_by_text("Export the shown mesh").click()
            assert _wait(lambda: app.exported is not None and app.exported.is_file())
            page.get_by_text("Exported", exact=False).first.wait_for(timeout=30_000)
            browser.close()
        import trimesh

        written = trimesh.load(app.exported, force="mesh", process=False)
        expected = space.decode(app.code, 32)
        assert app.exported.parent == tmp_path / "out" and app.exported.suffix == ".ply"
        assert len(written.faces) == len(expected.faces)
        assert np.allclose(np.sort(written.vertices, axis=0), np.sort(expected.vertices, axis=0),
                           atol=1e-5)
        # a second explorer, of another experiment's folder, on the same port is refused
        import shutil

        other = shutil.copytree(trained[0], tmp_path / "other")
        capsys.readouterr()
        assert main(["explore", str(other), "--port", str(port)]) == 2
        assert "cannot listen" in capsys.readouterr().err

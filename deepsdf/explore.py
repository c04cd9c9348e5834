"""``deepsdf explore``: walk a trained shape space in a browser.

Two parts:

- :class:`ShapeSpace`: the math, with no web server (tested on its own).  The training codes'
  principal directions (PCA of the (n, d) code table), a 2-D map of every training code and of
  every held-out shape's fitted code (``Reconstructions/<checkpoint>/Codes``, when current),
  codes at any point of the map or any slider setting, interpolation between two shapes,
  random draws from the Gaussian of the training codes, and decoding a code to a mesh
  (normalized frame) at a preview or a full resolution.
- :func:`serve`: the app, built on viser (the 3-D web viewer nerfstudio uses; installed with
  ``pip install 'deepsdf[explore]'``).  The scene holds the shown shape at the origin and,
  to its left, the map: one sphere per shape coloured by class (held-out shapes in white
  outline), the point being shown as a draggable handle.  Sliders move along the principal
  directions; a click on a sphere shows that shape; two picked shapes give an interpolation
  slider; a button draws a random shape; another exports the shown mesh.  While the handle
  or a slider moves the mesh is decoded at the preview resolution, and at the full one once
  it rests (:class:`LatestOnly`).

Frames: codes are the model's; the map's axes are the first two principal directions in
units of their standard deviation (σ), so a slider at 1 is one σ along its direction; meshes
are in the normalized frame (the unit sphere), as ``deepsdf mesh`` writes them without
``--original``.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepsdf_preprocess.errors import InputError

from .code_space import principal_directions, sample_codes, slerp
from .mesh import NoSurfaceError, code_mesh

__all__ = ["ShapeSpace", "LatestOnly", "Explorer", "serve", "port_problem", "EXPLORE_EXTRA"]

logger = logging.getLogger(__name__)

#: How to install what ``deepsdf explore`` needs beyond the core.
EXPLORE_EXTRA = "pip install 'deepsdf[explore]'"
#: Principal directions with a slider (fewer when the codes span fewer).
SLIDERS = 6
#: Slider range, in standard deviations of each direction.
SLIDER_RANGE = 3.0


@dataclass(frozen=True)
class MapPoint:
    """One shape on the map: its name, class, whether it is a held-out shape (a fitted code),
    its (d,) code and its (2,) map position."""

    name: str
    class_name: str
    held_out: bool
    code: np.ndarray
    position: np.ndarray


class ShapeSpace:
    """The codes of a trained experiment, their principal directions and their meshes.

    Parameters
    ----------
    experiment : Experiment
        Opened at the checkpoint to explore (its model is loaded once, here).
    held_out : bool
        Also place the held-out shapes whose reconstructions are current (the test split's).
    """

    def __init__(self, experiment, *, held_out: bool = True):
        model = experiment.model
        self.experiment = experiment
        self.decoder = model.decoder
        self.clamp = float(model.config.trained_clamp)
        self.codes = model.codes.detach().double().cpu().numpy()  # (n, d)
        if len(self.codes) < 2:
            raise InputError(f"{experiment.folder} has {len(self.codes)} training code(s): a "
                             "shape space needs at least 2")
        #: (d,) mean code; (k, d) unit principal directions, largest spread first; (k,) the
        #: codes' standard deviation along each (code_space.principal_directions)
        self.mean, self.directions, self.spreads = principal_directions(self.codes)
        self.points = [self._point(name, False, code)
                       for name, code in zip(model.instance_ids, self.codes)]
        if held_out:
            self.points += self._held_out_points()

    # ------------------------------------------------------------------ the map

    def coefficients(self, code) -> np.ndarray:
        """(k,) position of a (d,) code along the principal directions, in σ."""
        return (np.asarray(code, np.float64) - self.mean) @ self.directions.T / self.spreads

    def code_at(self, coefficients) -> np.ndarray:
        """(d,) code at ``coefficients`` (σ along the first directions; the rest at the mean,
        missing ones 0)."""
        values = np.zeros(len(self.spreads))
        given = np.asarray(coefficients, np.float64).reshape(-1)[:len(values)]
        values[:len(given)] = given
        return self.mean + (values * self.spreads) @ self.directions

    def with_map_position(self, code, position) -> np.ndarray:
        """``code`` moved so that its first two coefficients are ``position`` (the others
        kept): what dragging the handle on the map does."""
        values = self.coefficients(code)
        values[:2] = np.asarray(position, np.float64)[:min(2, len(values))]
        return self.code_at(values)

    def _point(self, name: str, held_out: bool, code) -> MapPoint:
        parts = name.split("/")
        class_name = parts[-2] if len(parts) >= 2 else ""
        position = np.zeros(2)
        values = self.coefficients(code)
        position[:min(2, len(values))] = values[:2]
        return MapPoint(name, class_name, held_out, np.asarray(code, np.float64), position)

    def _held_out_points(self) -> list:
        """The test split's shapes whose fitted codes are this checkpoint's (current)."""
        from .experiment import read_code
        from .latents import split_instances

        experiment = self.experiment
        if not experiment.spec.test_split or not Path(experiment.spec.test_split).is_file():
            return []
        points = []
        try:
            keys = split_instances(experiment.split())
        except InputError as error:
            logger.warning("held-out shapes left off the map: %s", error)
            return []
        for key in keys:
            path = experiment.reconstruction(key)["code"]
            if not path.is_file() or experiment.reconstruction_stale(key) is not None:
                continue
            code = read_code(path, self.codes.shape[1]).double().numpy()
            points.append(self._point(key, True, code))
        return points

    @property
    def classes(self) -> list:
        """The class names on the map, sorted."""
        return sorted({point.class_name for point in self.points})

    def find(self, name: str) -> MapPoint:
        """The map point named ``name`` (a shape id as listed)."""
        for point in self.points:
            if point.name == name:
                return point
        raise InputError(f"no shape {name!r} on the map")

    # ------------------------------------------------------------------ codes

    def interpolate(self, first: str, second: str, t: float) -> np.ndarray:
        """The code a fraction ``t`` of the way from shape ``first`` to ``second`` (slerp:
        great-circle direction, linearly interpolated norm, as ``deepsdf interpolate``)."""
        a, b = self.find(first).code, self.find(second).code
        t = float(np.clip(t, 0.0, 1.0))
        if t in (0.0, 1.0):
            return (a if t == 0.0 else b).copy()
        return slerp(a, b, at=[t])[0].double().numpy()

    def random(self, seed: int) -> np.ndarray:
        """A (d,) code drawn from N(mean, covariance) of the training codes."""
        return sample_codes(torch.from_numpy(self.codes), 1, seed=seed)[0].double().numpy()

    def decode(self, code, resolution: int):
        """The normalized-frame ``trimesh.Trimesh`` of a (d,) code at ``resolution``, or None
        when its SDF has no zero crossing (no surface)."""
        device = next(self.decoder.parameters()).device
        tensor = torch.as_tensor(np.asarray(code), dtype=torch.float32, device=device)
        try:
            with torch.no_grad():
                return code_mesh(self.decoder, tensor, resolution, clamp=self.clamp)
        except NoSurfaceError:
            return None


class LatestOnly:
    """Runs ``work(request)`` on one background thread, always on the newest request: a
    request that arrives while one is running replaces any waiting one (a slider dragged
    through twenty values decodes the first and the last, not twenty).  A request marked
    ``final`` is run after ``settle`` seconds without a newer one (the full-resolution mesh
    once the slider rests)."""

    def __init__(self, work, *, settle: float = 0.35):
        self._work, self._settle = work, settle
        self._condition = threading.Condition()
        self._waiting = None
        self._stamp = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="explore-decode", daemon=True)
        self._thread.start()

    def submit(self, request, *, final: bool = False) -> None:
        with self._condition:
            self._stamp += 1
            self._waiting = (self._stamp, request, final, time.monotonic())
            self._condition.notify()

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._waiting is None and not self._stopped:
                    self._condition.wait()
                if self._stopped:
                    return
                stamp, request, final, when = self._waiting
                delay = when + self._settle - time.monotonic() if final else 0.0
                if delay > 0:
                    self._condition.wait(delay)
                    if self._waiting is None or self._waiting[0] != stamp:
                        continue  # a newer request came in while this one settled
                self._waiting = None
            try:
                self._work(request)
            except Exception:  # noqa: BLE001 - a failed decode must not end the app
                logger.exception("decoding failed")


def port_problem(host: str, port: int) -> str | None:
    """Why the explorer cannot listen on ``host:port`` (in use, not an address of this
    machine), or None.  (viser would quietly move to the next free port; a user who typed a
    port should be told.)  The probe binds as the server will (``SO_REUSEADDR``), so a port
    an explorer just left, still in TIME_WAIT, is free."""
    import errno

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        return f"cannot listen on {host}: not a name or address of this machine ({error})"
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            probe.listen()
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (f"cannot listen on {host}:{port}: the port is in use (another explorer "
                        "or server; choose another with --port)")
            if error.errno == errno.EADDRNOTAVAIL:
                return f"cannot listen on {host}: not an address of this machine (--host)"
            return f"cannot listen on {host}:{port}: {error.strerror or error}"
    return None


class Explorer:
    """The explorer's server, started: :attr:`address`, :attr:`app` (the scene and controls),
    :meth:`close`.  A context manager.  See :func:`serve` for the parameters."""

    def __init__(self, space: ShapeSpace, *, host: str = "127.0.0.1", port: int = 8080,
                 resolution: int = 96, preview: int = 40, out=None):
        try:
            import viser
        except ImportError:
            raise InputError(f"deepsdf explore needs viser: {EXPLORE_EXTRA}") from None
        problem = port_problem(host, port)
        if problem:
            raise InputError(problem)
        self.server = viser.ViserServer(host=host, port=port, label="deepsdf explore",
                                        verbose=False)
        try:
            self.app = _App(self.server, space, resolution=resolution, preview=preview,
                            out=Path(out) if out else space.experiment.folder / "Explore")
        except BaseException:
            self.server.stop()
            raise
        shown = "localhost" if host in ("127.0.0.1", "::1", "localhost") else host
        self.address = f"http://{shown}:{port}"

    def close(self) -> None:
        self.app.close()
        self.server.stop()

    def __enter__(self) -> "Explorer":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def serve(space: ShapeSpace, *, host: str = "127.0.0.1", port: int = 8080,
          resolution: int = 96, preview: int = 40, out=None, ready=None,
          stop: threading.Event | None = None) -> None:
    """Run the explorer on ``host:port`` until Ctrl-C (or ``stop`` is set).

    ``resolution`` and ``preview``: the marching-cubes grids of a resting and of a moving
    view.  ``out``: where exports are written (created on the first export; default
    ``EXP/Explore``).  ``ready``: a callable given the address once the server listens (the
    CLI prints it).  A port in use, or viser missing, is an :class:`InputError`.
    """
    with Explorer(space, host=host, port=port, resolution=resolution, preview=preview,
                  out=out) as explorer:
        if ready is not None:
            ready(explorer.address)
        stop = stop or threading.Event()
        try:
            while not stop.wait(0.2):
                pass
        except KeyboardInterrupt:
            logger.info("stopping the explorer")


#: Where the map lies in the scene: its centre, and the scene length of one σ.
MAP_CENTRE = np.array([-2.6, 0.0, 0.0])
MAP_UNIT = 0.3


def _colour(index: int) -> tuple:
    palette = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
               (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
    return palette[index % len(palette)]


class _App:
    """The viser scene and controls over one :class:`ShapeSpace` (see the module docstring)."""

    def __init__(self, server, space: ShapeSpace, *, resolution: int, preview: int, out: Path):
        self.server, self.space = server, space
        self.resolution, self.preview, self.out = resolution, preview, out
        self.code = space.mean.copy()
        self.mesh = self.shape = self.shown_resolution = None
        self.what = "the mean shape"
        self.decoded = self.attempts = 0  # meshes shown; decodes run (with or without one)
        self._quiet = False  # set while the app itself moves the controls
        self._lock = threading.Lock()
        scene, gui = server.scene, server.gui
        scene.configure_environment_map(hdri=None)  # no download: works offline
        scene.set_up_direction("+y")
        # both the map (left) and the shape (at the origin) in view, seen from the front
        server.initial_camera.position = (MAP_CENTRE[0] / 2, 0.4, 4.2)
        server.initial_camera.look_at = (MAP_CENTRE[0] / 2, 0.0, 0.0)
        scene.add_grid("/map/grid", width=2 * SLIDER_RANGE * MAP_UNIT,
                       height=2 * SLIDER_RANGE * MAP_UNIT, plane="xy",
                       cell_size=MAP_UNIT, section_size=MAP_UNIT * SLIDER_RANGE,
                       position=tuple(MAP_CENTRE))
        classes = space.classes
        for number, point in enumerate(space.points):
            colour = _colour(classes.index(point.class_name))
            sphere = scene.add_icosphere(
                f"/map/shapes/{number}", radius=0.035 if point.held_out else 0.028,
                color=(255, 255, 255) if point.held_out else colour, subdivisions=2,
                position=tuple(self._scene_position(point.position)))
            sphere.on_click(lambda _, name=point.name: self.show_shape(name))
        self.handle = scene.add_transform_controls(
            "/map/handle", scale=0.25, active_axes=(True, True, False), disable_rotations=True,
            position=tuple(self._scene_position(np.zeros(2))))
        self.handle.on_update(
            lambda event: self._dragged(final=getattr(event, "phase", "end") == "end"))

        self.status = gui.add_markdown("Loading the mean shape…")
        gui.add_markdown("Map (left): " + ", ".join(
            f"{name} <span style='color:rgb{_colour(i)}'>●</span>" for i, name in enumerate(classes))
            + (", held out ○" if any(p.held_out for p in space.points) else "")
            + ". Click a shape; drag the handle.")
        with gui.add_folder("Principal directions (σ)"):
            self.sliders = [gui.add_slider(f"PC{i + 1}", -SLIDER_RANGE, SLIDER_RANGE, 0.05, 0.0)
                            for i in range(min(SLIDERS, len(space.spreads)))]
        for slider in self.sliders:
            slider.on_update(lambda _: self._slid())
        self.typed = gui.add_vector2("Map point", (0.0, 0.0), step=0.05,
                                     hint="a point of the map (σ along PC1 and PC2)")
        self.typed.on_update(lambda _: self._typed())
        names = [point.name for point in space.points]
        with gui.add_folder("Interpolate"):
            self.first = gui.add_dropdown("From", names, initial_value=names[0])
            self.second = gui.add_dropdown("To", names, initial_value=names[-1])
            self.t = gui.add_slider("t", 0.0, 1.0, 0.01, 0.0)
        for control in (self.first, self.second, self.t):
            control.on_update(lambda _: self._interpolated())
        self.draws = 0
        gui.add_button("Random shape", hint="a draw from the Gaussian of the training codes"
                       ).on_click(lambda _: self.show_random())
        with gui.add_folder("Export"):
            self.format = gui.add_dropdown("Format", ("ply", "obj"), initial_value="ply")
            gui.add_button("Export the shown mesh").on_click(self._export_clicked)
        self.exported = None
        self.worker = LatestOnly(self._decode)
        self.show_code(self.code, final=True)

    # ------------------------------------------------------------------ actions

    def show_code(self, code, *, final: bool, what: str = "") -> None:
        """Show ``code``: move the sliders and the handle to it, and decode it (the preview
        now; the full resolution once nothing newer came, when ``final``)."""
        with self._lock:
            self.code = np.asarray(code, np.float64)
            self.what = what
        self._move_controls(self.code)
        self.worker.submit((self.code.copy(), self.preview), final=False)
        self.worker.submit((self.code.copy(), self.resolution), final=final)

    def show_shape(self, name: str) -> None:
        point = self.space.find(name)
        self.show_code(point.code, final=True, what=name)

    def show_random(self) -> None:
        self.draws += 1
        self.show_code(self.space.random(self.draws), final=True, what=f"random draw {self.draws}")

    def export(self, file_format: str = "ply") -> Path:
        """Write the shown code's mesh at the full resolution to ``out``; returns the file."""
        with self._lock:
            code = self.code.copy()
        mesh = self.space.decode(code, self.resolution)
        if mesh is None:
            raise InputError("the shown code has no surface: nothing to export")
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"{self.out} is a file, not a folder for the exports")
        self.out.mkdir(parents=True, exist_ok=True)
        # the number after the highest one there (files deleted since leave gaps, never a
        # number used twice): nothing already written is replaced
        taken = [int(match.group(1)) for name in os.listdir(self.out)
                 for match in [re.match(r"shape-(\d+)\.", name)] if match]
        stem = f"shape-{max(taken, default=0) + 1:03d}"
        path = self.out / f"{stem}.{file_format}"
        from deepsdf_preprocess.contract import atomic_path

        with atomic_path(path) as temporary:
            mesh.export(temporary, file_type=file_format)
        with atomic_path(self.out / f"{stem}.code.npy") as temporary:
            with open(temporary, "wb") as stream:
                np.save(stream, code.astype(np.float32))
        self.exported = path
        return path

    def close(self) -> None:
        self.worker.stop()

    # ------------------------------------------------------------------ events

    def _scene_position(self, position) -> np.ndarray:
        return MAP_CENTRE + np.array([position[0], position[1], 0.0]) * MAP_UNIT + [0, 0, 0.02]

    def _move_controls(self, code, *, sliders_only: bool = False) -> None:
        """Set the sliders (and, unless ``sliders_only``: while the handle itself is being
        dragged, the handle and the typed map point) to ``code``, without their events."""
        values = self.space.coefficients(code)
        self._quiet = True
        try:
            for slider, value in zip(self.sliders, values):
                slider.value = float(np.clip(np.round(value, 2), -SLIDER_RANGE, SLIDER_RANGE))
            if not sliders_only:
                map_position = np.zeros(2)
                map_position[:min(2, len(values))] = values[:2]
                self.handle.position = tuple(self._scene_position(map_position))
                self.typed.value = tuple(float(v) for v in np.round(map_position, 2))
        finally:
            self._quiet = False

    def _dragged(self, *, final: bool) -> None:
        if self._quiet:
            return
        position = (np.asarray(self.handle.position) - MAP_CENTRE)[:2] / MAP_UNIT
        code = self.space.with_map_position(self.code, position)
        with self._lock:
            self.code = code
            self.what = "a point of the map"
        if not final:
            self._move_controls(code, sliders_only=True)
            self.worker.submit((code.copy(), self.preview))
        else:
            self.show_code(code, final=True, what="a point of the map")

    def _slid(self) -> None:
        if self._quiet:
            return
        values = self.space.coefficients(self.code)
        values[:len(self.sliders)] = [slider.value for slider in self.sliders]
        self.show_code(self.space.code_at(values), final=True, what="the sliders")

    def _typed(self) -> None:
        if self._quiet:
            return
        code = self.space.with_map_position(self.code, self.typed.value)
        self.show_code(code, final=True, what="a typed point of the map")

    def _interpolated(self) -> None:
        if self._quiet:
            return
        code = self.space.interpolate(self.first.value, self.second.value, self.t.value)
        self.show_code(code, final=True, what=f"{self.t.value:.2f} of the way from "
                       f"{self.first.value} to {self.second.value}")

    def _export_clicked(self, event) -> None:
        try:
            path = self.export(self.format.value)
        except (InputError, OSError) as error:  # a read-only or full folder: said, not raised
            self.status.content = f"**Export failed:** {error}"
            logger.warning("export failed: %s", error)
            return
        self.status.content = f"Exported `{path}`"
        if event.client is not None:
            event.client.send_file_download(path.name, path.read_bytes())

    def _decode(self, request) -> None:
        code, resolution = request
        start = time.perf_counter()
        mesh = self.space.decode(code, resolution)
        seconds = time.perf_counter() - start
        self.attempts += 1
        if mesh is None:
            if self.shape is not None:
                self.shape.visible = False
            self.status.content = f"{self.what or 'this code'}: no surface (the SDF never " \
                                  "crosses zero)"
            return
        self.shape = self.server.scene.add_mesh_simple(
            "/shape", np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.uint32),
            color=(200, 170, 120))
        self.mesh, self.shown_resolution = mesh, resolution
        self.decoded += 1
        self.status.content = (f"**{self.what or 'the mean shape'}** — {resolution}³ grid, "
                               f"{len(mesh.faces):,} triangles, decoded in {seconds:.2f} s "
                               f"(decode {self.decoded})")

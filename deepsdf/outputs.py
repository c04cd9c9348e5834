"""The layouts of the output folders the workflows write, each spelled once: a fitted shape's
files, a completion run, one scan's completion, an interpolation, and a report.

::

    <root>/Codes/<dataset>/<class>/<instance>.pth        (1, d) code          fit_outputs
    <root>/Meshes/<dataset>/<class>/<instance>.ply       its mesh
    <root>/MeshesOriginalFrame/<dataset>/<class>/<instance>.ply

    OUT/completion.csv, OUT/summary.json, OUT/Codes/..., OUT/Meshes/...   CompletionFolder
        (a split completed; its Meshes are in the original frame)
    OUT/code.pth, OUT/completed_normalized.ply, OUT/completed.ply,
    OUT/metrics.json                                                        ScanCompletionFolder
    OUT/step_XX.ply, OUT/strip.png, OUT/interpolation.gif
    OUT/sample_XX.ply, OUT/grid.png                                         InterpolationFolder
    REPORT/index.html, REPORT/summary.json, REPORT/training_curve.png,
    REPORT/shapes/<class>/<instance>.png, REPORT/.deepsdf-report            ReportFolder

Every path is made by the folder's :class:`~deepsdf_preprocess.paths.Tree` (no link out of
the folder followed, a wrong kind of path one line).  The experiment folder's own files are
:class:`~deepsdf.experiment.Experiment`'s; a reader of these folders (the report reads a
completion run and an interpolation) asks the same layout the writer used.
"""

from __future__ import annotations

import re
from pathlib import Path

from deepsdf_preprocess import contract
from deepsdf_preprocess.paths import Tree

__all__ = ["fit_outputs", "CompletionFolder", "ScanCompletionFolder", "InterpolationFolder",
           "ReportFolder"]


def _tree(folder, what: str = "output folder") -> Tree:
    return folder if isinstance(folder, Tree) else Tree(folder, what)


def fit_outputs(root, key: str, *, under=()) -> dict:
    """``{"code", "mesh", "original"}`` paths of a fitted shape ``dataset/class/instance``
    under an output root (a folder, or a :class:`~deepsdf_preprocess.paths.Tree` with the
    folders ``under`` it): ``ROOT/Codes/...pth``, ``ROOT/Meshes/...ply`` and
    ``ROOT/MeshesOriginalFrame/...ply``."""
    key = contract.InstanceKey.parse(key)
    tree = _tree(root)

    def path(kind: str, suffix: str) -> Path:
        return tree.file(*under, kind, key.dataset, key.class_name, key.instance + suffix)

    return {"code": path("Codes", ".pth"), "mesh": path("Meshes", ".ply"),
            "original": path("MeshesOriginalFrame", ".ply")}


class CompletionFolder:
    """The folder ``deepsdf complete --virtual-scan`` (:func:`deepsdf.completion.complete_split`)
    writes: a table with one row per shape, a summary, and each shape's code and completed
    mesh (original frame) by :func:`fit_outputs`."""

    def __init__(self, folder):
        self.tree = _tree(folder)
        self.root = self.tree.root

    @property
    def table(self) -> Path:
        """``OUT/completion.csv``: one row per completed shape."""
        return self.tree.file("completion.csv")

    @property
    def summary(self) -> Path:
        """``OUT/summary.json``: mean and median per metric, and the verdict."""
        return self.tree.file("summary.json")

    def shape(self, key: str) -> dict:
        """:func:`fit_outputs` of shape ``key``; its ``"mesh"`` is in the original frame."""
        return fit_outputs(self.tree, key)

    def holds_a_run(self) -> bool:
        return self.table.is_file() and self.summary.is_file()


class ScanCompletionFolder:
    """The folder ``deepsdf complete`` writes for one world-frame scan
    (:func:`deepsdf.completion.complete_scans`)."""

    def __init__(self, folder):
        self.tree = _tree(folder)
        self.root = self.tree.root

    @property
    def code(self) -> Path:
        """``OUT/code.pth``: the completed (1, d) code."""
        return self.tree.file("code.pth")

    @property
    def normalized_mesh(self) -> Path:
        """``OUT/completed_normalized.ply``: the completed mesh in the model frame."""
        return self.tree.file("completed_normalized.ply")

    @property
    def mesh(self) -> Path:
        """``OUT/completed.ply``: the completed mesh in the scan's world frame."""
        return self.tree.file("completed.ply")

    @property
    def metrics(self) -> Path:
        """``OUT/metrics.json``: the summary with metrics, when a true mesh was given."""
        return self.tree.file("metrics.json")

    def start_run(self, *, with_metrics: bool) -> None:
        """Check every path a run writes (links out, wrong kinds: one line before the fit)
        and remove an earlier run's ``metrics.json`` when this run writes none (it would
        describe another completion)."""
        for path in (self.code, self.normalized_mesh, self.mesh, self.metrics):
            self.tree.check(path)
        if not with_metrics and self.metrics.is_file():
            self.tree.remove(self.metrics, ours=r"metrics\.json")


class InterpolationFolder:
    """The folder ``deepsdf interpolate`` (:func:`deepsdf.interpolate.interpolation_pictures`)
    writes: ``step_XX.ply`` along a path with ``strip.png`` and ``interpolation.gif``, or
    ``sample_XX.ply`` of random codes with ``grid.png`` (meshes in the normalized frame)."""

    KINDS = ("step", "sample")
    MARKER = ".deepsdf-interpolation"
    _MESH = re.compile(r"(step|sample)_\d{2,}\.ply")

    def __init__(self, folder):
        self.tree = _tree(folder)
        self.root = self.tree.root

    def mesh(self, kind: str, index: int) -> Path:
        """``OUT/<kind>_<index:02d>.ply`` for a kind of :attr:`KINDS`."""
        if kind not in self.KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        return self.tree.file(f"{kind}_{index:02d}.ply")

    def start_run(self) -> None:
        """Make the folder ready for a run: an earlier run's step and sample meshes are
        removed (only files of those names, and only where the marker says this command
        wrote them); step or sample meshes it did not write are refused, never deleted."""
        from deepsdf_preprocess.errors import InputError

        folder = self.tree.folder()
        earlier = [p for p in folder.glob("*_*.ply") if self._MESH.fullmatch(p.name)]
        marker = self.tree.file(self.MARKER)
        if earlier and not marker.is_file():
            raise InputError(f"{folder} holds {earlier[0].name} (and {len(earlier)} such "
                             "files in all) that `deepsdf interpolate` did not write there; "
                             "choose a new or empty folder")
        for old in earlier:
            self.tree.remove(old, ours=self._MESH.pattern)
        self.tree.folder(create=True)
        marker.write_text("written by deepsdf interpolate; a rerun replaces its step_XX.ply "
                          "and sample_XX.ply files\n")

    @property
    def strip(self) -> Path:
        return self.tree.file("strip.png")

    @property
    def animation(self) -> Path:
        return self.tree.file("interpolation.gif")

    @property
    def grid(self) -> Path:
        return self.tree.file("grid.png")


class ReportFolder:
    """The folder ``deepsdf report`` (:func:`deepsdf.experiment_report.write_report`) writes,
    by default ``EXP/Report/<checkpoint>``; its marker file says this project wrote it, so a
    rerun may replace its files."""

    MARKER = ".deepsdf-report"

    def __init__(self, folder):
        self.tree = _tree(folder, "report folder")
        self.root = self.tree.root

    @property
    def index(self) -> Path:
        return self.tree.file("index.html")

    @property
    def summary(self) -> Path:
        return self.tree.file("summary.json")

    @property
    def training_curve(self) -> Path:
        return self.tree.file("training_curve.png")

    @property
    def marker(self) -> Path:
        return self.tree.file(self.MARKER)

    def shape_picture(self, class_name: str, instance: str) -> Path:
        """``REPORT/shapes/<class>/<instance>.png`` (instance names repeat across classes)."""
        return self.tree.file("shapes", class_name, f"{instance}.png")

    def link(self, path) -> str:
        """``path`` relative to the report folder, as the page links it."""
        import os

        return os.path.relpath(path, self.root)

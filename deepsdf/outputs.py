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
    REPORT/index.html, REPORT/summary.json, REPORT/training_curve.png, REPORT/code_map.png,
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


class _OwnedFolder:
    """An output folder one command writes: a marker file says that command wrote it (and
    records what it was made from), so a rerun may replace the command's own files while a
    folder holding files of those names that it did not write is refused, never
    overwritten or deleted.  The marker is replaced atomically (a hard link planted there
    is never written through)."""

    MARKER = ""
    COMMAND = ""

    def __init__(self, folder):
        self.tree = _tree(folder)
        self.root = self.tree.root

    @property
    def marker(self) -> Path:
        return self.tree.file(self.MARKER)

    def _owned(self) -> list:
        """The paths of this command's files (or folders) that exist now."""
        raise NotImplementedError

    def record(self) -> dict:
        """What the marker says (``{}`` without one, or an unreadable one)."""
        import json

        try:
            value = json.loads(self.marker.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        return value if isinstance(value, dict) else {}

    def claim(self, **made_from) -> list:
        """Check the folder (kinds, links) and that files of this command's names in it are
        this command's; write the marker with ``made_from``.  Returns the earlier run's
        files (present, and this command's).

        Raises
        ------
        InputError
            When the folder holds such files without the marker (a user's, or another
            command's).
        """
        import os

        from deepsdf_preprocess.errors import InputError

        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"{self.root} is a file, not an output folder")
        earlier = [path for path in self._owned() if os.path.lexists(path)]
        if earlier and not self.marker.is_file():
            raise InputError(f"{self.root} holds {earlier[0].name} (and {len(earlier)} such "
                             f"file(s) in all) that `deepsdf {self.COMMAND}` did not write "
                             "there; choose a new or empty folder")
        self.tree.folder(create=True)
        contract.write_json(self.marker, {"written_by": f"deepsdf {self.COMMAND}",
                                          **made_from})
        return earlier


class CompletionFolder(_OwnedFolder):
    """The folder ``deepsdf complete --virtual-scan`` (:func:`deepsdf.completion.complete_split`)
    writes: a table with one row per shape, a summary, and each shape's code and completed
    mesh (original frame) by :func:`fit_outputs`."""

    MARKER = ".deepsdf-completion"
    COMMAND = "complete --virtual-scan"

    def _owned(self) -> list:
        return [self.table, self.summary, self.tree.folder("Codes"), self.tree.folder("Meshes"),
                self.tree.folder("Refined")]

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

    def refined(self, key: str) -> dict:
        """The refined result of shape ``key`` (``complete --refine``): :func:`fit_outputs`
        under ``OUT/Refined`` and ``"decoder"``, its own decoder weights (``.pt``)."""
        paths = fit_outputs(self.tree, key, under=("Refined",))
        paths["decoder"] = paths["code"].with_suffix(".pt")
        return paths

    def holds_a_run(self) -> bool:
        return self.table.is_file() and self.summary.is_file()


class ScanCompletionFolder(_OwnedFolder):
    """The folder ``deepsdf complete`` writes for one world-frame scan
    (:func:`deepsdf.completion.complete_scans`)."""

    MARKER = ".deepsdf-completion"
    COMMAND = "complete"

    def _owned(self) -> list:
        return [self.code, self.normalized_mesh, self.mesh, self.metrics,
                *self.refined.values()]

    @property
    def refined(self) -> dict:
        """``OUT/Refined/``: ``code.pth``, ``decoder.pt``, ``completed_normalized.ply`` and
        ``completed.ply`` of ``complete --refine`` (the latent-only result stays beside)."""
        return {"code": self.tree.file("Refined", "code.pth"),
                "decoder": self.tree.file("Refined", "decoder.pt"),
                "normalized_mesh": self.tree.file("Refined", "completed_normalized.ply"),
                "mesh": self.tree.file("Refined", "completed.ply")}

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

    def start_run(self, *, with_metrics: bool, **made_from) -> None:
        """Check every path a run writes (links out, wrong kinds, files this command did not
        write: one line before the fit) and remove an earlier run's ``metrics.json`` when
        this run writes none (it would describe another completion)."""
        for path in self._owned():
            self.tree.check(path)
        self.claim(**made_from)
        if not with_metrics and self.metrics.is_file():
            self.tree.remove(self.metrics, ours=r"metrics\.json")


class InterpolationFolder(_OwnedFolder):
    """The folder ``deepsdf interpolate`` (:func:`deepsdf.interpolate.interpolation_pictures`)
    writes: ``step_XX.ply`` along a path with ``strip.png`` and ``interpolation.gif``, or
    ``sample_XX.ply`` of random codes with ``grid.png`` (meshes in the normalized frame)."""

    KINDS = ("step", "sample")
    MARKER = ".deepsdf-interpolation"
    COMMAND = "interpolate"
    _MESH = re.compile(r"(step|sample)_\d{2,}\.ply")

    def _owned(self) -> list:
        folder = self.tree.folder()
        meshes = sorted(p for p in folder.glob("*_*.ply") if self._MESH.fullmatch(p.name))
        return meshes + [self.strip, self.animation, self.grid]

    def mesh(self, kind: str, index: int) -> Path:
        """``OUT/<kind>_<index:02d>.ply`` for a kind of :attr:`KINDS`."""
        if kind not in self.KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        return self.tree.file(f"{kind}_{index:02d}.ply")

    def start_run(self, **made_from) -> None:
        """Make the folder ready for a run: an earlier run's meshes and pictures are removed
        (only files of those names, only where the marker says this command wrote them);
        files of those names it did not write are refused, never deleted."""
        for old in self.claim(**made_from):
            self.tree.remove(old, ours=r"(step|sample)_\d{2,}\.ply|strip\.png|grid\.png|"
                                       r"interpolation\.gif")

    @property
    def strip(self) -> Path:
        return self.tree.file("strip.png")

    @property
    def animation(self) -> Path:
        return self.tree.file("interpolation.gif")

    @property
    def grid(self) -> Path:
        return self.tree.file("grid.png")


class ReportFolder(_OwnedFolder):
    """The folder ``deepsdf report`` (:func:`deepsdf.experiment_report.write_report`) writes,
    by default ``EXP/Report/<checkpoint>``; its marker file says this project wrote it, so a
    rerun may replace its files (the report decides, before writing, which other files a
    folder may hold: ``_report_folder``)."""

    MARKER = ".deepsdf-report"
    COMMAND = "report"

    def __init__(self, folder):
        super().__init__(_tree(folder, "report folder"))

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
    def code_map(self) -> Path:
        return self.tree.file("code_map.png")

    def own_paths(self) -> list:
        """The files and folders a report writes (the viewer's scripts included)."""
        return [self.index, self.summary, self.training_curve, self.code_map,
                self.tree.file("meshes.js"),
                self.tree.file("viewer.js"), self.tree.folder("shapes")]

    _owned = own_paths

    def shape_picture(self, class_name: str, instance: str) -> Path:
        """``REPORT/shapes/<class>/<instance>.png`` (instance names repeat across classes)."""
        return self.tree.file("shapes", class_name, f"{instance}.png")

    def link(self, path) -> str:
        """``path`` relative to the report folder, as the page links it: a relative URL,
        percent-encoded (a shape named ``chair#1`` or ``a?b`` is a file name, not a fragment
        or a query)."""
        import os
        from urllib.parse import quote

        return quote(os.path.relpath(path, self.root).replace(os.sep, "/"))

"""An experiment folder: its configuration, its trained model (loaded once), and every path and
file the workflows read or write under it.

::

    EXP/specs.json                       the spec (original release's, or SpecsVersion 2)
    EXP/specs.resolved.json              every setting of the last training run, defaults in
    EXP/Checkpoints/<latest|epoch>.pt    this project's checkpoints (or the original's
                                         ModelParameters/ and LatentCodes/, read through
                                         :class:`~deepsdf.original.OriginalLayout`)
    EXP/TensorBoard/                     training curves
    EXP/PackedSamples/                   the packed-sample cache (unless one is given)
    EXP/original/                        the original release's layout, exported
    EXP/Reconstructions/<checkpoint>/Codes/<dataset>/<class>/<instance>.pth     (1, d)
    EXP/Reconstructions/<checkpoint>/Meshes/<dataset>/<class>/<instance>.ply    normalized frame
    EXP/Reconstructions/<checkpoint>/MeshesOriginalFrame/<dataset>/<class>/<instance>.ply
    EXP/Reconstructions/<checkpoint>/Records/<dataset>/<class>/<instance>.json   what made them
    EXP/Evaluation/<checkpoint>/metrics.csv, summary.json

A reconstruction's record names the checkpoint file it was made from (its epoch, size and
time), the settings, and each output's fingerprint (:mod:`deepsdf_preprocess.provenance`):
``reconstruct --skip`` and ``evaluate`` trust outputs only while the record still matches.

The output folders the workflows write elsewhere (a completion run, an interpolation, a report)
have their layouts in :mod:`deepsdf.outputs`; a completion run uses the same per-shape names
(:func:`~deepsdf.outputs.fit_outputs`), its ``Meshes`` in the original frame.
The workflows (:mod:`~deepsdf.train`, :mod:`~deepsdf.export`, :mod:`~deepsdf.inference`,
:mod:`~deepsdf.evaluate`, :mod:`~deepsdf.completion`, :mod:`~deepsdf.interpolate`, the demo
and the CLI) take an :class:`Experiment` (or a folder, which they open as one) and build no
path inside it themselves: every one is a property or method here, made by the folder's
:class:`~deepsdf_preprocess.paths.Tree`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deepsdf_preprocess import contract, formats, provenance
from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess.paths import Tree

from .checkpoint import CheckpointError, content_digest, load_checkpoint, safe_load
from .config import TrainConfig
from .device import resolve_device
from .outputs import fit_outputs

__all__ = ["Experiment", "TrainedModel", "checkpoint_path", "load_specs",
           "write_code", "read_code",
           "write_mesh", "check_mesh_format", "MESH_FORMATS", "write_table", "summarize"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainedModel:
    """A trained checkpoint: the decoder (eval mode, on the experiment's device), its resolved
    configuration, the training codes (n, d) on the CPU with their instance ids
    (``dataset/class/instance``, table order), and the whole checkpoint ``payload``."""

    decoder: torch.nn.Module
    config: TrainConfig
    codes: torch.Tensor
    instance_ids: list
    payload: dict



class Experiment:
    """One experiment folder at one checkpoint.

    Parameters
    ----------
    folder : path
    checkpoint : str or int
        ``"latest"`` or a snapshot epoch (a single path component).
    data : path, optional
        The data root; default the spec's ``DataSource``.
    device : str or torch.device, optional
        Where the decoder is loaded (default the CPU).  Workflows given an Experiment use its
        checkpoint, data root and device; given a folder, they open it with theirs.
    """

    def __init__(self, folder, *, checkpoint="latest", data=None, device=None):
        self.tree = Tree(folder, "experiment folder")
        self.folder = self.tree.root
        self.checkpoint = str(checkpoint)
        contract.check_name(self.checkpoint, "checkpoint")
        self._data = None if data is None else Path(data)
        self._spec, self._told_data, self._tree_of_data = None, False, None
        self.device = resolve_device("cpu" if device is None else device)
        #: Whether the device was chosen when opening (else the CPU by default): a trainer
        #: given this Experiment trains there, and otherwise on its own default.
        self.device_chosen = device is not None
        self._model = None
        self._identity = None

    @classmethod
    def of(cls, experiment, *, checkpoint=None, data=None, device=None) -> "Experiment":
        """``experiment`` itself when it is an :class:`Experiment`, else the folder opened
        (at ``checkpoint``, default ``latest``; ``device`` default the CPU).

        Raises
        ------
        InputError
            When an :class:`Experiment` is given with a ``checkpoint``, ``data`` or ``device``
            other than its own (they are chosen when it is opened; never silently ignored).
        """
        if not isinstance(experiment, Experiment):
            return cls(experiment, checkpoint="latest" if checkpoint is None else checkpoint,
                       data=data, device=device)
        asked = {"checkpoint": None if checkpoint is None else str(checkpoint),
                 "data": None if data is None else Path(os.path.abspath(data)),
                 "device": None if device is None else resolve_device(device)}
        has = {"checkpoint": experiment.checkpoint,
               "data": None if data is None else Path(os.path.abspath(experiment.data_dir)),
               "device": experiment.device}
        for name, value in asked.items():
            if value is not None and value != has[name]:
                raise InputError(f"this Experiment was opened with {name} {has[name]}; open "
                                 f"another one for {name} {value}")
        return experiment

    # ------------------------------------------------------------------ the folder

    @property
    def specs_file(self) -> Path:
        """``EXP/specs.json``."""
        return self.tree.file("specs.json")

    def load_specs(self) -> TrainConfig:
        """``specs.json`` as a configuration (:func:`deepsdf.config.read_specs`)."""
        from .config import read_specs

        return read_specs(self.specs_file)

    def write_resolved(self, config: TrainConfig) -> Path:
        """Write ``EXP/specs.resolved.json``: every setting, defaults filled in (a valid
        SpecsVersion-2 ``specs.json`` that trains the same way; a legacy spec's behaviours
        become explicit: ``use_tanh: true``, ``CodePrior: "original"``)."""
        path = self.tree.file("specs.resolved.json")
        contract.write_json(path, config.to_specs())
        return path

    @property
    def checkpoints(self) -> Path:
        """``EXP/Checkpoints`` (not created)."""
        return self.tree.folder("Checkpoints")

    def checkpoint_file(self, epoch="latest") -> Path:
        """``EXP/Checkpoints/<epoch>.pt`` (``epoch`` an int or ``"latest"``)."""
        return self.tree.file("Checkpoints", f"{epoch}.pt")

    def checkpoint_files(self) -> list:
        """The ``Checkpoints/*.pt`` files there are (snapshots and ``latest``), by name."""
        return sorted(self.checkpoints.glob("*.pt"))

    def snapshot_epochs(self) -> list:
        """Epochs of the ``Checkpoints/<epoch>.pt`` snapshots, ascending."""
        return sorted(int(p.stem) for p in self.checkpoint_files() if p.stem.isdigit())

    def newest_readable_snapshot(self) -> int | None:
        """The epoch of the newest snapshot that loads, or None."""
        for epoch in reversed(self.snapshot_epochs()):
            try:
                load_checkpoint(self.checkpoint_file(epoch))
            except CheckpointError:
                continue
            return epoch
        return None

    @property
    def tensorboard(self) -> Path:
        """``EXP/TensorBoard`` (created)."""
        return self.tree.folder("TensorBoard", create=True)

    @property
    def packed_cache(self) -> Path:
        """``EXP/PackedSamples``: the packed-sample cache of this experiment's runs."""
        return self.tree.folder("PackedSamples")

    @property
    def original(self):
        """The original release's layout in this folder itself (an original experiment, or
        one being resumed from the original's files): :class:`~deepsdf.original.OriginalLayout`.
        """
        from .original import OriginalLayout

        return OriginalLayout(self.tree)

    def export_layout(self, out=None):
        """Where :func:`deepsdf.export.export_original` writes: ``out``, default
        ``EXP/original``, as an :class:`~deepsdf.original.OriginalLayout`."""
        from .original import OriginalLayout

        return OriginalLayout(self.tree.folder("original") if out is None
                              else Tree(out, "output folder"))

    # ------------------------------------------------------------------ the model

    @property
    def model(self) -> TrainedModel:
        """The trained model, loaded on first use (this project's checkpoint, else an original
        release's ``ModelParameters``/``LatentCodes`` through :mod:`deepsdf.original`).

        Raises
        ------
        CheckpointError
            When neither exists or a file cannot be read safely.
        """
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self) -> TrainedModel:
        ours = self.checkpoint_file(self.checkpoint)
        legacy = self.original.model_parameters(self.checkpoint)
        if not ours.is_file() and legacy.is_file():
            from .original import load_legacy_experiment

            config, decoder, table = load_legacy_experiment(self.original, self.checkpoint)
            payload = {"codes": table.weight.detach(), "instance_ids": table.instance_ids,
                       "config": config.to_specs()}
            decoder = decoder.to(self.device)
        else:
            from .config import parse_specs
            from .decoder import Decoder

            payload = load_checkpoint(ours, map_location=self.device)
            config = parse_specs(payload["config"])
            decoder = Decoder(config.decoder).to(self.device)
            decoder.load_state_dict(payload["decoder"])
        tensors = {**decoder.state_dict(), "codes": payload["codes"]}
        broken = [name for name, value in tensors.items()
                  if value.is_floating_point() and not torch.isfinite(value).all()]
        if broken:
            raise CheckpointError(f"{self.model_file} holds NaN or infinite values in "
                                  f"{broken[0]} ({len(broken)} tensor(s)): the run diverged "
                                  "there; use an earlier snapshot (--checkpoint N)")
        return TrainedModel(decoder.eval(), config, payload["codes"].detach().cpu(),
                            list(payload["instance_ids"]), payload)

    @property
    def config(self) -> TrainConfig:
        """The trained model's resolved configuration (as stored in the checkpoint)."""
        return self.model.config

    @property
    def spec(self) -> TrainConfig:
        """``EXP/specs.json`` as it is now (the checkpoint's configuration when the folder has
        none): where ``DataSource`` and ``TestSplit`` are read, so that edits to the spec
        count."""
        if self._spec is None:
            if self.specs_file.is_file():
                self._spec = self.load_specs()
            else:
                self._spec = self.config
        return self._spec

    @property
    def data(self) -> "formats.DataTree":
        """The data root as a :class:`~deepsdf_preprocess.formats.DataTree` (:attr:`data_dir`):
        every instance file is read through it."""
        if self._tree_of_data is None or self._tree_of_data.root != Path(
                os.path.abspath(self.data_dir)):
            self._tree_of_data = formats.DataTree(self.data_dir)
        return self._tree_of_data

    @property
    def data_chosen(self) -> Path | None:
        """The data root given when opening, or None (then :attr:`data_dir` is the spec's)."""
        return self._data

    @property
    def data_dir(self) -> Path:
        """The data root: the one given, else ``DataSource`` of ``specs.json``."""
        if self._data is not None:
            return self._data
        source = Path(self.spec.data_source)
        trained = Path(self.config.data_source)
        if source != trained and not self._told_data:
            logger.info("data root %s (specs.json's DataSource; the checkpoint was trained "
                        "on %s)", source, trained)
            self._told_data = True
        return source

    def split(self, split_file=None) -> dict:
        """The split to work on: ``split_file``, else ``TestSplit`` of ``specs.json``."""
        path = split_file or self.spec.test_split
        if not path:
            raise InputError("no split given and specs.json has no TestSplit")
        return contract.read_split(path)

    # ------------------------------------------------------------------ provenance

    @property
    def model_file(self) -> Path:
        """The file the model is read from: this project's checkpoint, else the original
        release's ``ModelParameters/<checkpoint>.pth``."""
        ours = self.checkpoint_file(self.checkpoint)
        legacy = self.original.model_parameters(self.checkpoint)
        return legacy if not ours.is_file() and legacy.is_file() else ours

    @property
    def checkpoint_identity(self) -> dict:
        """What outputs made from this checkpoint record: its epoch and the SHA-256 of its
        contents (``latest`` holds another model after more training; a copied experiment
        holds the same one).  A checkpoint of this project carries that digest, verified on
        load; an older or original release's one is digested from the loaded tensors."""
        model = self.model
        if self._identity is None:
            epoch = model.payload.get("epoch")
            digest = model.payload.get("checksum")
            if not isinstance(digest, str):
                digest = content_digest({"decoder": model.decoder.state_dict(),
                                         "codes": model.codes, "instances": model.instance_ids})
            self._identity = {"epoch": None if epoch is None else int(epoch), "sha256": digest}
        return dict(self._identity)

    def evaluation_stale(self, summary: dict) -> str | None:
        """Why an evaluation ``summary`` (of :attr:`evaluation_summary`) is not this
        checkpoint's, or None: it records the checkpoint it was made from, and ``latest``
        names another file after more training."""
        made = summary.get("checkpoint")
        if not isinstance(made, dict):
            return "it does not record the checkpoint it was made from"
        now = self.checkpoint_identity
        if made != now:
            return (f"it was made from epoch {made.get('epoch')} of checkpoint "
                    f"{self.checkpoint}; the checkpoint is now epoch {now.get('epoch')}"
                    if made.get("epoch") != now.get("epoch") else
                    f"checkpoint {self.checkpoint} has changed since it was made")
        return None

    def reconstruction_record(self, key: str) -> Path:
        """``Reconstructions/<checkpoint>/Records/<dataset>/<class>/<instance>.json``."""
        key = contract.InstanceKey.parse(key)
        return self.tree.file("Reconstructions", self.checkpoint, "Records", key.dataset,
                              key.class_name, f"{key.instance}.json")

    def record_reconstruction(self, key: str, settings: dict) -> None:
        """Record what made the reconstruction of ``key`` (call after its files are
        written)."""
        paths = {name: path for name, path in self.reconstruction(key).items()
                 if path.is_file()}
        contract.write_json(self.reconstruction_record(key), {
            "checkpoint": self.checkpoint_identity, "settings": settings,
            "samples": self._samples_identity(key), "outputs": provenance.fingerprints(paths)})

    def _samples_identity(self, key: str) -> dict | None:
        """The SdfSamples file a reconstruction of ``key`` is fitted to (None if absent)."""
        path = self.data.instance(key).sdf_samples
        return provenance.file_identity(path) if path.is_file() else None

    def _samples_file(self, key: str) -> Path | None:
        path = self.data.instance(key).sdf_samples
        return path if path.is_file() else None

    def reconstruction_stale(self, key: str, settings: dict | None = None) -> str | None:
        """Why the reconstruction of ``key`` cannot be trusted as this checkpoint's (and,
        given ``settings``, as made with them), or None.  Outputs without a record (the
        original release's) give ``"no record of what made it"``."""
        path = self.reconstruction_record(key)
        if not path.is_file():
            return "no record of what made it"
        try:
            record = contract.loads_strict(path.read_text(encoding="utf-8"), path)
        except (ValueError, UnicodeDecodeError, InputError):
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("outputs"), dict):
            # A record that is there but cut short or edited is not the absence of one:
            # nothing says these files are this checkpoint's.
            return f"its record {path.name} is damaged (not a record of `deepsdf reconstruct`)"
        paths = {name: p for name, p in self.reconstruction(key).items()
                 if name in (record.get("outputs") or {}) or name == "code"}
        made_by = {"checkpoint": self.checkpoint_identity, "samples": self._samples_file(key)}
        if settings is not None:
            made_by["settings"] = settings
        reason = provenance.stale_reason(record, paths, made_by=made_by)
        if reason == "made from another samples":
            reason = ("fitted to other SdfSamples (another data root, or the samples changed "
                      "since)")
        if reason == "made from another checkpoint":
            recorded = record.get("checkpoint") if isinstance(record.get("checkpoint"),
                                                               dict) else {}
            epoch, now = recorded.get("epoch"), self.checkpoint_identity["epoch"]
            reason = (f"recorded by an older version (its checkpoint named without a checksum)"
                      if epoch == now and "sha256" not in recorded else
                      f"made from another {self.checkpoint} checkpoint (epoch {epoch}; now "
                      f"epoch {now})")
        return reason

    # ------------------------------------------------------------------ paths

    @property
    def reconstructions(self) -> Path:
        """``EXP/Reconstructions/<checkpoint>``."""
        return self.tree.folder("Reconstructions", self.checkpoint)

    def reconstruction(self, key: str) -> dict:
        """:func:`~deepsdf.outputs.fit_outputs` of instance ``key`` under
        :attr:`reconstructions`."""
        return fit_outputs(self.tree, key, under=("Reconstructions", self.checkpoint))

    @property
    def evaluation(self) -> Path:
        """``EXP/Evaluation/<checkpoint>`` (``metrics.csv``, ``summary.json``)."""
        return self.tree.folder("Evaluation", self.checkpoint)

    @property
    def evaluation_table(self) -> Path:
        """``EXP/Evaluation/<checkpoint>/metrics.csv``: one row per shape."""
        return self.tree.file("Evaluation", self.checkpoint, "metrics.csv")

    @property
    def evaluation_summary(self) -> Path:
        """``EXP/Evaluation/<checkpoint>/summary.json``: mean and median per metric."""
        return self.tree.file("Evaluation", self.checkpoint, "summary.json")

    @property
    def report_folder(self) -> Path:
        """``EXP/Report/<checkpoint>``: ``deepsdf report``'s page (not created; its layout is
        :class:`~deepsdf.outputs.ReportFolder`)."""
        return self.tree.folder("Report", str(self.checkpoint))


# ---------------------------------------------------------------------- files

def write_code(path, code: torch.Tensor) -> None:
    """Save a (d,) code as the original release's (1, d) ``.pth`` tensor, atomically."""
    with contract.atomic_path(path) as temporary:
        torch.save(code.detach().cpu().reshape(1, -1), temporary)


def write_decoder(path, decoder: torch.nn.Module) -> None:
    """Save a decoder's state dict (on the CPU) atomically: a refined shape's own weights."""
    with contract.atomic_path(path) as temporary:
        torch.save({k: v.detach().cpu() for k, v in decoder.state_dict().items()}, temporary)


def read_code(path, latent_size: int) -> torch.Tensor:
    """A (d,) float32 code from a ``.pth`` file: this project's (1, d), the original's (1, d)
    or (1, 1, d), or a bare (d,) tensor.  Loaded without unpickling code.

    Raises
    ------
    CheckpointError
        Naming the file: missing, unreadable, not a tensor, or not ``latent_size`` values.
    """
    code = safe_load(path, what="code file")
    if not isinstance(code, torch.Tensor):
        raise CheckpointError(f"code file {path} holds a {type(code).__name__}, not a code "
                              "tensor")
    if (code.numel() != latent_size or not code.is_floating_point()
            or code.shape[-1] != latent_size):  # (d,), (1, d), (1, 1, d): not (8, 8)
        raise CheckpointError(f"code file {path} holds a {code.dtype} tensor of shape "
                              f"{tuple(code.shape)}; this model's codes have {latent_size} "
                              "floating-point values (CodeLength)")
    if not torch.isfinite(code).all():
        raise CheckpointError(f"code file {path} holds NaN or infinite values")
    return code.reshape(-1).float()


#: Mesh file suffixes :func:`write_mesh` writes.
MESH_FORMATS = (".ply", ".obj", ".off", ".stl", ".glb")


def check_mesh_format(path) -> Path:
    """``path`` if its suffix is a mesh format :func:`write_mesh` writes, else ValueError
    (call it before the work, not after)."""
    path = Path(path)
    if path.suffix.lower() not in MESH_FORMATS:
        raise InputError(f"cannot write a mesh to {path.name}: the suffix must be one of "
                         f"{', '.join(MESH_FORMATS)}")
    return path


def write_mesh(path, mesh) -> None:
    """Export a mesh atomically, in the format of the path's suffix (:data:`MESH_FORMATS`);
    a mesh with a NaN or infinite vertex, or one beyond float32's range (where mesh files and
    their readers store vertices), is refused (never written as a shape)."""
    check_mesh_format(path)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    if len(vertices) and np.isfinite(vertices).all():
        # float32 keeps ~7 digits: a shape far smaller than its distance from the origin
        # collapses to a point in the file (an offset of 1e38 with a scale of 1, say)
        extent = float(np.ptp(vertices, axis=0).max())
        far = float(np.abs(vertices).max())
        if far > 0 and extent < 1e-6 * far:
            raise InputError(f"{path}: the mesh is {extent:.3g} across at {far:.3g} from the "
                             "origin, beyond the precision of a mesh file (an absurd "
                             "normalization or transform?); nothing written")
    if not (np.isfinite(vertices).all()
            and np.abs(vertices).max(initial=0.0) < np.finfo(np.float32).max):
        raise InputError(f"{path}: the mesh has NaN or infinite vertices (an absurd "
                         "normalization or transform?); nothing written")
    with contract.atomic_path(path) as temporary:
        mesh.export(temporary, file_type=Path(path).suffix.lstrip(".").lower())


def write_table(path, rows, columns) -> None:
    """Write dict ``rows`` as a CSV with ``columns`` (missing values empty), atomically."""
    with contract.atomic_path(path) as temporary:
        with open(temporary, "w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)


def summarize(rows, names, prefix: str = "") -> dict:
    """``{name: {"mean", "median"}}`` of the columns ``prefix + name`` over the rows that have
    them (names no row has are left out)."""
    block = {}
    for name in names:
        values = np.array([row[prefix + name] for row in rows if prefix + name in row])
        if len(values):
            block[name] = {"mean": float(values.mean()), "median": float(np.median(values))}
    return block


def checkpoint_path(folder, epoch="latest") -> Path:
    """``EXP/Checkpoints/<epoch>.pt`` of an experiment folder
    (:meth:`Experiment.checkpoint_file`)."""
    return Experiment(folder).checkpoint_file(epoch)


def load_specs(folder) -> TrainConfig:
    """``EXP/specs.json`` of an experiment folder (:meth:`Experiment.load_specs`)."""
    return Experiment(folder).load_specs()

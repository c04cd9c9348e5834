"""The original DeepSDF release's formats, read and written in one place.

Reading: the original writes ``EXP/ModelParameters/<epoch>.pth`` = ``{"epoch",
"model_state_dict"}`` (saved through ``DataParallel``, so keys start with ``module.``; layers
``lin<i>`` with the old weight-norm parameters ``weight_g`` / ``weight_v``; LayerNorms
``bn<i>``) and ``EXP/LatentCodes/<epoch>.pth`` = ``{"epoch", "latent_codes"}`` (an
``Embedding`` state dict ``{"weight": (n, d)}``, or the bare tensor in early versions).  Its
code rows follow the training split file's order; its decoder input is ``[z, xyz]``, as ours.

Writing (for :mod:`deepsdf.export`): the decoder state, the optimizer state, ``Logs.pth`` and a
legacy ``specs.json`` meaning what ours meant.  The optimizer's state is keyed by parameter
position, so both directions map the original's parameter order (per layer: ``lin<i>`` —
``bias, weight_g, weight_v`` with weight norm, ``weight, bias`` without — then ``bn<i>``; the
codes in the second group) onto ours (all ``layers``, then all ``norms``).  The original also
creates a LayerNorm for the output layer when ``norm_layers`` names it without weight norm, and
never uses it: exported files carry it at its initial values, so the original's strict loader
accepts them.

This module imports no workflow (train, export, inference): the model layer reads the
original's files through it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from deepsdf_preprocess.contract import read_split
from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess.paths import Tree

from .checkpoint import CheckpointError, safe_load
from .config import TrainConfig, read_specs
from .decoder import Decoder
from .latents import LatentTable, split_hash, split_instances

__all__ = ["convert_decoder_state", "our_parameter_name", "load_legacy_decoder",
           "load_legacy_codes", "load_legacy_experiment", "OriginalTraining", "OriginalLayout",
           "load_original_training", "new_log", "ExportError",
           "original_parameter_names", "our_parameter_names", "decoder_state_to_original",
           "optimizer_to_original", "original_optimizer_to_ours", "legacy_specs",
           "logs_to_original"]

logger = logging.getLogger(__name__)

_KEY = re.compile(r"^(?:module\.)?(lin|bn)(\d+)\.(weight_g|weight_v|weight|bias)$")


def convert_decoder_state(state: dict) -> dict:
    """Rename an original decoder state dict to this project's :class:`Decoder` keys."""
    converted = {}
    for key, value in state.items():
        match = _KEY.match(key)
        if match is None:
            raise CheckpointError(f"unexpected key {key!r} in an original DeepSDF decoder")
        kind, index, name = match.groups()
        if kind == "bn":
            converted[f"norms.{index}.{name}"] = value
        elif name == "weight_g":
            converted[f"layers.{index}.parametrizations.weight.original0"] = value
        elif name == "weight_v":
            converted[f"layers.{index}.parametrizations.weight.original1"] = value
        else:
            converted[f"layers.{index}.{name}"] = value
    return converted


def our_parameter_name(original: str) -> str:
    """This project's name of an original decoder parameter (``lin3.weight_g`` ->
    ``layers.3.parametrizations.weight.original0``); CheckpointError for a foreign name."""
    return next(iter(convert_decoder_state({original: None})))


def _load(path: Path):
    return safe_load(path, what="original-release file")


def load_legacy_decoder(path, config: TrainConfig) -> Decoder:
    """A :class:`Decoder` with the weights of an original ``ModelParameters/<epoch>.pth``."""
    payload = _load(Path(path))
    state = payload.get("model_state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no decoder state dict")
    decoder = Decoder(config.decoder)
    converted = convert_decoder_state(state)
    ours = decoder.state_dict()
    # The original creates a LayerNorm for the output layer when norm_layers names it (with
    # weight norm off) and never uses it: its keys are accepted and ignored.
    unused = [k for k in converted if k.startswith("norms.") and k not in ours]
    for key in unused:
        del converted[key]
    try:
        decoder.load_state_dict(converted)
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not fit the spec's NetworkSpecs: {error}") from error
    return decoder


def load_legacy_codes(path, split: dict) -> LatentTable:
    """A :class:`LatentTable` from an original ``LatentCodes/<epoch>.pth``; rows follow the
    split file's order."""
    payload = _load(Path(path))
    codes = payload.get("latent_codes", payload) if isinstance(payload, dict) else payload
    if isinstance(codes, dict):
        codes = codes.get("weight")
    if isinstance(codes, torch.Tensor) and codes.dim() == 3 and codes.shape[1] == 1:
        codes = codes[:, 0]  # early versions saved a bare (n, 1, d) tensor
    if not isinstance(codes, torch.Tensor) or codes.dim() != 2:
        raise CheckpointError(f"{path} holds no (n, d) latent code tensor")
    ids = split_instances(split)
    if len(ids) != codes.shape[0]:
        raise CheckpointError(f"{path} has {codes.shape[0]} codes but the split lists "
                              f"{len(ids)} instances")
    table = LatentTable(ids, codes.shape[1], init_std=0.0, split_digest=split_hash(split))
    with torch.no_grad():
        table.weight.copy_(codes)
    return table


class OriginalLayout:
    """The original release's experiment layout under a folder (an original experiment folder
    itself, or the ``original`` folder :mod:`deepsdf.export` writes)::

        ROOT/specs.json
        ROOT/ModelParameters/<epoch>.pth       {"epoch", "model_state_dict"}
        ROOT/LatentCodes/<epoch>.pth           {"epoch", "latent_codes"}
        ROOT/OptimizerParameters/<epoch>.pth   {"epoch", "optimizer_state_dict"}
        ROOT/Logs.pth

    Paths are made by the folder's :class:`~deepsdf_preprocess.paths.Tree`.
    """

    KINDS = ("ModelParameters", "LatentCodes", "OptimizerParameters")

    def __init__(self, root):
        self.tree = root if isinstance(root, Tree) else Tree(root, "original experiment folder")
        self.root = self.tree.root

    def file(self, kind: str, epoch="latest") -> Path:
        """``ROOT/<kind>/<epoch>.pth`` for a kind of :data:`KINDS`."""
        if kind not in self.KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        return self.tree.file(kind, f"{epoch}.pth")

    def model_parameters(self, epoch="latest") -> Path:
        """``ROOT/ModelParameters/<epoch>.pth``: the decoder."""
        return self.file("ModelParameters", epoch)

    def latent_codes(self, epoch="latest") -> Path:
        """``ROOT/LatentCodes/<epoch>.pth``: the training codes."""
        return self.file("LatentCodes", epoch)

    def optimizer_parameters(self, epoch="latest") -> Path:
        """``ROOT/OptimizerParameters/<epoch>.pth``: the optimizer's state."""
        return self.file("OptimizerParameters", epoch)

    @property
    def logs(self) -> Path:
        return self.tree.file("Logs.pth")

    @property
    def marker(self) -> Path:
        """``ROOT/.deepsdf-export``: which experiment an export was written from (this
        project's record; the original release ignores it)."""
        return self.tree.file(".deepsdf-export")

    @property
    def specs(self) -> Path:
        return self.tree.file("specs.json")

    def training_files(self) -> dict:
        """``{path: exists}`` of the three ``latest.pth`` files a training run resumes from."""
        return {path: path.is_file() for path in (self.file(kind) for kind in self.KINDS)}


def load_legacy_experiment(layout, epoch="latest"):
    """(config, decoder, codes) of an original experiment folder (or
    :class:`OriginalLayout`) at ``epoch``."""
    layout = layout if isinstance(layout, OriginalLayout) else OriginalLayout(layout)
    config = read_specs(layout.specs)
    decoder = load_legacy_decoder(layout.model_parameters(epoch), config)
    split = read_split(config.train_split)
    codes = load_legacy_codes(layout.latent_codes(epoch), split)
    return config, decoder, codes


@dataclass
class OriginalTraining:
    """Where an original release's training run stands, in this project's terms."""

    decoder_state: dict  # our Decoder's state dict
    codes: torch.Tensor  # (n, d), rows in the split file's order
    optimizer_state: dict  # our two-group Adam state dict
    epoch: int  # epochs completed
    log: dict | None  # Logs.pth's entries (our parameter names), when there is one


def load_original_training(layout: OriginalLayout, config: TrainConfig, split: dict,
                           our_names: list) -> OriginalTraining:
    """Read an original training folder's ``latest.pth`` files (and ``Logs.pth``).

    Parameters
    ----------
    our_names : list of str
        ``[name for name, _ in decoder.named_parameters()]`` of the decoder to resume.

    Raises
    ------
    CheckpointError
        Naming the missing files, or files of different epochs.
    """
    files = layout.training_files()
    missing = [str(path) for path, exists in files.items() if not exists]
    if missing:
        raise CheckpointError(f"cannot resume the original training folder {layout.root}: "
                              f"{', '.join(missing)} missing")
    model_path, codes_path, optimizer_path = files
    decoder = load_legacy_decoder(model_path, config)
    table = load_legacy_codes(codes_path, split)
    payloads = [_load(path) for path in files]
    epochs = {int(p["epoch"]) for p in payloads if isinstance(p, dict) and "epoch" in p}
    if len(epochs) != 1:
        raise CheckpointError(f"the original files in {layout.root} are of different epochs "
                              f"({sorted(epochs)}); they cannot be resumed together")
    optimizer = original_optimizer_to_ours(payloads[2].get("optimizer_state_dict", {}),
                                           our_names, config, where=str(optimizer_path))
    logs = layout.logs
    log = _log_from_original(_load(logs), our_names) if logs.is_file() else None
    return OriginalTraining(decoder_state=decoder.state_dict(),
                            codes=table.weight.detach(), optimizer_state=optimizer,
                            epoch=epochs.pop(), log=log)


def _log_from_original(logs, our_names: list) -> dict:
    """The original's ``Logs.pth`` entries, parameter names translated to ours."""

    log = new_log()
    if not isinstance(logs, dict):
        return log
    for key in ("loss", "learning_rate", "timing", "latent_magnitude"):
        log[key] = list(logs.get(key, []))
    for name, values in dict(logs.get("param_magnitude", {})).items():
        try:
            ours = our_parameter_name(name)
        except CheckpointError:
            continue
        if ours in our_names:
            log["param_magnitude"][ours] = list(values)
    return log


def new_log() -> dict:
    """An empty training log with the original release's ``Logs.pth`` keys: ``loss`` (one
    per batch), ``learning_rate`` ([decoder, codes] per epoch), ``timing`` (seconds per
    epoch), ``latent_magnitude`` (mean code norm per epoch) and ``param_magnitude`` (per
    decoder parameter, its norm per epoch; this project's parameter names)."""
    return {"loss": [], "learning_rate": [], "timing": [], "latent_magnitude": [],
            "param_magnitude": {}}


class ExportError(InputError):
    """The experiment cannot be written in the original layout; the message says why."""


def original_parameter_names(config: TrainConfig) -> list[str]:
    """The original decoder's parameter names (no ``module.`` prefix), in its order."""
    decoder = config.decoder
    last = len(decoder.dims)
    names = []
    for i in range(last + 1):
        if decoder.weight_norm and i in decoder.norm_layers:
            names += [f"lin{i}.bias", f"lin{i}.weight_g", f"lin{i}.weight_v"]
        else:
            names += [f"lin{i}.weight", f"lin{i}.bias"]
        if not decoder.weight_norm and i in decoder.norm_layers:
            names += [f"bn{i}.weight", f"bn{i}.bias"]
    return names


def decoder_state_to_original(state: dict, config: TrainConfig) -> dict:
    """Our decoder state dict -> the original's ``model_state_dict`` (``module.`` keys).

    The original's unused output-layer LayerNorm, where it has one, gets its initial values.
    """
    converted = {}
    for name in original_parameter_names(config):
        ours = our_parameter_name(name)
        if ours in state:
            converted[f"module.{name}"] = state[ours].detach().cpu().clone()
        elif name.startswith("bn"):  # the original's unused output LayerNorm
            width = 1
            converted[f"module.{name}"] = (torch.ones(width) if name.endswith("weight")
                                           else torch.zeros(width))
        else:
            raise ExportError(f"the decoder has no parameter {ours} for the original's {name}")
    return converted


def _orders(our_names: list[str], config: TrainConfig) -> tuple[list[str], dict]:
    """The original's names, and for each, the position of the matching parameter of ours."""
    original = original_parameter_names(config)
    position = {name: i for i, name in enumerate(our_names)}
    return original, {name: position.get(our_parameter_name(name)) for name in original}


def optimizer_to_original(state: dict, our_names: list[str], config: TrainConfig) -> dict:
    """Our two-group Adam state dict -> the original's (decoder group in its order, then the
    codes).

    Parameters
    ----------
    state : dict
        ``optimizer.state_dict()`` of ours: group 0 the decoder (``our_names`` order), group 1
        the codes.
    our_names : list of str
        ``[name for name, _ in decoder.named_parameters()]``.
    """
    original, ours_of = _orders(our_names, config)
    groups = state["param_groups"]
    decoder_ids, code_ids = groups[0]["params"], groups[1]["params"]
    new_state, params = {}, []
    for index, name in enumerate(original):
        params.append(index)
        our_position = ours_of[name]
        if our_position is not None and decoder_ids[our_position] in state["state"]:
            new_state[index] = state["state"][decoder_ids[our_position]]
    code_index = len(original)
    if code_ids[0] in state["state"]:
        new_state[code_index] = state["state"][code_ids[0]]
    return {"state": new_state,
            "param_groups": [dict(groups[0], params=params),
                             dict(groups[1], params=[code_index])]}


def original_optimizer_to_ours(state: dict, our_names: list[str], config: TrainConfig,
                               *, where: str = "OptimizerParameters") -> dict:
    """The original's Adam state dict -> ours (inverse of :func:`optimizer_to_original`).

    Raises
    ------
    CheckpointError
        When the groups do not have the parameter counts this architecture implies.
    """
    original, ours_of = _orders(our_names, config)
    groups = state.get("param_groups") if isinstance(state, dict) else None
    if not groups or len(groups) != 2 or len(groups[0]["params"]) != len(original) or len(
            groups[1]["params"]) != 1:
        raise CheckpointError(f"{where} does not hold a two-group Adam state of this "
                              f"architecture ({len(original)} decoder parameters, then the "
                              "codes)")
    new_state = {}
    for index, name in enumerate(original):
        our_position = ours_of[name]
        source = groups[0]["params"][index]
        if our_position is not None and source in state["state"]:
            new_state[our_position] = state["state"][source]
    code_source = groups[1]["params"][0]
    if code_source in state["state"]:
        new_state[len(our_names)] = state["state"][code_source]
    return {"state": new_state,
            "param_groups": [dict(groups[0], params=list(range(len(our_names)))),
                             dict(groups[1], params=[len(our_names)])]}


def check_exportable(config: TrainConfig) -> None:
    """Raise :class:`ExportError` for a decoder the original release cannot express (no tanh
    on the output, a Fourier encoding of xyz)."""
    if not config.decoder.use_tanh:
        raise ExportError("this decoder has no output tanh, which the original always applies;"
                          " it cannot be exported to the original layout")
    if config.decoder.fourier_frequencies:
        raise ExportError("this decoder encodes xyz with Fourier features "
                          "(fourier_frequencies), which the original's decoder has no input "
                          "for; it cannot be exported to the original layout")


def legacy_specs(config: TrainConfig) -> dict:
    """A legacy (original-release) ``specs.json`` that builds the same decoder.

    Paths become absolute (the original resolves them against the current directory).

    Raises
    ------
    ExportError
        For a decoder the original cannot express (no tanh on the output, a Fourier
        encoding of xyz).
    """
    check_exportable(config)
    specs = config.to_specs()
    from .config import SPEC_KEYS

    specs.pop("SpecsVersion", None)
    for key in SPEC_KEYS:
        if key.ours:
            specs.pop(key.name, None)
    network = specs["NetworkSpecs"]
    network["use_tanh"] = network.pop("tanh_twice")  # the original's use_tanh adds a tanh
    network.pop("fourier_frequencies")
    for key in ("DataSource", "TrainSplit", "TestSplit"):
        if specs.get(key):
            specs[key] = str(Path(specs[key]).resolve())
    if config.code_prior != "original":
        logger.warning("the original trains with the code prior lambda * mean ||z||; this run "
                       "used the paper's form (CodePrior %r): continuing in the original "
                       "changes the prior", config.code_prior)
    return specs


def logs_to_original(log: dict, epoch: int, our_names: list[str], config: TrainConfig) -> dict:
    """Our training log (:func:`deepsdf.train.new_log`) -> the original's ``Logs.pth``."""
    rename = {our_parameter_name(name): name for name in original_parameter_names(config)}
    return {"epoch": epoch, "loss": list(log.get("loss", [])),
            "learning_rate": [list(entry) for entry in log.get("learning_rate", [])],
            "timing": list(log.get("timing", [])),
            "latent_magnitude": list(log.get("latent_magnitude", [])),
            "param_magnitude": {rename.get(k, k): list(v)
                                for k, v in log.get("param_magnitude", {}).items()}}


def our_parameter_names(config: TrainConfig) -> list[str]:
    from .decoder import Decoder

    return [name for name, _ in Decoder(config.decoder).named_parameters()]

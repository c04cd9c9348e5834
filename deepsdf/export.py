"""The way back to the original DeepSDF release: its experiment layout from our checkpoints.

``deepsdf export EXP --original`` writes, from ``EXP/Checkpoints/*.pt``, what the original's
``reconstruct.py``, ``plot_log.py`` and ``deep_sdf.workspace`` loaders read::

    OUT/specs.json                          a legacy spec meaning what ours meant
    OUT/ModelParameters/<epoch>.pth         {"epoch", "model_state_dict"}: module.lin<i>.*, module.bn<i>.*
    OUT/LatentCodes/<epoch>.pth             {"epoch", "latent_codes": {"weight": (n, d)}}
    OUT/OptimizerParameters/<epoch>.pth     {"epoch", "optimizer_state_dict"}
    OUT/Logs.pth                            {"epoch", "loss", "learning_rate", "timing",
                                             "latent_magnitude", "param_magnitude"}

(``latest.pth`` beside the snapshots).  The inverse, :func:`original_optimizer_to_ours`, lets
``deepsdf train --resume`` continue an original training folder.

The optimizer's state is keyed by parameter position, so both directions map the original's
parameter order (per layer: ``lin<i>`` — ``bias, weight_g, weight_v`` with weight norm,
``weight, bias`` without — then ``bn<i>``; the codes in the second group) onto ours (all
``layers``, then all ``norms``).  The original also creates a LayerNorm for the output layer
when ``norm_layers`` names it without weight norm, and never uses it: exported files carry it
at its initial values, so the original's strict loader accepts them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from deepsdf_preprocess import contract
from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess.paths import Tree

from .checkpoint import CheckpointError, checkpoint_path, load_checkpoint
from .config import TrainConfig, parse_specs
from .legacy import our_parameter_name

__all__ = ["original_parameter_names", "decoder_state_to_original", "optimizer_to_original",
           "original_optimizer_to_ours", "legacy_specs", "export_original", "logs_to_original",
           "ExportError"]

logger = logging.getLogger(__name__)


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


def legacy_specs(config: TrainConfig) -> dict:
    """A legacy (original-release) ``specs.json`` that builds the same decoder.

    Paths become absolute (the original resolves them against the current directory).

    Raises
    ------
    ExportError
        For a decoder the original cannot express (no tanh on the output, a Fourier
        encoding of xyz).
    """
    if not config.decoder.use_tanh:
        raise ExportError("this decoder has no output tanh, which the original always applies;"
                          " it cannot be exported to the original layout")
    if config.decoder.fourier_frequencies:
        raise ExportError("this decoder encodes xyz with Fourier features "
                          "(fourier_frequencies), which the original's decoder has no input "
                          "for; it cannot be exported to the original layout")
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


def _our_parameter_names(config: TrainConfig) -> list[str]:
    from .decoder import Decoder

    return [name for name, _ in Decoder(config.decoder).named_parameters()]


def export_original(experiment_dir, *, out=None, checkpoints=None) -> list[Path]:
    """Write the original layout from an experiment's checkpoints.

    Parameters
    ----------
    experiment_dir : path
        Holds ``Checkpoints/*.pt``.
    out : path, optional, keyword-only
        Where to write (default ``EXP/original``).  An existing ``specs.json`` there must
        describe the same experiment; one is written where there is none.
    checkpoints : list, optional, keyword-only
        Epochs (ints) and/or ``"latest"``; default every snapshot and ``latest``.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ExportError, CheckpointError
        Naming what cannot be exported.
    """
    tree = Tree(experiment_dir, "experiment folder")
    experiment_dir = tree.root
    out = Tree(out if out is not None else tree.folder("original"), "output folder")
    folder = tree.folder("Checkpoints")
    if checkpoints is None:
        checkpoints = sorted(int(p.stem) for p in folder.glob("*.pt") if p.stem.isdigit())
        checkpoints = checkpoints + (["latest"] if checkpoint_path(experiment_dir).is_file()
                                     else [])
    if not checkpoints:
        raise ExportError(f"no checkpoints in {folder}: train first")
    written, newest = [], None
    for name in checkpoints:
        payload = load_checkpoint(checkpoint_path(experiment_dir, name))
        config = parse_specs(payload["config"])
        our_names = _our_parameter_names(config)
        epoch = int(payload["epoch"])
        files = {
            out.file("ModelParameters", f"{name}.pth"): {
                "epoch": epoch,
                "model_state_dict": decoder_state_to_original(payload["decoder"], config)},
            out.file("LatentCodes", f"{name}.pth"): {
                "epoch": epoch, "latent_codes": {"weight": payload["codes"].detach().cpu()}},
            out.file("OptimizerParameters", f"{name}.pth"): {
                "epoch": epoch,
                "optimizer_state_dict": optimizer_to_original(payload["optimizer"], our_names,
                                                              config)},
        }
        for path, content in files.items():
            _save(path, content)
            written.append(path)
        if newest is None or epoch >= newest[0]:
            newest = (epoch, payload, config, our_names)
    epoch, payload, config, our_names = newest
    _save(out.file("Logs.pth"), logs_to_original(payload.get("log") or {}, epoch, our_names,
                                                 config))
    written.append(out.file("Logs.pth"))
    written += _write_specs(out, config)
    return written


def _write_specs(out: Tree, config: TrainConfig) -> list[Path]:
    specs = legacy_specs(config)
    path = out.file("specs.json")
    if path.is_file():
        from .config import load_specs

        existing = load_specs(out.root)
        if existing.decoder != parse_specs(specs).decoder:
            raise ExportError(f"{path} describes another decoder than the checkpoints "
                              "(for the original, use_tanh adds a second tanh); export into "
                              "another folder with --out")
        return []
    contract.write_json(path, specs)
    return [path]


def _save(path: Path, content: dict) -> None:
    with contract.atomic_path(path) as temporary:
        torch.save(content, temporary)

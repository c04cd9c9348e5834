"""The way back to the original DeepSDF release: its experiment layout from our checkpoints.

``deepsdf export EXP --original`` writes, from ``EXP/Checkpoints/*.pt``, what the original's
``reconstruct.py``, ``plot_log.py`` and ``deep_sdf.workspace`` loaders read::

    OUT/specs.json                          a legacy spec meaning what ours meant
    OUT/ModelParameters/<epoch>.pth         {"epoch", "model_state_dict"}: module.lin<i>.*, module.bn<i>.*
    OUT/LatentCodes/<epoch>.pth             {"epoch", "latent_codes": {"weight": (n, d)}}
    OUT/OptimizerParameters/<epoch>.pth     {"epoch", "optimizer_state_dict"}
    OUT/Logs.pth                            {"epoch", "loss", "learning_rate", "timing",
                                             "latent_magnitude", "param_magnitude"}

(``latest.pth`` beside the snapshots).  The conversions themselves, both ways, are
:mod:`deepsdf.original`'s.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from deepsdf_preprocess import contract
from deepsdf_preprocess.paths import Tree

from .checkpoint import checkpoint_path, load_checkpoint
from .config import TrainConfig, parse_specs
from .original import (ExportError, decoder_state_to_original, legacy_specs, logs_to_original,
                       optimizer_to_original, our_parameter_names)

__all__ = ["export_original", "ExportError"]

logger = logging.getLogger(__name__)


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
    for name in checkpoints:  # every path checked before anything is written
        for folder in ("ModelParameters", "LatentCodes", "OptimizerParameters"):
            out.file(folder, f"{name}.pth")
    out.file("Logs.pth"), out.file("specs.json")
    written, newest = [], None
    for name in checkpoints:
        payload = load_checkpoint(checkpoint_path(experiment_dir, name))
        config = parse_specs(payload["config"])
        our_names = our_parameter_names(config)
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

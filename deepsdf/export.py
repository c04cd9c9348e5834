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
import os
from pathlib import Path

import torch

from deepsdf_preprocess import contract

from .checkpoint import load_checkpoint
from .config import TrainConfig, parse_specs, read_specs
from .experiment import Experiment
from .original import (ExportError, OriginalLayout, check_exportable, decoder_state_to_original,
                       legacy_specs, logs_to_original, optimizer_to_original,
                       our_parameter_names)

__all__ = ["export_original", "ExportError"]

logger = logging.getLogger(__name__)


def export_original(experiment, *, out=None, checkpoints=None) -> list[Path]:
    """Write the original layout from an experiment's checkpoints.

    Parameters
    ----------
    experiment : Experiment or path
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
    experiment = Experiment.of(experiment)
    layout = experiment.export_layout(out)
    if checkpoints is None:
        checkpoints = experiment.snapshot_epochs() + (
            ["latest"] if experiment.checkpoint_file().is_file() else [])
    if not checkpoints:
        raise ExportError(f"no checkpoints in {experiment.checkpoints}: train first")
    # Every path is made (and so checked: links, kinds) before anything is written.
    planned = [layout.file(kind, name) for name in checkpoints for kind in layout.KINDS]
    planned += [layout.logs, layout.specs, layout.marker]
    _check_same_source(layout, experiment)
    # The spec there (if any) must describe this decoder: checked before any file is written.
    _check_specs(layout, parse_specs(load_checkpoint(
        experiment.checkpoint_file(checkpoints[-1]))["config"]))
    for name in checkpoints:  # a decoder the original cannot express: before any write
        check_exportable(parse_specs(load_checkpoint(
            experiment.checkpoint_file(name))["config"]))
    # claimed before the first file: an export stopped part-way (a kill, a full disk) is
    # this experiment's to finish on its rerun, never "another run's"
    contract.write_json(layout.marker, {"exported_from": str(experiment.folder)})
    written, newest = [], None
    for name in checkpoints:
        payload = load_checkpoint(experiment.checkpoint_file(name))
        config = parse_specs(payload["config"])
        check_exportable(config)  # a decoder the original cannot express: before any write
        our_names = our_parameter_names(config)
        epoch = int(payload["epoch"])
        files = {
            layout.model_parameters(name): {
                "epoch": epoch,
                "model_state_dict": decoder_state_to_original(payload["decoder"], config)},
            layout.latent_codes(name): {
                "epoch": epoch, "latent_codes": {"weight": payload["codes"].detach().cpu()}},
            layout.optimizer_parameters(name): {
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
    _save(layout.logs, logs_to_original(payload.get("log") or {}, epoch, our_names, config))
    written.append(layout.logs)
    written += _write_specs(layout, config)
    return written


def _check_same_source(layout: OriginalLayout, experiment) -> None:
    """Refuse a folder that holds another experiment's files: checkpoints with no export
    record of this project (the original release's own run), or an export of another
    experiment (mixing two runs' epochs in one folder)."""
    import json

    existing = [p for kind in layout.KINDS for p in sorted(
        (layout.root / kind).glob("*.pth")) if (layout.root / kind).is_dir()]
    existing += [layout.logs] if os.path.lexists(layout.logs) else []
    source = None
    if layout.marker.is_file():
        try:
            source = json.loads(layout.marker.read_text(encoding="utf-8")).get("exported_from")
        except (ValueError, UnicodeDecodeError, AttributeError):
            source = None
    if source is not None and Path(source) != Path(experiment.folder):
        raise ExportError(f"{layout.root} holds an export of another experiment ({source}); "
                          "export into another folder with --out")
    if existing and source is None:
        raise ExportError(f"{layout.root} holds {existing[0].relative_to(layout.root)} that "
                          "no export of this experiment wrote (another run's?); export into "
                          "another folder with --out")


def _check_specs(layout: OriginalLayout, config: TrainConfig) -> None:
    """An existing ``specs.json`` in the layout must be readable and describe ``config``'s
    decoder (as the original reads it)."""
    check_exportable(config)
    path = layout.specs
    if os.path.lexists(path):
        existing = read_specs(path)
        if existing.decoder != parse_specs(legacy_specs(config)).decoder:
            raise ExportError(f"{path} describes another decoder than the checkpoints "
                              "(for the original, use_tanh adds a second tanh); export into "
                              "another folder with --out")


def _write_specs(layout: OriginalLayout, config: TrainConfig) -> list[Path]:
    _check_specs(layout, config)
    if layout.specs.is_file():
        return []
    contract.write_json(layout.specs, legacy_specs(config))
    return [layout.specs]


def _save(path: Path, content: dict) -> None:
    """``torch.save`` into memory, then one plain write: a full disk is an OSError the
    atomic write names (a DiskFullError), not torch's "unexpected pos" RuntimeError."""
    import io

    buffer = io.BytesIO()
    torch.save(content, buffer)
    with contract.atomic_path(path) as temporary:
        with open(temporary, "wb") as stream:
            stream.write(buffer.getbuffer())

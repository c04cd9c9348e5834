"""Loading the original DeepSDF release's experiment files into this project's classes.

The original writes ``EXP/ModelParameters/<epoch>.pth`` = ``{"epoch", "model_state_dict"}``
(saved through ``DataParallel``, so keys start with ``module.``; layers ``lin<i>`` with the old
weight-norm parameters ``weight_g`` / ``weight_v``; LayerNorms ``bn<i>``) and
``EXP/LatentCodes/<epoch>.pth`` = ``{"epoch", "latent_codes"}`` (an ``Embedding`` state dict
``{"weight": (n, d)}``, or the bare tensor in early versions).  Its code rows follow the
training split file's order; its decoder input is ``[z, xyz]``, as ours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from deepsdf_preprocess.contract import read_split

from .checkpoint import CheckpointError, safe_load
from .config import TrainConfig, load_specs
from .decoder import Decoder
from .latents import LatentTable, split_hash, split_instances

__all__ = ["convert_decoder_state", "our_parameter_name", "load_legacy_decoder",
           "load_legacy_codes", "load_legacy_experiment", "OriginalTraining",
           "load_original_training", "original_training_files"]

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


def load_legacy_experiment(experiment_dir, epoch="latest"):
    """(config, decoder, codes) of an original experiment folder at ``epoch``."""
    experiment_dir = Path(experiment_dir)
    config = load_specs(experiment_dir)
    decoder = load_legacy_decoder(experiment_dir / "ModelParameters" / f"{epoch}.pth", config)
    split = read_split(config.train_split)
    codes = load_legacy_codes(experiment_dir / "LatentCodes" / f"{epoch}.pth", split)
    return config, decoder, codes


def original_training_files(experiment_dir) -> dict:
    """``{path: exists}`` of an original training folder's three ``latest.pth`` files."""
    folder = Path(experiment_dir)
    return {folder / sub / "latest.pth": (folder / sub / "latest.pth").is_file()
            for sub in ("ModelParameters", "LatentCodes", "OptimizerParameters")}


@dataclass
class OriginalTraining:
    """Where an original release's training run stands, in this project's terms."""

    decoder_state: dict  # our Decoder's state dict
    codes: torch.Tensor  # (n, d), rows in the split file's order
    optimizer_state: dict  # our two-group Adam state dict
    epoch: int  # epochs completed
    log: dict | None  # Logs.pth's entries (our parameter names), when there is one


def load_original_training(experiment_dir, config: TrainConfig, split: dict,
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
    from .export import original_optimizer_to_ours

    experiment_dir = Path(experiment_dir)
    files = original_training_files(experiment_dir)
    missing = [str(path) for path, exists in files.items() if not exists]
    if missing:
        raise CheckpointError(f"cannot resume the original training folder {experiment_dir}: "
                              f"{', '.join(missing)} missing")
    model_path, codes_path, optimizer_path = files
    decoder = load_legacy_decoder(model_path, config)
    table = load_legacy_codes(codes_path, split)
    payloads = [_load(path) for path in files]
    epochs = {int(p["epoch"]) for p in payloads if isinstance(p, dict) and "epoch" in p}
    if len(epochs) != 1:
        raise CheckpointError(f"the original files in {experiment_dir} are of different epochs "
                              f"({sorted(epochs)}); they cannot be resumed together")
    optimizer = original_optimizer_to_ours(payloads[2].get("optimizer_state_dict", {}),
                                           our_names, config, where=str(optimizer_path))
    logs = experiment_dir / "Logs.pth"
    log = _log_from_original(_load(logs), our_names) if logs.is_file() else None
    return OriginalTraining(decoder_state=decoder.state_dict(),
                            codes=table.weight.detach(), optimizer_state=optimizer,
                            epoch=epochs.pop(), log=log)


def _log_from_original(logs, our_names: list) -> dict:
    """The original's ``Logs.pth`` entries, parameter names translated to ours."""
    from .train import new_log

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

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
from pathlib import Path

import torch

from deepsdf_preprocess.formats import read_split

from .checkpoint import CheckpointError, safe_load
from .config import TrainConfig, load_specs
from .decoder import Decoder
from .latents import LatentTable, split_hash, split_instances

__all__ = ["convert_decoder_state", "our_parameter_name", "load_legacy_decoder",
           "load_legacy_codes", "load_legacy_experiment"]

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

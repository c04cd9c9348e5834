"""Which device a command runs on: ``"auto"`` is resolved, and any other name checked, here."""

from __future__ import annotations

import torch

from deepsdf_preprocess.errors import InputError

__all__ = ["resolve_device", "module_device"]


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else MPS, else CPU; any other name (``"cpu"``,
    ``"cuda"``, ``"cuda:1"``, ``"mps"``, a :class:`torch.device`) checked to exist here.

    Raises
    ------
    InputError
        One line for a name torch does not know, or a device this machine does not have
        (naming what it has).
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"device {device!r} is not a device name (use auto, cpu, cuda, "
                         "cuda:N or mps)") from None
    if resolved.type == "cpu":
        return torch.device("cpu")  # "cpu:0" is the one CPU device; torch.load rejects it
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device {device!r}: this machine has no CUDA device that torch "
                             f"can use (torch {torch.__version__}, built "
                             f"{'without' if torch.version.cuda is None else 'with'} CUDA); "
                             f"available: {_available()}")
        if resolved.index is not None and resolved.index >= count:
            raise InputError(f"device {device!r}: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")
        # "cuda" is the current device: name its index, so that one device has one name
        return resolved if resolved.index is not None else torch.device(
            "cuda", torch.cuda.current_device())
    if resolved.type == "mps":
        if not _mps_available():
            raise InputError(f"device {device!r}: Apple's MPS is not available here; "
                             f"available: {_available()}")
        return resolved
    raise InputError(f"device {device!r}: this project runs on cpu, cuda or mps")


def module_device(module, device=None) -> torch.device:
    """The device to run ``module`` (a decoder) on: ``device`` when given, else the device of
    the module's parameters (the CPU for a module without any).  Functions that take a decoder
    follow it by default, so a decoder on CUDA is never fed CPU tensors."""
    if device is not None:
        return torch.device(device)
    for parameter in module.parameters() if hasattr(module, "parameters") else ():
        return parameter.device
    return torch.device("cpu")


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def _available() -> str:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return ", ".join(names)

"""The signed distance of points for a code: the one call a user of a trained model needs."""

from __future__ import annotations

import numpy as np
import torch
from deepsdf_preprocess.errors import InputError

__all__ = ["sdf"]


def _dense_real(value, name: str):
    """``value`` as a dense real tensor or array; a sparse tensor (torch cannot reshape it)
    or matrix, complex values (casting would drop the imaginary part) and non-numbers are
    refused."""
    if torch.is_tensor(value):
        if value.layout != torch.strided:
            raise InputError(f"{name} is a sparse tensor ({value.layout}); pass a dense one "
                             "(.to_dense())")
        if value.is_complex():
            raise InputError(f"{name} holds complex values ({value.dtype}); real numbers are "
                             "needed")
        if value.dtype == torch.bool:
            raise InputError(f"{name} holds booleans (a mask?); numbers are needed")
        return value
    if hasattr(value, "toarray") and hasattr(value, "nnz"):  # scipy.sparse
        raise InputError(f"{name} is a sparse matrix; pass a dense array (.toarray())")
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged lists and the like
        raise InputError(f"{name} is not a numeric array: {str(error).splitlines()[0]}"
                         ) from None
    if array.dtype.kind == "c":
        raise InputError(f"{name} holds complex values ({array.dtype}); real numbers are "
                         "needed")
    if array.dtype.kind == "b":
        raise InputError(f"{name} holds booleans (a mask?); numbers are needed")
    if array.dtype.kind not in "iuf":
        raise InputError(f"{name} holds {array.dtype} values; numbers are needed")
    return array


def _require_graph_memory(decoder, count: int, device) -> None:
    """Refuse, before any pass, a ``grad=True`` call whose autograd graph (every layer's
    input and output for every point, float32) would not fit the device's free memory."""
    config = decoder.config
    features = (sum(getattr(config, "dims", ())) + config.latent_size
                + getattr(config, "point_features", 3))
    needed = 2.0 * 4 * features * count
    hint = ("pass fewer points per call (the graph of every point is kept until backward), "
            "or grad=False")
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        if needed > 0.9 * free:
            raise InputError(f"sdf(grad=True) on {count:,} points needs about "
                             f"{needed / 2 ** 30:.1f} GiB of GPU memory and "
                             f"{free / 2 ** 30:.1f} GiB are free; {hint}")
        return
    from deepsdf_preprocess.validate import require_memory

    require_memory(needed, what=f"sdf(grad=True) on {count:,} points", hint=hint)


def sdf(decoder, code, points, *, chunk: int = 65536, grad: bool = False) -> torch.Tensor:
    """Signed distances of ``points`` to the shape of ``code``.

    Parameters
    ----------
    decoder : deepsdf.decoder.Decoder
        A trained decoder (put it in eval mode for dropout-free values:
        ``load_trained`` does).  Its code length is ``decoder.config.latent_size`` (the
        spec's ``CodeLength``).
    code : (d,) or (1, d) tensor or array
        One code, e.g. ``payload["codes"][i]`` of :func:`deepsdf.inference.load_trained`.
    points : (..., 3) tensor or array, normalized frame
        Any batch shape.
    chunk : int, keyword-only
        Points per decoder pass (bounds the memory).
    grad : bool, keyword-only
        Keep the autograd graph (for gradients with respect to the points or the code);
        default off.

    Returns
    -------
    (...) float32 tensor on the decoder's device: the signed distance of each point, > 0
    outside, normalized-frame units.

    Raises
    ------
    InputError
        When the code's length is not the decoder's, the code or a point is not finite,
        points do not end in 3 coordinates, the points or the code are sparse, complex,
        booleans or not numbers, ``chunk`` is not a positive count, or (``grad``) the graph
        of all the points would not fit in memory (sized before any pass).
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InputError(f"chunk must be a positive number of points, got {chunk!r}")
    parameter = next(decoder.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    latent = decoder.config.latent_size
    code = torch.as_tensor(_dense_real(code, "code"), dtype=torch.float32,
                           device=device).reshape(-1)
    if code.numel() != latent:
        raise InputError(f"the code has {code.numel()} values; this decoder's codes have "
                         f"{latent} (decoder.config.latent_size)")
    if not torch.isfinite(code).all():
        raise InputError("the code has NaN or infinite values")
    points = torch.as_tensor(_dense_real(points, "points"), dtype=torch.float32,
                             device=device)
    if points.shape[-1:] != (3,):
        raise InputError(f"points must have shape (..., 3), got {tuple(points.shape)}")
    flat = points.reshape(-1, 3)
    if not torch.isfinite(flat).all():
        bad = int((~torch.isfinite(flat).all(dim=1)).sum())
        raise InputError(f"{bad} of {len(flat)} points have NaN or infinite coordinates")
    if grad:
        _require_graph_memory(decoder, len(flat), device)
    with torch.set_grad_enabled(grad):
        values = [decoder(code.expand(len(part), -1), part).squeeze(1)
                  for part in flat.split(chunk)] if len(flat) else [flat.new_zeros(0)]
    return torch.cat(values).reshape(points.shape[:-1])

"""The training loss: clamped L1 plus a Gaussian prior on the codes."""

from __future__ import annotations

import torch
from deepsdf_preprocess.errors import InputError

__all__ = ["clamped_l1", "code_prior", "prior_warmup", "eikonal"]


def clamped_l1(predicted: torch.Tensor, target: torch.Tensor, delta: float, *,
               hard_weight: float = 0.0) -> torch.Tensor:
    """``mean_i w_i |clamp(f_i, -delta, delta) - clamp(s_i, -delta, delta)|`` over the samples.

    With ``hard_weight = eps > 0`` (Curriculum DeepSDF's difficulty weighting), ``w_i = 1 +
    eps * sign(s_i) * sign(s_i - f_i)``: a sample whose prediction lies on the surface's side
    of its target (under-estimating an outside distance, over-estimating an inside one, or
    of the wrong sign) weighs ``1 + eps``, the others ``1 - eps``; else every ``w_i = 1``.

    Parameters
    ----------
    predicted, target : (n,) tensors
    delta : float (reference 0.1)
    hard_weight : float in [0, 1), keyword-only
    """
    error = (predicted.clamp(-delta, delta) - target.clamp(-delta, delta)).abs()
    if hard_weight:
        error = error * (1.0 + hard_weight * torch.sign(target)
                         * torch.sign(target - predicted.detach()))
    return error.mean()


def eikonal(gradients: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``mean (|g_i| - 1)^2`` over the rows of ``gradients`` (n, 3) selected by ``mask``
    (n,) bool (all rows if None): a true SDF has unit gradient norm (IGR, Gropp et al. 2020).
    Zero when nothing is selected."""
    if mask is not None:
        gradients = gradients[mask]
    if len(gradients) == 0:
        return gradients.sum()
    return (gradients.norm(dim=1) - 1.0).pow(2).mean()


def prior_warmup(epoch: int) -> float:
    """``min(1, epoch / 100)``; the trainer passes the original's 1-based numbers for legacy
    specs (0.01 in the first epoch), see :func:`deepsdf.train.schedule_epoch`."""
    return min(1.0, epoch / 100.0)


def code_prior(codes: torch.Tensor, *, form: str, weight: float, std: float) -> torch.Tensor:
    """The code-regularization term, per sample.

    Parameters
    ----------
    codes : (n, d) tensor
        The code of each *sample* (rows repeat for samples of one shape).
    form : {"original", "paper"}
        ``"original"``: ``weight * mean_i ||z_i||`` (unsquared norm), exactly the original
        code's ``lambda * sum_i ||z_i|| / n``.
        ``"paper"``: ``weight * mean_i ||z_i||^2 / (d * std^2)``: the paper's Gaussian prior
        ``||z||^2 / sigma^2`` with ``sigma = std`` per component, divided by the code length
        ``d`` so that it is about ``weight`` for codes at their initial spread, whatever ``d``.
    weight : float
        lambda times the warm-up factor.
    std : float
        Per-component prior standard deviation (the codes' initial one).
    """
    if form == "original":
        return weight * codes.norm(dim=1).mean()
    if form == "paper":
        return weight * codes.pow(2).sum(dim=1).mean() / (codes.shape[1] * std ** 2)
    raise InputError(f"unknown code prior form {form!r}; use 'original' or 'paper'")

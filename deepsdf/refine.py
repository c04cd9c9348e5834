"""Test-time refinement: after the latent fit, adapt the decoder itself to one shape.

Latent-only inference (the paper's, and this project's default) keeps the decoder frozen, so a
shape the category model cannot express is approximated by the nearest shape it can.  Deep
Optimized Priors (Yang, Hu, Ji, Lin, Li & Lin, CVPR 2021) fine-tune the decoder's weights
together with the code on that one shape's observations, held near the category model by a
penalty on the weights' change:

    loss(theta, z) = mean |clamp(f_theta(z, x)) - clamp(s)|          (the fit's data term)
                     + prior * mean(z^2)                             (the code prior)
                     + weight_prior * sum((theta - theta_0)^2)       (stay near the category)

minimised with Adam, ``steps`` steps of ``samples`` fresh rows, the code's learning rate
``code_lr``, the weights' ``lr``, both cut by ten for the last quarter.  What it fits to is
any sample source the latent fit reads (:mod:`deepsdf.reconstruct`: SdfSamples, or completion's
constraint rows with their one-sided free-space rows).  The category model is never changed:
each shape gets its own copy of the decoder.

The result is written *beside* the latent-only one (``Refined/`` next to ``Codes/`` and
``Meshes/``), never instead of it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from deepsdf_preprocess.errors import InputError

from .reconstruct import _check_clamp, _check_source, _draw, _objective
from .settings import REFINE, RefineConfig

__all__ = ["RefineConfig", "Refinement", "refine_shape", "REFINE"]


@dataclass
class Refinement:
    """One refined shape: its own decoder (a copy), its code (d,), and the objective before
    and after (the data term plus both priors, on the last step's samples), and per step."""

    decoder: torch.nn.Module
    code: torch.Tensor
    before: float
    after: float
    history: list = field(default_factory=list)


def refine_shape(decoder, source, scene: int, code, config: RefineConfig = REFINE, *,
                 clamp: float) -> Refinement:
    """Refine the decoder and ``code`` (d,) on shape ``scene`` of ``source``.

    ``decoder`` is left as it is; the returned one is a copy in training mode off (no
    dropout), on the code's device."""
    _check_clamp(clamp)
    _check_source(source, [scene])
    code = torch.as_tensor(code, dtype=torch.float32).detach()
    if code.ndim != 1:
        raise InputError(f"refine_shape takes one code (d,), got shape {tuple(code.shape)}")
    device = code.device
    tuned = copy.deepcopy(decoder).to(device)
    tuned.eval()  # no dropout: the category model's prediction is the starting point
    anchor = [p.detach().clone() for p in tuned.parameters()]
    weights = list(tuned.parameters())
    for p in weights:
        p.requires_grad_(True)
    latent = code.clone().unsqueeze(0).requires_grad_(True)
    optimizer = torch.optim.Adam([{"params": weights, "lr": config.lr},
                                  {"params": [latent], "lr": config.code_lr}])
    count, history = config.samples, []

    def objective(samples):
        fit, _ = _objective(tuned, latent, samples, count, clamp, config.prior)
        drift = sum(((p - a) ** 2).sum() for p, a in zip(weights, anchor))
        return fit.sum() + config.weight_prior * drift

    with torch.no_grad():
        before = float(objective(_draw(source, [scene], count, config.seed, 0, device)))
    for step in range(config.steps):
        scale = 0.1 if step >= (3 * config.steps) // 4 else 1.0
        for group, base in zip(optimizer.param_groups, (config.lr, config.code_lr)):
            group["lr"] = base * scale
        samples = _draw(source, [scene], count, config.seed, step, device)
        optimizer.zero_grad(set_to_none=True)
        loss = objective(samples)
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    with torch.no_grad():
        after = float(objective(_draw(source, [scene], count, config.seed, 0, device)))
    for p in tuned.parameters():
        p.requires_grad_(False)
    return Refinement(tuned, latent.detach()[0], before, after, history)

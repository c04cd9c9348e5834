"""Latent-only reconstruction: fit one code per shape to its SDF samples, decoder frozen.

Two solvers, both batched (many shapes per decoder pass, the objective summed over shapes so
each shape's fit is independent of the others):

``"adam"`` (the reference, as the original's ``reconstruct.py``)
    Codes start at N(0, 0.01^2) (drawn per shape from a generator keyed by (seed, shape));
    ``steps`` Adam steps at ``lr`` divided by 10 at half-way; each
    step draws ``samples`` fresh samples per shape (half positive, half negative); loss
    ``mean |clamp(f) - clamp(s)| + prior * mean(z^2)``.

``"gauss-newton"`` (faster)
    Levenberg-Marquardt on the same objective, with the L1 term reweighted (IRLS: ``|r|``
    approximated by ``r^2 / (2 |r_0|)`` around the current residuals) and one damping factor
    per shape.  The Jacobian of every sample's prediction with respect to its shape's code costs
    one forward and one backward pass: each sample reads its own copy of the code, so the
    gradient of the summed predictions with respect to those copies holds each sample's row of
    the Jacobian.  A trial step costs one more forward pass; a step that does not lower a
    shape's objective is undone and its damping raised.

Cost is counted in **point-passes**: a forward pass over n points costs n, a backward pass 2n
(so the Jacobian costs 3n).

What a shape is fitted to (its **sample source**) is either its preprocessed ``SdfSamples``
(rows of a :class:`~deepsdf.data.PackedSamples`, drawn half positive, half negative) or any
set of constraint rows ``[x, y, z, target, one_sided]`` (shape completion builds these from
depth images, :mod:`deepsdf.observations`), drawn uniformly with replacement.  A row with
``one_sided = 0`` asks for ``f(x) = target``; a row with ``one_sided = 1`` only asks for
``f(x) >= target`` (free space: "outside", whatever the distance), so its residual
``min(0, clamp(f) - clamp(target))`` is zero once the bound holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from deepsdf_preprocess.errors import InputError

from .data import PackedSamples, scene_samples
from .device import module_device
from .settings import (GAUSS_NEWTON, SHORT_GAUSS_NEWTON, SOLVERS, MultiStart,  # noqa: F401
                       SolverConfig)

__all__ = ["SolverConfig", "Reconstruction", "reconstruct_codes", "candidate_values",
           "RankedFits", "fit_from_starts", "fit_codes", "GAUSS_NEWTON", "SHORT_GAUSS_NEWTON", "SOLVERS"]

@dataclass
class Reconstruction:
    """Fitted codes and what they cost.

    Attributes
    ----------
    codes : (b, d) tensor
    loss : (b,) array, the final objective of each shape
    point_passes : int, decoder work in point-passes (see the module docstring)
    history : list of (point_passes, mean loss) after each step
    """

    codes: torch.Tensor
    loss: np.ndarray
    point_passes: int
    history: list = field(default_factory=list)


def _shape_rows(source, scene: int, count: int, seed: int, step: int) -> np.ndarray:
    """(count, 5) float32 rows ``[x, y, z, target, one_sided]`` of one shape, drawn from a
    generator keyed (seed, step, scene)."""
    if isinstance(source, PackedSamples):
        rows = scene_samples(source, scene, count, seed=seed, epoch=step)
        return np.concatenate([rows, np.zeros((count, 1), np.float32)], axis=1)
    rows = np.asarray(source[scene], dtype=np.float32)
    return rows[np.random.default_rng([seed, step, scene]).integers(0, len(rows), count)]


def _draw(source, scenes, count: int, seed: int, step: int, device):
    """(b * count, 5) samples, shape b's block drawn from a generator keyed (seed, step, b)."""
    rows = np.concatenate([_shape_rows(source, int(s), count, seed, step) for s in scenes])
    return torch.from_numpy(rows).to(device)


def _residual(predicted, samples, clamp: float):
    """(n,) ``clamp(f) - clamp(target)``, with one-sided rows' satisfied part set to zero."""
    residual = predicted.clamp(-clamp, clamp) - samples[:, 3].clamp(-clamp, clamp)
    return torch.where(samples[:, 4] > 0.5, residual.clamp(max=0.0), residual)


def _objective(decoder, codes, samples, count: int, clamp: float, prior: float):
    """Per-shape objective (b,), predictions (b*count,) of ``codes`` (b, d) on ``samples``."""
    expanded = codes.repeat_interleave(count, dim=0)
    predicted = decoder(expanded, samples[:, :3]).squeeze(1)
    data = _residual(predicted, samples, clamp).abs().view(len(codes), count).mean(dim=1)
    return data + prior * codes.pow(2).mean(dim=1), predicted


#: Constraint-row coordinates beyond this (normalized frame: the model's domain is the unit
#: sphere) cannot belong to the shape; such rows are refused rather than fitted.
COORDINATE_LIMIT = 1e3


def _check_clamp(clamp) -> None:
    """Refuse a clamping distance that is not a finite positive number (NaN or 0 would make
    every residual 0 or NaN and the fit return its initial code as if it had converged)."""
    try:
        value = float(clamp)
    except (TypeError, ValueError):
        raise InputError(f"clamp must be a finite positive number, got {clamp!r}") from None
    if isinstance(clamp, bool) or not (np.isfinite(value) and value > 0):
        raise InputError(f"clamp must be a finite positive number, got {clamp!r}")


def _check_source(source, scenes) -> None:
    if isinstance(source, PackedSamples):
        return
    if not isinstance(source, Sequence):
        raise TypeError("a sample source is a PackedSamples or a sequence of (n, 5) arrays")
    for scene in scenes:
        rows = source[scene]
        if rows.ndim != 2 or rows.shape[1] != 5 or len(rows) == 0:
            raise InputError(f"shape {scene}: constraint rows must be a non-empty (n, 5) array "
                             f"[x, y, z, target, one_sided], got shape {rows.shape}")
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.asarray(rows, dtype=np.float32)
        finite = np.isfinite(values).all(axis=1)
        if not finite.all():
            raise InputError(f"shape {scene}: {int((~finite).sum())} of {len(values)} "
                             "constraint rows hold NaN or infinite values")
        reach = float(np.abs(values[:, :3]).max())
        if reach > COORDINATE_LIMIT:
            raise InputError(f"shape {scene}: constraint rows reach {reach:g} from the origin; "
                             f"the model frame is the unit sphere (at most "
                             f"{COORDINATE_LIMIT:g} is accepted): check the normalization")


def reconstruct_codes(decoder, source, scenes, config: SolverConfig, *,
                      clamp: float, latent_size: int | None = None, device=None,
                      candidates=None, initial=None) -> Reconstruction:
    """Fit one code per shape ``scenes`` of ``source`` with the decoder frozen.

    Parameters
    ----------
    decoder : Decoder
        Put in eval mode here; its parameters are not changed.
    source : PackedSamples, or sequence of (n_i, 5) float32 arrays
        The shapes' SDF samples (see :func:`deepsdf.data.pack_split`), or per-shape
        constraint rows ``[x, y, z, target, one_sided]`` (normalized frame; see the module
        docstring).
    scenes : sequence of int
        Shapes of ``source`` to fit (indices into it).
    clamp : float
        The experiment's clamping distance.
    latent_size : int, optional
        The code length; default the decoder's own (``decoder.config.latent_size``; a
        decoder-like module without one needs it given).
    candidates : (k, d) tensor, optional
        With ``config.screen > 0``: each shape starts from whichever of its random initial
        code and these codes (typically the training codes) has the lowest objective on
        ``config.screen`` of its samples (cost ``(k + 1) * screen`` point-passes per shape).
    initial : (b, d) tensor, optional
        Each shape's initial code, instead of its random draw (shape completion's multiple
        starts, :mod:`deepsdf.completion`).
    """
    _check_clamp(clamp)
    _check_source(source, scenes)
    known = getattr(getattr(decoder, "config", None), "latent_size", None)
    if latent_size is None:
        if known is None:
            raise InputError("give latent_size: this decoder does not state its code length")
        latent_size = known
    elif known is not None and latent_size != known:
        raise InputError(f"latent_size {latent_size} is not the decoder's code length {known}")
    device = module_device(decoder, device)
    decoder.eval()
    frozen = [(p, p.requires_grad) for p in decoder.parameters()]
    for parameter, _ in frozen:
        parameter.requires_grad_(False)
    # Each shape's initial code comes from its own generator, keyed (seed, scene): a shape's
    # fit does not depend on which other shapes share its batch.
    if initial is not None:
        codes = torch.as_tensor(initial, dtype=torch.float32).to(device)
        if codes.shape != (len(scenes), latent_size):
            raise InputError(f"initial codes must be ({len(scenes)}, {latent_size}), got "
                             f"{tuple(codes.shape)}")
    else:
        codes = torch.from_numpy(np.stack([
            np.random.default_rng([config.seed, int(scene)]).normal(0.0, config.init_std,
                                                                    latent_size)
            for scene in scenes]).astype(np.float32)).to(device)
    solve = _adam if config.method == "adam" else _gauss_newton
    try:
        screened = 0
        if candidates is not None and config.screen:
            codes, screened = _screen(decoder, source, list(scenes), codes,
                                      torch.as_tensor(candidates, dtype=torch.float32).to(device),
                                      config, clamp)
        result = solve(decoder, source, list(scenes), codes, config, clamp)
        result.point_passes += screened
        return result
    finally:
        for parameter, flag in frozen:
            parameter.requires_grad_(flag)


#: Generator step key of the screening samples (apart from every solver step's).
_SCREEN_STEP = 2 ** 31 - 1


@torch.no_grad()
def candidate_values(decoder, source, scenes, candidates, *, count: int, clamp: float,
                     prior: float = 0.0, seed: int = 0, device=None) -> torch.Tensor:
    """(b, k) objective of k candidate codes for each of the b shapes ``scenes`` of
    ``source``, on ``count`` rows per shape drawn once (the same rows for every candidate of a
    shape, and for every call with the same ``seed``):
    ``mean |clamp(f) - clamp(target)| + prior * mean(z^2)`` (the data term alone with
    ``prior = 0``).

    ``candidates`` is (k, d), the same codes for every shape (training codes), or (b, k, d),
    each shape's own (its fits from several starts).  Cost ``b * k * count`` point-passes, in
    blocks of about 1 M points."""
    _check_clamp(clamp)
    _check_source(source, scenes)
    device = module_device(decoder, device)
    b = len(scenes)
    candidates = torch.as_tensor(candidates, dtype=torch.float32).to(device)
    if candidates.dim() == 2:
        candidates = candidates.unsqueeze(0).expand(b, -1, -1)
    if candidates.dim() != 3 or len(candidates) != b:
        raise InputError(f"candidates must be (k, d) or ({b}, k, d), got "
                         f"{tuple(candidates.shape)}")
    k, d = candidates.shape[1:]
    samples = _draw(source, scenes, count, seed, _SCREEN_STEP, device)
    values = []
    chunk = max(1, (1 << 20) // (b * count))
    for first in range(0, k, chunk):
        block = candidates[:, first:first + chunk]
        c = block.shape[1]
        rows = samples.view(b, 1, count, 5).expand(b, c, count, 5).reshape(-1, 5)
        expanded = block.view(b, c, 1, d).expand(b, c, count, d).reshape(-1, d)
        predicted = decoder(expanded, rows[:, :3]).squeeze(1)
        value = _residual(predicted, rows, clamp).abs().view(b, c, count).mean(dim=2)
        values.append(value + prior * block.pow(2).mean(dim=2))
    return torch.cat(values, dim=1)


def _screen(decoder, source, scenes, codes, candidates, config: SolverConfig, clamp: float):
    """Per shape, the lowest-objective code among its own initial code and ``candidates``."""
    count, device = config.screen, codes.device
    samples = _draw(source, scenes, count, config.seed, _SCREEN_STEP, device)
    with torch.no_grad():
        own, _ = _objective(decoder, codes, samples, count, clamp, config.prior)
    values = candidate_values(decoder, source, scenes, candidates, count=count, clamp=clamp,
                              prior=config.prior, seed=config.seed, device=device)
    low, index = values.min(dim=1)
    better = low < own
    best = codes.clone()
    best[better] = candidates[index[better]]
    return best, len(scenes) * (len(candidates) + 1) * count


def _adam(decoder, source, scenes, codes, config: SolverConfig, clamp: float):
    codes = codes.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([codes], lr=config.lr)
    count, passes, history = config.samples, 0, []
    device = codes.device
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * (0.1 if step >= config.steps // 2 else 1.0)
        samples = _draw(source, scenes, count, config.seed, step, device)
        optimizer.zero_grad(set_to_none=True)
        loss, _ = _objective(decoder, codes, samples, count, clamp, config.prior)
        loss.sum().backward()  # a sum: each shape's gradient is its own
        optimizer.step()
        passes += 3 * len(samples)
        history.append((passes, float(loss.detach().mean())))
    with torch.no_grad():
        final, _ = _objective(decoder, codes, samples, count, clamp, config.prior)
    return Reconstruction(codes.detach(), final.cpu().numpy(), passes, history)


def _gauss_newton(decoder, source, scenes, codes, config: SolverConfig, clamp: float):
    count, device = config.samples, codes.device
    samples = _draw(source, scenes, count, config.seed, 0, device)
    b, d = codes.shape
    damping = torch.full((b,), config.damping, device=device)
    passes, history = 0, []
    with torch.no_grad():
        current, _ = _objective(decoder, codes, samples, count, clamp, config.prior)
    passes += len(samples)
    eye = torch.eye(d, device=device)
    floors = np.geomspace(config.irls_floor, config.irls_floor_final or config.irls_floor,
                          config.steps)
    for iteration in range(config.steps):
        if config.resample and iteration:
            samples = _draw(source, scenes, count, config.seed, iteration, device)
            with torch.no_grad():
                current, _ = _objective(decoder, codes, samples, count, clamp, config.prior)
            passes += len(samples)
        # Jacobian rows: one forward and one backward pass over all samples.
        copies = codes.repeat_interleave(count, dim=0).requires_grad_(True)
        predicted = decoder(copies, samples[:, :3]).squeeze(1)
        (jacobian,) = torch.autograd.grad(predicted.sum(), copies)
        passes += 3 * len(samples)
        predicted = predicted.detach()
        residual = _residual(predicted, samples, clamp)
        # clamp(f) has zero slope outside [-clamp, clamp]; a satisfied one-sided row has none.
        inside = ((predicted.abs() < clamp) & ((samples[:, 4] < 0.5) | (residual < 0))).float()
        weight = inside / residual.abs().clamp_min(float(floors[iteration]))
        jacobian = (jacobian * inside[:, None]).view(b, count, d)
        weight, residual = weight.view(b, count), residual.view(b, count)
        # IRLS model of mean|r| + prior*mean(z^2), per shape: H = J^T W J / n + 2 prior / d.
        hessian = torch.einsum("bni,bn,bnj->bij", jacobian, weight, jacobian) / count
        hessian = hessian + (2 * config.prior / d) * eye
        gradient = torch.einsum("bni,bn->bi", jacobian, torch.sign(residual)) / count
        gradient = gradient + (2 * config.prior / d) * codes
        diagonal = torch.diagonal(hessian, dim1=1, dim2=2).mean(dim=1).clamp_min(1e-12)
        system = hessian + (damping * diagonal)[:, None, None] * eye
        step = -torch.linalg.solve(system, gradient.unsqueeze(2)).squeeze(2)
        trial = codes + step
        with torch.no_grad():
            value, _ = _objective(decoder, trial, samples, count, clamp, config.prior)
        passes += len(samples)
        better = value < current
        codes = torch.where(better[:, None], trial, codes)
        current = torch.where(better, value, current)
        damping = torch.where(better, damping / 3, damping * 4).clamp(1e-6, 1e6)
        history.append((passes, float(current.mean())))
    return Reconstruction(codes.detach(), current.cpu().numpy(), passes, history)


@dataclass
class RankedFits:
    """Fitted codes of b shapes from k starts each (:func:`fit_from_starts`).

    Attributes
    ----------
    ranked : (b, k, d) tensor, each shape's fitted codes, lowest data term first
    data : (b, k) array, their data terms ``mean |clamp(f) - clamp(target)|``, ascending
    start_kind : (b, k) list of str, where each ranked fit started ("nearest", "mean",
        "random")
    point_passes : int
    """

    ranked: torch.Tensor
    data: np.ndarray
    start_kind: list
    point_passes: int

    @property
    def codes(self) -> torch.Tensor:
        """(b, d) the winning code of each shape."""
        return self.ranked[:, 0]

    @property
    def loss(self) -> np.ndarray:
        """(b,) the winning fits' data terms."""
        return self.data[:, 0]


def fit_from_starts(decoder, source, scenes, solver: SolverConfig, *, clamp: float,
                    starts: MultiStart, train_codes=None, latent_size: int | None = None,
                    seeds=None, device=None) -> RankedFits:
    """Fit each shape ``scenes`` of ``source`` (as :func:`reconstruct_codes`) from several
    starts (:class:`~deepsdf.settings.MultiStart`: its nearest training codes by data term on
    ``starts.screen`` samples, the mean training code, random draws), all in one batch, and
    rank each shape's fits by their data term on ``starts.screen`` fresh samples.

    A single random start from N(0, 0.01^2) can settle in a poor minimum (a thin part never
    grown, the mean shape's blob): the nearest training codes start inside the right basin.
    ``seeds`` (one int per shape; default the scene index) key the random starts.
    ``train_codes`` (n, d): the trained code table (without it, the random draws only).
    """
    scenes = list(scenes)
    seeds = scenes if seeds is None else list(seeds)
    if latent_size is None:
        latent_size = decoder.config.latent_size
    b = len(scenes)
    train_codes = (torch.zeros(0, latent_size) if train_codes is None
                   else torch.as_tensor(train_codes, dtype=torch.float32).cpu())
    kinds = starts.kinds(len(train_codes))
    initial, passes = [[] for _ in range(b)], 0
    nearest = kinds.count("nearest")
    if nearest:
        values = candidate_values(decoder, source, scenes, train_codes, count=starts.screen,
                                  clamp=clamp, seed=solver.seed, device=device)
        passes += b * len(train_codes) * starts.screen
        chosen = values.topk(nearest, dim=1, largest=False).indices.cpu()
        for i in range(b):
            initial[i] += [train_codes[j] for j in chosen[i]]
    if "mean" in kinds:
        for i in range(b):
            initial[i].append(train_codes.mean(dim=0))
    for i in range(b):
        for j in range(kinds.count("random")):
            initial[i].append(torch.from_numpy(np.random.default_rng(
                [solver.seed, seeds[i], j]).normal(0.0, solver.init_std, latent_size)
                .astype(np.float32)))
    k = len(kinds)
    starting = torch.stack([code for codes in initial for code in codes])  # (b * k, d)
    fitted = reconstruct_codes(decoder, source, [s for s in scenes for _ in range(k)], solver,
                               clamp=clamp, latent_size=latent_size, device=device,
                               initial=starting)
    fits = fitted.codes.view(b, k, -1)
    data = candidate_values(decoder, source, scenes, fits, count=starts.screen, clamp=clamp,
                            seed=solver.seed + 1, device=device)
    order = data.argsort(dim=1)
    ranked = torch.stack([fits[i, order[i]] for i in range(b)])
    return RankedFits(ranked=ranked.cpu(), data=torch.gather(data, 1, order).cpu().numpy(),
                      start_kind=[[kinds[j] for j in order[i].tolist()] for i in range(b)],
                      point_passes=passes + fitted.point_passes + b * k * starts.screen)


def fit_codes(decoder, source, scenes, fit, *, clamp: float, train_codes=None,
              latent_size: int | None = None, device=None) -> Reconstruction:
    """One code per shape ``scenes`` of ``source``: :func:`reconstruct_codes` for a
    :class:`~deepsdf.settings.SolverConfig` (its ``screen`` ranking ``train_codes``), or for a
    :class:`~deepsdf.settings.StartedFit` the best of its starts' fits
    (:func:`fit_from_starts`) continued with its ``finish`` solver."""
    if isinstance(fit, SolverConfig):
        return reconstruct_codes(decoder, source, scenes, fit, clamp=clamp,
                                 latent_size=latent_size, device=device,
                                 candidates=train_codes if fit.screen else None)
    ranked = fit_from_starts(decoder, source, scenes, fit.solver, clamp=clamp,
                             starts=fit.starts, train_codes=train_codes,
                             latent_size=latent_size, device=device)
    if fit.finish is None:
        return Reconstruction(ranked.codes, ranked.loss, ranked.point_passes)
    finished = reconstruct_codes(decoder, source, scenes, fit.finish, clamp=clamp,
                                 latent_size=latent_size, device=device, initial=ranked.codes)
    finished.point_passes += ranked.point_passes
    return finished

"""What a training run records and watches, apart from the loop: the per-epoch history, the
original release's ``Logs.pth`` entries, the TensorBoard curves, and the collapse watch."""

from __future__ import annotations

import logging

import torch

from .original import new_log

__all__ = ["TrainingLog", "CollapseWatch", "COLLAPSE_SPREAD", "prediction_spread"]

logger = logging.getLogger(__name__)

#: A run has collapsed when its clamped predictions vary less than this share of its clamped
#: targets: the decoder answers one value everywhere (a too-high learning rate saturates the
#: output; the loss then sits at the mean clamped target and never leaves it).
COLLAPSE_SPREAD = 0.01


def prediction_spread(predicted: torch.Tensor, target: torch.Tensor, clamp: float) -> tuple:
    """(standard deviation of the clamped predictions, of the clamped targets) of one batch,
    ``predicted`` and ``target`` (n,) signed distances; the run has collapsed when the first
    is below :data:`COLLAPSE_SPREAD` times the second."""
    predicted = predicted.detach().float().clamp(-clamp, clamp)
    target = target.detach().float().clamp(-clamp, clamp)
    return predicted.std().item(), target.std().item()


class TrainingLog:
    """The run's records: ``history`` ([epoch, mean loss, decoder learning rate] per finished
    epoch) and ``entries`` (the original's ``Logs.pth`` keys, :func:`~deepsdf.original.new_log`),
    both carried in checkpoints; and the TensorBoard writer of process 0."""

    def __init__(self, history=None, entries=None):
        self.history = [list(entry) for entry in (history or [])]
        self.entries = entries or new_log()
        self.writer = None

    def open_writer(self, folder) -> None:
        """Write TensorBoard curves into ``folder`` (skipped, with a warning, without
        tensorboard)."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a dependency, but keep training without it
            logger.warning("tensorboard is not installed; no training curves are written")
            return
        self.writer = SummaryWriter(str(folder))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def batch(self, loss: float) -> None:
        self.entries["loss"].append(loss)

    def epoch(self, model, optimizer, seconds: float) -> None:
        """Per-epoch entries of the original's ``Logs.pth`` (see :mod:`deepsdf.export`)."""
        log = self.entries
        log["learning_rate"].append([group["lr"] for group in optimizer.param_groups])
        log["timing"].append(seconds)
        log["latent_magnitude"].append(model.codes.weight.detach().norm(dim=1).mean().item())
        for name, parameter in model.decoder.named_parameters():
            log["param_magnitude"].setdefault(name, []).append(
                parameter.detach().norm().item())

    def finished(self, epoch: int, loss: float, learning_rate: float) -> None:
        self.history.append([epoch, loss, learning_rate])

    def mark(self) -> dict:
        """The log's lengths now: :meth:`upto` gives it back as it is at this moment (it only
        grows), without copying it every epoch."""
        return {"history": len(self.history),
                **{key: len(value) for key, value in self.entries.items()
                   if isinstance(value, list)},
                "param_magnitude": {name: len(values) for name, values in
                                    self.entries["param_magnitude"].items()}}

    def upto(self, mark: dict | None = None) -> tuple[list, dict]:
        """(history, entries) copies as they were at ``mark`` (now, without one)."""
        if mark is None:
            mark = self.mark()
        history = [list(entry) for entry in self.history[:mark["history"]]]
        entries = {key: (list(value[:mark[key]]) if isinstance(value, list) else value)
                   for key, value in self.entries.items() if key != "param_magnitude"}
        entries["param_magnitude"] = {
            name: list(values[:mark["param_magnitude"].get(name, 0)])
            for name, values in self.entries["param_magnitude"].items()}
        return history, entries

    def curves(self, model, optimizer, epoch: int, loss: float) -> None:
        """TensorBoard scalars of a finished epoch (when a writer is open)."""
        if self.writer is None:
            return
        writer = self.writer
        writer.add_scalar("loss", loss, epoch)
        writer.add_scalar("learning_rate/decoder", optimizer.param_groups[0]["lr"], epoch)
        writer.add_scalar("learning_rate/codes", optimizer.param_groups[1]["lr"], epoch)
        writer.add_scalar("code_norm/mean",
                          model.codes.weight.detach().norm(dim=1).mean().item(), epoch)


class CollapseWatch:
    """Says once per run when the last batch's predictions no longer vary (see
    :data:`COLLAPSE_SPREAD`): such a run will not recover."""

    def __init__(self):
        self.spread = (float("nan"), float("nan"))  # the last batch's prediction_spread
        self.collapsed_at = None  # the epoch it was first seen, or None

    def observe(self, predicted, target, clamp: float) -> None:
        self.spread = prediction_spread(predicted, target, clamp)

    def check(self, epoch: int) -> None:
        spread, wanted = self.spread
        if self.collapsed_at is not None or not spread < COLLAPSE_SPREAD * wanted:
            return
        self.collapsed_at = epoch
        logger.warning(
            "epoch %d: the decoder predicts about the same distance everywhere (spread %.2g of "
            "the clamped predictions against %.2g of the targets): training has collapsed to a "
            "constant and will not recover. Lower the learning rates (LearningRateSchedule) "
            "and train afresh (--overwrite)", epoch, spread, wanted)

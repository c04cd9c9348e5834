"""A training run's checkpoints: what a checkpoint holds, writing it (a full disk names the last
good one), and resuming from this project's checkpoints or the original release's files."""

from __future__ import annotations

import copy

import dataclasses
import json
import logging
from pathlib import Path

import torch

from deepsdf_preprocess.errors import DeepSDFError, DiskFullError

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .experiment import Experiment
from .train_log import TrainingLog

__all__ = ["TrainingError", "CheckpointKeeper", "json_short"]

logger = logging.getLogger(__name__)


class TrainingError(DeepSDFError, RuntimeError):
    """Training cannot go on (a NaN loss, a checkpoint that does not match the split)."""


def json_short(value, limit: int = 80) -> str:
    """A setting's value as compact JSON, cut to ``limit`` characters."""
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit - 3] + "..."


class CheckpointKeeper:
    """Writes and reads one experiment's training checkpoints for a configuration."""

    def __init__(self, experiment: Experiment, config: TrainConfig, device: torch.device,
                 samples: str | None = None):
        self.experiment, self.config, self.device = experiment, config, device
        self.samples = samples  # data.samples_digest of what this run trains on

    def state(self, model, optimizer, epoch: int, loss: float, log: TrainingLog) -> dict:
        """Everything a checkpoint holds after ``epoch`` finished epochs."""
        history, entries = log.upto()
        return dict(self._tensors(model, optimizer, epoch, loss), history=history, log=entries)

    def snapshot(self, model, optimizer, epoch: int, loss: float, log: TrainingLog) -> dict:
        """The state after ``epoch`` held in memory until it is saved: the tensors copied
        (a fixed size), the log by its lengths (it only grows), so that holding one every
        epoch costs the same at epoch 10 000 as at epoch 1.  :meth:`whole` completes it."""
        return {"tensors": copy.deepcopy(self._tensors(model, optimizer, epoch, loss)),
                "mark": log.mark()}

    @staticmethod
    def whole(snapshot: dict, log: TrainingLog) -> dict:
        """The checkpoint state of a :meth:`snapshot`."""
        history, entries = log.upto(snapshot["mark"])
        return dict(snapshot["tensors"], history=history, log=entries)

    def _tensors(self, model, optimizer, epoch: int, loss: float) -> dict:
        return {"epoch": epoch, "loss": loss,
                "decoder": model.decoder.state_dict(),
                "codes": model.codes.weight.detach().cpu().clone(),
                "instance_ids": model.codes.instance_ids,
                "split_hash": model.codes.split_digest,
                "samples_digest": self.samples,
                "optimizer": optimizer.state_dict(),
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available()
                        else []},
                "config": self.config.to_specs()}

    def save(self, path: Path, state: dict) -> None:
        """Write a checkpoint; a full disk is a :class:`TrainingError` naming the last good
        one."""
        try:
            save_checkpoint(path, state)
        except DiskFullError as error:
            raise TrainingError(f"{error}; {self.last_good()}") from error

    def last_good(self) -> str:
        """A sentence naming the newest checkpoint on disk (only one that exists)."""
        latest = self.experiment.checkpoint_file()
        if latest.is_file():
            try:
                epoch = load_checkpoint(latest)["epoch"]
                return f"The last good checkpoint is {latest} (epoch {epoch})."
            except CheckpointError:
                pass
        newest = self.experiment.newest_readable_snapshot()
        if newest is not None:
            return f"The last good checkpoint is {self.experiment.checkpoint_file(newest)}."
        return "No checkpoint was written yet."

    def _compare_samples(self, payload: dict, source: Path) -> None:
        """Refuse to resume on other samples than the checkpoint was trained on (the data
        root preprocessed again, with other settings, or another data root): the model would
        go on learning another dataset under the same epochs.  Checkpoints written before
        samples were recorded are resumed with a warning."""
        recorded = payload.get("samples_digest")
        if recorded is None or self.samples is None:
            logger.warning("%s does not record the samples it was trained on: resuming "
                           "without checking them", source)
        elif recorded != self.samples:
            raise TrainingError(
                f"the SdfSamples of this split are not those {source.name} (epoch "
                f"{payload.get('epoch')}) was trained on: the data root was preprocessed "
                "again or is another one; restore those samples, or train afresh (a new "
                "experiment folder, or overwrite this one)")

    def resume(self, model, optimizer, source: Path) -> tuple[int, TrainingLog]:
        """Load ``source`` into the model and optimizer (and the random state); returns the
        epochs it finished and its log."""
        try:
            payload = load_checkpoint(source, map_location=self.device)
        except CheckpointError as error:
            newest = self.experiment.newest_readable_snapshot()
            hint = (f"; the newest readable snapshot is epoch {newest}: resume from it with "
                    f"--resume-from {newest}" if newest is not None
                    else "; no readable snapshot exists: train afresh with --overwrite")
            raise TrainingError(f"{error}{hint}") from error
        if payload["split_hash"] != model.codes.split_digest:
            raise TrainingError("the latest checkpoint was trained on a different split "
                                f"(hash {payload['split_hash']} != "
                                f"{model.codes.split_digest}); start a new experiment folder")
        self._compare_samples(payload, source)
        self.compare_settings(payload.get("config", {}), source)
        model.decoder.load_state_dict(payload["decoder"])
        with torch.no_grad():
            model.codes.weight.copy_(payload["codes"].to(self.device))
        optimizer.load_state_dict(payload["optimizer"])
        log = TrainingLog([entry for entry in payload.get("history", [])
                           if entry[0] <= payload["epoch"]], payload.get("log"))
        torch.set_rng_state(payload["rng"]["torch"].cpu())
        if payload["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in payload["rng"]["cuda"]])
        logger.info("resuming after epoch %d from %s", payload["epoch"], source)
        return int(payload["epoch"]), log

    def resume_original(self, model, optimizer, split: dict) -> tuple[int, TrainingLog]:
        """Continue an original release's training folder: decoder, codes (split order), both
        Adam states and the epoch counter; its ``Logs.pth`` continues too, when present."""
        from .original import load_original_training

        names = [name for name, _ in model.decoder.named_parameters()]
        try:
            original = load_original_training(self.experiment.original, self.config, split,
                                              names)
        except CheckpointError as error:
            raise TrainingError(str(error)) from error
        model.decoder.load_state_dict(original.decoder_state)
        with torch.no_grad():
            model.codes.weight.copy_(original.codes.to(self.device))
        optimizer.load_state_dict(original.optimizer_state)
        logger.info("resuming the original release's training folder after epoch %d",
                    original.epoch)
        return original.epoch, TrainingLog(entries=original.log)

    def compare_settings(self, saved: dict, source: Path) -> None:
        """Refuse to resume with another architecture; warn for other changed settings.

        Both sides are compared as parsed configurations, so a checkpoint written before a
        setting existed compares equal on its default."""
        from .config import ConfigError, parse_specs

        if not saved:
            return
        try:
            before = parse_specs(saved)
        except ConfigError as error:
            logger.warning("cannot read the settings stored in %s (%s); not comparing them",
                           source, error)
            return
        if before.decoder != self.config.decoder:
            details = "; ".join(
                f"{field.name}: checkpoint {getattr(before.decoder, field.name)!r}, spec "
                f"{getattr(self.config.decoder, field.name)!r}"
                for field in dataclasses.fields(before.decoder)
                if getattr(before.decoder, field.name) != getattr(self.config.decoder,
                                                                  field.name))
            raise TrainingError(f"cannot resume from {source}: the spec's architecture "
                                f"differs from the checkpoint's ({details}); restore the "
                                "spec or train afresh in a new folder")
        then, now = before.to_specs(), self.config.to_specs()
        for key in sorted(set(then) | set(now)):
            if key != "Description" and then.get(key) != now.get(key):
                logger.warning("resuming with a changed setting %s: checkpoint %s, now %s",
                               key, json_short(then.get(key)), json_short(now.get(key)))

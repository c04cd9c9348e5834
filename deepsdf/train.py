"""Training the auto-decoder: decoder weights and one latent code per training shape.

One process, or many under ``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL on CUDA).
Every process holds the whole code table; the decoder and the table are wrapped together, so
DDP averages the gradients of both and Adam then takes the same step everywhere: the tables
stay identical on every process.  The global batch (``ScenesPerBatch`` shapes) is split evenly
between processes, so N processes follow the same trajectory as one process with the same
global batch (up to floating-point summation order, and dropout's random streams).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from deepsdf_preprocess.contract import read_split, remove_stale_temporaries

from deepsdf_preprocess.errors import DiskFullError
from deepsdf_preprocess.validate import require_memory

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import SceneBatches, cache_folder, epoch_batches, pack_split
from .decoder import Decoder
from .device import resolve_device
from .latents import LatentTable, split_hash, split_instances
from .experiment import Experiment
from .original import new_log
from .loss import clamped_l1, code_prior, eikonal, prior_warmup

__all__ = ["AutoDecoder", "Trainer", "TrainingError", "TrainResult"]

logger = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, a checkpoint that does not match the split)."""


def schedule_epoch(config: TrainConfig, epoch: int) -> int:
    """The epoch number the learning-rate schedules and the prior's warm-up see while the
    0-based ``epoch`` trains: the original's 1-based ``epoch + 1`` for a legacy spec (a
    ``Step`` of interval 500 halves the rate from the 500th epoch on, the prior weighs 0.01 in
    the first), and ``epoch`` for a SpecsVersion 2 spec (the rate halves after 500 completed
    epochs; its trained results are kept as they were measured)."""
    return epoch + 1 if config.legacy else epoch


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


def json_short(value, limit: int = 80) -> str:
    """A setting's value as compact JSON, cut to ``limit`` characters."""
    import json

    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit - 3] + "..."


class AutoDecoder(nn.Module):
    """The decoder and the code table, trained together.

    With ``compile``, the forward pass runs through ``torch.compile(decoder)`` (kept outside
    the module tree, so state dicts are unchanged)."""

    def __init__(self, decoder: Decoder, codes: LatentTable, *, compile: bool = False):
        super().__init__()
        self.decoder = decoder
        self.codes = codes
        object.__setattr__(self, "_run_decoder", torch.compile(decoder) if compile else decoder)

    def forward(self, scenes: torch.Tensor, points: torch.Tensor, per_scene: int):
        """Predictions (n, 1) for points (n, 3) of ``scenes`` (s,), ``per_scene`` points each,
        and the codes (s, d) used."""
        codes = self.codes(scenes)
        expanded = codes.repeat_interleave(per_scene, dim=0)
        return self._run_decoder(expanded, points), codes


@dataclass
class TrainResult:
    epochs_done: int
    last_loss: float
    checkpoint: Path


class Trainer:
    """Trains one experiment folder.

    Parameters
    ----------
    experiment : Experiment or path
        The experiment folder (:class:`~deepsdf.experiment.Experiment`, which owns every path
        in it): holds ``specs.json``; receives ``specs.resolved.json``, ``Checkpoints/`` and
        ``TensorBoard/``.
    config : TrainConfig
    data_dir : path, optional
        Data root; default: the spec's ``DataSource`` (relative paths resolved against the
        current directory, as the original does).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    progress : bool
        Show a progress bar over epochs (process 0 only).
    cache : path, optional
        Folder of the packed sample cache (default ``$DEEPSDF_CACHE``, else
        ``EXP/PackedSamples``; never the data root, which may be read-only).
    """

    def __init__(self, experiment, config: TrainConfig, *, data_dir=None,
                 device: str = "auto", progress: bool = True, cache=None):
        self.experiment = Experiment.of(experiment)
        self.experiment_dir = self.experiment.folder  # for messages
        self.cache = cache_folder(cache, experiment=self.experiment)
        self.config = config
        self.data_dir = Path(data_dir if data_dir is not None else config.data_source)
        self.progress = progress
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = resolve_device(device)
        if self.world > 1 and self.device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            self.device = torch.device("cuda", local)
            torch.cuda.set_device(self.device)

    # ------------------------------------------------------------------ setup

    def _store(self, packed):
        """The device-resident samples when they fit (``SampleStore``), else None (the
        memory-mapped path); says which, and why, in the log."""
        from .sample_store import DeviceSamples, choose_store

        choice = choose_store(packed, self.device, kind=self.config.sample_store,
                              fraction=self.config.sample_store_memory)
        if self.rank == 0:
            logger.info("samples: %s path (%s)", "device-resident" if choice.kind == "device"
                        else "memory-mapped", choice.reason)
        return DeviceSamples(packed, self.device) if choice.kind == "device" else None

    def _batches(self, packed, epoch: int):
        """Yield ``(samples (n, 4), scenes (s,))`` on the device for this process's batches of
        ``epoch``: drawn on the device from the resident store, or gathered from the
        memory map by a DataLoader."""
        config = self.config
        if self.store is not None:
            from .sample_store import batch_generator

            local = config.scenes_per_batch // self.world
            part = slice(self.rank * local, (self.rank + 1) * local)
            for index, scenes in enumerate(epoch_batches(
                    len(packed), config.scenes_per_batch, seed=config.seed, epoch=epoch)):
                generator = batch_generator(self.device, seed=config.seed, epoch=epoch,
                                            batch=index)
                samples = self.store.draw(scenes, config.samples_per_scene, generator,
                                          part=part)
                yield samples, torch.as_tensor(scenes[part], device=self.device)
            return
        batches = epoch_batches(len(packed), config.scenes_per_batch, seed=config.seed,
                                epoch=epoch, rank=self.rank, world=self.world)
        dataset = SceneBatches(packed, config.samples_per_scene, seed=config.seed, epoch=epoch,
                               batches=batches)
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False,
                                             num_workers=config.loader_workers,
                                             persistent_workers=False)
        for samples, scenes in loader:
            yield (samples.to(self.device, non_blocking=True),
                   scenes.to(self.device, non_blocking=True))

    def _path_rule(self) -> str:
        return ("relative paths of a legacy spec are relative to the current directory, as "
                "in the original release" if self.config.legacy else
                "relative paths of a SpecsVersion 2 spec are relative to its folder")

    def _split(self) -> dict:
        path = Path(self.config.train_split)
        if not self.config.train_split or not path.is_file():
            raise TrainingError(f"TrainSplit {self.config.train_split!r} is not a file "
                                f"({self._path_rule()})")
        if not self.data_dir.is_dir():
            raise TrainingError(f"the data root {str(self.data_dir)!r} does not exist (give "
                                f"--data, or fix DataSource: {self._path_rule()})")
        return read_split(path)

    def _build(self):
        config = self.config
        split = self._split()
        if self.world > 1:
            if self.rank == 0:
                packed = pack_split(self.data_dir, split, cache_root=self.cache)
            torch.distributed.barrier()
            if self.rank != 0:
                packed = pack_split(self.data_dir, split, cache_root=self.cache)
        else:
            packed = pack_split(self.data_dir, split, cache_root=self.cache)
        # Weights, gradients and Adam's two moments: 16 bytes per parameter, codes included.
        parameters = (config.decoder.parameter_count()
                      + len(packed) * config.decoder.latent_size)
        require_memory(16 * parameters, what=f"a decoder and {len(packed)} codes of "
                       f"{config.decoder.latent_size} values ({parameters:,} parameters)",
                       hint="reduce CodeLength or NetworkSpecs.dims")
        generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        decoder = Decoder(config.decoder)
        table = LatentTable(split_instances(split), config.decoder.latent_size,
                            init_std=config.code_std, generator=generator,
                            split_digest=split_hash(split))
        model = AutoDecoder(decoder.to(self.device), table.to(self.device),
                            compile=config.compile)
        optimizer = torch.optim.Adam([
            {"params": model.decoder.parameters(),
             "lr": config.decoder_schedule.at(schedule_epoch(config, 0))},
            {"params": model.codes.parameters(),
             "lr": config.code_schedule.at(schedule_epoch(config, 0))},
        ])
        return packed, model, optimizer

    def _state(self, model: AutoDecoder, optimizer, epoch: int, loss: float) -> dict:
        return {"epoch": epoch, "loss": loss,
                "decoder": model.decoder.state_dict(),
                "codes": model.codes.weight.detach().cpu().clone(),
                "instance_ids": model.codes.instance_ids,
                "split_hash": model.codes.split_digest,
                "optimizer": optimizer.state_dict(),
                "history": [list(entry) for entry in self.history],
                "log": self.log,
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available()
                        else []},
                "config": self.config.to_specs()}

    def _resume(self, model: AutoDecoder, optimizer, source: Path) -> int:
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
        self._compare_settings(payload.get("config", {}), source)
        model.decoder.load_state_dict(payload["decoder"])
        with torch.no_grad():
            model.codes.weight.copy_(payload["codes"].to(self.device))
        optimizer.load_state_dict(payload["optimizer"])
        self.history = [list(entry) for entry in payload.get("history", [])
                        if entry[0] <= payload["epoch"]]
        self.log = payload.get("log") or new_log()
        torch.set_rng_state(payload["rng"]["torch"].cpu())
        if payload["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in payload["rng"]["cuda"]])
        logger.info("resuming after epoch %d from %s", payload["epoch"], source)
        return int(payload["epoch"])

    def _resume_original(self, model: AutoDecoder, optimizer) -> int:
        """Continue an original release's training folder: decoder, codes (split order), both
        Adam states and the epoch counter; its ``Logs.pth`` continues too, when present."""
        from .original import load_original_training

        names = [name for name, _ in model.decoder.named_parameters()]
        try:
            original = load_original_training(self.experiment.original, self.config, self._split(),
                                              names)
        except CheckpointError as error:
            raise TrainingError(str(error)) from error
        model.decoder.load_state_dict(original.decoder_state)
        with torch.no_grad():
            model.codes.weight.copy_(original.codes.to(self.device))
        optimizer.load_state_dict(original.optimizer_state)
        if original.log is not None:
            self.log = original.log
        logger.info("resuming the original release's training folder after epoch %d",
                    original.epoch)
        return original.epoch

    def _compare_settings(self, saved: dict, source: Path) -> None:
        """Refuse to resume with another architecture; warn for other changed settings.

        Both sides are compared as parsed configurations, so a checkpoint written before a
        setting existed compares equal on its default."""
        import dataclasses

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

    # ------------------------------------------------------------------ training

    def train(self, *, resume: bool = False, epochs: int | None = None,
              overwrite: bool = False, resume_from: int | None = None) -> TrainResult:
        """Train until ``NumEpochs`` (or ``epochs`` more than the starting point, if given).

        Parameters
        ----------
        resume : bool, keyword-only
            Continue from ``Checkpoints/latest.pt`` (from scratch if there is none).
        overwrite : bool, keyword-only
            Train afresh although the folder holds checkpoints (they are overwritten as
            training reaches them).  Without it or ``resume``, a folder with checkpoints is
            refused: a run is never destroyed silently.
        resume_from : int, keyword-only
            Continue from the snapshot ``Checkpoints/<resume_from>.pt`` instead (after a
            corrupt ``latest.pt``).

        Raises
        ------
        TrainingError
            On a non-finite loss or a full disk (the last good checkpoint is kept and named),
            on bad resumption, and for a folder with checkpoints without ``resume`` or
            ``overwrite``.
        DataError, ConfigError
            Before the first step, for unusable data or settings.
        """
        existing = sorted(p.name for p in self.experiment.checkpoints.glob("*.pt"))
        if existing and not (resume or overwrite or resume_from is not None):
            raise TrainingError(
                f"{self.experiment_dir} already holds checkpoints ({', '.join(existing[:4])}"
                f"{' ...' if len(existing) > 4 else ''}); continue with --resume, or start "
                "over with --overwrite (which replaces them)")
        snapshot = None if resume_from is None else self.experiment.checkpoint_file(resume_from)
        if snapshot is not None and not snapshot.is_file():
            raise TrainingError(f"no snapshot {snapshot} to resume from")
        distributed = self.world > 1
        if distributed and self.config.eikonal_weight:
            raise TrainingError("EikonalWeight is not supported under torchrun (its gradient "
                                "of the output with respect to the points bypasses DDP's "
                                "gradient averaging); train on one process")
        if distributed and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
        try:
            return self._train(resume=resume, epochs=epochs, resume_from=resume_from)
        finally:
            if distributed and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()

    def _train(self, *, resume: bool, epochs: int | None,
               resume_from: int | None = None) -> TrainResult:
        config = self.config
        packed, model, optimizer = self._build()
        self.model, self.packed = model, packed  # kept for callers (tests, benchmarks)
        self.store = self._store(packed)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = config.tf32
            torch.backends.cudnn.allow_tf32 = config.tf32
        epoch_batches(len(packed), config.scenes_per_batch, seed=config.seed, epoch=0,
                      rank=self.rank, world=self.world)  # fails early on too few shapes
        main = self.rank == 0
        if main:
            self.experiment.tree.folder(create=True)
            self.experiment.write_resolved(config)
        start = 0
        self.history = []  # [epoch, mean loss, decoder learning rate] per epoch
        self.log = new_log()  # the original's Logs.pth entries
        self.collapse_reported = False
        self.spread = (float("nan"), float("nan"))  # the last batch's prediction_spread
        if main:
            remove_stale_temporaries(self.experiment.checkpoints)
        if resume_from is not None:
            start = self._resume(model, optimizer,
                                 self.experiment.checkpoint_file(resume_from))
        elif resume:
            if self.experiment.checkpoint_file().is_file():
                start = self._resume(model, optimizer, self.experiment.checkpoint_file())
            elif any(self.experiment.original.training_files().values()):
                start = self._resume_original(model, optimizer)
            elif main:
                logger.info("no checkpoint to resume from in %s; starting afresh",
                            self.experiment_dir)
        stop = config.epochs if epochs is None else min(config.epochs, start + epochs)
        wrapped = model
        if self.world > 1:
            wrapped = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        writer = self._writer() if main else None
        bar = self._bar(start, stop) if main else None
        loss_value = float("nan")
        saved_epoch = start
        unsaved = None  # the last completed epoch's state, when latest.pt lags behind it
        try:
            for epoch in range(start, stop):
                loss_value = self._epoch(wrapped, model, optimizer, packed, epoch)
                done = epoch + 1
                self.history.append([done, loss_value, optimizer.param_groups[0]["lr"]])
                if main:
                    self._warn_if_collapsed(done)
                    if done % config.latest_every == 0 or done == stop:
                        self._save(self.experiment.checkpoint_file(),
                                   self._state(model, optimizer, done, loss_value))
                        saved_epoch, unsaved = done, None
                    else:
                        unsaved = copy.deepcopy(self._state(model, optimizer, done, loss_value))
                    if done in config.snapshot_epochs():
                        self._save(self.experiment.checkpoint_file(done),
                                   self._state(model, optimizer, done, loss_value))
                    if writer is not None and (done % config.log_frequency == 0
                                               or done in (1, stop)):
                        self._log(writer, model, optimizer, done, loss_value)
                    if bar is not None:  # process 0 only
                        bar.set_postfix(loss=f"{loss_value:.5f}")
                        bar.update(1)
        except KeyboardInterrupt:
            if main:
                if unsaved is not None:  # save the last completed epoch before leaving
                    save_checkpoint(self.experiment.checkpoint_file(), unsaved)
                    saved_epoch = unsaved["epoch"]
                logger.warning("interrupted: %s holds epoch %d; rerun with --resume",
                               self.experiment.checkpoint_file(), saved_epoch)
            raise
        finally:
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        return TrainResult(epochs_done=stop, last_loss=loss_value,
                           checkpoint=self.experiment.checkpoint_file())

    def _epoch(self, wrapped, model: AutoDecoder, optimizer, packed, epoch: int) -> float:
        """Train the 0-based ``epoch`` (the schedules and the prior's warm-up take
        :func:`schedule_epoch` of it); returns its mean loss and appends to :attr:`log`."""
        config = self.config
        started = time.perf_counter()
        model.train()
        for group, schedule in zip(optimizer.param_groups,
                                   (config.decoder_schedule, config.code_schedule)):
            group["lr"] = schedule.at(schedule_epoch(config, epoch))
        # Legacy specs bound the codes as the original's Embedding(max_norm): the rows a batch
        # looks up are rescaled before use; every process rescales the whole global batch's
        # rows, so the tables stay identical.
        global_batches = epoch_batches(len(packed), config.scenes_per_batch, seed=config.seed,
                                       epoch=epoch) if config.legacy else None
        prior_weight = (config.code_lambda * prior_warmup(schedule_epoch(config, epoch))
                        if config.code_regularization else 0.0)
        clamp, hard_weight = config.stage_at(schedule_epoch(config, epoch))
        # bf16 autocast of the decoder's forward pass (CUDA, and the CPU, where it runs too);
        # the loss, the prior and the optimizer stay in float32.
        autocast = torch.autocast(self.device.type if self.device.type in ("cuda", "cpu")
                                  else "cpu", dtype=torch.bfloat16,
                                  enabled=config.mixed_precision
                                  and self.device.type in ("cuda", "cpu"))
        total, count = 0.0, 0
        for index, (samples, scenes) in enumerate(self._batches(packed, epoch)):
            if global_batches is not None:
                model.codes.renorm_rows_(torch.as_tensor(global_batches[index],
                                                         device=self.device), config.code_bound)
            optimizer.zero_grad(set_to_none=True)
            points = samples[:, :3]
            if config.eikonal_weight:
                points = points.detach().clone().requires_grad_(True)
            with autocast:
                predicted, codes = wrapped(scenes, points, config.samples_per_scene)
            loss = clamped_l1(predicted.float().squeeze(1), samples[:, 3], clamp,
                              hard_weight=hard_weight)
            if config.eikonal_weight:  # on the samples within the clamp band
                gradients, = torch.autograd.grad(predicted.float().sum(), points,
                                                 create_graph=True)
                loss = loss + config.eikonal_weight * eikonal(
                    gradients, samples[:, 3].abs() < clamp)
            if prior_weight:
                loss = loss + code_prior(codes.float(), form=config.code_prior,
                                         weight=prior_weight, std=config.code_std)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} in epoch {epoch + 1}; stopping. "
                    f"{self._last_good()} Lower the learning rates or check the data for "
                    "extreme values")
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.decoder.parameters(), config.grad_clip)
            optimizer.step()
            if not config.legacy:
                model.codes.project_(config.code_bound)
            total += loss.item()
            count += 1
            self.log["loss"].append(loss.item())
        if count:
            self.spread = prediction_spread(predicted.squeeze(1), samples[:, 3], clamp)
        self._log_epoch(model, optimizer, time.perf_counter() - started)
        return total / max(count, 1)

    def _warn_if_collapsed(self, epoch: int) -> None:
        """Say once per run when the last batch's predictions no longer vary (see
        :data:`COLLAPSE_SPREAD`): such a run will not recover."""
        spread, wanted = self.spread
        if self.collapse_reported or not spread < COLLAPSE_SPREAD * wanted:
            return
        self.collapse_reported = True
        logger.warning(
            "epoch %d: the decoder predicts about the same distance everywhere (spread %.2g of "
            "the clamped predictions against %.2g of the targets): training has collapsed to a "
            "constant and will not recover. Lower the learning rates (LearningRateSchedule) "
            "and train afresh (--overwrite)", epoch, spread, wanted)

    def _log_epoch(self, model: AutoDecoder, optimizer, seconds: float) -> None:
        """Per-epoch entries of the original release's ``Logs.pth`` (see
        :mod:`deepsdf.export`)."""
        log = self.log
        log["learning_rate"].append([group["lr"] for group in optimizer.param_groups])
        log["timing"].append(seconds)
        log["latent_magnitude"].append(model.codes.weight.detach().norm(dim=1).mean().item())
        for name, parameter in model.decoder.named_parameters():
            log["param_magnitude"].setdefault(name, []).append(
                parameter.detach().norm().item())

    def _save(self, path: Path, state: dict) -> None:
        try:
            save_checkpoint(path, state)
        except DiskFullError as error:
            raise TrainingError(f"{error}; {self._last_good()}") from error

    def _last_good(self) -> str:
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
            return (f"The last good checkpoint is "
                    f"{self.experiment.checkpoint_file(newest)}.")
        return "No checkpoint was written yet."

    # ------------------------------------------------------------------ reporting

    def _writer(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a dependency, but keep training without it
            logger.warning("tensorboard is not installed; no training curves are written")
            return None
        return SummaryWriter(str(self.experiment.tensorboard))

    def _log(self, writer, model: AutoDecoder, optimizer, epoch: int, loss: float) -> None:
        writer.add_scalar("loss", loss, epoch)
        writer.add_scalar("learning_rate/decoder", optimizer.param_groups[0]["lr"], epoch)
        writer.add_scalar("learning_rate/codes", optimizer.param_groups[1]["lr"], epoch)
        writer.add_scalar("code_norm/mean", model.codes.weight.detach().norm(dim=1).mean().item(),
                          epoch)

    def _bar(self, start: int, stop: int):
        from deepsdf_preprocess.progress import progress_bar

        return progress_bar(stop, initial=start, desc="train", unit="epoch",
                            enabled=self.progress, log=logger)

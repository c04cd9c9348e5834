"""Training the auto-decoder: decoder weights and one latent code per training shape.

One process, or many under ``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL on CUDA).
Every process holds the whole code table; the decoder and the table are wrapped together, so
DDP averages the gradients of both and Adam then takes the same step everywhere: the tables
stay identical on every process.  The global batch (``ScenesPerBatch`` shapes) is split evenly
between processes, so N processes follow the same trajectory as one process with the same
global batch (up to floating-point summation order, and dropout's random streams).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from deepsdf_preprocess.contract import read_split, remove_stale_temporaries
from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess.validate import require_memory

from .checkpoint import save_checkpoint
from .config import TrainConfig
from .data import PackedSamples, SceneBatches, cache_folder, epoch_batches, pack_split
from .decoder import Decoder
from .device import resolve_device
from .experiment import Experiment
from .latents import LatentTable, split_hash, split_instances
from .loss import clamped_l1, code_prior, eikonal, prior_warmup
from .train_log import CollapseWatch, TrainingLog
from .train_state import CheckpointKeeper, TrainingError

__all__ = ["AutoDecoder", "Trainer", "TrainingError", "TrainResult"]

logger = logging.getLogger(__name__)


def schedule_epoch(config: TrainConfig, epoch: int) -> int:
    """The epoch number the learning-rate schedules and the prior's warm-up see while the
    0-based ``epoch`` trains: the original's 1-based ``epoch + 1`` for a legacy spec (a
    ``Step`` of interval 500 halves the rate from the 500th epoch on, the prior weighs 0.01 in
    the first), and ``epoch`` for a SpecsVersion 2 spec (the rate halves after 500 completed
    epochs; its trained results are kept as they were measured)."""
    return epoch + 1 if config.legacy else epoch


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
    """What one :meth:`Trainer.train` call did.

    ``start_epoch`` and ``epochs_done``: finished epochs before and after it (equal when there
    was nothing left to train); ``last_loss``: the mean loss of its last epoch (None when none
    ran); ``checkpoint``: ``latest.pt``; ``collapsed_at``: the epoch the collapse watch fired,
    if it did.  ``model``, ``packed``, ``log`` (history and ``Logs.pth`` entries) and
    ``store`` (device-resident samples, or None) are the run's state, for callers that look
    inside (tests, benchmarks, the demo).
    """

    start_epoch: int
    epochs_done: int
    last_loss: float | None
    checkpoint: Path
    model: "AutoDecoder"
    packed: PackedSamples
    log: TrainingLog
    store: object = None
    collapsed_at: int | None = None
    spread: tuple = field(default=(float("nan"), float("nan")))

    @property
    def trained(self) -> bool:
        """Whether any epoch ran in this call."""
        return self.epochs_done > self.start_epoch

    @property
    def history(self) -> list:
        """[epoch, mean loss, decoder learning rate] per finished epoch."""
        return self.log.history


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
        Data root; default: the one the :class:`~deepsdf.experiment.Experiment` was opened
        with, else the spec's ``DataSource`` (relative paths resolved against the current
        directory, as the original does).
    device : str, optional
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; default: the device the
        Experiment was opened with, else ``"auto"``.  A ``data_dir`` or ``device`` other than
        the one an Experiment was opened with is refused, never silently preferred.
    progress : bool
        Show a progress bar over epochs (process 0 only).
    cache : path, optional
        Folder of the packed sample cache (default ``$DEEPSDF_CACHE``, else
        ``EXP/PackedSamples``; never the data root, which may be read-only).
    """

    def __init__(self, experiment, config: TrainConfig, *, data_dir=None,
                 device: str | None = None, progress: bool = True, cache=None):
        given = experiment if isinstance(experiment, Experiment) else None
        self.experiment = Experiment.of(experiment)
        self.experiment_dir = self.experiment.folder  # for messages
        self.cache = cache_folder(cache, experiment=self.experiment)
        if isinstance(config, dict):  # a spec as a dict: read as specs.json would be
            from .config import parse_specs

            config = parse_specs(config, base=self.experiment.folder)
        elif not isinstance(config, TrainConfig):
            raise InputError(f"config must be a TrainConfig (load_specs(folder)) or a specs "
                             f"dict, got {type(config).__name__}")
        self.config = config
        chosen_data = given.data_chosen if given is not None else None
        if chosen_data is not None and data_dir is not None and (
                os.path.abspath(chosen_data) != os.path.abspath(data_dir)):
            raise InputError(f"this Experiment was opened with data {chosen_data}; open "
                             f"another one for data {data_dir}")
        self.data_dir = Path(data_dir if data_dir is not None else chosen_data
                             if chosen_data is not None else config.data_source)
        if given is not None and given.device_chosen:
            if device is not None and resolve_device(device) != given.device:
                raise InputError(f"this Experiment was opened with device {given.device}; "
                                 f"open another one for device {device}")
            device = given.device
        device = "auto" if device is None else device
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

    def _batches(self, packed, store, epoch: int):
        """Yield ``(samples (n, 4), scenes (s,))`` on the device for this process's batches of
        ``epoch``: drawn on the device from the resident store, or gathered from the
        memory map by a DataLoader."""
        config = self.config
        if store is not None:
            from .sample_store import batch_generator

            local = config.scenes_per_batch // self.world
            part = slice(self.rank * local, (self.rank + 1) * local)
            for index, scenes in enumerate(self._epoch_batches(len(packed), epoch,
                                                                world=1)):
                generator = batch_generator(self.device, seed=config.seed, epoch=epoch,
                                            batch=index)
                samples = store.draw(scenes, config.samples_per_scene, generator,
                                          part=part)
                yield samples, torch.as_tensor(scenes[part], device=self.device)
            return
        batches = self._epoch_batches(len(packed), epoch)
        dataset = SceneBatches(packed, config.samples_per_scene, seed=config.seed, epoch=epoch,
                               batches=batches)
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False,
                                             num_workers=config.loader_workers,
                                             persistent_workers=False)
        for samples, scenes in loader:
            yield (samples.to(self.device, non_blocking=True),
                   scenes.to(self.device, non_blocking=True))

    def _epoch_batches(self, count: int, epoch: int, *, world: int | None = None) -> list:
        """:func:`epoch_batches` of the spec for this process (``world=1``: the global
        batches)."""
        world = self.world if world is None else world
        return epoch_batches(count, self.config.scenes_per_batch, seed=self.config.seed,
                             epoch=epoch, rank=self.rank if world > 1 else 0, world=world,
                             fill_last=bool(self.config.fill_last_batch))

    def _path_rule(self) -> str:
        return ("relative paths of a legacy spec are relative to the current directory, as "
                "in the original release" if self.config.legacy else
                "relative paths of a SpecsVersion 2 spec are relative to its folder")

    def _split(self) -> dict:
        path = Path(self.config.train_split)
        if not self.config.train_split or not path.is_file():
            raise TrainingError(f"TrainSplit {self.config.train_split!r} is not a file "
                                f"({self._path_rule()})")
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise TrainingError(f"the data root {str(self.data_dir)!r} is a file; give the "
                                "folder `deepsdf preprocess` wrote (it holds SdfSamples/)")
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
        # A batch's samples and the codes expanded beside them (a lower bound of a step's
        # memory: the activations come on top).
        parameters = (config.decoder.parameter_count()
                      + len(packed) * config.decoder.latent_size)
        batch = config.scenes_per_batch * config.samples_per_scene
        require_memory(16 * parameters + 4 * batch * (4 + config.decoder.latent_size),
                       what=f"a decoder and {len(packed)} codes of "
                       f"{config.decoder.latent_size} values ({parameters:,} parameters) and "
                       f"batches of {batch:,} samples",
                       hint="reduce CodeLength, NetworkSpecs.dims, ScenesPerBatch or "
                            "SamplesPerScene")
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
        FolderInUseError
            When another live process trains in the same experiment folder (its writer
            lock, :mod:`deepsdf_preprocess.locks`, names it).
        """
        if self.rank != 0:  # the main process holds the experiment's writer lock
            return self._train_checked(resume=resume, epochs=epochs, overwrite=overwrite,
                                       resume_from=resume_from)
        from deepsdf_preprocess.locks import writer_lock

        with writer_lock(self.experiment.folder, "deepsdf train", what="experiment folder"):
            return self._train_checked(resume=resume, epochs=epochs, overwrite=overwrite,
                                       resume_from=resume_from)

    def _train_checked(self, *, resume: bool, epochs: int | None, overwrite: bool,
                       resume_from: int | None) -> TrainResult:
        """:meth:`train` once its lock is held."""
        existing = [p.name for p in self.experiment.checkpoint_files()]
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
            result = self._train(resume=resume, epochs=epochs, resume_from=resume_from)
            if distributed:  # no process tears the group down while another still uses it
                torch.distributed.barrier()
            return result
        finally:
            if distributed and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()

    def _train(self, *, resume: bool, epochs: int | None,
               resume_from: int | None = None) -> TrainResult:
        config = self.config
        packed, model, optimizer = self._build()
        store = self._store(packed)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = config.tf32
            torch.backends.cudnn.allow_tf32 = config.tf32
        self._epoch_batches(len(packed), 0)  # fails early on too few shapes
        left = len(packed) % config.scenes_per_batch
        if left and config.fill_last_batch is None and self.rank == 0:
            logger.warning(
                "each epoch trains %d of the %d shapes: batches of ScenesPerBatch %d leave %d "
                "out (different ones each epoch); set ScenesPerBatch to a divisor of %d, or "
                "FillLastBatch true (`deepsdf new` writes a spec that does; false keeps the "
                "reference's rule without this warning)",
                len(packed) - left, len(packed), config.scenes_per_batch, left, len(packed))
        main = self.rank == 0
        keeper = CheckpointKeeper(self.experiment, config, self.device,
                                  samples=packed.samples_digest)
        if main:
            self.experiment.tree.folder(create=True)
            remove_stale_temporaries(self.experiment.checkpoints)
        start, log = self._resume(keeper, model, optimizer, resume, resume_from, main)
        if main:  # after the resume's checks: a refused resume leaves the folder as it was
            self.experiment.write_resolved(config)
        stop = config.epochs if epochs is None else min(config.epochs, start + epochs)
        wrapped = model
        if self.world > 1:
            wrapped = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        watch = CollapseWatch()
        if main:
            log.open_writer(self.experiment.tensorboard)
        bar = self._bar(start, stop) if main else None
        loss_value = None
        saved_epoch = start
        unsaved = None  # the last completed epoch's state, when latest.pt lags behind it
        try:
            for epoch in range(start, stop):
                loss_value = self._epoch(wrapped, model, optimizer, packed, store, epoch, log,
                                         watch, keeper)
                done = epoch + 1
                log.finished(done, loss_value, optimizer.param_groups[0]["lr"])
                if not main:
                    continue
                watch.check(done)
                latest = done % config.latest_every == 0 or done == stop
                kept = config.is_snapshot(done)
                if latest or kept:
                    state = keeper.state(model, optimizer, done, loss_value, log)
                if kept:  # before latest.pt: a kill between the two redoes this epoch and
                    # writes the snapshot again, never leaves it owed
                    keeper.save(self.experiment.checkpoint_file(done), state)
                if latest:
                    keeper.save(self.experiment.checkpoint_file(), state)
                    saved_epoch, unsaved = done, None
                else:
                    unsaved = keeper.snapshot(model, optimizer, done, loss_value, log)
                if done % config.log_frequency == 0 or done in (1, stop):
                    log.curves(model, optimizer, done, loss_value)
                if bar is not None:
                    bar.set_postfix(loss=f"{loss_value:.5f}")
                    bar.update(1)
        except KeyboardInterrupt:
            if main:
                if unsaved is not None:  # save the last completed epoch before leaving
                    state = keeper.whole(unsaved, log)
                    save_checkpoint(self.experiment.checkpoint_file(), state)
                    saved_epoch = state["epoch"]
                logger.warning("interrupted: %s holds epoch %d", self.experiment.checkpoint_file(),
                               saved_epoch)
            raise
        finally:
            if bar is not None:
                bar.close()
            log.close()
        return TrainResult(start_epoch=start, epochs_done=max(stop, start),
                           last_loss=loss_value, checkpoint=self.experiment.checkpoint_file(),
                           model=model, packed=packed, log=log, store=store,
                           collapsed_at=watch.collapsed_at, spread=watch.spread)

    def _resume(self, keeper: CheckpointKeeper, model, optimizer, resume: bool,
                resume_from: int | None, main: bool) -> tuple[int, TrainingLog]:
        """(finished epochs, log) to start from: a snapshot, ``latest.pt``, the original
        release's files, or nothing."""
        if resume_from is not None:
            return keeper.resume(model, optimizer, self.experiment.checkpoint_file(resume_from))
        if resume:
            if self.experiment.checkpoint_file().is_file():
                return keeper.resume(model, optimizer, self.experiment.checkpoint_file())
            if any(self.experiment.original.training_files().values()):
                return keeper.resume_original(model, optimizer, self._split())
            if main:
                logger.info("no checkpoint to resume from in %s; starting afresh",
                            self.experiment.folder)
        return 0, TrainingLog()

    def _epoch(self, wrapped, model: AutoDecoder, optimizer, packed, store, epoch: int,
               log: TrainingLog, watch: CollapseWatch, keeper: CheckpointKeeper) -> float:
        """Train the 0-based ``epoch`` (the schedules and the prior's warm-up take
        :func:`schedule_epoch` of it); returns its mean loss and records it in ``log``."""
        config = self.config
        started = time.perf_counter()
        model.train()
        for group, schedule in zip(optimizer.param_groups,
                                   (config.decoder_schedule, config.code_schedule)):
            group["lr"] = schedule.at(schedule_epoch(config, epoch))
        # Legacy specs bound the codes as the original's Embedding(max_norm): the rows a batch
        # looks up are rescaled before use; every process rescales the whole global batch's
        # rows, so the tables stay identical.
        global_batches = (self._epoch_batches(len(packed), epoch, world=1) if config.legacy
                          else None)
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
        for index, (samples, scenes) in enumerate(self._batches(packed, store, epoch)):
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
                    f"{keeper.last_good()} Lower the learning rates or check the data for "
                    "extreme values")
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.decoder.parameters(), config.grad_clip)
            optimizer.step()
            if not config.legacy:
                model.codes.project_(config.code_bound)
            total += loss.item()
            count += 1
            log.batch(loss.item())
        if count:
            watch.observe(predicted.squeeze(1), samples[:, 3], clamp)
        log.epoch(model, optimizer, time.perf_counter() - started)
        return total / max(count, 1)

    def _bar(self, start: int, stop: int):
        from deepsdf_preprocess.progress import progress_bar

        return progress_bar(stop, initial=start, desc="train", unit="epoch",
                            enabled=self.progress, log=logger)

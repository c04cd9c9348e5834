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
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from deepsdf_preprocess.formats import read_split

from .checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from .config import TrainConfig, write_resolved
from .data import SceneBatches, epoch_batches, pack_split
from .decoder import Decoder
from .latents import LatentTable, split_hash, split_instances
from .loss import clamped_l1, code_prior, prior_warmup

__all__ = ["AutoDecoder", "Trainer", "TrainingError", "resolve_device", "TrainResult"]

logger = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, a checkpoint that does not match the split)."""


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA if available, else MPS, else CPU; anything else as given."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class AutoDecoder(nn.Module):
    """The decoder and the code table, trained together."""

    def __init__(self, decoder: Decoder, codes: LatentTable):
        super().__init__()
        self.decoder = decoder
        self.codes = codes

    def forward(self, scenes: torch.Tensor, points: torch.Tensor, per_scene: int):
        """Predictions (n, 1) for points (n, 3) of ``scenes`` (s,), ``per_scene`` points each,
        and the codes (s, d) used."""
        codes = self.codes(scenes)
        expanded = codes.repeat_interleave(per_scene, dim=0)
        return self.decoder(expanded, points), codes


@dataclass
class TrainResult:
    epochs_done: int
    last_loss: float
    checkpoint: Path


class Trainer:
    """Trains one experiment folder.

    Parameters
    ----------
    experiment_dir : path
        Holds ``specs.json``; receives ``specs.resolved.json``, ``Checkpoints/`` and
        ``TensorBoard/``.
    config : TrainConfig
    data_dir : path, optional
        Data root; default: the spec's ``DataSource`` (relative paths resolved against the
        current directory, as the original does).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    progress : bool
        Show a progress bar over epochs (process 0 only).
    """

    def __init__(self, experiment_dir, config: TrainConfig, *, data_dir=None,
                 device: str = "auto", progress: bool = True):
        self.experiment_dir = Path(experiment_dir)
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

    def _split(self) -> dict:
        path = Path(self.config.train_split)
        if not self.config.train_split or not path.is_file():
            raise TrainingError(f"TrainSplit {self.config.train_split!r} is not a file "
                                "(paths are relative to the current directory)")
        return read_split(path)

    def _build(self):
        config = self.config
        split = self._split()
        if self.world > 1:
            if self.rank == 0:
                packed = pack_split(self.data_dir, split)
            torch.distributed.barrier()
            if self.rank != 0:
                packed = pack_split(self.data_dir, split)
        else:
            packed = pack_split(self.data_dir, split)
        generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        decoder = Decoder(config.decoder)
        table = LatentTable(split_instances(split), config.decoder.latent_size,
                            init_std=config.code_std, generator=generator,
                            split_digest=split_hash(split))
        model = AutoDecoder(decoder, table).to(self.device)
        optimizer = torch.optim.Adam([
            {"params": model.decoder.parameters(), "lr": config.decoder_schedule.at(0)},
            {"params": model.codes.parameters(), "lr": config.code_schedule.at(0)},
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
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available()
                        else []},
                "config": self.config.to_specs()}

    def _resume(self, model: AutoDecoder, optimizer) -> int:
        payload = load_checkpoint(checkpoint_path(self.experiment_dir), map_location=self.device)
        if payload["split_hash"] != model.codes.split_digest:
            raise TrainingError("the latest checkpoint was trained on a different split "
                                f"(hash {payload['split_hash']} != "
                                f"{model.codes.split_digest}); start a new experiment folder")
        model.decoder.load_state_dict(payload["decoder"])
        with torch.no_grad():
            model.codes.weight.copy_(payload["codes"].to(self.device))
        optimizer.load_state_dict(payload["optimizer"])
        self.history = [list(entry) for entry in payload.get("history", [])
                        if entry[0] <= payload["epoch"]]
        torch.set_rng_state(payload["rng"]["torch"].cpu())
        if payload["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in payload["rng"]["cuda"]])
        logger.info("resuming after epoch %d", payload["epoch"])
        return int(payload["epoch"])

    # ------------------------------------------------------------------ training

    def train(self, *, resume: bool = False, epochs: int | None = None) -> TrainResult:
        """Train until ``NumEpochs`` (or ``epochs`` more than the starting point, if given).

        Raises
        ------
        TrainingError
            On a non-finite loss (the last good checkpoint is kept) and on bad resumption.
        DataError, ConfigError
            Before the first step, for unusable data or settings.
        """
        distributed = self.world > 1
        if distributed and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
        try:
            return self._train(resume=resume, epochs=epochs)
        finally:
            if distributed and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()

    def _train(self, *, resume: bool, epochs: int | None) -> TrainResult:
        config = self.config
        packed, model, optimizer = self._build()
        self.model, self.packed = model, packed  # kept for callers (tests, benchmarks)
        epoch_batches(len(packed), config.scenes_per_batch, seed=config.seed, epoch=0,
                      rank=self.rank, world=self.world)  # fails early on too few shapes
        main = self.rank == 0
        if main:
            self.experiment_dir.mkdir(parents=True, exist_ok=True)
            write_resolved(self.experiment_dir, config)
        start = 0
        self.history = []  # [epoch, mean loss, decoder learning rate] per epoch
        if resume:
            if checkpoint_path(self.experiment_dir).is_file():
                start = self._resume(model, optimizer)
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
                    if done % config.latest_every == 0 or done == stop:
                        save_checkpoint(checkpoint_path(self.experiment_dir),
                                        self._state(model, optimizer, done, loss_value))
                        saved_epoch, unsaved = done, None
                    else:
                        unsaved = copy.deepcopy(self._state(model, optimizer, done, loss_value))
                    if done in config.snapshot_epochs():
                        save_checkpoint(checkpoint_path(self.experiment_dir, done),
                                        self._state(model, optimizer, done, loss_value))
                    if writer is not None and (done % config.log_frequency == 0
                                               or done in (1, stop)):
                        self._log(writer, model, optimizer, done, loss_value)
                    if bar is not None:
                        bar.set_postfix(loss=f"{loss_value:.5f}")
                        bar.update(1)
        except KeyboardInterrupt:
            if main:
                if unsaved is not None:  # save the last completed epoch before leaving
                    save_checkpoint(checkpoint_path(self.experiment_dir), unsaved)
                    saved_epoch = unsaved["epoch"]
                logger.warning("interrupted: %s holds epoch %d; rerun with --resume",
                               checkpoint_path(self.experiment_dir), saved_epoch)
            raise
        finally:
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        return TrainResult(epochs_done=stop, last_loss=loss_value,
                           checkpoint=checkpoint_path(self.experiment_dir))

    def _epoch(self, wrapped, model: AutoDecoder, optimizer, packed, epoch: int) -> float:
        config = self.config
        model.train()
        for group, schedule in zip(optimizer.param_groups,
                                   (config.decoder_schedule, config.code_schedule)):
            group["lr"] = schedule.at(epoch)
        batches = epoch_batches(len(packed), config.scenes_per_batch, seed=config.seed,
                                epoch=epoch, rank=self.rank, world=self.world)
        dataset = SceneBatches(packed, config.samples_per_scene, seed=config.seed, epoch=epoch,
                               batches=batches)
        loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False,
                                             num_workers=config.loader_workers,
                                             persistent_workers=False)
        prior_weight = (config.code_lambda * prior_warmup(epoch)
                        if config.code_regularization else 0.0)
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                    if config.mixed_precision and self.device.type == "cuda"
                    else torch.autocast("cpu", enabled=False))
        total, count = 0.0, 0
        for samples, scenes in loader:
            samples = samples.to(self.device, non_blocking=True)
            scenes = scenes.to(self.device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                predicted, codes = wrapped(scenes, samples[:, :3], config.samples_per_scene)
            loss = clamped_l1(predicted.float().squeeze(1), samples[:, 3], config.clamp)
            if prior_weight:
                loss = loss + code_prior(codes.float(), form=config.code_prior,
                                         weight=prior_weight, std=config.code_std)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} in epoch {epoch + 1}; stopping. The last "
                    f"good checkpoint is {checkpoint_path(self.experiment_dir)}. Lower the "
                    "learning rates or check the data for extreme values")
            loss.backward()
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.decoder.parameters(), config.grad_clip)
            optimizer.step()
            model.codes.project_(config.code_bound)
            total += loss.item()
            count += 1
        return total / max(count, 1)

    # ------------------------------------------------------------------ reporting

    def _writer(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a dependency, but keep training without it
            logger.warning("tensorboard is not installed; no training curves are written")
            return None
        return SummaryWriter(str(self.experiment_dir / "TensorBoard"))

    def _log(self, writer, model: AutoDecoder, optimizer, epoch: int, loss: float) -> None:
        writer.add_scalar("loss", loss, epoch)
        writer.add_scalar("learning_rate/decoder", optimizer.param_groups[0]["lr"], epoch)
        writer.add_scalar("learning_rate/codes", optimizer.param_groups[1]["lr"], epoch)
        writer.add_scalar("code_norm/mean", model.codes.weight.detach().norm(dim=1).mean().item(),
                          epoch)

    def _bar(self, start: int, stop: int):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=stop, initial=start, unit="epoch", desc="train", dynamic_ncols=True)

"""Typed experiment configuration, read from and written to ``specs.json``.

A ``specs.json`` of the original DeepSDF release is read as it is: its keys, its learning-rate
schedules and its behaviours (its decoder always ends in tanh, whatever ``use_tanh`` says, and
its code prior is ``lambda * mean ||z||``).  Specs written by this project carry
``"SpecsVersion": 2``; there ``use_tanh`` means what it says and the prior defaults to the
paper's form.  Unknown keys are an error that names the key.  :func:`write_resolved` writes the
fully resolved configuration beside the results.

Keys (original ones first; ``*`` marks this project's additions)::

    Description, DataSource, TrainSplit, TestSplit, NetworkArch ("deep_sdf_decoder"),
    NetworkSpecs {dims, dropout, dropout_prob, norm_layers, latent_in, xyz_in_all, use_tanh,
                  latent_dropout, weight_norm},
    CodeLength, NumEpochs, SnapshotFrequency, AdditionalSnapshots,
    LearningRateSchedule [decoder, codes] of {Type: Step|Warmup|Constant, ...},
    SamplesPerScene, ScenesPerBatch, DataLoaderThreads, ClampingDistance,
    CodeRegularization, CodeRegularizationLambda, CodeBound, CodeInitStdDev,
    GradientClipNorm, LogFrequency,
    *SpecsVersion, *CodePrior ("original" | "paper"), *Seed, *MixedPrecision, *LatestEvery
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DecoderConfig", "Schedule", "TrainConfig", "load_specs", "parse_specs",
           "write_resolved", "ConfigError", "SPECS_VERSION"]

SPECS_VERSION = 2


class ConfigError(ValueError):
    """A ``specs.json`` that cannot be used; the message names the key."""


@dataclass(frozen=True)
class DecoderConfig:
    """The DeepSDF decoder (reference: 8 x 512, dropout 0.2, weight norm, latent in at 4)."""

    latent_size: int = 256  # code length
    dims: tuple = (512,) * 8  # widths of the hidden layers
    dropout: tuple = tuple(range(8))  # hidden layers followed by dropout
    dropout_prob: float = 0.2  # dropout probability
    norm_layers: tuple = tuple(range(8))  # layers with weight norm (LayerNorm if weight_norm off)
    latent_in: tuple = (4,)  # layers whose input is re-joined with [z, xyz]
    xyz_in_all: bool = False  # append xyz to the input of every hidden layer
    use_tanh: bool = True  # tanh on the output (the original always applies it)
    latent_dropout: bool = False  # dropout (p = 0.2) on the code at the input
    weight_norm: bool = True  # weight normalization on norm_layers

    def __post_init__(self):
        if self.latent_size < 0:
            raise ConfigError(f"CodeLength must be >= 0, got {self.latent_size}")
        if not self.dims or min(self.dims) < 1:
            raise ConfigError(f"NetworkSpecs.dims must be positive widths, got {self.dims}")
        for name in ("dropout", "norm_layers", "latent_in"):
            bad = [i for i in getattr(self, name) if not 0 <= i <= len(self.dims)]
            if bad:
                raise ConfigError(f"NetworkSpecs.{name} names layers {bad} outside "
                                  f"0..{len(self.dims)}")
        for layer in self.latent_in:
            if layer == 0 or self.dims[layer - 1] <= self.latent_size + 3:
                raise ConfigError(f"NetworkSpecs.latent_in layer {layer}: the layer before it "
                                  f"must be wider than CodeLength + 3 = {self.latent_size + 3}")
        if not 0 <= self.dropout_prob < 1:
            raise ConfigError(f"NetworkSpecs.dropout_prob must be in [0, 1), got "
                              f"{self.dropout_prob}")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule, as the original's ``LearningRateSchedule`` entries.

    ``Step``: ``initial * factor ** (epoch // interval)``; ``Warmup``: linear from ``initial``
    to ``final`` over ``length`` epochs, then ``final``; ``Constant``: ``value``.
    """

    kind: str = "Step"
    initial: float = 5e-4
    interval: int = 500
    factor: float = 0.5
    final: float = 0.0
    length: int = 1
    value: float = 0.0

    def __post_init__(self):
        if self.kind not in ("Step", "Warmup", "Constant"):
            raise ConfigError(f"LearningRateSchedule Type {self.kind!r} is not one of "
                              "Step, Warmup, Constant")
        if self.kind == "Step" and self.interval < 1:
            raise ConfigError(f"Step schedule Interval must be >= 1, got {self.interval}")
        if self.kind == "Warmup" and self.length < 1:
            raise ConfigError(f"Warmup schedule Length must be >= 1, got {self.length}")

    def at(self, epoch: int) -> float:
        """Learning rate for a 0-based ``epoch``."""
        if self.kind == "Step":
            return self.initial * self.factor ** (epoch // self.interval)
        if self.kind == "Warmup":
            return self.initial + (self.final - self.initial) * min(1.0, epoch / self.length)
        return self.value

    @classmethod
    def from_specs(cls, entry: dict, where: str) -> "Schedule":
        keys = {"Step": {"Type", "Initial", "Interval", "Factor"},
                "Warmup": {"Type", "Initial", "Final", "Length"},
                "Constant": {"Type", "Value"}}
        kind = entry.get("Type")
        if kind not in keys:
            raise ConfigError(f"{where}.Type must be Step, Warmup or Constant, got {kind!r}")
        _check_keys(entry, keys[kind], where)
        missing = keys[kind] - set(entry)
        if missing:
            raise ConfigError(f"{where} ({kind}) lacks {sorted(missing)}")
        if kind == "Step":
            return cls("Step", initial=float(entry["Initial"]), interval=int(entry["Interval"]),
                       factor=float(entry["Factor"]))
        if kind == "Warmup":
            return cls("Warmup", initial=float(entry["Initial"]), final=float(entry["Final"]),
                       length=int(entry["Length"]))
        return cls("Constant", value=float(entry["Value"]))

    def to_specs(self) -> dict:
        if self.kind == "Step":
            return {"Type": "Step", "Initial": self.initial, "Interval": self.interval,
                    "Factor": self.factor}
        if self.kind == "Warmup":
            return {"Type": "Warmup", "Initial": self.initial, "Final": self.final,
                    "Length": self.length}
        return {"Type": "Constant", "Value": self.value}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data itself."""

    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    description: str = ""
    data_source: str = "data"  # data root (SdfSamples/... below it)
    train_split: str = ""  # split file of the training shapes
    test_split: str = ""  # split file of the test shapes (for reconstruction)
    epochs: int = 2001  # NumEpochs
    snapshot_frequency: int = 1000  # a kept checkpoint every this many epochs
    additional_snapshots: tuple = (100, 500)  # and at these epochs
    decoder_schedule: Schedule = field(default_factory=lambda: Schedule("Step", 5e-4, 500, 0.5))
    code_schedule: Schedule = field(default_factory=lambda: Schedule("Step", 1e-3, 500, 0.5))
    samples_per_scene: int = 16384  # half positive, half negative
    scenes_per_batch: int = 64
    loader_workers: int = 0  # DataLoaderThreads (0: load in the training process)
    clamp: float = 0.1  # ClampingDistance delta
    code_regularization: bool = True
    code_lambda: float = 1e-4  # CodeRegularizationLambda
    code_bound: float | None = 1.0  # CodeBound (None: no bound)
    code_init_std: float = 1.0  # CodeInitStdDev; codes start at N(0, (std / sqrt(d))^2)
    grad_clip: float | None = None  # GradientClipNorm
    log_frequency: int = 10  # LogFrequency (epochs between TensorBoard points)
    code_prior: str = "paper"  # "original": lambda*mean||z||; "paper": lambda*mean||z||^2/sigma^2
    seed: int = 0
    mixed_precision: bool = False  # bf16 autocast on GPU
    latest_every: int = 1  # epochs between rewrites of the "latest" checkpoint
    legacy: bool = False  # read from an original-release specs.json

    def __post_init__(self):
        if self.code_prior not in ("original", "paper"):
            raise ConfigError(f"CodePrior must be 'original' or 'paper', got {self.code_prior!r}")
        for name, value in (("NumEpochs", self.epochs), ("SamplesPerScene",
                            self.samples_per_scene), ("ScenesPerBatch", self.scenes_per_batch),
                            ("SnapshotFrequency", self.snapshot_frequency),
                            ("LatestEvery", self.latest_every)):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if self.samples_per_scene % 2:
            raise ConfigError(f"SamplesPerScene must be even (half positive, half negative), "
                              f"got {self.samples_per_scene}")
        if not self.clamp > 0:
            raise ConfigError(f"ClampingDistance must be positive, got {self.clamp}")

    @property
    def code_std(self) -> float:
        """Per-component standard deviation of the initial codes (and of the paper's prior)."""
        return self.code_init_std / max(self.decoder.latent_size, 1) ** 0.5

    def snapshot_epochs(self) -> set:
        """1-based epochs at which a kept checkpoint is written."""
        regular = set(range(self.snapshot_frequency, self.epochs + 1, self.snapshot_frequency))
        return regular | {e for e in self.additional_snapshots if 0 < e <= self.epochs}

    def to_specs(self) -> dict:
        """The resolved configuration as a ``specs.json`` dictionary (SpecsVersion 2)."""
        d = self.decoder
        return {
            "SpecsVersion": SPECS_VERSION,
            "Description": self.description,
            "DataSource": self.data_source,
            "TrainSplit": self.train_split,
            "TestSplit": self.test_split,
            "NetworkArch": "deep_sdf_decoder",
            "NetworkSpecs": {"dims": list(d.dims), "dropout": list(d.dropout),
                             "dropout_prob": d.dropout_prob, "norm_layers": list(d.norm_layers),
                             "latent_in": list(d.latent_in), "xyz_in_all": d.xyz_in_all,
                             "use_tanh": d.use_tanh, "latent_dropout": d.latent_dropout,
                             "weight_norm": d.weight_norm},
            "CodeLength": d.latent_size,
            "NumEpochs": self.epochs,
            "SnapshotFrequency": self.snapshot_frequency,
            "AdditionalSnapshots": list(self.additional_snapshots),
            "LearningRateSchedule": [self.decoder_schedule.to_specs(),
                                     self.code_schedule.to_specs()],
            "SamplesPerScene": self.samples_per_scene,
            "ScenesPerBatch": self.scenes_per_batch,
            "DataLoaderThreads": self.loader_workers,
            "ClampingDistance": self.clamp,
            "CodeRegularization": self.code_regularization,
            "CodeRegularizationLambda": self.code_lambda,
            "CodeBound": self.code_bound,
            "CodeInitStdDev": self.code_init_std,
            "GradientClipNorm": self.grad_clip,
            "LogFrequency": self.log_frequency,
            "CodePrior": self.code_prior,
            "Seed": self.seed,
            "MixedPrecision": self.mixed_precision,
            "LatestEvery": self.latest_every,
        }


_TOP_KEYS = {
    "Description", "DataSource", "TrainSplit", "TestSplit", "NetworkArch", "NetworkSpecs",
    "CodeLength", "NumEpochs", "SnapshotFrequency", "AdditionalSnapshots",
    "LearningRateSchedule", "SamplesPerScene", "ScenesPerBatch", "DataLoaderThreads",
    "ClampingDistance", "CodeRegularization", "CodeRegularizationLambda", "CodeBound",
    "CodeInitStdDev", "GradientClipNorm", "LogFrequency",
}
_OUR_KEYS = {"SpecsVersion", "CodePrior", "Seed", "MixedPrecision", "LatestEvery"}
_NETWORK_KEYS = {"dims", "dropout", "dropout_prob", "norm_layers", "latent_in", "xyz_in_all",
                 "use_tanh", "latent_dropout", "weight_norm"}


def _check_keys(mapping: dict, allowed: set, where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where}"
                          + (f" (and {unknown[1:]})" if len(unknown) > 1 else "")
                          + f"; allowed: {sorted(allowed)}")


def parse_specs(specs: dict) -> TrainConfig:
    """A :class:`TrainConfig` from a ``specs.json`` dictionary (original or ours)."""
    if not isinstance(specs, dict):
        raise ConfigError("specs.json must hold a JSON object")
    version = specs.get("SpecsVersion")
    legacy = version is None
    if not legacy and version != SPECS_VERSION:
        raise ConfigError(f"SpecsVersion {version!r} is not supported (expected {SPECS_VERSION})")
    _check_keys(specs, _TOP_KEYS | (set() if legacy else _OUR_KEYS), "specs.json")
    arch = specs.get("NetworkArch", "deep_sdf_decoder")
    if arch != "deep_sdf_decoder":
        raise ConfigError(f"NetworkArch {arch!r} is not supported (only 'deep_sdf_decoder')")
    network = specs.get("NetworkSpecs", {})
    _check_keys(network, _NETWORK_KEYS, "NetworkSpecs")
    defaults = DecoderConfig()
    dims = tuple(int(x) for x in network.get("dims", defaults.dims))
    decoder = DecoderConfig(
        latent_size=int(specs.get("CodeLength", defaults.latent_size)),
        dims=dims,
        dropout=tuple(network.get("dropout") or ()),
        dropout_prob=float(network.get("dropout_prob", 0.0)),
        norm_layers=tuple(network.get("norm_layers") or ()),
        latent_in=tuple(network.get("latent_in") or ()),
        xyz_in_all=bool(network.get("xyz_in_all", False)),
        # the original decoder applies tanh at the end whatever use_tanh says
        use_tanh=True if legacy else bool(network.get("use_tanh", True)),
        latent_dropout=bool(network.get("latent_dropout", False)),
        weight_norm=bool(network.get("weight_norm", False)),
    )
    schedules = specs.get("LearningRateSchedule")
    base = TrainConfig()
    if schedules is None:
        decoder_schedule, code_schedule = base.decoder_schedule, base.code_schedule
    else:
        if not isinstance(schedules, list) or len(schedules) != 2:
            raise ConfigError("LearningRateSchedule must list two schedules: decoder, codes")
        decoder_schedule = Schedule.from_specs(schedules[0], "LearningRateSchedule[0]")
        code_schedule = Schedule.from_specs(schedules[1], "LearningRateSchedule[1]")
    bound = specs.get("CodeBound", base.code_bound)
    clip = specs.get("GradientClipNorm", base.grad_clip)
    return TrainConfig(
        decoder=decoder,
        description=" ".join(specs["Description"]) if isinstance(specs.get("Description"), list)
        else str(specs.get("Description", "")),
        data_source=str(specs.get("DataSource", base.data_source)),
        train_split=str(specs.get("TrainSplit", "")),
        test_split=str(specs.get("TestSplit", "")),
        epochs=int(specs.get("NumEpochs", base.epochs)),
        snapshot_frequency=int(specs.get("SnapshotFrequency", base.snapshot_frequency)),
        additional_snapshots=tuple(int(e) for e in specs.get("AdditionalSnapshots",
                                                             base.additional_snapshots)),
        decoder_schedule=decoder_schedule,
        code_schedule=code_schedule,
        samples_per_scene=int(specs.get("SamplesPerScene", base.samples_per_scene)),
        scenes_per_batch=int(specs.get("ScenesPerBatch", base.scenes_per_batch)),
        loader_workers=int(specs.get("DataLoaderThreads", base.loader_workers)),
        clamp=float(specs.get("ClampingDistance", base.clamp)),
        code_regularization=bool(specs.get("CodeRegularization", base.code_regularization)),
        code_lambda=float(specs.get("CodeRegularizationLambda", base.code_lambda)),
        code_bound=None if bound is None else float(bound),
        code_init_std=float(specs.get("CodeInitStdDev", base.code_init_std)),
        grad_clip=None if clip is None else float(clip),
        log_frequency=int(specs.get("LogFrequency", base.log_frequency)),
        code_prior="original" if legacy else str(specs.get("CodePrior", "paper")),
        seed=int(specs.get("Seed", base.seed)),
        mixed_precision=bool(specs.get("MixedPrecision", False)),
        latest_every=int(specs.get("LatestEvery", base.latest_every)),
        legacy=legacy,
    )


def load_specs(experiment_dir) -> TrainConfig:
    """Read ``EXP/specs.json``."""
    path = Path(experiment_dir) / "specs.json"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: an experiment folder needs a specs.json "
                          "(see experiments/ for examples)")
    try:
        specs = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from error
    return parse_specs(specs)


def write_resolved(experiment_dir, config: TrainConfig) -> Path:
    """Write ``EXP/specs.resolved.json``: every setting, defaults filled in.

    It is a valid SpecsVersion-2 ``specs.json`` that trains the same way (a legacy spec's
    behaviours become explicit: ``use_tanh: true``, ``CodePrior: "original"``).
    """
    from deepsdf_preprocess.formats import write_json

    path = Path(experiment_dir) / "specs.resolved.json"
    write_json(path, config.to_specs())
    return path

"""Typed experiment configuration, read from and written to ``specs.json``.

A ``specs.json`` of the original DeepSDF release is read as it is: its keys, its learning-rate
schedules and its behaviours (its decoder always ends in tanh, whatever ``use_tanh`` says, and
its code prior is ``lambda * mean ||z||``), and unknown keys (comments such as ``"Comment"``) are ignored with a
warning naming them.  Specs written by this project carry ``"SpecsVersion": 2``; there
``use_tanh`` means what it says, the prior defaults to the paper's form, unknown keys are an
error that names the key, and relative paths are relative to the spec's own folder (a legacy
spec keeps the original's rule: relative to the current directory).

Types are strict in both: a JSON boolean is a boolean (``"false"`` is an error, not True), an
integer key takes integers (2.7 epochs is an error), numbers are finite, and every range is
checked; each message names the key, the value and what is allowed.  One table
(:data:`SPEC_KEYS`) drives reading and writing.  :meth:`Experiment.write_resolved <deepsdf.experiment.Experiment.write_resolved>` writes the fully
resolved configuration beside the results.

Keys (original ones first; ``*`` marks this project's additions)::

    Description, DataSource, TrainSplit, TestSplit, NetworkArch ("deep_sdf_decoder"),
    NetworkSpecs {dims, dropout, dropout_prob, norm_layers, latent_in, xyz_in_all, use_tanh,
                  latent_dropout, weight_norm},
    CodeLength, NumEpochs, SnapshotFrequency, AdditionalSnapshots,
    LearningRateSchedule [decoder, codes] of {Type: Step|Warmup|Constant, ...},
    SamplesPerScene, ScenesPerBatch, DataLoaderThreads, ClampingDistance,
    CodeRegularization, CodeRegularizationLambda, CodeBound, CodeInitStdDev,
    GradientClipNorm, LogFrequency,
    *SpecsVersion, *CodePrior ("original" | "paper"), *Seed, *MixedPrecision, *LatestEvery,
    *TF32, *Compile, *SampleStore ("auto" | "device" | "mmap"), *SampleStoreMemory,
    *Curriculum [{Epoch, Clamp, HardWeight}], *EikonalWeight,
    NetworkSpecs *fourier_frequencies

The training recipes beyond the original (``Curriculum``, ``EikonalWeight``,
``fourier_frequencies``) are described, with their measured effect, in docs/training.md.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from deepsdf_preprocess.errors import InputError

__all__ = ["SAMPLE_STORES", "DecoderConfig", "Schedule", "TrainConfig", "read_specs",
           "parse_specs", "specs_with_epochs", "ConfigError", "SPECS_VERSION"]

SPECS_VERSION = 2

#: The largest learning rate a schedule may reach (10 is far beyond any that trains: Adam
#: diverges well below it; above about 3e38 torch cannot even hold it).
MAX_LEARNING_RATE = 10.0
#: The most epochs a spec may ask for (the paper trains 2 001; beyond this a typo, not a run).
MAX_EPOCHS = 10 ** 8

def templates_folder() -> Path:
    """The experiment specs this project ships: ``deepsdf/templates`` inside an installed
    package (a wheel: package data, found through :mod:`importlib.resources`), else the
    source tree's ``experiments/`` (a checkout, an editable install)."""
    from importlib.resources import files

    packaged = Path(str(files("deepsdf").joinpath("templates")))
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[1]
    # only a source tree's (its setup.py beside): never another package's "experiments"
    return checkout / "experiments" if (checkout / "setup.py").is_file() else packaged


def template_specs(name: str) -> Path:
    """``<templates>/<name>/specs.json`` of the shipped experiments (``demo``: the CPU demo's
    small decoder; ``chairs``: the paper's ShapeNet chairs spec); see
    :func:`templates_folder`.

    Raises
    ------
    ConfigError
        When the installation lacks it (a package built without its templates).
    """
    path = templates_folder() / name / "specs.json"
    if not path.is_file():
        raise ConfigError(f"the shipped spec {name!r} is missing from this installation "
                          f"({path}); reinstall deepsdf (a wheel built by its setup.py "
                          "carries deepsdf/templates/)")
    return path

#: SampleStore values: "auto" (on the device when the samples fit), "device", "mmap".
SAMPLE_STORES = ("auto", "device", "mmap")

logger = logging.getLogger(__name__)


class ConfigError(InputError):
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
    tanh_twice: bool = False  # a second tanh: the original's use_tanh, before its final tanh
    latent_dropout: bool = False  # dropout (p = 0.2) on the code at the input
    weight_norm: bool = True  # weight normalization on norm_layers
    fourier_frequencies: int = 0  # xyz also enters as sin/cos(2^k pi xyz), k < this

    def parameter_count(self) -> int:
        """Weights and biases of the decoder (weight norm's extra gains included)."""
        widths = [self.latent_size + self.point_features, *self.dims, 1]
        count = 0
        for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            if layer in self.latent_in and layer > 0:
                fan_in += self.latent_size + self.point_features
            if self.xyz_in_all and layer > 0:
                fan_in += self.point_features
            count += (fan_in + 2) * fan_out
        return count

    @property
    def point_features(self) -> int:
        """Width of a point's encoding: xyz, plus sin and cos of 3 coordinates per
        frequency."""
        return 3 + 6 * self.fourier_frequencies

    def __post_init__(self):
        _integer(self.latent_size, "CodeLength", least=1)
        _check_fields(self, NETWORK_KEYS, "NetworkSpecs.")
        if not self.dims:
            raise ConfigError("NetworkSpecs.dims must list at least one width")
        for name in ("dropout", "norm_layers", "latent_in"):
            bad = [i for i in getattr(self, name) if not 0 <= i <= len(self.dims)]
            if bad:
                raise ConfigError(f"NetworkSpecs.{name} names layers {bad} outside "
                                  f"0..{len(self.dims)}")
        joined = self.latent_size + self.point_features
        for layer in self.latent_in:
            if layer == 0 or self.dims[layer - 1] <= joined:
                raise ConfigError(f"NetworkSpecs.latent_in layer {layer}: the layer before it "
                                  f"must be wider than CodeLength + point features = {joined}")
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
        """Learning rate at epoch number ``epoch`` (``Step``: halved from ``interval`` on;
        ``Warmup``: ``final`` from ``length`` on).  The trainer passes the original's 1-based
        numbers for legacy specs (:func:`deepsdf.train.schedule_epoch`)."""
        if self.kind == "Step":
            return self.initial * self.factor ** (epoch // self.interval)
        if self.kind == "Warmup":
            return self.initial + (self.final - self.initial) * min(1.0, epoch / self.length)
        return self.value

    def peak(self, epochs: int) -> float:
        """The largest learning rate over epochs ``0 .. epochs`` (``inf`` when it overflows)."""
        if self.kind == "Step":
            cuts = epochs // self.interval if self.factor > 1 else 0
            logarithm = math.log10(self.initial) + cuts * math.log10(self.factor)
            return float("inf") if logarithm > 300 else self.initial * self.factor ** cuts
        if self.kind == "Warmup":
            return max(self.initial, self.final)
        return self.value

    @classmethod
    def from_specs(cls, entry, where: str) -> "Schedule":
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object with a Type, got {entry!r}")
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
            return cls("Step", initial=_number(entry["Initial"], f"{where}.Initial", above=0),
                       interval=_integer(entry["Interval"], f"{where}.Interval", least=1),
                       factor=_number(entry["Factor"], f"{where}.Factor", above=0))
        if kind == "Warmup":
            return cls("Warmup", initial=_number(entry["Initial"], f"{where}.Initial", least=0),
                       final=_number(entry["Final"], f"{where}.Final", above=0),
                       length=_integer(entry["Length"], f"{where}.Length", least=1))
        return cls("Constant", value=_number(entry["Value"], f"{where}.Value", above=0))

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
    # FillLastBatch: complete the last batch (no shape sits an epoch out); None: not said,
    # which drops it as the reference does, with a warning (False drops it knowingly).
    fill_last_batch: bool | None = None
    loader_workers: int = 0  # DataLoaderThreads (0: load in the training process)
    clamp: float = 0.1  # ClampingDistance delta
    code_regularization: bool = True
    code_lambda: float = 1e-4  # CodeRegularizationLambda
    code_bound: float | None = 1.0  # CodeBound (None: no bound); legacy specs rescale the
    #                                 rows a batch looks up before use (Embedding(max_norm)),
    #                                 ours project the whole table after each step
    code_init_std: float = 1.0  # CodeInitStdDev; codes start at N(0, (std / sqrt(d))^2)
    grad_clip: float | None = None  # GradientClipNorm
    log_frequency: int = 10  # LogFrequency (epochs between TensorBoard points)
    code_prior: str = "paper"  # "original": lambda*mean||z||; "paper": lambda*mean||z||^2/sigma^2
    seed: int = 0
    mixed_precision: bool = False  # bf16 autocast on GPU
    tf32: bool = True  # TF32 matrix products on CUDA (no effect elsewhere)
    compile: bool = False  # torch.compile the decoder
    sample_store: str = "auto"  # "auto": samples on the device when they fit; "device"; "mmap"
    sample_store_memory: float = 0.5  # share of the device's free memory the samples may take
    latest_every: int = 1  # epochs between rewrites of the "latest" checkpoint
    curriculum: tuple = ()  # Curriculum stages (from_epoch, clamp, hard_weight), increasing
    eikonal_weight: float = 0.0  # EikonalWeight: weight of mean (|grad_x f| - 1)^2
    legacy: bool = False  # read from an original-release specs.json

    def __post_init__(self):
        _check_fields(self, SPEC_KEYS)
        if self.samples_per_scene % 2:
            raise ConfigError(f"SamplesPerScene must be even (half positive, half negative), "
                              f"got {self.samples_per_scene}")
        for index, schedule in enumerate((self.decoder_schedule, self.code_schedule)):
            peak = schedule.peak(self.epochs)
            if not peak <= MAX_LEARNING_RATE:
                raise ConfigError(f"LearningRateSchedule[{index}] reaches a learning rate of "
                                  f"{peak:.3g} within NumEpochs {self.epochs}; at most "
                                  f"{MAX_LEARNING_RATE:g} is allowed (a Factor above 1?)")

    def stage_at(self, epoch: int) -> tuple:
        """``(clamp, hard_weight)`` in force while the schedule epoch ``epoch`` trains: the
        last ``Curriculum`` stage that began at or before it, else ``(ClampingDistance, 0)``."""
        clamp, hard = self.clamp, 0.0
        for start, stage_clamp, stage_hard in self.curriculum:
            if start <= epoch:
                clamp, hard = stage_clamp, stage_hard
        return clamp, hard

    @property
    def trained_clamp(self) -> float:
        """The clamp of the last trained epoch (``ClampingDistance`` unless a ``Curriculum``
        tightened it): mesh extraction keeps its coarse cells below it.  Fitting codes uses
        ``ClampingDistance`` (:attr:`clamp`), the curriculum's widest: with a tight clamp a
        code far from its shape gets no gradient (measured on the quality benchmark's
        curriculum model: held-out mean Chamfer 1.04e-2 fitted at 0.025, 2.48e-3 at 0.1)."""
        return self.stage_at(self.epochs - 1)[0]

    @property
    def code_std(self) -> float:
        """Per-component standard deviation of the initial codes (and of the paper's prior)."""
        return self.code_init_std / max(self.decoder.latent_size, 1) ** 0.5

    def snapshot_epochs(self) -> set:
        """1-based epochs at which a kept checkpoint is written."""
        regular = set(range(self.snapshot_frequency, self.epochs + 1, self.snapshot_frequency))
        return regular | {e for e in self.additional_snapshots if 0 < e <= self.epochs}

    def is_snapshot(self, epoch: int) -> bool:
        """Whether 1-based ``epoch`` is one of :meth:`snapshot_epochs` (in constant time:
        the trainer asks after every epoch)."""
        return 0 < epoch <= self.epochs and (epoch % self.snapshot_frequency == 0
                                             or epoch in self.additional_snapshots)

    def to_specs(self) -> dict:
        """The resolved configuration as a ``specs.json`` dictionary (SpecsVersion 2)."""
        specs = {"SpecsVersion": SPECS_VERSION, "NetworkArch": "deep_sdf_decoder",
                 "NetworkSpecs": {k.name: (k.write or _same)(getattr(self.decoder, k.field))
                                  for k in NETWORK_KEYS},
                 "CodeLength": self.decoder.latent_size,
                 "LearningRateSchedule": [self.decoder_schedule.to_specs(),
                                          self.code_schedule.to_specs()]}
        specs.update({k.name: (k.write or _same)(getattr(self, k.field)) for k in SPEC_KEYS})
        return specs


def _same(value):
    return value


# ---------------------------------------------------------------------------- readers
# Each reader takes the JSON value and the key's name and returns the Python value, or raises
# a ConfigError that names the key, the value and what is allowed.

def _describe(value) -> str:
    """A value as the message shows it: its JSON and its Python type (repr if not JSON)."""
    try:
        return f"{json.dumps(value)} ({type(value).__name__})"
    except (TypeError, ValueError):
        return repr(value)


def _integer(value, key: str, *, least: int | None = None, most: int | None = None) -> int:
    """The one rule for integers (:func:`deepsdf_preprocess.validate.integer`: a bool or a
    fraction refused, 3.0 read as 3), as a :class:`ConfigError` naming the key."""
    from deepsdf_preprocess import validate

    try:
        return validate.integer(value, what=key, minimum=least, maximum=most)
    except InputError as error:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be an integer, got {_describe(value)}") from None
        raise ConfigError(str(error)) from None


def _check_fields(config, keys, where: str = "") -> None:
    """Check a configuration's fields with the key table's readers (their JSON forms read
    back): the one place each spec bound is written, for specs and for configurations built
    in Python alike."""
    for key in keys:
        value = getattr(config, key.field)
        key.read(key.write(value) if key.write else value, where + key.name)


def _number(value, key: str, *, least: float | None = None, above: float | None = None,
            below: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        raise ConfigError(f"{key} must be a finite number, got {_describe(value)}")
    if least is not None and value < least:
        raise ConfigError(f"{key} must be >= {least}, got {value}")
    if above is not None and not value > above:
        raise ConfigError(f"{key} must be > {above}, got {value}")
    if below is not None and not value < below:
        raise ConfigError(f"{key} must be < {below}, got {value}")
    return float(value)


def _boolean(value, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false (a JSON boolean), got "
                          f"{_describe(value)}")
    return value


def _string(value, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {_describe(value)}")
    return value


def _integers(value, key: str, *, least: int = 0) -> tuple:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a list of integers, got {_describe(value)}")
    return tuple(_integer(item, f"{key}[{i}]", least=least) for i, item in enumerate(value))


def _optional(reader):
    def read(value, key):
        return None if value is None else reader(value, key)
    return read


def _choice(*allowed):
    def read(value, key):
        if value not in allowed:
            raise ConfigError(f"{key} must be one of {', '.join(map(repr, allowed))}, got "
                              f"{_describe(value)}")
        return value
    return read


def _description(value, key: str) -> str:
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return " ".join(value)  # the original's own examples use a list of lines
    return _string(value, key)


def _curriculum(value, key: str) -> tuple:
    """``[{"Epoch": e, "Clamp": c, "HardWeight": w}, ...]`` to ``((e, c, w), ...)``, epochs
    strictly increasing (``HardWeight`` may be omitted: 0)."""
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a list of stages {{Epoch, Clamp, HardWeight}}, got "
                          f"{_describe(value)}")
    stages = []
    for i, entry in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be an object {{Epoch, Clamp, HardWeight}}, got "
                              f"{_describe(entry)}")
        _check_keys(entry, {"Epoch", "Clamp", "HardWeight"}, where)
        if "Epoch" not in entry or "Clamp" not in entry:
            raise ConfigError(f"{where} needs an Epoch and a Clamp")
        stage = (_integer(entry["Epoch"], f"{where}.Epoch", least=0),
                 _number(entry["Clamp"], f"{where}.Clamp", above=0),
                 _number(entry.get("HardWeight", 0.0), f"{where}.HardWeight", least=0,
                         below=1))
        if stages and stage[0] <= stages[-1][0]:
            raise ConfigError(f"{where}.Epoch {stage[0]} must be later than the stage before "
                              f"it ({stages[-1][0]})")
        stages.append(stage)
    return tuple(stages)


def _write_curriculum(stages) -> list:
    return [{"Epoch": e, "Clamp": c, "HardWeight": w} for e, c, w in stages]


def _at_least(least):
    return lambda value, key: _integer(value, key, least=least)


def _positive(value, key):
    return _number(value, key, above=0)


# ---------------------------------------------------------------------------- the key table

@dataclass(frozen=True)
class SpecKey:
    """One ``specs.json`` key: where it goes in :class:`TrainConfig`, how it is read and
    written."""

    name: str  # the key in specs.json
    field: str  # the TrainConfig field (or DecoderConfig field for NetworkSpecs keys)
    read: object  # reader(value, key) -> Python value
    ours: bool = False  # a key of this project (SpecsVersion 2 only)
    write: object = None  # Python value -> JSON value (default: as it is)


def _write_list(value):
    return list(value)


#: Top-level keys besides NetworkSpecs and LearningRateSchedule, in writing order.
SPEC_KEYS = (
    SpecKey("Description", "description", _description),
    SpecKey("DataSource", "data_source", _string),
    SpecKey("TrainSplit", "train_split", _string),
    SpecKey("TestSplit", "test_split", _string),
    SpecKey("NumEpochs", "epochs", lambda value, key: _integer(value, key, least=1,
                                                               most=MAX_EPOCHS)),
    SpecKey("SnapshotFrequency", "snapshot_frequency", _at_least(1)),
    SpecKey("AdditionalSnapshots", "additional_snapshots",
            lambda v, k: _integers(v, k, least=1), write=_write_list),
    SpecKey("SamplesPerScene", "samples_per_scene", _at_least(2)),
    SpecKey("ScenesPerBatch", "scenes_per_batch", _at_least(1)),
    SpecKey("FillLastBatch", "fill_last_batch", _optional(_boolean), ours=True),
    SpecKey("DataLoaderThreads", "loader_workers",
            lambda value, key: _integer(value, key, least=0, most=64)),
    SpecKey("ClampingDistance", "clamp", lambda value, key: _number(value, key, above=0,
                                                                    below=2)),
    SpecKey("CodeRegularization", "code_regularization", _boolean),
    SpecKey("CodeRegularizationLambda", "code_lambda", lambda v, k: _number(v, k, least=0)),
    SpecKey("CodeBound", "code_bound", _optional(_positive)),
    SpecKey("CodeInitStdDev", "code_init_std", _positive),
    SpecKey("GradientClipNorm", "grad_clip", _optional(_positive)),
    SpecKey("LogFrequency", "log_frequency", _at_least(1)),
    SpecKey("CodePrior", "code_prior", _choice("original", "paper"), ours=True),
    SpecKey("Seed", "seed", lambda value, key: _integer(value, key, least=0, most=2 ** 32 - 1),
            ours=True),
    SpecKey("MixedPrecision", "mixed_precision", _boolean, ours=True),
    SpecKey("LatestEvery", "latest_every", _at_least(1), ours=True),
    SpecKey("TF32", "tf32", _boolean, ours=True),
    SpecKey("Compile", "compile", _boolean, ours=True),
    SpecKey("SampleStore", "sample_store", _choice(*SAMPLE_STORES), ours=True),
    SpecKey("SampleStoreMemory", "sample_store_memory",
            lambda v, k: _number(v, k, above=0, below=1.0000001), ours=True),
    SpecKey("Curriculum", "curriculum", _curriculum, ours=True, write=_write_curriculum),
    SpecKey("EikonalWeight", "eikonal_weight", lambda v, k: _number(v, k, least=0),
            ours=True),
)

#: NetworkSpecs keys (DecoderConfig fields of the same name).
NETWORK_KEYS = (
    SpecKey("dims", "dims", lambda v, k: _integers(v, k, least=1), write=_write_list),
    SpecKey("dropout", "dropout", _integers, write=_write_list),
    SpecKey("dropout_prob", "dropout_prob", lambda v, k: _number(v, k, least=0, below=1)),
    SpecKey("norm_layers", "norm_layers", _integers, write=_write_list),
    SpecKey("latent_in", "latent_in", _integers, write=_write_list),
    SpecKey("xyz_in_all", "xyz_in_all", lambda v, k: False if v is None else _boolean(v, k)),
    SpecKey("use_tanh", "use_tanh", _boolean),
    SpecKey("tanh_twice", "tanh_twice", _boolean, ours=True),
    SpecKey("latent_dropout", "latent_dropout", _boolean),
    SpecKey("weight_norm", "weight_norm", _boolean),
    SpecKey("fourier_frequencies", "fourier_frequencies",
            lambda v, k: _integer(v, k, least=0, most=16), ours=True),
)

#: What an omitted NetworkSpecs key means: the original decoder's constructor defaults (for
#: legacy specs and, unchanged since SpecsVersion 2 began, for ours).  An omitted top-level
#: key takes the TrainConfig default; a legacy spec's CodePrior is always "original".
NETWORK_DEFAULTS = {"dropout": (), "dropout_prob": 0.0, "norm_layers": (), "latent_in": (),
                    "xyz_in_all": False, "use_tanh": True, "latent_dropout": False,
                    "weight_norm": False}
#: ... except that the original's use_tanh defaults to False (it only adds a second tanh).
LEGACY_NETWORK_DEFAULTS = dict(NETWORK_DEFAULTS, use_tanh=False)

_PATH_FIELDS = ("data_source", "train_split", "test_split")
_STRUCTURE_KEYS = {"SpecsVersion", "NetworkArch", "NetworkSpecs", "CodeLength",
                   "LearningRateSchedule"}


def _check_keys(mapping: dict, allowed: set, where: str, *, warn: bool = False) -> None:
    unknown = sorted(set(mapping) - allowed)
    if not unknown:
        return
    message = (f"unknown key {unknown[0]!r} in {where}"
               + (f" (and {unknown[1:]})" if len(unknown) > 1 else ""))
    if warn:
        logger.warning("%s: ignored, as the original release does", message)
        return
    raise ConfigError(f"{message}; allowed: {sorted(allowed)}")


def parse_specs(specs: dict, *, base=None) -> TrainConfig:
    """A :class:`TrainConfig` from a ``specs.json`` dictionary (original or ours).

    Parameters
    ----------
    specs : dict
    base : path, optional, keyword-only
        The spec's folder: relative paths of a SpecsVersion-2 spec are resolved against it
        (to absolute paths).  Legacy specs keep relative paths (current-directory rule).

    Raises
    ------
    ConfigError
        Naming the key, its value and what is allowed.
    """
    if not isinstance(specs, dict):
        raise ConfigError("specs.json must hold a JSON object")
    version = specs.get("SpecsVersion")
    legacy = version is None
    if not legacy and (isinstance(version, bool) or version != SPECS_VERSION):
        raise ConfigError(f"SpecsVersion {version!r} is not supported (expected {SPECS_VERSION})")
    allowed = _STRUCTURE_KEYS | {k.name for k in SPEC_KEYS if not (legacy and k.ours)}
    _check_keys(specs, allowed, "specs.json", warn=legacy)
    arch = specs.get("NetworkArch", "deep_sdf_decoder")
    if arch != "deep_sdf_decoder":
        raise ConfigError(f"NetworkArch {arch!r} is not supported (only 'deep_sdf_decoder')")
    network = specs.get("NetworkSpecs", {})
    if not isinstance(network, dict):
        raise ConfigError(f"NetworkSpecs must be an object, got {_describe(network)}")
    _check_keys(network, {k.name for k in NETWORK_KEYS if not (legacy and k.ours)},
                "NetworkSpecs", warn=legacy)
    decoder_values = {"latent_size": _integer(specs.get("CodeLength", DecoderConfig.latent_size),
                                              "CodeLength", least=1)}
    for key in NETWORK_KEYS:
        if legacy and key.ours:
            continue
        if key.name in network:
            decoder_values[key.field] = key.read(network[key.name], f"NetworkSpecs.{key.name}")
        elif key.name in NETWORK_DEFAULTS:
            defaults = LEGACY_NETWORK_DEFAULTS if legacy else NETWORK_DEFAULTS
            decoder_values[key.field] = defaults[key.name]
    if legacy:
        # The original ends in tanh whatever use_tanh says; use_tanh adds one more before it.
        decoder_values["tanh_twice"] = decoder_values.get("use_tanh", False)
        decoder_values["use_tanh"] = True
    decoder = DecoderConfig(**decoder_values)

    values = {"decoder": decoder, "legacy": legacy,
              "code_prior": "original" if legacy else "paper"}
    for key in SPEC_KEYS:
        if key.name in specs and not (legacy and key.ours):
            values[key.field] = key.read(specs[key.name], key.name)
    schedules = specs.get("LearningRateSchedule")
    if schedules is not None:
        if not isinstance(schedules, list) or len(schedules) != 2:
            raise ConfigError("LearningRateSchedule must list two schedules: decoder, codes")
        values["decoder_schedule"] = Schedule.from_specs(schedules[0], "LearningRateSchedule[0]")
        values["code_schedule"] = Schedule.from_specs(schedules[1], "LearningRateSchedule[1]")
    if not legacy and base is not None:
        for name in _PATH_FIELDS:
            value = values.get(name)
            if value and not os.path.isabs(value):
                values[name] = os.path.normpath(os.path.join(os.path.abspath(base), value))
    return TrainConfig(**values)


def specs_with_epochs(specs: dict, epochs: int) -> dict:
    """A copy of the raw spec ``specs`` that trains ``epochs`` epochs: ``NumEpochs`` and
    ``SnapshotFrequency`` set to it, and every ``Step`` schedule's ``Interval`` scaled so that
    its cuts fall at the same share of the run (at least 1 epoch)."""
    specs = json.loads(json.dumps(specs))
    for schedule in specs.get("LearningRateSchedule", []):
        if "Interval" in schedule:  # a Step schedule
            schedule["Interval"] = max(1, round(schedule["Interval"] * epochs
                                                / specs["NumEpochs"]))
    specs.update(NumEpochs=epochs, SnapshotFrequency=epochs)
    return specs


def read_specs(path) -> TrainConfig:
    """Read a ``specs.json`` file (relative paths in it resolve against its folder; the
    experiment folder's own is :meth:`deepsdf.experiment.Experiment.load_specs`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: an experiment folder needs a specs.json "
                          "(see experiments/ for examples)")
    from deepsdf_preprocess.contract import loads_strict

    try:
        specs = loads_strict(path.read_text(), path)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from error
    except InputError as error:  # a key given twice: JSON would keep the last silently
        raise ConfigError(str(error)) from None
    return parse_specs(specs, base=path.parent)

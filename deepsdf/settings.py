"""The settings objects of inference and their defaults, in one place: the library's functions
and the command line both read them (the CLI builds its options from them, so each default is
written once).  Torch-free, so that ``deepsdf --help`` stays light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deepsdf_preprocess.errors import InputError

__all__ = ["PruneConfig", "PRUNE", "RefineConfig", "REFINE", "StartedFit", "RECONSTRUCT_STARTS", "RECONSTRUCT_STARTS_FULL", "describe_solver",
           "SOLVERS", "SolverConfig", "GAUSS_NEWTON", "SHORT_GAUSS_NEWTON", "ADAM",
           "SOLVER_PRESETS", "MultiStart", "SINGLE_START", "MESH_RESOLUTION",
           "INTERPOLATION_RESOLUTION", "INTERPOLATION_STEPS", "PICTURE_SIZE",
           "RECONSTRUCT_BATCH", "COMPLETE_BATCH", "Quality", "QUALITIES"]

#: Grid points per axis of a mesh (``mesh``, ``reconstruct``, ``complete``).
MESH_RESOLUTION = 256
#: Grid points per axis of interpolation meshes, codes on the path, picture size in pixels.
INTERPOLATION_RESOLUTION = 128
INTERPOLATION_STEPS = 8
PICTURE_SIZE = 256
#: Shapes fitted together by ``reconstruct``; fits (shapes times starts) by ``complete``.
RECONSTRUCT_BATCH = 16
COMPLETE_BATCH = 64


SOLVERS = ("adam", "gauss-newton")


#: The most solver steps and samples per shape a fit may ask for.
MAX_STEPS = 100_000
MAX_SAMPLES = 10_000_000


@dataclass(frozen=True)
class SolverConfig:
    """Latent-only fitting settings (defaults: the reference solver)."""

    method: str = "adam"  # "adam" (reference) or "gauss-newton"
    steps: int = 800  # Adam steps, or Gauss-Newton iterations
    lr: float = 5e-3  # Adam learning rate (divided by 10 at half-way)
    samples: int = 8000  # samples per shape per step (Adam) or in the fixed set (GN)
    prior: float = 1e-4  # weight of mean(z^2)
    init_std: float = 0.01  # codes start at N(0, init_std^2)
    damping: float = 1e-2  # Gauss-Newton: initial damping, relative to the diagonal
    irls_floor: float = 1e-3  # Gauss-Newton: |r| below this is treated as this in the weights
    irls_floor_final: float | None = None  # if set, the floor moves geometrically to this
    resample: bool = False  # Gauss-Newton: fresh samples every iteration (one more pass)
    screen: int = 0  # samples per shape to screen candidate initial codes with (0 = off)
    seed: int = 0

    def __post_init__(self):
        if self.method not in SOLVERS:
            raise InputError(f"unknown solver {self.method!r}; choose one of {SOLVERS}")
        if self.steps < 1 or self.samples < 2 or self.samples % 2:
            raise InputError("steps must be >= 1 and samples a positive even number")
        # Beyond these a fit is a typo, not a setting (the presets use 45-800 steps and
        # 4000-12000 samples): refused before a step schedule or a sample set is allocated.
        if self.steps > MAX_STEPS or self.samples > MAX_SAMPLES or not (
                0 <= self.screen <= MAX_SAMPLES):
            raise InputError(f"steps must be at most {MAX_STEPS:,} and samples and screen at "
                             f"most {MAX_SAMPLES:,} per shape (got {self.steps:,}, "
                             f"{self.samples:,}, {self.screen:,})")


#: Gauss-Newton preset: 45 iterations on a fixed set of 12000 samples per shape, IRLS floor
#: 0.005 (chosen on 12 demo shapes against the reference; see docs/benchmarks.md):
#: 12000 * (1 + 45 * 4) = 2.17 M point-passes per shape, 0.113 of the reference's 19.2 M.
GAUSS_NEWTON = SolverConfig(method="gauss-newton", steps=45, samples=12000, irls_floor=5e-3)

#: A shorter Gauss-Newton preset for fits from several starts (shape completion): 30
#: iterations on 4000 samples, 4000 * (1 + 30 * 4) = 0.48 M point-passes per start, 0.22 of
#: :data:`GAUSS_NEWTON`'s (measured against it in benchmarks/quality.py).
SHORT_GAUSS_NEWTON = SolverConfig(method="gauss-newton", steps=30, samples=4000,
                                  irls_floor=5e-3)

#: The reference solver (the original's ``reconstruct.py``): 800 Adam steps.
ADAM = SolverConfig()

#: The presets ``--solver`` names.
SOLVER_PRESETS = {"gauss-newton": GAUSS_NEWTON, "adam": ADAM}


@dataclass(frozen=True)
class MultiStart:
    """Where completion's fits start: every start of every shape is fitted in one batch, and
    the fit with the lowest data term on the observation wins (a partial view leaves the fit
    bimodal: one start may settle on a wrong shape, or on none).

    The starts of a shape are its ``nearest`` training codes (those whose decoded shapes best
    explain the observation: the lowest data term on ``screen`` of its constraint rows), the
    ``mean`` training code, and ``random`` draws ``N(0, init_std^2)`` (the solver's; the
    reference's single start).  Without training codes only the random draws remain.
    """

    nearest: int = 2
    mean: bool = True
    random: int = 1
    screen: int = 2000  # constraint rows per shape that rank training codes and the fits

    def __post_init__(self):
        if min(self.nearest, self.random) < 0 or self.screen < 2 or self.screen % 2:
            raise InputError("nearest and random must be >= 0, screen a positive even number")
        if not (self.nearest or self.mean or self.random):
            raise InputError("a completion needs at least one start")

    def kinds(self, train_codes: int) -> list:
        """Where each of a shape's starts comes from, in order ("nearest", "mean", "random"),
        with ``train_codes`` training codes at hand (none: the random draws only, at least
        one)."""
        kinds = ["nearest"] * min(self.nearest, train_codes)
        if train_codes and self.mean:
            kinds.append("mean")
        return kinds + ["random"] * (self.random if kinds else max(self.random, 1))


#: The reference's one random start.
SINGLE_START = MultiStart(nearest=0, mean=False, random=1)


@dataclass(frozen=True)
class StartedFit:
    """A latent fit from several starts (:func:`deepsdf.reconstruct.fit_codes`): every start
    of :attr:`starts` fitted with :attr:`solver` in one batch, the lowest data term kept, then
    continued with :attr:`finish` (None: kept as it is)."""

    starts: MultiStart
    solver: SolverConfig
    finish: SolverConfig | None = None


    def __post_init__(self):
        if not isinstance(self.starts, MultiStart) or not isinstance(self.solver, SolverConfig) \
                or not (self.finish is None or isinstance(self.finish, SolverConfig)):
            raise InputError("a StartedFit is a MultiStart, a SolverConfig and an optional "
                             "SolverConfig finish")

    def seeded(self, seed: int) -> "StartedFit":
        """The same fit with every solver's ``seed``."""
        from dataclasses import replace

        return replace(self, solver=replace(self.solver, seed=seed),
                       finish=None if self.finish is None else replace(self.finish, seed=seed))

    def describe(self) -> str:
        """One line: the starts, each one's fit and the finish."""
        kinds = self.starts.kinds(self.starts.nearest or 1)
        text = (f"{len(kinds)} starts ({self.starts.nearest} nearest, "
                f"{'the mean, ' if self.starts.mean else ''}{self.starts.random} random) x "
                f"{describe_solver(self.solver)}")
        return text + (f", the best then {describe_solver(self.finish)}" if self.finish else "")


def describe_solver(fit) -> str:
    """One line naming a :class:`SolverConfig` or a :class:`StartedFit`."""
    if isinstance(fit, StartedFit):
        return fit.describe()
    unit = "steps" if fit.method == "adam" else "iterations"
    return f"{fit.method} {fit.steps} {unit} on {fit.samples} samples"


#: Reconstruction's default (both qualities' ``reconstruct``): 15 short Gauss-Newton
#: iterations from each shape's 2 nearest training codes (by data term), the mean code and one
#: random draw, the lowest data term continued by 20 full Gauss-Newton iterations: 2.06 M
#: point-passes per shape, less than the single start's 2.17 M, and on held-out shapes a mean
#: Chamfer 0.77-0.81x the reference Adam fit's where the single start gave 0.95x, its worst
#: shape 1.2-1.3x the reference's where the single start's was 2-3x (docs/benchmarks.md).
RECONSTRUCT_STARTS = StartedFit(MultiStart(nearest=2, mean=True, random=1, screen=2000),
                                SolverConfig(method="gauss-newton", steps=15, samples=4000,
                                             irls_floor=5e-3),
                                SolverConfig(method="gauss-newton", steps=20, samples=12000,
                                             irls_floor=5e-3))
#: The reference quality's: the same starts, the full fit after them.
RECONSTRUCT_STARTS_FULL = StartedFit(RECONSTRUCT_STARTS.starts, RECONSTRUCT_STARTS.solver,
                                     GAUSS_NEWTON)


@dataclass(frozen=True)
class Quality:
    """A preset of ``reconstruct`` and ``complete``: the mesh grid and each command's solver.
    ``--resolution``, ``--solver`` and ``--steps`` given on the command line override it."""

    name: str
    resolution: int
    reconstruct: "SolverConfig | StartedFit"
    complete: SolverConfig
    description: str


#: Interpolation paths between two codes (:mod:`deepsdf.code_space`); the first is the default.
INTERPOLATIONS = ("slerp", "linear")

#: ``fast`` is what the demo runs (a few seconds a shape on two CPU cores); ``reference`` is
#: the full Gauss-Newton fit on the 256^3 grid (docs/benchmarks.md has both's figures).
QUALITIES = {
    "fast": Quality("fast", 128, RECONSTRUCT_STARTS, SHORT_GAUSS_NEWTON,
                    "128^3 meshes; reconstruction from 4 starts (2 nearest training codes, "
                    "the mean, 1 random), the best continued by 20 Gauss-Newton iterations; "
                    "the short Gauss-Newton fit for completion's several starts (what the "
                    "demo runs)"),
    "reference": Quality("reference", MESH_RESOLUTION, RECONSTRUCT_STARTS_FULL, GAUSS_NEWTON,
                         f"{MESH_RESOLUTION}^3 meshes; the full Gauss-Newton fit after the "
                         "starts, and for every completion start"),
}
#: The quality the fitting commands use unless told.
DEFAULT_QUALITY = "fast"


@dataclass(frozen=True)
class RefineConfig:
    """Test-time refinement settings (:mod:`deepsdf.refine`: the loss, and what it writes)."""

    steps: int = 200
    samples: int = 8000
    lr: float = 3e-4
    code_lr: float = 1e-3
    prior: float = 1e-4
    weight_prior: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        if not (1 <= self.steps <= 100_000) or not (2 <= self.samples <= 1_000_000):
            raise InputError(f"refinement steps must lie in 1..100000 and samples in "
                             f"2..1000000 (got {self.steps}, {self.samples})")
        for name in ("lr", "code_lr", "prior", "weight_prior"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InputError(f"refinement {name} must be a finite number >= 0, got {value}")


#: The default refinement.
REFINE = RefineConfig()


@dataclass(frozen=True)
class PruneConfig:
    """Which pieces of a fitted shape's mesh its observations rule out
    (:mod:`deepsdf.pruning`): a connected piece is dropped when more than ``share`` of its area
    lies where the observations certify the shape's SDF above ``margin`` (normalized units),
    each point's certificate being the ``rank``-th largest over its ``neighbours`` nearest
    rows; when the pieces ruled out hold more than ``most`` of the area, nothing is dropped
    (a wrong fit, reported, rather than debris)."""

    margin: float = 0.1
    share: float = 0.75
    neighbours: int = 16
    rank: int = 3
    most: float = 0.5

    def __post_init__(self):
        from deepsdf_preprocess import validate

        validate.number(self.margin, what="prune margin", minimum=0.0)
        for name in ("share", "most"):
            value = validate.number(getattr(self, name), what=f"prune {name}", minimum=0.0)
            if not value < 1:
                raise InputError(f"prune {name} must be below 1, got {value:g}")
        neighbours = validate.integer(self.neighbours, what="prune neighbours", minimum=1,
                                      maximum=1024)
        validate.integer(self.rank, what="prune rank", minimum=1, maximum=neighbours)


#: What ``reconstruct`` drops unless told to keep every piece (``--keep-all-parts``;
#: docs/inference.md has the figures).  The margin is the paper's clamping distance: a
#: surface nearer the truth than that is the model's error, which the model may own; beyond
#: it, over three quarters of a piece, the samples say nothing is there.
PRUNE = PruneConfig()

"""Shared fixtures: small scan settings, test meshes, and an OpenGL scanner when EGL works."""

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
# Packed caches made without an experiment folder go to the user's cache folder: keep the
# suite's out of the home directory.
import tempfile  # noqa: E402

os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="deepsdf-test-cache-")
os.environ.pop("DEEPSDF_CACHE", None)

import json
from dataclasses import replace

import numpy as np
import pytest
import trimesh

from deepsdf_preprocess.cameras import CameraRig
from deepsdf_preprocess.pipeline import PreprocessConfig
from deepsdf_preprocess.sampling import SamplingConfig

#: Reduced settings that keep the suite fast on 2 cores (the full defaults run in one test).
SMALL_RIG = CameraRig(count=30, resolution=160)
SMALL_CONFIG = PreprocessConfig(sampling=SamplingConfig(count=30_000), rig=SMALL_RIG,
                                surface_samples=2000)


@pytest.fixture(scope="session")
def small_config():
    return SMALL_CONFIG


@pytest.fixture(scope="session")
def gl_scanner():
    """One OpenGL scanner for the session; CI must have EGL, so there it fails, not skips."""
    from deepsdf_preprocess.pipeline import make_scanner

    try:
        scanner = make_scanner("pyrender", SMALL_RIG)
    except Exception as error:  # noqa: BLE001 - any EGL failure means "no OpenGL here"
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide EGL: {error}")
        pytest.skip(f"no OpenGL context: {error}")
    yield scanner
    scanner.close()


@pytest.fixture
def inverted_signs(monkeypatch):
    """The pipeline's signed distances come out inside-out (what a bug upstream of the sign
    check would do), for tests that the independent check catches it."""
    from deepsdf_preprocess import pipeline

    real = pipeline.signed_distance

    def inverted(*args, **kwargs):
        result = real(*args, **kwargs)
        result.sdf = -result.sdf
        return result

    monkeypatch.setattr(pipeline, "signed_distance", inverted)


def torus_mesh(major=0.6, minor=0.25, sections=(96, 48)):
    """A torus around the z axis (trimesh's convention)."""
    return trimesh.creation.torus(major, minor, major_sections=sections[0],
                                  minor_sections=sections[1])


def torus_sdf(points, major=0.6, minor=0.25):
    """Exact SDF of the analytic torus around z."""
    q = np.linalg.norm(points[:, :2], axis=1) - major
    return np.hypot(q, points[:, 2]) - minor


def mesh_sdf(mesh, points):
    """Exact SDF of a closed mesh (libigl, pseudonormal sign), > 0 outside."""
    import igl

    return igl.signed_distance(np.asarray(points, np.float64),
                               np.asarray(mesh.vertices, np.float64),
                               np.asarray(mesh.faces, np.int64))[0]


# --------------------------------------------------------------------------- training

from deepsdf.experiment import load_specs  # noqa: E402
from deepsdf.train import Trainer  # noqa: E402
from deepsdf_preprocess.driver import preprocess_dataset  # noqa: E402
from deepsdf_preprocess.procedural import write_shapes  # noqa: E402

TINY_SPECS = {
    "SpecsVersion": 2,
    "NetworkSpecs": {"dims": [128, 128, 128, 128], "dropout": [], "dropout_prob": 0.0,
                     "norm_layers": [], "latent_in": [2], "xyz_in_all": False,
                     "use_tanh": True, "latent_dropout": False, "weight_norm": False},
    "CodeLength": 16,
    "NumEpochs": 1500,
    "SnapshotFrequency": 1000,
    "AdditionalSnapshots": [],
    "LearningRateSchedule": [{"Type": "Step", "Initial": 0.005, "Interval": 600, "Factor": 0.3},
                             {"Type": "Step", "Initial": 0.005, "Interval": 600, "Factor": 0.3}],
    "SamplesPerScene": 4096,
    "ScenesPerBatch": 3,
    "ClampingDistance": 0.1,
    "CodeRegularizationLambda": 1e-4,
    "CodeBound": 1.0,
    "Seed": 0,
}


def small_dataset(root, count: int, seed: int = 2):
    """``count`` generated chairs preprocessed at small settings: (data dir, split file)."""
    write_shapes(root / "meshes", "chairs", count, seed=seed)
    config = replace(SMALL_CONFIG, sampling=replace(SMALL_CONFIG.sampling, count=40_000))
    report = preprocess_dataset(root / "meshes", root / "data", "gen", config=config,
                                backend="raycast", progress=False)
    assert not report.failed
    return root / "data", report.split_path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Three generated chairs preprocessed at small settings, and their split file."""
    return small_dataset(tmp_path_factory.mktemp("tiny"), 3)


@pytest.fixture(scope="session")
def trained_data(tmp_path_factory):
    """Five generated chairs (the shapes of the ``trained`` model; completion tests need five),
    and their split file; the manifest records the source meshes.  Seed 8 gives five clearly
    different chairs (Chamfer >= 0.014 between any two; seed 2 has a pair of near twins)."""
    return small_dataset(tmp_path_factory.mktemp("five"), 5, seed=8)


def make_experiment(path, data, split, **overrides):
    specs = dict(TINY_SPECS, DataSource=str(data), TrainSplit=str(split), **overrides)
    path.mkdir(parents=True, exist_ok=True)
    (path / "specs.json").write_text(json.dumps(specs))
    return path


@pytest.fixture(scope="session")
def trained(trained_data, tmp_path_factory):
    """One tiny model trained to convergence on ``trained_data``, shared by the tests that
    need one."""
    data, split = trained_data
    experiment = make_experiment(tmp_path_factory.mktemp("exp"), data, split, ScenesPerBatch=5)
    trainer = Trainer(experiment, load_specs(experiment), device="cpu", progress=False)
    result = trainer.train()
    return experiment, result.model


@pytest.fixture(scope="module")
def reference_gl_scanner():
    """The OpenGL scanner of the reference camera rig (EGL); skipped without an OpenGL
    context, except on CI, which must provide one."""
    from deepsdf_preprocess.errors import PreprocessError
    from deepsdf_preprocess.pipeline import make_scanner

    try:
        scanner = make_scanner("pyrender", PreprocessConfig().rig)
    except PreprocessError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide EGL: {error}")
        pytest.skip(f"no OpenGL context: {error}")
    yield scanner
    scanner.close()

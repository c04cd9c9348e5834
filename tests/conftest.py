"""Shared fixtures: small scan settings, test meshes, and an OpenGL scanner when EGL works."""

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

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

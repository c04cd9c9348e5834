"""Import walls, each checked in a fresh interpreter started outside the repository."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_fresh(code: str, tmp_path) -> dict:
    """Run ``code`` in a new interpreter (cwd outside the repo); it must print a JSON dict."""
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


LOADED = """
import json, sys
def loaded(*names):
    return {n: any(m == n or m.startswith(n + '.') for m in sys.modules) for n in names}
"""


def test_preprocessor_never_imports_torch_or_opengl(tmp_path):
    code = LOADED + """
import deepsdf_preprocess
from deepsdf_preprocess import (cameras, driver, formats, mesh_io, normalize, pipeline,
                                procedural, raycast, render_gl, sampling, scan, sdf, splits)
print(json.dumps(loaded('torch', 'OpenGL', 'pyrender')))
"""
    assert run_fresh(code, tmp_path) == {"torch": False, "OpenGL": False, "pyrender": False}


def test_raycast_preprocessing_runs_without_torch_or_opengl(tmp_path):
    code = LOADED + """
import numpy as np, trimesh
from deepsdf_preprocess.cameras import CameraRig
from deepsdf_preprocess.pipeline import PreprocessConfig, make_scanner, sample_mesh
from deepsdf_preprocess.sampling import SamplingConfig
config = PreprocessConfig(sampling=SamplingConfig(count=2000), rig=CameraRig(count=6, resolution=48),
                          surface_samples=100)
samples = sample_mesh(trimesh.creation.box(), config, make_scanner('raycast', config.rig),
                      np.random.default_rng(0))
assert len(samples.points) > 1000
print(json.dumps(loaded('torch', 'OpenGL', 'pyrender')))
"""
    assert run_fresh(code, tmp_path) == {"torch": False, "OpenGL": False, "pyrender": False}


def test_deepsdf_and_its_cli_never_import_opengl(tmp_path):
    code = LOADED + """
import deepsdf, deepsdf.cli
deepsdf.cli.build_parser().format_help()
from deepsdf import checkpoint, config, data, decoder, latents, original, loss, mesh, train
print(json.dumps(loaded('OpenGL', 'pyrender')))
"""
    assert run_fresh(code, tmp_path) == {"OpenGL": False, "pyrender": False}


def test_preprocessor_is_installed_under_its_namespaced_name_only(tmp_path):
    code = """
import importlib.util, json, deepsdf_preprocess
print(json.dumps({"file": deepsdf_preprocess.__file__,
                  "bare": importlib.util.find_spec("preprocess") is not None}))
"""
    result = run_fresh(code, tmp_path)
    assert Path(result["file"]).parent == REPO / "preprocess"
    assert result["bare"] is False


def test_a_user_preprocess_module_does_not_shadow_ours(tmp_path):
    (tmp_path / "preprocess.py").write_text("MINE = True\n")
    code = """
import json, preprocess, deepsdf_preprocess.pipeline
print(json.dumps({"user": preprocess.MINE,
                  "ours": deepsdf_preprocess.pipeline.__name__}))
"""
    assert run_fresh(code, tmp_path) == {"user": True, "ours": "deepsdf_preprocess.pipeline"}


@pytest.mark.egl
def test_opengl_is_loaded_only_when_a_scanner_is_made(tmp_path):
    code = LOADED + """
import os
os.environ.setdefault('PYOPENGL_PLATFORM', 'egl')
from deepsdf_preprocess import render_gl
from deepsdf_preprocess.cameras import CameraRig
before = loaded('OpenGL')['OpenGL']
scanner = render_gl.OpenGLScanner(CameraRig(count=1, resolution=8))
scanner.close()
print(json.dumps({"before": before, "after": loaded('OpenGL')['OpenGL']}))
"""
    assert run_fresh(code, tmp_path) == {"before": False, "after": True}


def test_import_deepsdf_and_its_help_never_load_torch(tmp_path):
    """``import deepsdf`` and ``deepsdf --help`` stay light; ``deepsdf.sdf`` loads torch when
    asked for."""
    code = LOADED + """
import deepsdf, deepsdf.cli
deepsdf.cli.build_parser().format_help()
before = loaded('torch')['torch']
deepsdf.sdf
print(json.dumps({"before": before, "after": loaded('torch')['torch']}))
"""
    assert run_fresh(code, tmp_path) == {"before": False, "after": True}

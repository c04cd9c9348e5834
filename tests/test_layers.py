"""The layering of docs/architecture.md, checked on the source: every import (lazy ones inside
functions included) goes down the layers, never up or sideways into a workflow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The layers, lowest first: a module may import its own layer's modules and lower ones.
PREPROCESS_CONTRACT = {"contract", "errors", "paths", "validate", "provenance", "formats",
                       "manifest", "progress", "locks"}
MODEL = {"settings", "config", "decoder", "latents", "loss", "checkpoint", "original", "device", "data",
         "sample_store", "reconstruct", "mesh", "field", "metrics", "retrieval", "code_space",
         "frames", "sensing", "constraints", "observations", "refine", "pruning"}
EXPERIMENT = {"experiment", "outputs"}
WORKFLOWS = {"train", "train_log", "train_state", "inference", "evaluate", "completion",
             "interpolate", "export", "demo", "recipe",
             "experiment_report", "viewer", "report", "pictures", "explore"}
CLI = {"cli", "__main__", "__init__"}


def imports(path: Path, package: str) -> set:
    """Names of the modules of ``package`` that ``path`` imports (at any depth)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # from .x import y / from . import x
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.split(".")[0] == package:
                parts = node.module.split(".")
                if len(parts) > 1:
                    found.add(parts[1])
                else:
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == package and len(parts) > 1:
                    found.add(parts[1])
    return found


def modules(folder: str) -> dict:
    return {path.stem: path for path in sorted((ROOT / folder).glob("*.py"))}


def test_every_deepsdf_module_has_a_layer():
    found = set(modules("deepsdf")) | {"cli"}  # the command line is a package of step groups
    assert found == MODEL | EXPERIMENT | WORKFLOWS | CLI


def test_the_cli_step_groups_are_peers():
    """Each step group of the command line stands on the library and the shared options; no
    group imports another (``__init__`` gathers them)."""
    groups = modules("deepsdf/cli")
    assert {"options", "data_steps", "training_steps", "fitting_steps", "report_steps"} <= set(groups)
    for name, path in groups.items():
        siblings = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("deepsdf.cli."):
                siblings.add(node.module.split(".")[2])
        allowed = set(groups) - {"__init__"} if name == "__init__" else {"options"}
        assert siblings <= allowed, (name, siblings - allowed)


@pytest.mark.parametrize("name", sorted(MODEL))
def test_the_model_layer_imports_no_experiment_and_no_workflow(name):
    used = imports(modules("deepsdf")[name], "deepsdf")
    assert not used & (EXPERIMENT | WORKFLOWS | CLI), used


@pytest.mark.parametrize("name", sorted(EXPERIMENT))
def test_the_experiment_imports_only_the_model_layer(name):
    """The experiment layer (the experiment folder, the output folders' layouts) stands on the
    model layer; ``outputs`` on nothing of ``deepsdf`` at all."""
    used = imports(modules("deepsdf")[name], "deepsdf")
    allowed = (MODEL | {"outputs"}) if name == "experiment" else set()
    assert used <= allowed, used - allowed


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_workflows_never_import_the_cli(name):
    used = imports(modules("deepsdf")[name], "deepsdf")
    assert not used & CLI, used


@pytest.mark.parametrize("name", sorted(PREPROCESS_CONTRACT))
def test_the_data_contract_imports_only_the_contract(name):
    """The data contract (names, files, paths, validators, records, manifests) stands on its
    own; ``formats`` alone reaches the mesh loader, lazily, for a source mesh's frame."""
    used = imports(modules("preprocess")[name], "deepsdf_preprocess")
    allowed = PREPROCESS_CONTRACT | ({"mesh_io", "normalize"} if name == "formats" else set())
    assert used <= allowed, used - allowed


def test_contract_and_formats_form_no_cycle():
    assert "formats" not in imports(modules("preprocess")["contract"], "deepsdf_preprocess")


def test_the_original_formats_import_no_workflow():
    used = imports(modules("deepsdf")["original"], "deepsdf")
    assert not used & {"train", "export", "inference"}, used

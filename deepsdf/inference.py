"""Reconstructing a split with a trained experiment: codes, meshes, in the original layout.

::

    EXP/Reconstructions/<checkpoint>/Codes/<dataset>/<class>/<instance>.pth   (1, d) tensor
    EXP/Reconstructions/<checkpoint>/Meshes/<dataset>/<class>/<instance>.ply  normalized frame
    EXP/Reconstructions/<checkpoint>/MeshesOriginalFrame/<dataset>/<class>/<instance>.ply

``Meshes`` are in the normalized frame, as the original writes them (its evaluation maps them
back); ``MeshesOriginalFrame`` holds copies mapped back with the shape's
``NormalizationParameters``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from deepsdf_preprocess import formats
from deepsdf_preprocess.normalize import to_original
from deepsdf_preprocess.progress import progress_bar

from .checkpoint import CheckpointError, checkpoint_path, load_checkpoint, safe_load
from .config import TrainConfig
from .data import cache_folder, pack_split
from .decoder import Decoder
from .mesh import NoSurfaceError, code_mesh
from .reconstruct import SolverConfig, reconstruct_codes

__all__ = ["load_trained", "reconstruct_split", "ReconstructionReport", "output_paths",
           "write_code", "read_code", "write_mesh", "MESH_FORMATS", "check_mesh_format"]

logger = logging.getLogger(__name__)


def load_trained(experiment_dir, checkpoint="latest", *, device="cpu"):
    """(decoder in eval mode, config, payload) of an experiment's checkpoint.

    ``payload`` holds at least ``codes`` (training codes) and ``instance_ids``.  An experiment
    folder of the original release (``ModelParameters/<checkpoint>.pth`` and
    ``LatentCodes/<checkpoint>.pth`` beside its ``specs.json``) is read through
    :mod:`deepsdf.legacy` when this project's checkpoint is absent.
    """
    experiment_dir = Path(experiment_dir)
    ours = checkpoint_path(experiment_dir, checkpoint)
    legacy = experiment_dir / "ModelParameters" / f"{checkpoint}.pth"
    if not ours.is_file() and legacy.is_file():
        from .legacy import load_legacy_experiment

        config, decoder, table = load_legacy_experiment(experiment_dir, checkpoint)
        payload = {"codes": table.weight.detach(), "instance_ids": table.instance_ids,
                   "config": config.to_specs()}
        return decoder.to(device).eval(), config, payload
    payload = load_checkpoint(ours, map_location=device)
    from .config import parse_specs

    config = parse_specs(payload["config"])
    decoder = Decoder(config.decoder).to(device)
    decoder.load_state_dict(payload["decoder"])
    decoder.eval()
    return decoder, config, payload


def write_code(path, code: torch.Tensor) -> None:
    """Save a (d,) code as the original release's (1, d) ``.pth`` tensor, atomically."""
    with formats.atomic_path(path) as temporary:
        torch.save(code.detach().cpu().reshape(1, -1), temporary)


def read_code(path, latent_size: int) -> torch.Tensor:
    """A (d,) float32 code from a ``.pth`` file: this project's (1, d), the original's (1, d)
    or (1, 1, d), or a bare (d,) tensor.  Loaded without unpickling code.

    Raises
    ------
    CheckpointError
        Naming the file: missing, unreadable, not a tensor, or not ``latent_size`` values.
    """
    code = safe_load(path, what="code file")
    if not isinstance(code, torch.Tensor):
        raise CheckpointError(f"code file {path} holds a {type(code).__name__}, not a code "
                              "tensor")
    if code.numel() != latent_size or not code.is_floating_point():
        raise CheckpointError(f"code file {path} holds a {code.dtype} tensor of shape "
                              f"{tuple(code.shape)}; this model's codes have {latent_size} "
                              "floating-point values (CodeLength)")
    if not torch.isfinite(code).all():
        raise CheckpointError(f"code file {path} holds NaN or infinite values")
    return code.reshape(-1).float()


#: Mesh file suffixes :func:`write_mesh` writes.
MESH_FORMATS = (".ply", ".obj", ".off", ".stl", ".glb")


def check_mesh_format(path) -> Path:
    """``path`` if its suffix is a mesh format :func:`write_mesh` writes, else ValueError
    (call it before the work, not after)."""
    path = Path(path)
    if path.suffix.lower() not in MESH_FORMATS:
        raise ValueError(f"cannot write a mesh to {path.name}: the suffix must be one of "
                         f"{', '.join(MESH_FORMATS)}")
    return path


def write_mesh(path, mesh) -> None:
    """Export a mesh atomically, in the format of the path's suffix (:data:`MESH_FORMATS`)."""
    check_mesh_format(path)
    with formats.atomic_path(path) as temporary:
        mesh.export(temporary, file_type=Path(path).suffix.lstrip(".").lower())


def output_paths(experiment_dir, checkpoint, key: str) -> dict:
    """The code and mesh paths of instance ``dataset/class/instance``."""
    dataset, class_name, instance = formats.split_key(key)
    formats.check_name(str(checkpoint), "checkpoint")
    root = Path(experiment_dir) / "Reconstructions" / str(checkpoint)
    tail = Path(dataset) / class_name
    return {"code": root / "Codes" / tail / f"{instance}.pth",
            "mesh": root / "Meshes" / tail / f"{instance}.ply",
            "original": root / "MeshesOriginalFrame" / tail / f"{instance}.ply"}


@dataclass
class ReconstructionReport:
    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    no_surface: list = field(default_factory=list)
    unusable: dict = field(default_factory=dict)  # instance -> why it was not reconstructed
    point_passes: int = 0


def reconstruct_split(experiment_dir, split: dict, *, data_dir, solver: SolverConfig,
                      checkpoint="latest", resolution: int = 256, batch: int = 16,
                      skip: bool = False, device="cpu", progress: bool = True, cache=None
                      ) -> ReconstructionReport:
    """Fit codes for every instance of ``split`` and write codes and meshes.

    Shapes are fitted ``batch`` at a time.  With ``skip``, instances whose outputs all exist
    are left alone, so a long run resumes.  A code whose SDF never crosses zero on the grid is
    written without meshes and reported (a warning, not a failure).  Instances whose
    SdfSamples are missing or unusable are left out and named in ``report.unusable``; the
    rest are reconstructed.
    """
    decoder, config, payload = load_trained(experiment_dir, checkpoint, device=device)
    packed = pack_split(data_dir, split, skip_unusable=True,
                        cache_root=cache_folder(cache, experiment_dir=experiment_dir))
    report = ReconstructionReport(unusable=dict(packed.unusable))
    for key, reason in packed.unusable.items():
        logger.warning("%s: not reconstructed: %s", key, reason)
    todo = []
    for scene, key in enumerate(packed.instance_ids):
        paths = output_paths(experiment_dir, checkpoint, key)
        if skip and all(p.exists() for p in paths.values()):
            report.skipped.append(key)
        else:
            todo.append(scene)
    bar = progress_bar(len(todo), desc="reconstruct", unit="shape", enabled=progress,
                       log=logger)
    for start in range(0, len(todo), batch):
        scenes = todo[start:start + batch]
        result = reconstruct_codes(decoder, packed, scenes, solver, clamp=config.trained_clamp,
                                   latent_size=config.decoder.latent_size, device=device,
                                   candidates=payload["codes"] if solver.screen else None)
        report.point_passes += result.point_passes
        for row, scene in enumerate(scenes):
            key = packed.instance_ids[scene]
            _write(experiment_dir, checkpoint, key, result.codes[row], decoder, data_dir,
                   resolution, report, clamp=config.trained_clamp)
            bar.update(1)
    bar.close()
    return report


def _write(experiment_dir, checkpoint, key, code, decoder, data_dir, resolution, report, *,
           clamp: float):
    paths = output_paths(experiment_dir, checkpoint, key)
    write_code(paths["code"], code)
    try:
        mesh = code_mesh(decoder, code, resolution, clamp=clamp)
    except NoSurfaceError as error:
        logger.warning("%s: no surface (%s); code written, no mesh", key, error)
        report.no_surface.append(key)
        return
    offset, scale = formats.read_normalization(
        formats.key_paths(data_dir, key)[formats.NORMALIZATION_PARAMETERS])
    write_mesh(paths["mesh"], mesh)
    original = mesh.copy()
    original.vertices = to_original(mesh.vertices, offset, scale)
    write_mesh(paths["original"], original)
    report.written.append(key)


def split_of(config: TrainConfig, split_file=None) -> dict:
    """The split to reconstruct: ``split_file``, else the spec's TestSplit."""
    path = split_file or config.test_split
    if not path:
        raise ValueError("no split given and the spec has no TestSplit")
    return formats.read_split(path)

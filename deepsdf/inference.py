"""Reconstructing a split with a trained experiment: codes, meshes, in the original layout.

::

    EXP/Reconstructions/<checkpoint>/Codes/<dataset>/<class>/<instance>.pth   (1, d) tensor
    EXP/Reconstructions/<checkpoint>/Meshes/<dataset>/<class>/<instance>.ply  normalized frame
    EXP/Reconstructions/<checkpoint>/MeshesOriginalFrame/<dataset>/<class>/<instance>.ply

``Meshes`` are in the normalized frame, as the original writes them (its evaluation maps them
back); ``MeshesOriginalFrame`` holds copies mapped back with the shape's
``NormalizationParameters``.  With ``refine`` (test-time refinement, :mod:`deepsdf.refine`),
each shape's refined result is written beside, under ``Refined/``: the same three folders, and
``Refined/Decoders/<dataset>/<class>/<instance>.pt``, that shape's own decoder weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

from deepsdf_preprocess.normalize import to_original
from deepsdf_preprocess.progress import progress_bar

from .data import cache_folder, pack_split
from .experiment import Experiment, read_code, write_code, write_decoder, write_mesh
from .mesh import NoSurfaceError, check_grid_memory
from .outputs import fit_outputs
from .pruning import observed_mesh
from .reconstruct import fit_codes
from .settings import MESH_RESOLUTION, PRUNE, RECONSTRUCT_BATCH, RECONSTRUCT_STARTS

__all__ = ["load_trained", "reconstruct_split", "ReconstructionReport"]

logger = logging.getLogger(__name__)


def load_trained(experiment_dir, checkpoint="latest", *, device="cpu"):
    """(decoder in eval mode, config, payload) of an experiment's checkpoint: the tuple form
    of :attr:`Experiment.model <deepsdf.experiment.Experiment.model>`.

    ``payload`` holds at least ``codes`` (training codes) and ``instance_ids``.  An experiment
    folder of the original release (``ModelParameters/<checkpoint>.pth`` and
    ``LatentCodes/<checkpoint>.pth`` beside its ``specs.json``) is read through
    :mod:`deepsdf.original` when this project's checkpoint is absent.
    """
    model = Experiment(experiment_dir, checkpoint=checkpoint, device=device).model
    return model.decoder, model.config, model.payload


@dataclass
class ReconstructionReport:
    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    no_surface: list = field(default_factory=list)
    unusable: dict = field(default_factory=dict)  # instance -> why it was not reconstructed
    point_passes: int = 0
    refined: list = field(default_factory=list)  # instances refined (written under Refined/)
    refined_no_surface: list = field(default_factory=list)  # ... whose refined field has none
    pruned: dict = field(default_factory=dict)  # instance -> pieces its samples ruled out


def reconstruct_split(experiment, split: dict, *, solver=RECONSTRUCT_STARTS, data_dir=None,
                      checkpoint=None, resolution: int = MESH_RESOLUTION,
                      batch: int = RECONSTRUCT_BATCH,
                      skip: bool = False, device=None, progress: bool = True, cache=None,
                      refine=None, prune=PRUNE) -> ReconstructionReport:
    """Fit codes for every instance of ``split`` and write codes and meshes.

    ``experiment`` is an :class:`~deepsdf.experiment.Experiment` or a folder (opened at
    ``checkpoint`` on ``device``, its data at ``data_dir`` or the spec's ``DataSource``).
    ``solver``: a :class:`~deepsdf.settings.SolverConfig` (one start; ``adam`` is the
    reference's) or a :class:`~deepsdf.settings.StartedFit` (several starts from the training
    codes, the default; :func:`~deepsdf.reconstruct.fit_codes`).
    Shapes are fitted ``batch`` at a time.  With ``skip``, instances whose outputs are
    recorded as made from this very checkpoint file with these settings, and unchanged since,
    are left alone, so a long run resumes; any other is redone (the log says why).  A code
    whose SDF never crosses zero on the grid is
    written without meshes and reported (a warning, not a failure).  Instances whose
    SdfSamples are missing or unusable are left out and named in ``report.unusable``; the
    rest are reconstructed.

    ``refine`` (a :class:`~deepsdf.refine.RefineConfig`): after the latent fit, refine each
    shape's decoder and code (:func:`~deepsdf.refine.refine_shape`) and write the result under
    ``Refined/`` beside the latent-only one, which stays as it is.  A shape skipped with
    ``skip`` that has no refined result yet (no refined decoder file) is refined from its
    written code.

    ``prune`` (a :class:`~deepsdf.settings.PruneConfig`, or None to keep every piece): the
    connected pieces of each mesh that the shape's own SdfSamples rule out (certainly empty
    space, :mod:`deepsdf.pruning`) are dropped; ``report.pruned`` counts them per shape.
    """
    check_grid_memory(resolution)
    experiment = Experiment.of(experiment, checkpoint=checkpoint, data=data_dir, device=device)
    model, config = experiment.model, experiment.config
    packed = pack_split(experiment.data_dir, split, skip_unusable=True,
                        cache_root=cache_folder(cache, experiment=experiment))
    report = ReconstructionReport(unusable=dict(packed.unusable))
    for key, reason in packed.unusable.items():
        logger.warning("%s: not reconstructed: %s", key, reason)
    settings = {"solver": _plain(solver), "resolution": resolution,
                "prune": None if prune is None else _plain(prune)}
    write = partial(_write, experiment, packed=packed, prune=prune, report=report,
                    resolution=resolution)
    todo, redone, unrefined = [], {}, []
    for scene, key in enumerate(packed.instance_ids):
        stale = experiment.reconstruction_stale(key, settings) if skip else "no --skip"
        if stale is None:
            report.skipped.append(key)
            if refine is not None and not refined_outputs(experiment, key)["decoder"].is_file():
                unrefined.append((scene, read_code(experiment.reconstruction(key)["code"],
                                                   model.codes.shape[1])))
        else:
            todo.append(scene)
            if skip and any(p.exists() for p in experiment.reconstruction(key).values()):
                redone[key] = stale
    if redone:
        key, reason = next(iter(redone.items()))
        logger.warning("redoing %d reconstruction(s) that are not this checkpoint's with these "
                       "settings (e.g. %s: %s)", len(redone), key, reason)
    bar = progress_bar(len(todo), desc="reconstruct", unit="shape", enabled=progress,
                       log=logger)
    for start in range(0, len(todo), batch):
        scenes = todo[start:start + batch]
        result = fit_codes(model.decoder, packed, scenes, solver, clamp=config.clamp,
                           train_codes=model.codes, device=experiment.device)
        report.point_passes += result.point_passes
        for row, scene in enumerate(scenes):
            key = packed.instance_ids[scene]
            write(scene, result.codes[row])
            experiment.record_reconstruction(key, settings)
            if refine is not None:
                _refine(experiment, packed, scene, result.codes[row], refine, write,
                        report)
            bar.update(1)
    bar.close()
    for scene, code in unrefined:
        _refine(experiment, packed, scene, code.to(experiment.device), refine, write,
                        report)
    return report


def refined_outputs(experiment: Experiment, key: str) -> dict:
    """``{"code", "mesh", "original", "decoder"}`` paths of instance ``key``'s refined result
    under ``EXP/Reconstructions/<checkpoint>/Refined``."""
    under = ("Reconstructions", experiment.checkpoint, "Refined")
    paths = fit_outputs(experiment.tree, key, under=under)
    code = paths["code"]
    paths["decoder"] = experiment.tree.file(*under, "Decoders", *code.relative_to(
        experiment.tree.folder(*under, "Codes")).with_suffix(".pt").parts)
    return paths


def _refine(experiment: Experiment, packed, scene: int, code, refine, write, report):
    """Refine one shape and write it under ``Refined/`` (the latent result is left alone)."""
    from .refine import refine_shape

    key = packed.instance_ids[scene]
    refined = refine_shape(experiment.model.decoder, packed, scene, code, refine,
                           clamp=experiment.config.clamp)
    paths = refined_outputs(experiment, key)
    write_decoder(paths["decoder"], refined.decoder)
    report.refined.append(key)
    write(scene, refined.code, paths=paths, decoder=refined.decoder, written=[],
          no_surface=report.refined_no_surface)


def _plain(settings) -> dict:
    """A settings dataclass as JSON-ready values (what a record compares)."""
    import dataclasses
    import json

    return json.loads(json.dumps(dataclasses.asdict(settings), default=str))


def _write(experiment: Experiment, scene: int, code, *, packed, prune, report, resolution,
           paths=None, decoder=None, written=None, no_surface=None):
    """Write shape ``scene``'s code and meshes (its pieces its samples rule out dropped)."""
    key = packed.instance_ids[scene]
    paths = experiment.reconstruction(key) if paths is None else paths
    write_code(paths["code"], code)
    try:
        pruned = observed_mesh(experiment.model.decoder if decoder is None else decoder, code,
                               packed.positive_rows(scene) if prune is not None else None,
                               resolution, clamp=experiment.config.trained_clamp,
                               config=prune)
    except NoSurfaceError as error:
        logger.warning("%s: no surface (%s); code written, no mesh", key, error)
        for stale in (paths["mesh"], paths["original"]):  # an earlier run's, not this code's
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()
        (report.no_surface if no_surface is None else no_surface).append(key)
        return
    mesh = pruned.mesh
    if pruned.dropped:
        report.pruned[key] = pruned.dropped
    offset, scale = experiment.data.instance(key).normalization()
    write_mesh(paths["mesh"], mesh)
    original = mesh.copy()
    original.vertices = to_original(mesh.vertices, offset, scale)
    write_mesh(paths["original"], original)
    (report.written if written is None else written).append(key)

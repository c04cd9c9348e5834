"""Walking the shape space with a trained model: the codes of a path or of random draws
(the math is :mod:`deepsdf.code_space`: ``lerp``, ``slerp``, ``sample_codes``), their meshes
and pictures.

- :func:`resolve_code`: a code from a training instance id or a ``.pth`` code file.
- :func:`code_meshes`: the meshes of codes (a code without a surface gives ``None``).
- :func:`interpolation_pictures`: meshes, a strip and a GIF of a path, or a grid of draws.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from deepsdf_preprocess.errors import InputError
from deepsdf_preprocess.validate import require_memory

from .settings import INTERPOLATION_RESOLUTION, INTERPOLATION_STEPS, PICTURE_SIZE

from .code_space import INTERPOLATIONS, lerp, sample_codes, slerp
from .device import module_device
from .outputs import InterpolationFolder
from .mesh import NoSurfaceError, code_mesh

__all__ = ["lerp", "slerp", "sample_codes", "resolve_code", "code_meshes",
           "interpolation_pictures", "INTERPOLATIONS"]

logger = logging.getLogger(__name__)


def resolve_code(spec: str, payload: dict) -> torch.Tensor:
    """(d,) code named by ``spec``: a training instance id (``dataset/class/instance``, or an
    unambiguous suffix such as ``class/instance``) of the checkpoint ``payload``, or a
    ``.pth`` code file (a reconstructed or completed shape)."""
    path = Path(spec)
    if path.suffix == ".pth" and path.is_file():
        from .experiment import read_code

        return read_code(path, payload["codes"].shape[1])
    if path.suffix == ".pth":
        raise InputError(f"code file {spec} does not exist")
    from .latents import UnknownInstance, find_instance

    try:
        row = find_instance(payload["instance_ids"], spec)
    except UnknownInstance as error:
        raise InputError(f"{spec!r} is neither a training instance of this checkpoint nor a "
                         f".pth code file{error.hint}") from None
    return payload["codes"][row].detach().float().cpu()


def code_meshes(decoder, codes, *, resolution: int = INTERPOLATION_RESOLUTION, device=None,
                clamp: float = 0.1) -> list:
    """Normalized-frame meshes of (k, d) codes; ``None`` (with a warning) for a code whose
    SDF has no zero crossing.  ``clamp``: the model's training clamp."""
    device = module_device(decoder, device)
    meshes = []
    for index, code in enumerate(codes):
        try:
            meshes.append(code_mesh(decoder, code.to(device), resolution, clamp=clamp))
        except NoSurfaceError as error:
            logger.warning("code %d has no surface (%s)", index, error)
            meshes.append(None)
    return meshes


def interpolation_pictures(experiment, out_dir, *, start=None, end=None,
                           steps: int = INTERPOLATION_STEPS,
                           mode: str = "slerp", random: int | None = None,
                           resolution: int = INTERPOLATION_RESOLUTION,
                           size: int = PICTURE_SIZE, renderer: str = "auto",
                           checkpoint=None, seed: int = 0, device=None) -> list:
    """Meshes and pictures along an interpolation (or of random codes); returns the paths.

    Interpolation writes ``OUT/step_XX.ply``, ``OUT/strip.png`` and ``OUT/interpolation.gif``;
    random mode (``random`` codes) writes ``OUT/sample_XX.ply`` and ``OUT/grid.png``
    (:class:`deepsdf.outputs.InterpolationFolder`).
    Meshes are in the normalized frame; a step without a surface is drawn blank (and has no
    mesh file: the step and sample meshes of an earlier run in OUT are removed first).
    ``experiment`` is an :class:`~deepsdf.experiment.Experiment` or a folder.
    """
    from .experiment import Experiment, write_mesh
    from .pictures import default_camera, render_meshes, save_gif, save_png, tile

    experiment = Experiment.of(experiment, checkpoint=checkpoint, device=device)
    model, config = experiment.model, experiment.config
    decoder, device, payload = model.decoder, experiment.device, model.payload
    count = random if random is not None else steps
    if random is not None and random < 1:
        raise InputError(f"random needs a positive count of codes, got {random}")
    # Pictures: each (size^2 * 3 bytes) held with its copy in the strip or grid and the GIF
    # frames; meshes: about 100 bytes per grid cell of a face (resolution^2) each; the codes.
    require_memory(count * (9 * size * size + 100 * resolution * resolution
                            + 16 * model.codes.shape[1]),
                   what=f"{count} meshes at {resolution}^3 and their {size} x {size} pictures",
                   hint="ask for fewer steps or codes, or smaller pictures")
    out = InterpolationFolder(out_dir)
    out.tree.folder()  # a wrong kind of path: one line before the work
    if random is not None:
        codes, name = sample_codes(payload["codes"], random, seed=seed), "sample"
    else:
        if not start or not end:
            raise InputError("give both ends, start and end (or a random count)")
        if mode not in INTERPOLATIONS:
            raise InputError(f"unknown interpolation {mode!r}; choose one of {INTERPOLATIONS}")
        a, b = resolve_code(start, payload), resolve_code(end, payload)
        codes, name = (slerp if mode == "slerp" else lerp)(a, b, steps), "step"
    meshes = code_meshes(decoder, codes, resolution=resolution, device=device,
                         clamp=config.trained_clamp)
    # an earlier run's meshes and pictures go; files this command did not write are refused
    out.start_run(checkpoint=experiment.checkpoint_identity, experiment=str(experiment.folder),
                  ends=None if random is not None else [start, end])
    written = []
    for index, mesh in enumerate(meshes):
        if mesh is not None:
            path = out.mesh(name, index)
            write_mesh(path, mesh)
            written.append(path)
    images = render_meshes(meshes, default_camera(size), renderer=renderer)
    if random is not None:
        written.append(save_png(out.grid, tile(images, columns=min(4, len(images)))))
    else:
        written.append(save_png(out.strip, tile(images)))
        written.append(save_gif(out.animation, images))
    return written

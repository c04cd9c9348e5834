"""From a decoder and a code to a triangle mesh: SDF on a grid, then marching cubes."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["sdf_grid", "extract_mesh", "NoSurfaceError"]


class NoSurfaceError(ValueError):
    """The SDF has no zero crossing on the grid (all inside or all outside)."""


@torch.no_grad()
def sdf_grid(decoder, code: torch.Tensor, resolution: int, *, chunk: int = 65536) -> np.ndarray:
    """Decoder values on the grid ``linspace(-1, 1, resolution)`` per axis.

    Parameters
    ----------
    decoder : Decoder (put in eval mode by the caller)
    code : (d,) tensor, on the decoder's device
    resolution : int
        Points per axis; spacing ``2 / (resolution - 1)``.

    Returns
    -------
    (resolution, resolution, resolution) float32 array, indexed ``[i, j, k]`` for
    ``(x_i, y_j, z_k)``.  Indices are computed in integers.
    """
    if resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    device = code.device
    axis = torch.linspace(-1.0, 1.0, resolution, device=device)
    values = torch.empty(resolution ** 3, device=device)
    index = torch.arange(resolution ** 3, device=device)
    for start in range(0, resolution ** 3, chunk):
        flat = index[start:start + chunk]
        i = torch.div(flat, resolution * resolution, rounding_mode="floor")
        j = torch.div(flat, resolution, rounding_mode="floor") % resolution
        k = flat % resolution
        points = torch.stack([axis[i], axis[j], axis[k]], dim=1)
        values[start:start + chunk] = decoder(code.expand(len(points), -1), points).squeeze(1)
    return values.reshape(resolution, resolution, resolution).cpu().numpy()


def extract_mesh(values: np.ndarray, *, level: float = 0.0):
    """Marching cubes (scikit-image) on a grid over [-1, 1]^3.

    Returns
    -------
    trimesh.Trimesh in the normalized frame.

    Raises
    ------
    NoSurfaceError
        When the values never cross ``level``.
    """
    import trimesh
    from skimage.measure import marching_cubes

    if not (values.min() < level < values.max()):
        raise NoSurfaceError(f"the SDF does not cross {level} on the grid (range "
                             f"{values.min():.4g} .. {values.max():.4g})")
    resolution = values.shape[0]
    spacing = 2.0 / (resolution - 1)
    vertices, faces, _, _ = marching_cubes(values, level=level, spacing=(spacing,) * 3)
    return trimesh.Trimesh(vertices - 1.0, faces, process=False)

"""From a decoder and a code to a triangle mesh: SDF on a grid, then marching cubes.

The grid is ``linspace(-1, 1, N)`` per axis (spacing ``2 / (N - 1)``), indexed ``[i, j, k]``
for ``(x_i, y_j, z_k)``; every index computation is in integers (the original's ``/`` on
integer tensors became true division in newer PyTorch and corrupts two axes).

:func:`coarse_to_fine_grid` evaluates the field on a coarse sub-lattice of that grid first and
refines only the cells that may hold the surface: a cell whose corner values all exceed
``margin`` times its half-diagonal in magnitude cannot contain a zero of a 1-Lipschitz field
(every point of a cell lies within a half-diagonal of one of its corners), so its points are
filled with its sign and never evaluated.  Cells that do hold the surface end with exactly the
dense grid's values at every corner, so marching cubes returns the dense grid's mesh.
A trained decoder is only roughly 1-Lipschitz and is trained on distances clamped at delta
(0.1): keep the coarsest cell's diagonal below delta (:func:`coarse_strides` does) and the
margin at 1.5 or more.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from deepsdf_preprocess.errors import DeepSDFError, InputError
from deepsdf_preprocess import validate
from deepsdf_preprocess.validate import available_memory, require_memory

from .device import module_device
from .settings import MESH_RESOLUTION

__all__ = ["NoSurfaceError", "code_mesh", "grid_axis", "decoder_field", "dense_grid",
           "coarse_strides", "coarse_to_fine_grid", "extract_mesh", "GridResult",
           "check_grid_memory", "GRID_BYTES_PER_POINT"]

#: Peak memory per grid point of :func:`code_mesh` (the float32 grid, its coarse-to-fine
#: bookkeeping and marching cubes): 18 to 21 bytes measured at 256^3 and 384^3.
GRID_BYTES_PER_POINT = 21


class NoSurfaceError(DeepSDFError, ValueError):
    """The SDF has no zero crossing on the grid (all inside or all outside)."""


def grid_axis(resolution: int) -> np.ndarray:
    """(resolution,) float64 ``linspace(-1, 1, resolution)``."""
    if resolution < 2:
        raise InputError(f"resolution must be at least 2, got {resolution}")
    return np.linspace(-1.0, 1.0, resolution)


def check_grid_memory(resolution: int) -> None:
    """Refuse a grid whose meshing would not fit in the memory available now (one line
    naming the largest resolution that fits), before any work is done."""
    grid_axis(resolution)
    largest = resolution
    while largest > 2 and GRID_BYTES_PER_POINT * largest ** 3 > 0.9 * available_memory():
        largest = int(largest * 0.9)
    require_memory(GRID_BYTES_PER_POINT * resolution ** 3,
                   what=f"meshing at resolution {resolution} ({resolution}^3 grid points)",
                   hint=f"use a resolution of at most {largest}")


def decoder_field(decoder, code: torch.Tensor, *, chunk: int = 65536):
    """A field ``f(points (m, 3) float32 array) -> (m,) float32 array`` from a decoder and a
    code (d,), evaluated without gradients in chunks on the decoder's device (the code is moved
    there)."""
    device = module_device(decoder)
    code = code.to(device)

    @torch.no_grad()
    def field(points: np.ndarray) -> np.ndarray:
        out = np.empty(len(points), dtype=np.float32)
        for start in range(0, len(points), chunk):
            batch = torch.from_numpy(np.ascontiguousarray(points[start:start + chunk],
                                                          dtype=np.float32)).to(device)
            out[start:start + chunk] = decoder(code.expand(len(batch), -1),
                                               batch).squeeze(1).float().cpu().numpy()
        return out

    return field


def _points(axis: np.ndarray, i, j, k) -> np.ndarray:
    return np.stack([axis[i], axis[j], axis[k]], axis=1).astype(np.float32)


def dense_grid(field, resolution: int, *, chunk: int = 1 << 20) -> np.ndarray:
    """Field values on every grid point: (N, N, N) float32."""
    axis = grid_axis(resolution)
    values = np.empty(resolution ** 3, dtype=np.float32)
    for start in range(0, resolution ** 3, chunk):
        flat = np.arange(start, min(start + chunk, resolution ** 3), dtype=np.int64)
        i, rest = np.divmod(flat, resolution * resolution)
        j, k = np.divmod(rest, resolution)
        values[flat] = field(_points(axis, i, j, k))
    return values.reshape(resolution, resolution, resolution)


def coarse_strides(resolution: int, *, delta: float = 0.1) -> list:
    """Power-of-two strides, coarsest first and ending at 1, with the coarsest cell's
    diagonal ``sqrt(3) * stride * 2 / (N - 1)`` below ``delta``."""
    grid_axis(resolution)  # raises for a resolution below 2
    spacing = 2.0 / (resolution - 1)
    stride = 1
    while np.sqrt(3) * stride * 2 * spacing < delta and stride * 2 < resolution - 1:
        stride *= 2
    strides = []
    while stride >= 1:
        strides.append(stride)
        stride //= 2
    return strides


class GridResult(np.ndarray):
    """A (N, N, N) float32 grid that also carries ``evaluated``: how many points the field
    was called on (coarse levels included)."""

    evaluated: int = 0


def _lattice(resolution: int, stride: int) -> np.ndarray:
    """Grid indices of a level: every ``stride``-th index, and always the last one."""
    lattice = np.arange(0, resolution, stride)
    if lattice[-1] != resolution - 1:
        lattice = np.append(lattice, resolution - 1)
    return lattice


def coarse_to_fine_grid(field, resolution: int, *, strides=None, margin: float = 1.5,
                        delta: float = 0.1) -> GridResult:
    """The dense grid's values where the surface may be, the right sign elsewhere.

    Parameters
    ----------
    field : callable
        ``(m, 3) float32 points -> (m,) float32`` (see :func:`decoder_field`).
    resolution : int
        N, the finest grid.
    strides : list of int, optional
        Powers of two, coarsest first, ending at 1 (default :func:`coarse_strides`).
    margin : float
        A cell is refined when the smallest ``|value|`` at its corners is at most ``margin``
        times its half-diagonal.

    Returns
    -------
    GridResult
        (N, N, N) float32: exact field values at every corner of every cell the surface may
        cross, and ``+-(margin * half-diagonal)`` of the enclosing coarse cell elsewhere (with
        the cell's sign).  ``.evaluated`` counts the field evaluations.
    """
    strides = list(strides) if strides is not None else coarse_strides(resolution, delta=delta)
    if strides[-1] != 1 or any(a != 2 * b for a, b in zip(strides, strides[1:])):
        raise InputError(f"strides must halve down to 1, got {strides}")
    axis = grid_axis(resolution)
    spacing = 2.0 / (resolution - 1)
    values = np.full((resolution,) * 3, np.nan, dtype=np.float32)
    evaluated = 0

    def evaluate(i, j, k):
        nonlocal evaluated
        todo = np.isnan(values[i, j, k])
        i, j, k = i[todo], j[todo], k[todo]
        if len(i):
            values[i, j, k] = field(_points(axis, i, j, k))
            evaluated += len(i)

    lattice = _lattice(resolution, strides[0])
    i, j, k = (g.ravel() for g in np.meshgrid(lattice, lattice, lattice, indexing="ij"))
    evaluate(i, j, k)
    n = len(lattice) - 1
    cells = np.stack([g.ravel() for g in np.meshgrid(*(np.arange(n),) * 3, indexing="ij")], 1)
    for level, stride in enumerate(strides):
        lattice = _lattice(resolution, stride)
        low, high = lattice[cells], lattice[cells + 1]  # (c, 3) corner indices
        corners = np.stack([values[np.where(c[0], high[:, 0], low[:, 0]),
                                   np.where(c[1], high[:, 1], low[:, 1]),
                                   np.where(c[2], high[:, 2], low[:, 2])]
                            for c in itertools.product((0, 1), repeat=3)], axis=1)
        half_diagonal = 0.5 * spacing * np.linalg.norm((high - low).astype(float), axis=1)
        refine = np.abs(corners).min(axis=1) <= margin * half_diagonal
        _fill(values, lattice, cells[~refine],
              np.sign(corners[~refine, 0]) * margin * half_diagonal[~refine])
        if stride == 1:
            break
        finer = _lattice(resolution, stride // 2)
        position = np.searchsorted(finer, lattice)  # where each coarse index sits in finer
        kept = cells[refine]
        children = []
        for offset in itertools.product((0, 1), repeat=3):
            child = position[kept] + np.array(offset)
            inside = np.all(child < position[kept + 1], axis=1)
            children.append(child[inside])
        cells = np.concatenate(children) if children else np.zeros((0, 3), int)
        low, high = finer[cells], finer[cells + 1]
        for c in itertools.product((0, 1), repeat=3):
            evaluate(np.where(c[0], high[:, 0], low[:, 0]), np.where(c[1], high[:, 1], low[:, 1]),
                     np.where(c[2], high[:, 2], low[:, 2]))
    result = values.view(GridResult)
    result.evaluated = evaluated
    return result


def _fill(values, lattice, cells, fill) -> None:
    """Give the unevaluated points of whole cells their cell's value (sign shared by all
    corners).  A point on a lattice plane belongs to the cell that starts there."""
    n = len(lattice) - 1
    table = np.full((n, n, n), np.nan, dtype=np.float32)
    table[cells[:, 0], cells[:, 1], cells[:, 2]] = fill
    owner = np.clip(np.searchsorted(lattice, np.arange(values.shape[0]), side="right") - 1,
                    0, n - 1)
    candidate = table[np.ix_(owner, owner, owner)]
    todo = np.isnan(values) & ~np.isnan(candidate)
    values[todo] = candidate[todo]


def extract_mesh(values: np.ndarray, *, level: float = 0.0, offset=None, scale=None):
    """Marching cubes (scikit-image) on a grid over [-1, 1]^3.

    Parameters
    ----------
    values : (N, N, N) array
    offset, scale : optional
        NormalizationParameters: when given, vertices are mapped to the original frame.

    Returns
    -------
    trimesh.Trimesh, normalized frame (or original, with ``offset`` and ``scale``).

    Raises
    ------
    NoSurfaceError
        When the values never cross ``level`` (instead of scikit-image's own error).
    """
    import trimesh
    from skimage.measure import marching_cubes

    if offset is not None or scale is not None:
        if offset is None or scale is None:
            raise InputError("extract_mesh: give both offset and scale (NormalizationParameters)"
                             " or neither")
        # A negative scale mirrors the mesh, 0 or NaN collapses or poisons it: refuse them.
        validate.normalization(offset, scale, source="extract_mesh")
    values = np.asarray(values, dtype=np.float32)
    if np.isnan(values).any():
        raise InputError("the grid has unfilled (NaN) values")
    if not (values.min() < level < values.max()):
        raise NoSurfaceError(f"the SDF does not cross {level} on the grid (range "
                             f"{values.min():.4g} .. {values.max():.4g})")
    spacing = 2.0 / (values.shape[0] - 1)
    vertices, faces, _, _ = marching_cubes(values, level=level, spacing=(spacing,) * 3)
    vertices = vertices - 1.0
    if offset is not None and scale is not None:
        from deepsdf_preprocess.normalize import to_original

        vertices = to_original(vertices, offset, scale)
    return trimesh.Trimesh(vertices, faces, process=False)


def code_mesh(decoder, code: torch.Tensor, resolution: int = MESH_RESOLUTION, *,
              clamp: float = 0.1,
              dense: bool = False, offset=None, scale=None):
    """The mesh of one code: coarse-to-fine grid (every grid point with ``dense``), then
    marching cubes; normalized frame, or the original one given a shape's NormalizationParameters
    ``offset`` and ``scale``.

    ``clamp`` is the model's training clamp (``config.trained_clamp``): the coarse cells stay
    below it (:func:`coarse_strides`).  Raises :class:`NoSurfaceError` when the code's SDF does not
    cross zero on the grid, and :class:`InputError` before any work when the grid would not fit
    in memory (:func:`check_grid_memory`).
    """
    check_grid_memory(resolution)
    field = decoder_field(decoder, code)
    grid = (dense_grid(field, resolution) if dense
            else coarse_to_fine_grid(field, resolution, delta=clamp))
    return extract_mesh(grid, offset=offset, scale=scale)

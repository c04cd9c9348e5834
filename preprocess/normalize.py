"""Normalization to the unit sphere, with the original release's parameters.

``normalized = (original + offset) * scale`` and ``original = normalized / scale - offset``.
"""

from __future__ import annotations

import numpy as np
from .errors import InputError

__all__ = ["normalization_parameters", "to_normalized", "to_original", "REFERENCE_BUFFER"]

#: The farthest vertex lands at radius ``1 / REFERENCE_BUFFER``.
REFERENCE_BUFFER = 1.03


def normalization_parameters(vertices, faces=None, *, buffer: float = REFERENCE_BUFFER):
    """Offset and scale that centre the bounding box and fit the mesh in the unit sphere.

    Parameters
    ----------
    vertices : (v, 3) float, original frame
    faces : (f, 3) int, optional
        When given, only vertices referenced by a face count (stray vertices are ignored).
    buffer : float, keyword-only
        The farthest used vertex ends at radius ``1 / buffer`` (reference 1.03).

    Returns
    -------
    offset : (3,) float64
        Minus the bounding-box centre.
    scale : float
        ``1 / (buffer * max |v + offset|)``.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    if faces is not None:
        vertices = vertices[np.unique(np.asarray(faces))]
    if len(vertices) == 0:
        raise InputError("cannot normalize a mesh without vertices")
    offset = -0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    radius = np.linalg.norm(vertices + offset, axis=1).max()
    if not radius > 0:
        raise InputError("cannot normalize a mesh whose vertices all coincide")
    return offset, float(1.0 / (buffer * radius))


def to_normalized(points, offset, scale):
    """(n, 3) original-frame points to the normalized frame."""
    return (np.asarray(points) + np.asarray(offset)) * np.asarray(scale).reshape(())


def to_original(points, offset, scale):
    """(n, 3) normalized-frame points back to the original frame."""
    return np.asarray(points) / np.asarray(scale).reshape(()) - np.asarray(offset)

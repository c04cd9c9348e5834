"""Frames for shape completion: the similarity from a sensor's world frame to the model frame
(the normalized frame of the training data), and the 4x4 matrix files that give one.

``x_model = scale * R @ x_world + t``; normals are rotated only, distances multiply by
``scale`` (see :mod:`deepsdf.observations` for the whole completion input path).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepsdf_preprocess.pinhole import is_rotation
from deepsdf_preprocess.errors import InputError

__all__ = ["Similarity", "read_matrix"]


@dataclass(frozen=True)
class Similarity:
    """``x_model = scale * rotation @ x_world + translation``."""

    rotation: np.ndarray  # (3, 3) proper rotation
    translation: np.ndarray  # (3,)
    scale: float

    def __post_init__(self):
        rotation = np.asarray(self.rotation, dtype=np.float64)
        if not is_rotation(rotation):
            raise InputError("the similarity's rotation is not a proper rotation matrix")
        if not self.scale > 0:
            raise InputError(f"the similarity's scale must be positive, got {self.scale}")
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation",
                           np.asarray(self.translation, dtype=np.float64).reshape(3))
        object.__setattr__(self, "scale", float(self.scale))

    @classmethod
    def identity(cls) -> "Similarity":
        return cls(np.eye(3), np.zeros(3), 1.0)

    @classmethod
    def from_normalization(cls, offset, scale) -> "Similarity":
        """The map original frame -> normalized frame, ``(x + offset) * scale``."""
        return cls(np.eye(3), np.asarray(offset, dtype=np.float64) * float(scale), float(scale))

    @classmethod
    def from_matrix(cls, matrix) -> "Similarity":
        """From a (4, 4) matrix ``[[s R, t], [0, 0, 0, 1]]``."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.shape != (4, 4) or not np.allclose(matrix[3], [0, 0, 0, 1]):
            raise InputError("a similarity matrix must be (4, 4) with last row 0 0 0 1")
        determinant = np.linalg.det(matrix[:3, :3])
        if not determinant > 0:
            raise InputError("the similarity matrix must have a positive determinant")
        scale = float(np.cbrt(determinant))
        return cls(matrix[:3, :3] / scale, matrix[:3, 3], scale)

    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous matrix of the map."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.scale * self.rotation
        matrix[:3, 3] = self.translation
        return matrix

    def points(self, points) -> np.ndarray:
        """(n, 3) world points to the model frame."""
        return self.scale * np.asarray(points, dtype=np.float64) @ self.rotation.T \
            + self.translation

    def inverse_points(self, points) -> np.ndarray:
        """(n, 3) model-frame points back to the world frame."""
        return ((np.asarray(points, dtype=np.float64) - self.translation) / self.scale) \
            @ self.rotation

    def directions(self, vectors) -> np.ndarray:
        """(n, 3) world directions (normals) to the model frame (rotated, not scaled)."""
        return np.asarray(vectors, dtype=np.float64) @ self.rotation.T


def read_matrix(path, shape: tuple) -> np.ndarray:
    """A float64 matrix of ``shape`` from a text file (whitespace-separated) or ``.npy``.

    Raises
    ------
    ValueError
        One line naming the file: missing, unreadable, wrong shape, or not finite.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"matrix file {path} does not exist")
    try:
        matrix = np.load(path) if path.suffix == ".npy" else np.loadtxt(path)
        matrix = np.asarray(matrix, dtype=np.float64)
    except Exception as error:  # parse errors, pickled or corrupt files
        raise InputError(f"cannot read a matrix from {path}: {type(error).__name__}: "
                         f"{error}") from error
    if matrix.shape != tuple(shape):
        raise InputError(f"{path}: expected a {shape[0]}x{shape[1]} matrix, got shape "
                         f"{matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise InputError(f"{path}: the matrix holds NaN or infinite values")
    return matrix

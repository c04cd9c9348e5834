"""Frames for shape completion: the similarity from a sensor's world frame to the model frame
(the normalized frame of the training data), and the 4x4 matrix files that give one.

``x_model = scale * R @ x_world + t``; normals are rotated only, distances multiply by
``scale`` (see :mod:`deepsdf.observations` for the whole completion input path).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepsdf_preprocess import validate
from deepsdf_preprocess.errors import InputError

__all__ = ["Similarity", "read_matrix", "read_intrinsics", "read_pose", "read_similarity"]


@dataclass(frozen=True)
class Similarity:
    """``x_model = scale * rotation @ x_world + translation``."""

    rotation: np.ndarray  # (3, 3) proper rotation
    translation: np.ndarray  # (3,)
    scale: float

    def __post_init__(self):
        pose = np.eye(4)
        pose[:3, :3] = validate.numeric_array(self.rotation, source="the similarity",
                                              field="rotation", shape=(3, 3))
        rotation = validate.rigid_pose(pose, source="the similarity", field="rotation")[:3, :3]
        translation = validate.numeric_array(self.translation, source="the similarity",
                                             field="translation").reshape(-1)
        if translation.size != 3:
            raise InputError(f"the similarity's translation holds {translation.size} values; "
                             "3 are needed")
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)
        object.__setattr__(self, "scale", validate.positive_scale(self.scale,
                                                                  source="the similarity"))

    @classmethod
    def identity(cls) -> "Similarity":
        return cls(np.eye(3), np.zeros(3), 1.0)

    @classmethod
    def from_normalization(cls, offset, scale) -> "Similarity":
        """The map original frame -> normalized frame, ``(x + offset) * scale``."""
        offset, scale = validate.normalization(offset, scale, source="the normalization")
        return cls(np.eye(3), offset * scale, scale)

    @classmethod
    def from_matrix(cls, matrix) -> "Similarity":
        """From a (4, 4) matrix ``[[s R, t], [0, 0, 0, 1]]`` (:func:`validate.similarity_matrix
        <deepsdf_preprocess.validate.similarity_matrix>`)."""
        return cls(*validate.similarity_matrix(matrix, source="the similarity matrix"))

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
        matrix = (np.load(path, allow_pickle=False) if path.suffix == ".npy"
                  else np.loadtxt(path, ndmin=2))
    except Exception as error:  # parse errors, pickled or corrupt files
        raise InputError(f"cannot read a matrix from {path}: {type(error).__name__}: "
                         f"{(str(error).splitlines() or [''])[0]}") from error
    return validate.numeric_array(matrix, source=path, field="the matrix", shape=tuple(shape))


def read_intrinsics(path) -> np.ndarray:
    """(3, 3) pinhole intrinsics from a matrix file (:func:`validate.intrinsics
    <deepsdf_preprocess.validate.intrinsics>`: positive focal lengths, last row 0 0 1)."""
    return validate.intrinsics(read_matrix(path, (3, 3)), source=path)


def read_pose(path) -> np.ndarray:
    """(4, 4) rigid camera-to-world pose from a matrix file (last row 0 0 0 1, a proper
    rotation)."""
    return validate.rigid_pose(read_matrix(path, (4, 4)), source=path)


def read_similarity(path) -> Similarity:
    """The world -> model :class:`Similarity` of a (4, 4) matrix file."""
    return Similarity(*validate.similarity_matrix(read_matrix(path, (4, 4)), source=path))

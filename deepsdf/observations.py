"""Partial observations (depth images, point clouds) to SDF constraints for shape completion.

As in the DeepSDF paper (section 6.3): every observed surface point ``p`` with normal ``n``
(estimated from the depth image, oriented towards the sensor) gives two samples
``p + eta n`` (SDF ``+eta``) and ``p - eta n`` (SDF ``-eta``); points on the camera ray in front
of ``p`` are **free space**: they only say "outside", so they become one-sided rows
(``f >= 0``), never a made-up positive distance.

Frames
------
Observations come in the sensor's **world frame** (depth + intrinsics K + camera-to-world pose,
see :mod:`deepsdf_preprocess.pinhole`).  The shape model works in its **model frame**
(the normalized frame of the training data: shapes inside the unit sphere).  A
:class:`Similarity` maps world to model: ``x_model = scale * R @ x_world + t``; normals are
rotated only, distances multiply by ``scale``.  When the world frame is a shape's original
mesh frame, :meth:`Similarity.from_normalization` derives it from the shape's
``NormalizationParameters``.

Constraint rows are (n, 5) float32 ``[x, y, z, target, one_sided]`` in the model frame, the
format :func:`deepsdf.reconstruct.reconstruct_codes` fits codes to.

The three steps live in three modules, gathered here: :mod:`deepsdf.frames` (the similarity,
matrix files), :mod:`deepsdf.sensing` (depth images and point clouds to observations) and
:mod:`deepsdf.constraints` (observations to constraint rows).
"""

from __future__ import annotations

from .constraints import ConstraintConfig, sdf_constraints
from .frames import Similarity, read_intrinsics, read_matrix, read_pose, read_similarity
from .sensing import (Observation, load_depth, observe_depth, observe_depth_files,
                      observe_points, read_point_cloud)

__all__ = ["Similarity", "Observation", "observe_depth", "observe_depth_files",
           "observe_points", "load_depth",
           "read_matrix", "read_intrinsics", "read_pose", "read_similarity", "read_point_cloud",
           "sdf_constraints", "ConstraintConfig"]

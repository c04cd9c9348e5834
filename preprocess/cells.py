"""Triangles cut into a regular lattice of cells, so that what the cameras saw is decided per
piece of surface rather than per whole triangle.

Triangle ``(a, b, c)`` with ``n`` divisions per side has ``n^2`` congruent cells: with
barycentric coordinates ``p = (1 - b1 - b2) a + b1 b + b2 c`` and ``(s, t) = n (b1, b2)``,
lattice square ``(i, j)`` (``i + j <= n - 1``) holds a *lower* cell with corners
``(i, j), (i + 1, j), (i, j + 1)`` and, where ``i + j <= n - 2``, an *upper* cell with corners
``(i + 1, j), (i + 1, j + 1), (i, j + 1)`` (lattice points divided by ``n``).  Both are wound
like their triangle, so they share its normal.  Row ``i`` holds ``2 (n - i) - 1`` cells; the
cell's index within its triangle is ``i (2n - i) + 2j + upper``, in ``[0, n^2)``.

A penetrating part's triangle is partly hidden inside another part; a triangle that two
touching parts share is hidden but for a seam.  Cells keep the seen pieces and drop the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CellLattice"]

#: No cell is longer than this many cell sizes (cells of a sliver are slivers too).
MAX_ELONGATION = 4.0

#: Most cells a mesh is cut into; past this the cells grow (a mesh this large has small
#: triangles anyway).
MAX_CELLS = 4_000_000


@dataclass
class CellLattice:
    """The cells of every triangle of one mesh.

    Attributes
    ----------
    divisions : (f,) int64
        Divisions per side of each triangle (1: the triangle is one cell).
    offsets : (f + 1,) int64
        Index of each triangle's first cell; triangle ``k`` owns cells
        ``offsets[k]:offsets[k + 1]`` (``divisions[k]^2`` of them).
    """

    divisions: np.ndarray
    offsets: np.ndarray

    @classmethod
    def for_mesh(cls, vertices, faces, *, size: float,
                 max_cells: int = MAX_CELLS) -> "CellLattice":
        """Cut every triangle into cells of about ``size``: ``n`` divisions per side, the
        fewest that bring either the cell's longest side to ``size`` or its area to
        ``size^2 / 2`` (normalized units) -- a sliver is cut by its area, not into thousands of
        specks -- but at least enough that no cell is longer than :data:`MAX_ELONGATION`
        sizes; ``size`` grows when the cells would exceed ``max_cells``."""
        corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]
        longest = np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max(axis=1)
        area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0],
                                             corners[:, 2] - corners[:, 0]), axis=1)
        while True:
            by_length = np.ceil(longest / size)
            by_area = np.ceil(np.sqrt(2.0 * area) / size)
            divisions = np.minimum(by_length, by_area)
            # ... but no cell longer than MAX_ELONGATION sizes (a sliver's cells stay short)
            divisions = np.maximum(divisions, np.ceil(longest / (MAX_ELONGATION * size)))
            divisions = np.maximum(1, divisions).astype(np.int64)
            if int((divisions ** 2).sum()) <= max(max_cells, len(divisions)):
                break
            size *= 1.5
        offsets = np.zeros(len(divisions) + 1, dtype=np.int64)
        np.cumsum(divisions ** 2, out=offsets[1:])
        return cls(divisions=divisions, offsets=offsets)

    @classmethod
    def whole(cls, face_count: int) -> "CellLattice":
        """One cell per triangle."""
        return cls(divisions=np.ones(face_count, dtype=np.int64),
                   offsets=np.arange(face_count + 1, dtype=np.int64))

    @property
    def count(self) -> int:
        """Total number of cells."""
        return int(self.offsets[-1])

    @property
    def cell_face(self) -> np.ndarray:
        """(count,) int64: the triangle each cell belongs to."""
        return np.repeat(np.arange(len(self.divisions)), self.divisions ** 2)

    def cell_ids(self, triangles, b1, b2) -> np.ndarray:
        """(m,) int64 cell of each point given by its triangle and barycentrics ``b1, b2``
        (clamped onto the triangle)."""
        n = self.divisions[triangles]
        s = np.clip(b1, 0.0, 1.0) * n
        t = np.clip(b2, 0.0, 1.0) * n
        i = np.clip(np.floor(s).astype(np.int64), 0, n - 1)
        j = np.clip(np.floor(t).astype(np.int64), 0, n - 1 - i)
        upper = ((s - i) + (t - j) > 1.0) & (i + j <= n - 2)
        return self.offsets[triangles] + i * (2 * n - i) + 2 * j + upper

    def _coordinates(self, cells):
        """Triangle, divisions, lattice row ``i``, column ``j`` and ``upper`` of cells."""
        cells = np.asarray(cells, dtype=np.int64)
        face = np.searchsorted(self.offsets, cells, side="right") - 1
        n = self.divisions[face]
        local = cells - self.offsets[face]
        # invert local = i (2n - i) + 2j + upper: row i is the largest with i (2n - i) <= local
        i = np.floor(n - np.sqrt(np.maximum(n * n - local, 0))).astype(np.int64)
        i = np.clip(i, 0, n - 1)
        i -= (i * (2 * n - i) > local)
        i += ((i + 1) * (2 * n - i - 1) <= local) & (i + 1 <= n - 1)
        rest = local - i * (2 * n - i)
        return face, n, i, rest // 2, rest % 2

    def neighbours(self, cells) -> np.ndarray:
        """(m, 3) int64: the cells sharing a side with each cell inside the same triangle, -1
        where that side is on the triangle's edge."""
        face, n, i, j, upper = self._coordinates(cells)
        start = self.offsets[face]

        def cell(row, column, up, valid):
            local = row * (2 * n - row) + 2 * column + up
            return np.where(valid, start + local, -1)

        lower = upper == 0
        # a lower cell (i, j) touches upper (i, j), upper (i - 1, j) and upper (i, j - 1);
        # an upper cell (i, j) touches lower (i, j), lower (i + 1, j) and lower (i, j + 1)
        first = np.where(lower, cell(i, j, 1, i + j <= n - 2), cell(i, j, 0, True))
        second = np.where(lower, cell(i - 1, j, 1, i >= 1), cell(i + 1, j, 0, True))
        third = np.where(lower, cell(i, j - 1, 1, j >= 1), cell(i, j + 1, 0, True))
        return np.stack([first, second, third], axis=1)

    def corners(self, vertices, faces, cells) -> np.ndarray:
        """(m, 3, 3) float64 corners of ``cells`` (wound like their triangles)."""
        face, n, i, j, upper = self._coordinates(cells)
        lattice = np.where(upper[:, None, None] == 1,
                           np.stack([np.stack([i + 1, j], 1), np.stack([i + 1, j + 1], 1),
                                     np.stack([i, j + 1], 1)], 1),
                           np.stack([np.stack([i, j], 1), np.stack([i + 1, j], 1),
                                     np.stack([i, j + 1], 1)], 1)) / n[:, None, None]
        tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)[face]]
        a = tri[:, 0][:, None, :]
        e0 = (tri[:, 1] - tri[:, 0])[:, None, :]
        e1 = (tri[:, 2] - tri[:, 0])[:, None, :]
        return a + lattice[..., 0:1] * e0 + lattice[..., 1:2] * e1


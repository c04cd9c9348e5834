"""The one door for the values the tools read: every array and number that comes from a file or
an argument is checked here for type, shape, dtype, finiteness and meaning before it is used.

Each validator returns the value in the form the code uses (float64 arrays, Python numbers)
or raises :class:`~.errors.InputError` with one line naming the source (a file, or a
parameter), the field and what is allowed.  Resource needs are estimated before allocating
(:func:`require_memory`).

It imports neither torch nor OpenGL.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .errors import InputError

__all__ = ["numeric_array", "points", "positive_scale", "normalization", "intrinsics",
           "rigid_pose", "similarity_matrix", "depth_image", "unique_entries", "integer",
           "number", "depth_scale", "available_memory", "require_memory", "ROTATION_TOLERANCE"]

#: Focal lengths outside these bounds (pixels) are refused: no camera has them, and beyond
#: them the rays of a depth image overflow or collapse.
FOCAL_RANGE = (1e-3, 1e9)

#: Depth scales (units per metre: 1000 for millimetres, 5000 for the TUM RGB-D PNGs) outside
#: these bounds are refused: no sensor stores depth in such units, and beyond them the
#: metres overflow or collapse.
DEPTH_SCALE_RANGE = (1e-6, 1e6)

#: How far ``R R^T`` may stand from the identity for a rotation read from a file: text with 4
#: decimals stands up to about 2e-4 off (a real shear or scale is far beyond); what is
#: accepted is then replaced by the nearest rotation (:func:`nearest_rotation`).
ROTATION_TOLERANCE = 1e-3


def nearest_rotation(matrix) -> np.ndarray:
    """The proper rotation nearest (Frobenius) to a (3, 3) matrix close to one (SVD); a
    matrix orthonormal to 1e-12 already is returned as it is (bit for bit)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if np.allclose(matrix @ matrix.T, np.eye(3), rtol=0, atol=1e-12):
        return matrix.copy()
    u, _, vt = np.linalg.svd(matrix)
    if np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1
    return u @ vt


def _where(source, field: str | None = None) -> str:
    return f"{source}: {field}" if field else str(source)


def numeric_array(value, *, source, field: str | None = None, shape=None,
                  finite: bool = True) -> np.ndarray:
    """``value`` as a float64 array, refusing booleans, strings, objects and complex numbers.

    ``shape`` is a tuple with ``None`` for any length (``(None, 3)``); ``finite`` refuses NaN
    and infinities.
    """
    if isinstance(value, (list, tuple)) and _holds_bool(value):  # JSON true/false
        raise InputError(f"{_where(source, field)} holds true/false values; numbers are "
                         "needed")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nested lists and the like
        raise InputError(f"{_where(source, field)} is not a numeric array: "
                         f"{str(error).splitlines()[0]}") from None
    if array.dtype == bool or array.dtype.kind not in "iuf":
        raise InputError(f"{_where(source, field)} holds {array.dtype} values; numbers are "
                         "needed")
    if shape is not None and (array.ndim != len(shape) or any(
            want is not None and have != want for have, want in zip(array.shape, shape))):
        wanted = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{_where(source, field)} has shape {array.shape}; {wanted} is "
                         "needed")
    with np.errstate(over="ignore"):
        array = array.astype(np.float64)
    if finite and not np.all(np.isfinite(array)):
        raise InputError(f"{_where(source, field)} holds NaN or infinite values")
    return array


def _holds_bool(value, depth: int = 0) -> bool:
    """Whether nested lists (as JSON gives them) hold a boolean anywhere (numpy would take
    ``true`` for 1)."""
    if isinstance(value, (bool, np.bool_)):
        return True
    if isinstance(value, (list, tuple)) and depth < 32:
        return any(_holds_bool(item, depth + 1) for item in value)
    return False


def points(value, *, source, field: str | None = None, minimum: int = 1) -> np.ndarray:
    """(n, 3) finite float64 points, at least ``minimum`` of them."""
    array = numeric_array(value, source=source, field=field, shape=(None, 3))
    if len(array) < minimum:
        raise InputError(f"{_where(source, field)} holds {len(array)} points; at least "
                         f"{minimum} are needed")
    return array


def positive_scale(value, *, source, field: str = "scale") -> float:
    """A positive, finite scale (a single number, or an array holding one)."""
    array = numeric_array(value, source=source, field=field, finite=False).reshape(-1)
    if array.size != 1:
        raise InputError(f"{_where(source, field)} holds {array.size} values; one is needed")
    scale = float(array[0])
    if not (math.isfinite(scale) and scale > 0):
        raise InputError(f"{_where(source, field)} is {scale}; a positive finite number is "
                         "needed")
    return scale


def normalization(offset, scale, *, source) -> tuple[np.ndarray, float]:
    """(offset (3,), scale) of ``normalized = (x + offset) * scale``: a finite offset and a
    positive finite scale (0, negative or NaN would mirror, collapse or poison every shape).
    A scale so extreme that a mesh mapped back overflows is caught where meshes are written
    (``deepsdf.experiment.write_mesh`` refuses non-finite vertices)."""
    offset = numeric_array(offset, source=source, field="offset").reshape(-1)
    if offset.size != 3:
        raise InputError(f"{_where(source, 'offset')} holds {offset.size} values; 3 are "
                         "needed")
    return offset, positive_scale(scale, source=source)


def intrinsics(value, *, source, field: str = "K") -> np.ndarray:
    """(3, 3) pinhole intrinsics ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` with positive focal
    lengths (so the matrix is invertible)."""
    K = numeric_array(value, source=source, field=field, shape=(3, 3))
    if not np.allclose(K[2], [0, 0, 1], atol=1e-9) or K[1, 0] != 0:
        raise InputError(f"{_where(source, field)} is not a pinhole intrinsics matrix: its "
                         "last row must be 0 0 1 and K[1, 0] 0")
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise InputError(f"{_where(source, field)} has focal lengths fx={K[0, 0]:g}, "
                         f"fy={K[1, 1]:g}; both must be positive (a singular or mirrored K)")
    low, high = FOCAL_RANGE
    if not (low <= K[0, 0] <= high and low <= K[1, 1] <= high
            and np.all(np.abs(K[:2, 1:]) <= high)):
        raise InputError(f"{_where(source, field)} has fx={K[0, 0]:g}, fy={K[1, 1]:g}; focal "
                         f"lengths must lie in [{low:g}, {high:g}] pixels and the other "
                         f"entries within {high:g}")
    return K


def rigid_pose(value, *, source, field: str = "pose") -> np.ndarray:
    """(4, 4) rigid transform: last row ``0 0 0 1``, a proper rotation (orthonormal,
    determinant +1), a finite translation."""
    pose = numeric_array(value, source=source, field=field, shape=(4, 4))
    if not np.array_equal(pose[3], [0.0, 0.0, 0.0, 1.0]):
        raise InputError(f"{_where(source, field)} has last row {pose[3].tolist()}; a rigid "
                         "pose's is 0 0 0 1")
    rotation = pose[:3, :3]
    if not (np.allclose(rotation @ rotation.T, np.eye(3), atol=ROTATION_TOLERANCE)
            and np.linalg.det(rotation) > 0):
        raise InputError(f"{_where(source, field)}: the upper-left 3x3 block is not a proper "
                         "rotation (a camera pose must be rigid: no scale, shear or mirror)")
    pose = pose.copy()
    pose[:3, :3] = nearest_rotation(rotation)  # the digits a text file lost, restored
    return pose


def similarity_matrix(value, *, source, field: str = "transform") -> tuple:
    """(rotation (3, 3), translation (3,), scale) of a (4, 4) similarity ``[[s R, t],
    [0 0 0 1]]`` with ``s > 0`` and ``R`` a proper rotation."""
    matrix = numeric_array(value, source=source, field=field, shape=(4, 4))
    if not np.array_equal(matrix[3], [0.0, 0.0, 0.0, 1.0]):
        raise InputError(f"{_where(source, field)} has last row {matrix[3].tolist()}; a "
                         "similarity's is 0 0 0 1")
    with np.errstate(all="ignore"):
        determinant = float(np.linalg.det(matrix[:3, :3]))
    if not (math.isfinite(determinant) and determinant > 0):
        raise InputError(f"{_where(source, field)}: the 3x3 block has determinant "
                         f"{determinant:g}; a similarity's is positive")
    scale = positive_scale(float(np.cbrt(determinant)), source=source,
                           field=f"{field} (its scale)")
    rotation = matrix[:3, :3] / scale
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=ROTATION_TOLERANCE):
        raise InputError(f"{_where(source, field)}: the 3x3 block is not a uniform scale "
                         "times a rotation (shear or unequal scales)")
    return nearest_rotation(rotation), matrix[:3, 3].copy(), scale


def depth_image(value, *, source, field: str = "depth",
                measured: bool = False) -> np.ndarray:
    """(h, w) float64 depth, 0 where nothing was measured (NaN becomes 0); numbers only (a
    boolean mask is not a depth image), finite, never negative; with ``measured``, at least
    one pixel measured."""
    depth = numeric_array(value, source=source, field=field, finite=False)
    if depth.ndim != 2:
        raise InputError(f"{_where(source, field)} has shape {depth.shape}; a depth image is "
                         "2-D (h, w)")
    if min(depth.shape) < 1:
        raise InputError(f"{_where(source, field)} is empty (shape {depth.shape}); a depth "
                         "image needs at least one pixel")
    depth = np.where(np.isnan(depth), 0.0, depth)
    if not np.all(np.isfinite(depth)) or np.any(depth < 0):
        raise InputError(f"{_where(source, field)} must be finite and >= 0 (0 or NaN = no "
                         "measurement)")
    if measured and not np.any(depth > 0):
        raise InputError(f"{_where(source, field)} measures nothing (every pixel is 0)")
    return depth


def printable(text: str) -> str:
    """``text`` for one line of output: escaped where it holds control characters."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def unique_entries(entries, *, source, what: str = "entries") -> list:
    """``entries`` as a list, refusing repeats (a shape listed twice would be fitted and
    counted twice)."""
    entries = list(entries)
    seen, repeated = set(), []
    for entry in entries:
        if entry in seen and entry not in repeated:
            repeated.append(entry)
        seen.add(entry)
    if repeated:
        raise InputError(f"{source} lists {len(repeated)} {what} more than once: "
                         f"{', '.join(printable(str(entry)) for entry in repeated[:3])}"
                         f"{' ...' if len(repeated) > 3 else ''}")
    return entries


def integer(value, *, what: str, minimum: int | None = None,
            maximum: int | None = None) -> int:
    """An integer in ``[minimum, maximum]`` (a bool or a float with a fraction is refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and math.isfinite(value) \
                and float(value).is_integer():
            value = int(value)
        else:
            raise InputError(f"{what} must be an integer, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise InputError(f"{what} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InputError(f"{what} must be at most {maximum}, got {value}")
    return value


def number(value, *, what: str, minimum: float | None = None, maximum: float | None = None,
           positive: bool = False) -> float:
    """A finite number in ``[minimum, maximum]`` (``positive``: above 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{what} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"{what} must be finite, got {value}")
    if positive and not value > 0:
        raise InputError(f"{what} must be positive, got {value:g}")
    if minimum is not None and value < minimum:
        raise InputError(f"{what} must be at least {minimum:g}, got {value:g}")
    if maximum is not None and value > maximum:
        raise InputError(f"{what} must be at most {maximum:g}, got {value:g}")
    return value


def depth_scale(value, *, what: str = "depth_scale") -> float:
    """A depth scale (units per metre: depth / scale = metres) in
    :data:`DEPTH_SCALE_RANGE`; a boolean, a string, NaN, 0 or an absurd factor is refused."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    low, high = DEPTH_SCALE_RANGE
    value = number(value, what=what, positive=True)
    if not low <= value <= high:
        raise InputError(f"{what} is {value:g}; a depth scale (units per metre, 1000 for "
                         f"millimetres) must lie in [{low:g}, {high:g}]")
    return value


def available_memory() -> int:
    """Bytes of memory this process may still take: ``MemAvailable`` (Linux), else the
    physical memory, capped by an address-space limit (``ulimit -v``) when one is set."""
    available = None
    try:
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 1 << 62
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            available = min(available, limit)
    except (ImportError, OSError, ValueError):
        pass
    return int(available)


def require_memory(needed: float, *, what: str, hint: str = "",
                   fraction: float = 0.9) -> None:
    """Refuse work estimated to need more than ``fraction`` of :func:`available_memory`:
    one line with both figures (and ``hint``: what to ask for instead)."""
    available = available_memory()
    if needed > fraction * available:
        raise InputError(f"{what} needs about {_gigabytes(needed)} of memory and "
                         f"{_gigabytes(available)} are available"
                         + (f"; {hint}" if hint else ""))


def _gigabytes(size: float) -> str:
    return f"{size / 2 ** 30:.1f} GiB" if size >= 2 ** 30 else f"{size / 2 ** 20:.0f} MiB"

"""The root of this project's exception types, and the preprocessor's own.

Every error either package raises on purpose is a :class:`DeepSDFError`: its message is one
line that names what is wrong (the file, the key, the value), and the command line prints it
without a traceback.  Each also keeps the standard base a caller would catch (``ValueError``
for bad input, ``RuntimeError`` for a failed step, ``OSError`` for a full disk).  Any other
exception is a bug and shows its traceback.  The learning library's types (``CheckpointError``,
``DataError``, ``TrainingError``, ``NoSurfaceError``, ``ConfigError``, ...) derive from these.
"""

__all__ = ["DeepSDFError", "InputError", "PreprocessError", "MeshError", "DiskFullError"]


class DeepSDFError(Exception):
    """Any error this project raises on purpose: a one-line message naming its cause."""


class InputError(DeepSDFError, ValueError):
    """A bad argument, setting or input file of either package; the message names it and is
    one line, fit for the command line (which prints it without a traceback: any other
    exception is a bug and shows one)."""


class PreprocessError(DeepSDFError, RuntimeError):
    """A pipeline step failed for one instance; the message is one line, fit for a manifest."""


class MeshError(PreprocessError):
    """The input mesh cannot be used (unreadable, empty, non-finite, zero area, a point cloud)."""


class DiskFullError(DeepSDFError, OSError):
    """The device ran out of space while writing a file; the message names the file.

    Not a :class:`PreprocessError`: it is no fault of one instance, so a run stops on it.
    """

"""Exception types of the preprocessor."""

__all__ = ["InputError", "PreprocessError", "MeshError", "DiskFullError"]


class InputError(ValueError):
    """A bad argument, setting or input file of either package; the message names it and is
    one line, fit for the command line (which prints it without a traceback: any other
    exception is a bug and shows one)."""


class PreprocessError(RuntimeError):
    """A pipeline step failed for one instance; the message is one line, fit for a manifest."""


class MeshError(PreprocessError):
    """The input mesh cannot be used (unreadable, empty, non-finite, zero area, a point cloud)."""


class DiskFullError(OSError):
    """The device ran out of space while writing a file; the message names the file.

    Not a :class:`PreprocessError`: it is no fault of one instance, so a run stops on it.
    """

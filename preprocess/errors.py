"""Exception types of the preprocessor."""

__all__ = ["PreprocessError", "MeshError"]


class PreprocessError(RuntimeError):
    """A pipeline step failed for one instance; the message is one line, fit for a manifest."""


class MeshError(PreprocessError):
    """The input mesh cannot be used (unreadable, empty, non-finite, zero area, a point cloud)."""

"""deepsdf: learning shape spaces with the DeepSDF auto-decoder.

``import deepsdf`` is light: it loads neither torch nor any OpenGL module.  The preprocessor
is the sibling package :mod:`deepsdf_preprocess`; the command-line tool is ``deepsdf``.
"""

__version__ = "0.1.0"


def __getattr__(name):
    """``deepsdf.sdf`` (:func:`deepsdf.field.sdf`) without importing torch at ``import
    deepsdf``."""
    if name == "sdf":
        from .field import sdf

        return sdf
    raise AttributeError(f"module 'deepsdf' has no attribute {name!r}")

"""deepsdf: learning shape spaces with the DeepSDF auto-decoder.

``import deepsdf`` is light: it loads neither torch nor any OpenGL module.  The preprocessor
is the sibling package :mod:`deepsdf_preprocess`; the command-line tool is ``deepsdf``.
"""

__version__ = "0.1.0"

"""deepsdf's mesh-to-SDF preprocessor, installed as ``deepsdf_preprocess``.

Turns meshes into DeepSDF training data (``SdfSamples``, ``SurfaceSamples``,
``NormalizationParameters``) with 100 virtual depth cameras.  It never imports torch, and only
:mod:`deepsdf_preprocess.render_gl` touches OpenGL, when a ``pyrender`` scanner is created.

Modules, in pipeline order: :mod:`.mesh_io` (loading), :mod:`.normalize`, :mod:`.cameras`,
:mod:`.render_gl` / :mod:`.raycast` (scanners), :mod:`.scan`, :mod:`.surface`,
:mod:`.sampling`, :mod:`.sdf`, :mod:`.formats`, :mod:`.pipeline` (one mesh), :mod:`.driver`
(a folder), :mod:`.splits`; and :mod:`.procedural`, the embedded example categories
(written by :mod:`.generated`, which never replaces a file it did not make).
"""

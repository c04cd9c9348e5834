"""Installs two packages: ``deepsdf`` (the learning library and CLI) and
``deepsdf_preprocess`` (the mesh-to-SDF preprocessor, whose code lives in ``preprocess/``).

The preprocessor is mapped to a namespaced import name so that a user's own ``preprocess.py``
(or the unrelated PyPI package ``preprocess``) can never shadow it.
"""

import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
#: The version is written once, in deepsdf/__init__.py (``deepsdf --version`` reads it there).
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "deepsdf" / "__init__.py").read_text(),
                    re.MULTILINE).group(1)
#: Files of experiments/ the package reads (`deepsdf new`, `deepsdf demo`): shipped inside the
#: package as deepsdf/templates/, found there through importlib.resources.
TEMPLATE_FILES = ("*/specs.json", "splits/*.json", "README.md", "scripts/*.sh")


class BuildWithTemplates(build_py):
    """build_py that also copies the shipped experiment specs into ``deepsdf/templates``."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "deepsdf" / "templates"
        for pattern in TEMPLATE_FILES:
            for source in sorted((HERE / "experiments").glob(pattern)):
                destination = target / source.relative_to(HERE / "experiments")
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, destination)


setup(
    name="deepsdf",
    version=VERSION,
    cmdclass={"build_py": BuildWithTemplates},
    description="DeepSDF made practical: preprocessing, training, inference, completion",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["deepsdf", "deepsdf.*"]) + ["deepsdf_preprocess"],
    package_dir={"deepsdf_preprocess": "preprocess"},
    install_requires=[
        # A range, so that CUDA users keep the torch build they have; the CPU install path
        # (requirements-cpu.txt) pins the CPU wheel.
        "torch>=2.1,<3",
        "numpy>=1.23",
        "scipy>=1.10",  # KD-trees for the sign vote
        "trimesh>=4.0",
        # trimesh decodes text meshes that are not UTF-8 (an OBJ with a Latin-1 comment)
        # through charset-normalizer, which it does not install itself.
        "charset-normalizer>=3",
        "manifold3d>=2.3",  # robust booleans for the procedural example shapes
        "libigl>=2.5",  # exact point-to-mesh distance (AABB tree), winding numbers
        # PLY polygon faces as written (trimesh fans a notched polygon across its notch)
        "plyfile>=1.0",
        "pyrender>=0.1.45",  # headless EGL context for the depth cameras
        # Ray casting (the OpenGL-free scanner, virtual partial scans, the pictures' fallback):
        # Embree where it has wheels, and what trimesh's own intersector needs everywhere.
        "embreex>=2.17; platform_machine == 'x86_64' or platform_machine == 'AMD64'",
        "rtree>=1.0",
        "scikit-image>=0.21",
        "tqdm>=4.60",
        "tensorboard>=2.12",
        "pillow>=9",  # pictures: PNG strips and grids, animated GIFs
        "matplotlib>=3.7",  # the demo report's training curve
    ],
    extras_require={
        # Hypothesis generates the reliability tests' cases (arrays of every dtype and value,
        # links and wrong kinds at every path the tools touch).
        "test": ["pytest>=7", "hypothesis>=6.100",
                 # drives headless Chromium through the explorer (clicks, typing) in its test
                 "playwright>=1.40"],
        # `deepsdf explore`: viser, the 3-D web viewer nerfstudio uses (scene, controls,
        # its own prebuilt browser client; no Node at run time)
        "explore": ["viser>=1.0"],
        "bench": ["mesh-to-sdf==0.0.15", "scikit-learn"],
    },
    entry_points={"console_scripts": ["deepsdf=deepsdf.cli:main"]},
)

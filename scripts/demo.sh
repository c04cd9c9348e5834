#!/usr/bin/env bash
# The main job on the embedded example data, from a clean clone:
# set up (.venv, packages, Mesa EGL), then generate procedural chairs and tables, preprocess
# them into DeepSDF training data and split them.  Extra arguments go to `deepsdf demo`
# (see `.venv/bin/deepsdf demo --help`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
exec .venv/bin/deepsdf demo "$@"

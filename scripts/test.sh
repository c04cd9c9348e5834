#!/usr/bin/env bash
# The test suite, from a clean clone: set up (.venv, packages, Mesa EGL), then run pytest.
# Extra arguments go to pytest (e.g. `-m "not slow"` for the quick subset).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
exec .venv/bin/pytest "$@"

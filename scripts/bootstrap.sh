#!/usr/bin/env bash
# Set-up shared by scripts/demo.sh and scripts/test.sh (safe to run again: it only does what
# is missing).  Creates ./.venv, installs the CPU build of torch (pinned in
# requirements-cpu.txt) and deepsdf in editable mode, and Mesa's EGL through apt-get if the
# system lacks it (as root or through sudo; otherwise it says how to get it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

have_mesa_egl() {
    local libraries
    libraries="$( (ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null) )"
    grep -q 'libEGL\.so\.1' <<<"$libraries" \
        && grep -q 'libEGL_mesa\.so\.0' <<<"$libraries" \
        && { compgen -G '/usr/lib/*/dri/*swrast*' >/dev/null \
             || compgen -G '/usr/lib/*/dri/libgallium*' >/dev/null; }
}

if ! have_mesa_egl; then
    packages="libegl1 libegl-mesa0 libgl1-mesa-dri libgl1"
    if [ "$(id -u)" = 0 ]; then
        echo "bootstrap: installing Mesa EGL ($packages)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        echo "bootstrap: installing Mesa EGL ($packages) with sudo"
        sudo DEBIAN_FRONTEND=noninteractive apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
    else
        echo "bootstrap: Mesa EGL is missing and cannot be installed without root;" \
             "run: sudo apt-get install $packages (or use --backend raycast)" >&2
    fi
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
stamp=".venv/.deepsdf-install-stamp"
wanted="$(cat requirements-cpu.txt setup.py pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "bootstrap: installing Python packages into .venv (CPU torch; log: .venv/install.log)"
    # pip's and setuptools' chatter (the editable-install banner) goes to the log; it is shown
    # only if the installation fails.
    if ! { .venv/bin/python -m pip install -q --upgrade pip \
           && .venv/bin/python -m pip install -q -r requirements-cpu.txt; } \
           > .venv/install.log 2>&1; then
        cat .venv/install.log >&2
        echo "bootstrap: installing the Python packages failed (see above)" >&2
        exit 1
    fi
    echo "$wanted" > "$stamp"
fi

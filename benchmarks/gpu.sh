#!/usr/bin/env bash
# Every GPU figure of the scale path in one call (<= 6 minutes on one H200-class GPU):
# training throughput (fp32, TF32, bf16, bf16 + compile; real trainer and bare step), model
# FLOP utilisation, the projected chairs run, 256^3 mesh extraction, batched Gauss-Newton
# reconstruction, and preprocessing with pyrender on the GPU's EGL.  Figures go to
# $OUT/figures.json (default ./gpu-figures) and to the console.
#
#   benchmarks/gpu.sh               # on a GPU machine
#   benchmarks/gpu.sh --cpu-smoke   # the same steps on the CPU at tiny sizes
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ ! -x .venv/bin/python ]; then
    if [ "${1:-}" = "--cpu-smoke" ]; then
        ./scripts/bootstrap.sh
    else  # a GPU machine: keep its CUDA build of torch, install the rest beside it
        python3 -m venv --system-site-packages .venv
        .venv/bin/python -m pip install -q -e . 2>&1 | grep -v "^WARNING" || true
    fi
fi
export OUT="${OUT:-$root/gpu-figures}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
export DEEPSDF_NO_PROGRESS=1
mkdir -p "$OUT"
.venv/bin/python benchmarks/gpu.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu.log"
exit "${PIPESTATUS[0]}"

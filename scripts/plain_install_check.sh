#!/usr/bin/env bash
# CI step: install the package WITHOUT extras into a fresh virtual environment (what a user who
# imports it as a library, or a cluster image, gets) and run one command of each kind:
# generate, preprocess with each backend, train (briefly), reconstruct, complete a virtual
# scan, mesh.  Every command must work from a plain install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python="${PYTHON:-python3}"
"$python" -m venv "$work/venv"
pip="$work/venv/bin/python -m pip"
$pip install -q --upgrade pip > "$work/install.log" 2>&1
# The package is built from a copy of the tracked files (a build leaves build/ behind in the
# folder it builds), with the CPU build of torch installed first (a plain "torch" would pull
# the CUDA build).
mkdir "$work/src"
(cd "$root" && git ls-files -z | xargs -0 tar -cf -) | tar -xf - -C "$work/src"
if ! { $pip install -q "$(grep '^torch' "$root/requirements-cpu.txt")" \
       && $pip install -q "$work/src"; } >> "$work/install.log" 2>&1; then
    cat "$work/install.log" >&2
    exit 1
fi
deepsdf="$work/venv/bin/deepsdf"
cd "$work"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}" DEEPSDF_NO_PROGRESS=1
small="--views 12 --resolution 96 --samples 20000 --no-progress"
step() { echo "plain install: $*"; "$@" > "$work/step.log" 2>&1 || { cat "$work/step.log" >&2; exit 1; }; }
step "$deepsdf" generate meshes --category chairs --count 4 --seed 3
step "$deepsdf" preprocess meshes data --dataset D --backend raycast $small --partial-scans
step "$deepsdf" preprocess meshes data_gl --dataset D --backend pyrender $small
step "$deepsdf" split data/splits/D.json --dataset D --train train.json --test test.json \
    --test-fraction 0.25
cat > specs.json <<SPECS
{"SpecsVersion": 2, "DataSource": "data", "TrainSplit": "train.json", "TestSplit": "test.json",
 "NetworkSpecs": {"dims": [64, 64, 64, 64], "latent_in": [2], "weight_norm": false,
                  "dropout": [], "norm_layers": []},
 "CodeLength": 16, "NumEpochs": 60, "ScenesPerBatch": 3, "SamplesPerScene": 4096,
 "LearningRateSchedule": [{"Type": "Constant", "Value": 0.005},
                          {"Type": "Constant", "Value": 0.005}]}
SPECS
mkdir experiment && sed 's#"data"#"../data"#; s#"train.json"#"../train.json"#; s#"test.json"#"../test.json"#' \
    specs.json > experiment/specs.json
step "$deepsdf" train experiment --no-progress
step "$deepsdf" reconstruct experiment --steps 2 --resolution 32 --no-progress
step "$deepsdf" complete experiment --virtual-scan --out completion --resolution 32 \
    --no-retrieval --no-progress
instance="$("$work/venv/bin/python" -c "import json; s=json.load(open('train.json')); print('D/chairs/' + s['D']['chairs'][0])")"
step "$deepsdf" mesh experiment mesh.ply --instance "$instance" --resolution 32
echo "plain install: every command ran"

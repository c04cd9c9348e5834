#!/usr/bin/env bash
# CI step: build a wheel from the tracked files, install it WITHOUT extras into a fresh virtual
# environment (what a user who installs from a package index, a wheelhouse or a Docker image
# gets) and run one command of each kind from a folder outside the source: --version, new
# (reads the shipped templates from the wheel), generate, preprocess with each backend, train
# (briefly), reconstruct, complete a virtual scan, mesh, and demo --quick.  Every command must
# work from a plain install.
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
       && $pip wheel -q --no-deps "$work/src" -w "$work/wheels" \
       && $pip install -q "$work"/wheels/deepsdf-*.whl; } >> "$work/install.log" 2>&1; then
    cat "$work/install.log" >&2
    exit 1
fi
rm -rf "$work/src"  # nothing of the source tree is left to fall back on
deepsdf="$work/venv/bin/deepsdf"
cd "$work"
wheel="$(ls "$work"/wheels/deepsdf-*.whl)"
"$work/venv/bin/python" - "$wheel" <<'CHECK'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
wanted = ["deepsdf/templates/demo/specs.json", "deepsdf/templates/chairs/specs.json",
          "deepsdf/templates/splits/sv2_chairs_train.json"]
missing = [name for name in wanted if name not in names]
if missing:
    sys.exit(f"plain install: the wheel lacks {missing}")
CHECK
version="$("$deepsdf" --version)"
[ "$version" = "deepsdf $("$work/venv/bin/python" -c 'import deepsdf; print(deepsdf.__version__)')" ] \
    || { echo "plain install: --version says '$version'" >&2; exit 1; }
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
step "$deepsdf" new fresh --data data --train train.json --test test.json --steps 200
"$work/venv/bin/python" -c "import json; s = json.load(open('fresh/specs.json')); assert s['CodeLength'] == 64, s" \
    || { echo "plain install: new wrote no demo-based spec" >&2; exit 1; }
step "$deepsdf" demo --quick --out demo_output --workers 2
[ -f demo_output/report/summary.json ] || { echo "plain install: demo --quick wrote no report" >&2; exit 1; }
echo "plain install: every command ran, from the wheel $(basename "$wheel")"

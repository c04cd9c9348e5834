#!/usr/bin/env bash
# The DeepSDF paper's pipeline for one ShapeNet v2 category, end to end:
#   preprocess (train + test, test shapes with one virtual depth scan) -> train ->
#   reconstruct + evaluate the test split -> complete it from single views -> interpolate.
#
#   experiments/scripts/paper_category.sh CATEGORY SHAPENET_DIR [DATA_DIR] [WORKERS]
#
# CATEGORY is one of chairs, lamps, planes, sofas, tables (experiments/<CATEGORY>/specs.json);
# SHAPENET_DIR is a ShapeNetCore.v2 copy (<synset>/<instance>/models/model_normalized.obj).
# Training is a GPU job (2000 epochs of an 8 x 512 decoder); every step resumes on a rerun.
set -euo pipefail
category="${1:?category (chairs, lamps, planes, sofas, tables)}"
shapenet="${2:?ShapeNetCore.v2 folder}"
data="${3:-data}"
workers="${4:-8}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
experiment="$root/experiments/$category"
splits="$root/experiments/splits"

deepsdf preprocess "$shapenet" "$data" --dataset ShapeNetV2 --workers "$workers" \
    --split "$splits/sv2_${category}_train.json" --split-out "$data/splits/${category}_train.json"
deepsdf preprocess "$shapenet" "$data" --dataset ShapeNetV2 --workers "$workers" --test \
    --partial-scans --split "$splits/sv2_${category}_test.json" \
    --split-out "$data/splits/${category}_test.json"

deepsdf train "$experiment" --data "$data" --resume

deepsdf reconstruct "$experiment" --data "$data" --solver gauss-newton --skip
deepsdf evaluate "$experiment" --data "$data"

deepsdf complete "$experiment" --virtual-scan --data "$data" \
    --out "$experiment/Completion/latest"

"$root/experiments/scripts/interpolate_first_test_shapes.sh" "$experiment" \
    "$experiment/Interpolation"

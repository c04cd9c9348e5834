#!/usr/bin/env bash
# Interpolate (slerp, 8 steps) between the first two reconstructed test shapes of an
# experiment, and draw 16 random shapes from the Gaussian of its training codes.
#
#   experiments/scripts/interpolate_first_test_shapes.sh EXP_DIR OUT_DIR [CHECKPOINT]
set -euo pipefail
experiment="${1:?experiment folder}"
out="${2:?output folder}"
checkpoint="${3:-latest}"
mapfile -t codes < <(find "$experiment/Reconstructions/$checkpoint/Codes" -name '*.pth' | sort | head -n 2)
if [ "${#codes[@]}" -lt 2 ]; then
    echo "need two reconstructed codes under $experiment/Reconstructions/$checkpoint/Codes" >&2
    exit 2
fi
deepsdf interpolate "$experiment" --checkpoint "$checkpoint" --from "${codes[0]}" \
    --to "${codes[1]}" --steps 8 --out "$out/test_pair"
deepsdf interpolate "$experiment" --checkpoint "$checkpoint" --random 16 --out "$out/random"

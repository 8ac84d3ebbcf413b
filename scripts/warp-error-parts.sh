#!/usr/bin/env bash
# What each part of a WarpNet's error costs the teacher trained on the true field (fine-truewarp of
# FIELD=true scripts/warp-teacher.sh): the same model sampled with fields that take one part from the WarpNet and the
# rest from SynthGarment's true field (igr.eval --true-warp MODE, igr.warp.diagnostic_field):
#   coords      WarpNet's coordinates, the true visibility
#   visibility  the true coordinates, WarpNet's visibility
#   placement   WarpNet's field moved by one similarity per item onto the true one (its shape and visibility)
#   shape       the true field moved onto WarpNet's placement (the true shape and visibility)
# against the true field itself, beside the WarpNet's field, fine-ctl and the regression baseline (their committed
# evaluations) -> reports/warp-error-parts.{md,json}, -grid.png. About 4.5 min per evaluation here.
#
#   scripts/warp-error-parts.sh [RUNS_DIR]   (default runs/: needs RUNS_DIR/fine-truewarp/final; each evaluation is
#                                             skipped once its JSON is newer than the model)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
N=${N:-128}
EVALS=reports/eval-zsnr
model=$RUNS/fine-truewarp/final
if [[ ! -f $model/config.json ]]; then
    echo "no $model: train it first (FIELD=true scripts/warp-teacher.sh $RUNS)" >&2; exit 1
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
rows=()
for mode in coords visibility placement shape; do
    out=$EVALS/fine-truewarp-$mode
    if [[ ! -f $out.json || $model/config.json -nt $out.json ]]; then
        "$PY" -m igr.eval --model "$model" --features models/teacher-small --split test --n "$N" --true-warp "$mode" \
            --out "$out"
    fi
    rows+=(--eval "$mode=$out.json" --model "$mode=$model")
done
"$PY" -m igr.compare --title "What each part of a WarpNet's error costs the teacher trained on the true field" \
    --against true-field \
    --eval "true-field=$EVALS/fine-truewarp.json" --model "true-field=$model" \
    "${rows[@]}" \
    --eval "warpnet=$EVALS/fine-truewarp-on-warpnet.json" --model "warpnet=$model" \
    --eval "fine-ctl=$EVALS/fine-ctl.json" \
    --eval "baseline=$EVALS/baseline-n$N.json" --out reports/warp-error-parts
echo "finished: reports/warp-error-parts.md"

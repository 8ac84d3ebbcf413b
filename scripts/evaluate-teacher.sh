#!/usr/bin/env bash
# After scripts/train-teacher.sh: the guidance sweep (val), the shipped fp16 teacher, the test-split
# evaluations and reports/teacher.{md,json}.
#
#   scripts/evaluate-teacher.sh [RUNS_DIR]      N (test pairs, default 256), SWEEP_N (val pairs, default 32)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
N=${N:-256}
SWEEP_N=${SWEEP_N:-32}
EVALS=reports/eval
mkdir -p "$EVALS"
FEATURES="$RUNS/encoder/final"     # FD_garm's feature space: the frozen contrastive encoder every model shares

evaluate() {  # evaluate NAME MODEL_DIR [ARGS...]
    local name=$1 model=$2; shift 2
    if [[ -f "$EVALS/$name.json" ]]; then echo "[eval $name] done"; return; fi
    "$PY" -m igr.eval --model "$model" --features "$FEATURES" --split test --n "$N" --out "$EVALS/$name" "$@"
}

# ablations: their own config's sampler (DDIM, 20 steps, guidance 2), the same for each
for abl in abl-both abl-low abl-high abl-c2f abl-single; do
    evaluate "$abl" "$RUNS/$abl/final"
done
# the sweep picks sampler, steps and scale on the val split and writes them into the run's config.json
if [[ ! -f reports/guidance.json ]]; then
    "$PY" -m igr.sweep --model "$RUNS/hqft/final" --n "$SWEEP_N" --out reports/guidance --write
fi
"$PY" -m igr.model pack --from "$RUNS/hqft/final" --out models/teacher-small --overwrite
evaluate teacher models/teacher-small
evaluate baseline "$RUNS/baseline/final"
"$PY" -m igr.report --evals "$EVALS" --sweep reports/guidance.json --runs "$RUNS" \
    --teacher models/teacher-small --baseline "$RUNS/baseline/final" --out reports/teacher

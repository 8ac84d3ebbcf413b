#!/usr/bin/env bash
# After scripts/train-teacher.sh: the guidance sweep (val), the shipped fp16 teacher, the test-split
# evaluations and reports/teacher.{md,json}.
#
#   scripts/evaluate-teacher.sh [RUNS_DIR]
#   N (test pairs, default 256), ABL_N (test pairs per ablation, default N), SWEEP_N (val pairs, default 32)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
N=${N:-256}
ABL_N=${ABL_N:-$N}
SWEEP_N=${SWEEP_N:-32}
EVALS=reports/eval
mkdir -p "$EVALS"
FEATURES="$RUNS/encoder/final"     # FD_garm's feature space: the frozen contrastive encoder every model shares

# done FILE MODEL N: FILE is an evaluation of MODEL on N pairs, newer than MODEL's weights
done_for() {
    [[ -f "$1" && "$1" -nt "$2/config.json" ]] && "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r["model"] == sys.argv[2] and r["n"] == int(sys.argv[3]) else 1)' "$1" "$2" "$3"
}

evaluate() {  # evaluate NAME MODEL_DIR N [ARGS...]
    local name=$1 model=$2 n=$3; shift 3
    if done_for "$EVALS/$name.json" "$model" "$n"; then echo "[eval $name] done"; return; fi
    "$PY" -m igr.eval --model "$model" --features "$FEATURES" --split test --n "$n" --out "$EVALS/$name" "$@"
}

# the sweep picks sampler, steps and scale on the val split and writes them into the run's config.json
# (the sweep writes config.json before its report: a report newer than the weights means a written choice)
if ! done_for reports/guidance.json "$RUNS/hqft/final" "$SWEEP_N"; then
    "$PY" -m igr.sweep --model "$RUNS/hqft/final" --n "$SWEEP_N" --out reports/guidance --write
fi
"$PY" -m igr.model pack --from "$RUNS/hqft/final" --out models/teacher-small --overwrite
evaluate teacher models/teacher-small "$N" --references
while [[ ! -f "$RUNS/baseline/final/config.json" ]]; do sleep 30; done
evaluate baseline "$RUNS/baseline/final" "$N"
# ablations: their own config's sampler (DDIM, 20 steps, guidance 2), the same for each; waits for
# runs that train-teacher.sh is still finishing
for abl in abl-both abl-c2f abl-low abl-high abl-single; do
    while [[ ! -f "$RUNS/$abl/final/config.json" ]]; do sleep 30; done
    evaluate "$abl" "$RUNS/$abl/final" "$ABL_N"
done
"$PY" -m igr.report --evals "$EVALS" --sweep reports/guidance.json --runs "$RUNS" \
    --teacher models/teacher-small --baseline "$RUNS/baseline/final" --out reports/teacher

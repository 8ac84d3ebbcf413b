#!/usr/bin/env bash
# The shipped teacher sampled from its aligned prior noised to S·T (SDEdit, `igr.eval --strength S`) instead of pure
# noise, for S in STRENGTHS, against the regression baseline on the same N test pairs: how far the start moves
# masked SSIM, mask IoU and FD_garm, with no retraining. Writes reports/prior-start.{md,json} and its grid (each
# column sampled as its row was evaluated).
#
#   scripts/prior-start-sweep.sh [RUNS_DIR]   (default runs/; needs RUNS_DIR/baseline-prior-effnet, which
#                                              scripts/train-teacher-zsnr.sh makes; evaluations already made are kept)
#   STRENGTHS (default "0.7 0.5 0.3 0.2"), N (default 128)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
N=${N:-128}
STRENGTHS=${STRENGTHS:-0.7 0.5 0.3 0.2}
TEACHER=models/teacher-zsnr
BASELINE="$RUNS/baseline-prior-effnet"
EVALS=reports/eval-zsnr
evaluate() {   # evaluate OUT MODEL [ARGS...]
    local out=$1 model=$2; shift 2
    if [[ ! -f "$EVALS/$out.json" ]]; then
        "$PY" -m igr.eval --model "$model" --features models/teacher-small --split test --n "$N" "$@" --out "$EVALS/$out"
    fi
}
evaluate "teacher-n$N" "$TEACHER"
evaluate "baseline-n$N" "$BASELINE"
args=(--eval "S 1 (pure noise)=$EVALS/teacher-n$N.json" --model "S 1 (pure noise)=$TEACHER")
for s in $STRENGTHS; do
    evaluate "teacher-s${s/./}-n$N" "$TEACHER" --strength "$s"
    args+=(--eval "S $s=$EVALS/teacher-s${s/./}-n$N.json" --model "S $s=$TEACHER")
done
"$PY" -m igr.compare --title "The shipped teacher started from its aligned prior noised to S·T (SDEdit), against the regression baseline ($N test pairs)" \
    --against baseline "${args[@]}" --eval "baseline=$EVALS/baseline-n$N.json" --model "baseline=$BASELINE" \
    --out reports/prior-start

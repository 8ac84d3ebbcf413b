#!/usr/bin/env bash
# After scripts/train-teacher-zsnr.sh: test-split evaluations of the tries and reports/teacher-zsnr.{md,json}.
#
#   scripts/evaluate-teacher-zsnr.sh [RUNS_DIR]     (ONLY_NEXT=1: the igr-prior-effnet rows alone)
#   N (test pairs for the final rows, default 256), TRY_N (for the equal-budget tries at step 1500, default 128)
#
# Every model samples with its config's sampler (dpmsolver++, 50 steps, guidance 2, from teacher-small's sweep);
# FD_garm lives in teacher-small's CLIP embedding for every row (one feature space).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
N=${N:-256}
TRY_N=${TRY_N:-128}
EVALS=reports/eval-zsnr
FEATURES=models/teacher-small
mkdir -p "$EVALS"

evaluate() {  # evaluate NAME MODEL_DIR N [ARGS...]: once per model folder state
    local name=$1 model=$2 n=$3; shift 3
    if [[ -f "$EVALS/$name.json" && "$EVALS/$name.json" -nt "$model/config.json" ]]; then echo "[eval $name] done"; return; fi
    "$PY" -m igr.eval --model "$model" --features "$FEATURES" --split test --n "$n" --out "$EVALS/$name" "$@"
}
probe() {  # probe NAME MODEL_DIR
    [[ -f "$EVALS/probe-$1.json" && "$EVALS/probe-$1.json" -nt "$2/config.json" ]] || \
        "$PY" -m igr.probe --model "$2" --n 64 --out "$EVALS/probe-$1" > /dev/null
}

next() {   # the prior run continued with the EfficientNet extractor, beside its own prior, the prior run and the first teacher
    local final="$RUNS/igr-prior-effnet/final"
    "$PY" -m igr.baseline --from-prior "$final" --out "$RUNS/baseline-prior-effnet" > /dev/null
    evaluate igr-prior-effnet "$final" "$N" --references
    evaluate baseline-prior-effnet "$RUNS/baseline-prior-effnet" "$N"
    probe igr-prior-effnet "$final"
    "$PY" -m igr.compare --title "Zero-SNR teacher: aligned prior + EfficientNet tokens (3,500 + 5,000 full-size steps)" \
        --against baseline \
        --eval "prior+effnet=$EVALS/igr-prior-effnet.json" --eval "baseline=$EVALS/baseline-prior-effnet.json" \
        --eval "prior-3500=$EVALS/igr-prior.json" --eval "first teacher=$EVALS/teacher-small.json" \
        --probe "prior+effnet=$EVALS/probe-igr-prior-effnet.json" --probe "prior-3500=$EVALS/probe-igr-prior.json" \
        --probe "first teacher=$EVALS/probe-teacher-small.json" \
        --run "prior+effnet=$RUNS/igr-prior-effnet" --model "prior+effnet=$final" \
        --model "baseline=$RUNS/baseline-prior-effnet" --model "first teacher=models/teacher-small" \
        --out reports/teacher-prior-effnet
}
if [[ ${ONLY_NEXT:-0} == 1 ]]; then next; exit; fi     # ONLY_NEXT=1: that run's rows alone

# equal budget: 1,500 full-size steps each, the same schedule and data order
for try in igr igr-effnet igr-prior; do
    evaluate "$try-1500" "$RUNS/$try-at-1500" "$TRY_N"
    probe "$try-1500" "$RUNS/$try-at-1500"
done
"$PY" -m igr.baseline --from-prior "$RUNS/igr-prior-at-1500" --out "$RUNS/baseline-at-1500" > /dev/null
evaluate baseline-1500 "$RUNS/baseline-at-1500" "$TRY_N"
"$PY" -m igr.compare --title "Zero-SNR tries at equal budget (1,500 full-size steps each)" --against baseline \
    --eval "igr=$EVALS/igr-1500.json" --eval "igr-effnet=$EVALS/igr-effnet-1500.json" \
    --eval "igr-prior=$EVALS/igr-prior-1500.json" --eval "baseline=$EVALS/baseline-1500.json" \
    --probe "igr=$EVALS/probe-igr-1500.json" --probe "igr-effnet=$EVALS/probe-igr-effnet-1500.json" \
    --probe "igr-prior=$EVALS/probe-igr-prior-1500.json" \
    --run "igr=$RUNS/igr" --run "igr-effnet=$RUNS/igr-effnet" --run "igr-prior=$RUNS/igr-prior" \
    --out reports/tries-1500

# the finished run beside the regression baseline (its own prior, same steps) and the first teacher
FINAL="$RUNS/igr-prior/final"
"$PY" -m igr.baseline --from-prior "$FINAL" --out "$RUNS/baseline-prior" > /dev/null
evaluate igr-prior "$FINAL" "$N" --references
evaluate baseline-prior "$RUNS/baseline-prior" "$N"
evaluate teacher-small models/teacher-small "$N"
probe igr-prior "$FINAL"
probe teacher-small models/teacher-small
"$PY" -m igr.compare --title "Zero-SNR teacher with the aligned prior (4,500 full-size steps)" --against baseline \
    --eval "igr-prior=$EVALS/igr-prior.json" --eval "baseline=$EVALS/baseline-prior.json" \
    --eval "first teacher=$EVALS/teacher-small.json" \
    --probe "igr-prior=$EVALS/probe-igr-prior.json" --probe "first teacher=$EVALS/probe-teacher-small.json" \
    --run "igr-prior=$RUNS/igr-prior" --model "igr-prior=$FINAL" --model "baseline=$RUNS/baseline-prior" \
    --model "first teacher=models/teacher-small" --out reports/teacher-zsnr
next

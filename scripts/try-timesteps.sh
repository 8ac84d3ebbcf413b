#!/usr/bin/env bash
# Uniform timesteps against the coarse stage's high-noise bias, from the shipped teacher (models/teacher-warp): in
# scripts/ablate-warp.sh the single-stage run (uniform timesteps, timestep_power=1) beat the coarse-then-HQFT runs
# (timestep_power=2, then 0.5) by 0.045 masked SSIM. Two runs side by side, one CPU thread each, the same warp
# cache, data order, learning rate and STEPS full-size steps:
#   ts-p2   the coarse stage as the teacher was trained (timestep_power=2)
#   ts-p1   the same with uniform timesteps (timestep_power=1)
# each evaluated on N test pairs at the teacher's guidance with the swap test -> reports/try-timesteps.{md,json}
# (against ts-p2), compact logs in reports/train-logs/ts-p{1,2}.jsonl.
#
#   scripts/try-timesteps.sh [RUNS_DIR]   (default runs/ts; re-run to resume)
#   STEPS (default 500), LR (default 1e-4), N (default 128), CACHE (default RUNS_DIR/cache-warp: built as
#   scripts/ablate-warp.sh builds it where missing)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/ts}
PY=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-500}
LR=${LR:-1e-4}
N=${N:-128}
TEACHER=models/teacher-warp
CACHE=${CACHE:-$RUNS/cache-warp}
EVALS=reports/eval-warp/ts
export OMP_NUM_THREADS=1
mkdir -p "$RUNS" "$EVALS" reports/train-logs
. scripts/lib/runs.sh

warp_cache "$TEACHER" "$CACHE"

run() {   # run NAME POWER: train (scripts/lib/runs.sh), then evaluate with the swap test
    local name=$1 out="$RUNS/$1"
    train_stage "$name" --stage coarse --init "$TEACHER" --steps "$STEPS" \
        --set "cache=$CACHE" low_res_fraction=0 eval_every=250 "lr=$LR" "timestep_power=$2"
    cp "$out/log.jsonl" "reports/train-logs/$name.jsonl"
    evaluate_run "$name"
}
run ts-p2 2 > "$RUNS/ts-p2.log" 2>&1 & a=$!
run ts-p1 1 > "$RUNS/ts-p1.log" 2>&1 & b=$!
rc=0; wait $a || rc=1; wait $b || rc=1
if [[ $rc != 0 ]]; then echo "a run failed: see $RUNS/ts-p*.log and $RUNS/*.out" >&2; exit 1; fi

# shellcheck disable=SC2046
"$PY" -m igr.compare --title "From the warp teacher: uniform timesteps against the coarse stage's high-noise bias ($STEPS full-size steps each)" \
    --against ts-p2 $(compare_args ts-p2 ts-p1) --out reports/try-timesteps
echo "finished under $RUNS"

#!/usr/bin/env bash
# The small teacher's full recipe, as shipped: every weight under models/teacher-small comes from here.
#
#   scripts/train-teacher.sh [RUNS_DIR]        (default runs/; each stage resumes where it stopped)
#
# Two streams run side by side, one CPU thread each (OMP_NUM_THREADS=1; a 2-core machine):
#   A: vae -> encoder -> coarse -> hqft (the teacher)
#   B: regression baseline, then the ablations at equal step budgets and the same seeds
# Budgets are environment variables so a GPU can run the full 10k+3k-step recipe:
#   COARSE_STEPS (default 7000), HQFT_STEPS (1500), ABL_STEPS (1000), ABL_HQFT_STEPS (400).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
COARSE_STEPS=${COARSE_STEPS:-7000}
HQFT_STEPS=${HQFT_STEPS:-1500}
ABL_STEPS=${ABL_STEPS:-1000}
ABL_HQFT_STEPS=${ABL_HQFT_STEPS:-400}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$RUNS"

# stage NAME ARGS...: train into $RUNS/NAME unless it has finished; resume from its checkpoint if it has one.
stage() {
    local name=$1; shift
    local out="$RUNS/$name"
    if [[ -f "$out/final/config.json" ]]; then echo "[$name] done"; return; fi
    local resume=()
    if [[ -d "$out/checkpoint" ]]; then resume=(--resume); fi
    echo "[$name] $(date -u +%H:%M:%S) start: $*"
    "$PY" -m igr.train --preset small --out "$out" "$@" "${resume[@]}" > "$RUNS/$name.out" 2>&1
    echo "[$name] $(date -u +%H:%M:%S) finished"
}

stage vae --stage vae

stream_a() {
    stage encoder --stage encoder --init "$RUNS/vae/final" --steps 1000
    stage coarse --stage coarse --init "$RUNS/encoder/final" --steps "$COARSE_STEPS"
    stage hqft --stage hqft --init "$RUNS/coarse/final" --steps "$HQFT_STEPS"
}

stream_b() {
    local total=$((COARSE_STEPS + HQFT_STEPS))
    # the baseline sees as many pairs as the teacher's diffusion stages, with the same low-res share
    stage baseline --stage baseline --init "$RUNS/vae/final" --steps "$total" \
        --set "low_res_fraction=$(awk "BEGIN{print 0.8*$COARSE_STEPS/$total}")"
    while [[ ! -f "$RUNS/encoder/final/config.json" ]]; do sleep 30; done
    local enc="$RUNS/encoder/final"
    stage abl-both --stage coarse --init "$enc" --steps "$ABL_STEPS" --paths both --set eval_every=0
    stage abl-low --stage coarse --init "$enc" --steps "$ABL_STEPS" --paths low --set eval_every=0
    stage abl-high --stage coarse --init "$enc" --steps "$ABL_STEPS" --paths high --set eval_every=0
    # coarse-to-fine (abl-both, then hqft) against one stage of the same total steps at full size,
    # uniform timesteps, all pairs
    stage abl-c2f --stage hqft --init "$RUNS/abl-both/final" --steps "$ABL_HQFT_STEPS" --set eval_every=0
    stage abl-single --stage coarse --init "$enc" --steps $((ABL_STEPS + ABL_HQFT_STEPS)) \
        --set low_res_fraction=0 timestep_power=1 eval_every=0
}

stream_a & a=$!
stream_b & b=$!
wait $a && wait $b
echo "all stages finished under $RUNS"

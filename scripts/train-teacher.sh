#!/usr/bin/env bash
# The small teacher's full recipe, as shipped: every weight under models/teacher-small comes from here.
#
#   scripts/train-teacher.sh [RUNS_DIR]        (default runs/; each stage resumes where it stopped)
#
# vae -> encoder, then a latent cache of the frozen features (person latent, garment latent, person CLIP
# embedding) at 128x96 and 256x192, then two streams side by side, one CPU thread each
# (OMP_NUM_THREADS=1; a 2-core machine):
#   A: coarse -> hqft (the teacher), then ablations both -> coarse-to-fine, and low-level only
#   B: the regression baseline (as many steps as coarse + hqft, the same low-res share), then
#      ablations high-level only and single-stage
# Ablations run at equal step budgets and the same seeds.
# Budgets are environment variables so a GPU can run the full 10k + 3k-step recipe:
#   COARSE_STEPS (default 6000), HQFT_STEPS (1000), ABL_STEPS (1000), ABL_HQFT_STEPS (300),
#   CACHE_LOW (12000 pairs at 128x96), CACHE_FULL (8000 pairs at 256x192).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
COARSE_STEPS=${COARSE_STEPS:-6000}
HQFT_STEPS=${HQFT_STEPS:-1000}
ABL_STEPS=${ABL_STEPS:-1000}
ABL_HQFT_STEPS=${ABL_HQFT_STEPS:-300}
CACHE_LOW=${CACHE_LOW:-12000}
CACHE_FULL=${CACHE_FULL:-8000}
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
stage encoder --stage encoder --init "$RUNS/vae/final" --steps 1000
CACHE="$RUNS/cache"
if [[ ! -f "$CACHE/meta.json" ]]; then
    echo "[cache] $(date -u +%H:%M:%S) start"
    "$PY" -m igr.train.cache --model "$RUNS/encoder/final" --out "$CACHE" --sizes 128x96,256x192 \
        --n "$CACHE_LOW,$CACHE_FULL" > "$RUNS/cache.out" 2>&1
    echo "[cache] $(date -u +%H:%M:%S) finished"
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ENC="$RUNS/encoder/final"
C=(--set "cache=$CACHE")

stream_a() {
    stage coarse --stage coarse --init "$ENC" --steps "$COARSE_STEPS" "${C[@]}"
    stage hqft --stage hqft --init "$RUNS/coarse/final" --steps "$HQFT_STEPS" "${C[@]}"
    stage abl-both --stage coarse --init "$ENC" --steps "$ABL_STEPS" --paths both "${C[@]}" eval_every=0
    # coarse-to-fine: abl-both, then hqft (compared with abl-single below)
    stage abl-c2f --stage hqft --init "$RUNS/abl-both/final" --steps "$ABL_HQFT_STEPS" "${C[@]}" eval_every=0
    stage abl-low --stage coarse --init "$ENC" --steps "$ABL_STEPS" --paths low "${C[@]}" eval_every=0
}

stream_b() {
    local total=$((COARSE_STEPS + HQFT_STEPS))
    # the baseline sees as many pairs as the teacher's diffusion stages, with the same low-res share
    stage baseline --stage baseline --init "$RUNS/vae/final" --steps "$total" \
        "${C[@]}" "low_res_fraction=$(awk "BEGIN{print 0.8*$COARSE_STEPS/$total}")"
    stage abl-high --stage coarse --init "$ENC" --steps "$ABL_STEPS" --paths high "${C[@]}" eval_every=0
    # single stage: the same total steps as coarse-to-fine, all at full size, uniform timesteps, all pairs
    stage abl-single --stage coarse --init "$ENC" --steps $((ABL_STEPS + ABL_HQFT_STEPS)) \
        "${C[@]}" low_res_fraction=0 timestep_power=1 eval_every=0
}

stream_a & a=$!
stream_b & b=$!
rc=0
wait $a || rc=1
wait $b || rc=1
if [[ $rc != 0 ]]; then echo "a stage failed: see $RUNS/*.out" >&2; exit 1; fi
echo "all stages finished under $RUNS"

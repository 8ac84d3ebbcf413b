#!/usr/bin/env bash
# The zero-terminal-SNR teacher: two runs at the same budget, side by side (one CPU thread each), both
# starting from models/teacher-small's weights and its frozen VAE + CLIP tower (whose latent cache they share):
#   igr        pure IGR, betas rescaled to zero terminal SNR, every step at full size (256x192)
#   igr-prior  the same + the aligned prior: a regression UNet (the baseline's architecture and loss, trained
#              jointly) whose garment latent is concatenated to the denoiser's input; that UNet alone is the
#              regression baseline at the same budget
#
#   scripts/train-teacher-zsnr.sh [RUNS_DIR]     (default runs/)
#
# Each run writes a compact checkpoint (its EMA in fp16, frozen parts linked to models/teacher-small) to
# models/checkpoints/NAME at every checkpoint, overwritten: commit it, and a fresh clone's next run resumes it
# (--resume-compact) where RUNS_DIR has no full checkpoint. Budgets: STEPS (default 4500), CACHE_N (8000).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-4500}
CACHE_N=${CACHE_N:-8000}
INIT=models/teacher-small
mkdir -p "$RUNS"
CACHE="$RUNS/cache"
if [[ ! -f "$CACHE/meta.json" ]]; then
    echo "[cache] $(date -u +%H:%M:%S) start"
    "$PY" -m igr.train.cache --model "$INIT" --out "$CACHE" --sizes 256x192 --n "$CACHE_N" > "$RUNS/cache.out" 2>&1
    echo "[cache] $(date -u +%H:%M:%S) finished"
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# run NAME MODEL_SETTINGS...: train into $RUNS/NAME, resuming its full checkpoint or else the committed compact one
run() {
    local name=$1; shift
    local out="$RUNS/$name" compact="models/checkpoints/$name"
    if [[ -f "$out/final/config.json" ]]; then echo "[$name] done"; return; fi
    local resume=()
    if [[ -d "$out/checkpoint" ]]; then resume=(--resume)
    elif [[ -f "$compact/trainer.json" ]]; then resume=(--resume-compact "$compact"); fi
    echo "[$name] $(date -u +%H:%M:%S) start ${resume[*]}"
    "$PY" -m igr.train --stage coarse --preset small --init "$INIT" --out "$out" --steps "$STEPS" \
        --model-set zero_snr=true "$@" --compact-to "$compact" "${resume[@]}" \
        --set "cache=$CACHE" low_res_fraction=0 eval_every=500 > "$RUNS/$name.out" 2>&1
    echo "[$name] $(date -u +%H:%M:%S) finished"
}

run igr & a=$!
run igr-prior aligned_prior=true & b=$!
rc=0
wait $a || rc=1
wait $b || rc=1
if [[ $rc != 0 ]]; then echo "a run failed: see $RUNS/*.out" >&2; exit 1; fi
echo "both runs finished under $RUNS"

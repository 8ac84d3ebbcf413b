#!/usr/bin/env bash
# The zero-terminal-SNR teacher and its tries at equal budget, one CPU thread each, all starting from
# models/teacher-small's weights and its frozen VAE (whose latents every run shares):
#   igr          pure IGR, betas rescaled to zero terminal SNR, every step at full size (256x192)
#   igr-effnet   the same with the pretrained high-level extractor (EfficientNet-Lite0, frozen; its own cache)
#   igr-prior    the same as igr + the aligned prior: a regression UNet (the baseline's architecture and loss,
#                trained jointly) whose garment latent is concatenated to the denoiser's input; that UNet alone
#                is the regression baseline at the same budget
#   igr-prior-effnet  then: igr-prior's EMA at 3,500 steps (models/checkpoints/igr-prior, where that run stopped)
#                with the EfficientNet extractor in place of the CLIP tokens (fresh cell tokens, the rest carried
#                over), a NEXT_STEPS-step schedule (default 5000) of its own on the EfficientNet cache
# The first three run the STEPS-step schedule (default 4500); igr and igr-effnet stop at TRY_STEPS (default 1500,
# --until: the same learning rates as igr-prior's first 1500 steps) and their EMA at that step is copied to
# RUNS/NAME-at-TRY_STEPS, as is igr-prior's, for scripts/evaluate-teacher-zsnr.sh.
#
#   scripts/train-teacher-zsnr.sh [RUNS_DIR]     (default runs/; re-run to resume; ONLY_NEXT=1: igr-prior-effnet alone)
#
# Each run writes a compact checkpoint (its EMA in fp16, frozen parts linked to models/teacher-small) to
# models/checkpoints/NAME at every checkpoint, overwritten: commit it, and a fresh clone's next run resumes it
# (--resume-compact) where RUNS_DIR has no full checkpoint. CACHE_N: cached training pairs (default 8000).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-4500}
TRY_STEPS=${TRY_STEPS:-1500}
CACHE_N=${CACHE_N:-8000}
INIT=models/teacher-small
mkdir -p "$RUNS"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

cache() {  # cache MODEL OUT
    if [[ -f "$2/meta.json" ]]; then return; fi
    echo "[cache $2] $(date -u +%H:%M:%S) start"
    "$PY" -m igr.train.cache --model "$1" --out "$2" --sizes 256x192 --n "$CACHE_N" > "$2.out" 2>&1
}

step_of() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$1" 2>/dev/null || echo 0; }

# run NAME INIT CACHE UNTIL [MODEL_SETTINGS...]: train into $RUNS/NAME (UNTIL 0: to the end), resuming its
# full checkpoint or else the committed compact one; then snapshot the EMA at TRY_STEPS
run() {
    local name=$1 init=$2 data=$3 until=$4; shift 4
    local out="$RUNS/$name" compact="models/checkpoints/$name"
    local stop=() resume=() settings=()
    if [[ $until != 0 ]]; then stop=(--until "$until"); fi
    if [[ $# -gt 0 ]]; then settings=(--model-set "$@"); fi
    if [[ -d "$out/checkpoint" ]]; then resume=(--resume)
    elif [[ -f "$compact/trainer.json" ]]; then resume=(--resume-compact "$compact"); fi
    local at
    at=$(step_of "$out/checkpoint/trainer.json")
    if [[ -f "$out/final/config.json" || ( $until != 0 && $at -ge $until ) ]]; then echo "[$name] done"; else
        echo "[$name] $(date -u +%H:%M:%S) start ${resume[*]}"
        "$PY" -m igr.train --stage coarse --preset small --init "$init" --out "$out" --steps "${RUN_STEPS:-$STEPS}" "${stop[@]}" \
            "${settings[@]}" --compact-to "$compact" "${resume[@]}" \
            --set "cache=$data" low_res_fraction=0 eval_every=500 > "$RUNS/$name.out" 2>&1
        echo "[$name] $(date -u +%H:%M:%S) finished"
    fi
}

# snapshot NAME: the EMA of NAME's checkpoint once it reaches TRY_STEPS (runs beside the training)
snapshot() {
    local ck="$RUNS/$1/checkpoint" dest="$RUNS/$1-at-$TRY_STEPS"
    until [[ -d "$dest" ]]; do
        local at
        at=$(step_of "$ck/trainer.json")
        if [[ $at == "$TRY_STEPS" ]]; then cp -r "$ck/ema" "$dest.tmp" && mv "$dest.tmp" "$dest"
        elif [[ $at -gt $TRY_STEPS ]]; then echo "[$1] passed step $TRY_STEPS without a snapshot" >&2; return 1; fi
        sleep 15
    done
}

cache "$INIT" "$RUNS/cache"
effnet_cache() {   # teacher-small with the pretrained extractor (fresh tokens), and the cache made with it
    if [[ ! -f "$RUNS/effnet-init/config.json" ]]; then
        "$PY" -c 'import sys; from igr.train.trainer import build_model
build_model("small", sys.argv[1], 0, model_changes={"zero_snr": True, "encoder": {"backbone": "efficientnet-lite0"}}
            ).save_pretrained(sys.argv[2])' "$INIT" "$RUNS/effnet-init"
    fi
    cache "$RUNS/effnet-init" "$RUNS/cache-effnet"
}
stream_a() {
    run igr "$INIT" "$RUNS/cache" "$TRY_STEPS" zero_snr=true
    snapshot igr
    effnet_cache
    run igr-effnet "$RUNS/effnet-init" "$RUNS/cache-effnet" "$TRY_STEPS"
    snapshot igr-effnet
}
stream_b() {
    snapshot igr-prior & s=$!
    run igr-prior "$INIT" "$RUNS/cache" 0 zero_snr=true aligned_prior=true
    wait $s
}
next() {   # the prior run's EMA at 3,500 steps with the EfficientNet extractor (needs the EfficientNet cache)
    if [[ -f models/teacher-zsnr/config.json ]]; then echo "[igr-prior-effnet] done: models/teacher-zsnr"; return; fi
    effnet_cache
    RUN_STEPS=${NEXT_STEPS:-5000} run igr-prior-effnet models/checkpoints/igr-prior/ema "$RUNS/cache-effnet" 0 \
        encoder.backbone=efficientnet-lite0
    # the finished EMA ships as the next teacher (fp16; the VAE linked to teacher-small's)
    "$PY" -m igr.model pack --from "$RUNS/igr-prior-effnet/final" --out models/teacher-zsnr --share-with "$INIT"
}
if [[ ${ONLY_NEXT:-0} == 1 ]]; then next; exit; fi     # ONLY_NEXT=1: this run alone
stream_a & a=$!
stream_b & b=$!
rc=0
wait $a || rc=1
wait $b || rc=1
if [[ $rc != 0 ]]; then echo "a run failed: see $RUNS/*.out" >&2; exit 1; fi
next
echo "all runs finished under $RUNS"

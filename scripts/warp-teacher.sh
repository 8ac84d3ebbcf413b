#!/usr/bin/env bash
# The teacher with a warp prior (igr.warp, config warp_prior): a WarpNet resamples the person photo into the in-shop
# frame, and the warped photo's latent and WarpNet's visibility (5 channels) are concatenated to the denoiser's
# input, beside the aligned prior, so that the denoiser learns to clean up a print that is already in place
# (seams, shading, occluders, misplacement) instead of painting one. Against fine-ctl of scripts/try-from-teacher.sh:
# the same start (models/teacher-zsnr), cache rows, data order, learning rate and TRY_STEPS full-size steps, with
# the new input channels starting at zero (step 0 is the shipped teacher).
#   1. WarpNet: trained on SynthGarment train items 8000-15999 (WARP_STEPS, default 3000), so that it warps the
#      latent cache's persons (items 0-7999) as it warps unseen ones, not better
#   2. RUNS/warp-init: models/teacher-zsnr with that WarpNet attached (python -m igr.warp attach)
#   3. RUNS/cache-warp: RUNS/cache-effnet with each row's warp input (python -m igr.train.cache --warp-from)
#   4. fine-warp: TRY_STEPS coarse steps from RUNS/warp-init on it, the denoiser's input convolution (whose new
#      channels start at zero) at CONV_IN_SCALE x the learning rate; evaluated on N test pairs with the swap test
#   -> reports/warp-teacher.{md,json}, -curves.png, -grid.png (against fine-ctl, beside the shipped teacher and the
#      regression baseline, from their committed evaluations), reports/train-logs/fine-warp.jsonl,
#      reports/train-logs/warp-items-8000.jsonl
#
#   FIELD=true: the same run with every cache row warped by SynthGarment's true field instead of the WarpNet's
#      (python -m igr.train.cache --true-field), evaluated with the true field (igr.eval --true-warp) and with the
#      WarpNet's: what a perfect warp would teach -> fine-truewarp, reports/true-warp-teacher.*
#
#   scripts/warp-teacher.sh [RUNS_DIR]   (default runs/; re-run to resume; each stage is skipped once its output
#                                         exists; builds RUNS_DIR/cache-effnet where missing, about 35 min here)
#   TRY_STEPS (default 1000), LR (default 1e-4), N (test pairs, default 128), WARP_STEPS (default 3000),
#   CONV_IN_SCALE (default 10: at 1x, the training loss stayed within 0.5% of fine-ctl's for 380 steps)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
TRY_STEPS=${TRY_STEPS:-1000}
LR=${LR:-1e-4}
N=${N:-128}
WARP_STEPS=${WARP_STEPS:-3000}
CONV_IN_SCALE=${CONV_IN_SCALE:-10}
FIELD=${FIELD:-warpnet}
case $FIELD in
    warpnet) name=fine-warp cache_warp=$RUNS/cache-warp true=() report=reports/warp-teacher ;;
    true) name=fine-truewarp cache_warp=$RUNS/cache-truewarp true=(--true-field) report=reports/true-warp-teacher ;;
    *) echo "FIELD is warpnet or true, not $FIELD" >&2; exit 2 ;;
esac
INIT=models/teacher-zsnr
EVALS=reports/eval-zsnr
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$RUNS" "$EVALS" reports/train-logs
step_of() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["step"])' "$1" 2>/dev/null || echo 0; }

warpnet() {
    [[ -f "$RUNS/warp-data-8000.npz" ]] ||
        "$PY" -m igr.warp data --out "$RUNS/warp-data-8000.npz" --first 8000 --n 8000 --workers 1
    [[ $(step_of "$RUNS/warp-8000/final/config.json") == "$WARP_STEPS" ]] ||
        "$PY" -m igr.warp train --data "$RUNS/warp-data-8000.npz" --out "$RUNS/warp-8000" --steps "$WARP_STEPS" --batch 16
    cp "$RUNS/warp-8000/log.jsonl" reports/train-logs/warp-items-8000.jsonl
}
cache() {
    [[ -f "$RUNS/cache-effnet/meta.json" ]] ||
        "$PY" -m igr.train.cache --model "$INIT" --out "$RUNS/cache-effnet" --sizes 256x192 --n 8000
}
warpnet & a=$!          # one thread each, side by side
cache & b=$!
rc=0; wait $a || rc=1; wait $b || rc=1
if [[ $rc != 0 ]]; then echo "WarpNet or the latent cache failed" >&2; exit 1; fi

[[ -f "$RUNS/warp-init/config.json" ]] ||
    "$PY" -m igr.warp attach --model "$INIT" --warp "$RUNS/warp-8000/final" --out "$RUNS/warp-init"
[[ -f "$cache_warp/meta.json" ]] ||
    OMP_NUM_THREADS=2 "$PY" -m igr.train.cache --model "$RUNS/warp-init" --warp-from "$RUNS/cache-effnet" \
        --out "$cache_warp" ${true[@]+"${true[@]}"}

out="$RUNS/$name"
if [[ ! -f "$out/final/config.json" ]]; then
    resume=(); if [[ -d "$out/checkpoint" ]]; then resume=(--resume); fi
    echo "[$name] $(date -u +%H:%M:%S) start"
    OMP_NUM_THREADS=2 "$PY" -m igr.train --stage coarse --preset small --init "$RUNS/warp-init" --out "$out" \
        --steps "$TRY_STEPS" ${resume[@]+"${resume[@]}"} \
        --set "cache=$cache_warp" low_res_fraction=0 eval_every=500 "lr=$LR" \
        "lr_scale={\"denoiser\\\\.unet\\\\.conv_in\\\\.\": $CONV_IN_SCALE}" > "$RUNS/$name.out" 2>&1
    echo "[$name] $(date -u +%H:%M:%S) trained"
fi
cp "$out/log.jsonl" "reports/train-logs/$name.jsonl"
export OMP_NUM_THREADS=2
flag=(); [[ $FIELD == true ]] && flag=(--true-warp)     # evaluated as trained: with the field its cache holds
if [[ ! -f "$EVALS/$name.json" || "$out/final/config.json" -nt "$EVALS/$name.json" ]]; then
    "$PY" -m igr.eval --model "$out/final" --features models/teacher-small --split test --n "$N" \
        ${flag[@]+"${flag[@]}"} --out "$EVALS/$name"
fi
if [[ ! -f "$EVALS/probe-$name.json" || "$out/final/config.json" -nt "$EVALS/probe-$name.json" ]]; then
    "$PY" -m igr.probe --model "$out/final" --n 64 ${flag[@]+"${flag[@]}"} --out "$EVALS/probe-$name" > /dev/null
fi
more=()
if [[ $FIELD == true ]]; then       # the same model fed by the WarpNet, as a photo alone can feed it
    if [[ ! -f "$EVALS/$name-on-warpnet.json" || "$out/final/config.json" -nt "$EVALS/$name-on-warpnet.json" ]]; then
        "$PY" -m igr.eval --model "$out/final" --features models/teacher-small --split test --n "$N" \
            --out "$EVALS/$name-on-warpnet"
    fi
    more=(--eval "fine-warp=$EVALS/fine-warp.json" --probe "fine-warp=$EVALS/probe-fine-warp.json"
          --run "fine-warp=$RUNS/logs/fine-warp" --eval "$name-on-warpnet=$EVALS/$name-on-warpnet.json" --model "$name-on-warpnet=$out/final")
    mkdir -p "$RUNS/logs/fine-warp" && cp reports/train-logs/fine-warp.jsonl "$RUNS/logs/fine-warp/log.jsonl"
fi

mkdir -p "$RUNS/logs/fine-ctl" && cp reports/train-logs/fine-ctl.jsonl "$RUNS/logs/fine-ctl/log.jsonl"
title="The teacher with a warp prior"; [[ $FIELD == true ]] && title="The teacher with the true field's warp as its prior"
"$PY" -m igr.compare --title "$title ($TRY_STEPS full-size steps from models/teacher-zsnr)" \
    --against fine-ctl \
    --eval "fine-ctl=$EVALS/fine-ctl.json" --probe "fine-ctl=$EVALS/probe-fine-ctl.json" --run "fine-ctl=$RUNS/logs/fine-ctl" \
    --eval "$name=$EVALS/$name.json" --probe "$name=$EVALS/probe-$name.json" --run "$name=$out" --model "$name=$out/final" \
    ${more[@]+"${more[@]}"} \
    --eval "teacher=$EVALS/teacher-n$N.json" --model "teacher=$INIT" \
    --eval "baseline=$EVALS/baseline-n$N.json" --out "$report"
echo "finished under $RUNS: $report.md"

#!/usr/bin/env bash
# The print carried by a warp (igr.warp): WarpNet learns, from SynthGarment's correspondences, where the person photo
# shows each cell of the in-shop frame; resampling the photo there moves the worn print into the in-shop frame. Each
# variant is evaluated on the same N test pairs as the regression baseline (the teacher's aligned prior): the warped
# photo over the baseline's silhouette, the same with SynthGarment's true correspondences (the ceiling of a warp),
# and the teacher sampled from those composites noised to strength·T (SDEdit), with the composite as the start
# only and as its aligned prior too, and from the true garment (what noising and its steps alone cost).
# -> reports/warp-prior.{md,json}, -curves.png, -grid.png; reports/eval-zsnr/warp-VARIANT.*
#
#   scripts/warp-prior.sh [RUNS_DIR]   (default runs/; each stage is skipped once its output exists)
#   N (test pairs, default 128), STEPS (WarpNet steps, default 3000: about 30 min of two threads here),
#   STRENGTHS (default 0.15; each costs about 6 min of two threads here)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
N=${N:-128}
STEPS=${STEPS:-3000}
STRENGTHS=${STRENGTHS:-0.15}
TEACHER=models/teacher-zsnr
OUT=reports/eval-zsnr/warp
CONV_LOG=$([[ -f reports/train-logs/warp-conv-unet.jsonl ]] && echo reports/train-logs/warp-conv-unet.jsonl || true)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

[[ -f "$RUNS/warp-data.npz" ]] || "$PY" -m igr.warp data --out "$RUNS/warp-data.npz" --n 8000
[[ -f "$RUNS/warp/final/config.json" && $(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['step'])" \
    "$RUNS/warp/final/config.json") == "$STEPS" ]] ||
    "$PY" -m igr.warp train --data "$RUNS/warp-data.npz" --out "$RUNS/warp" --steps "$STEPS" --batch 16
mkdir -p reports/train-logs
cp "$RUNS/warp/log.jsonl" reports/train-logs/warp.jsonl

variants=baseline,warp,warp-deshaded,oracle-deshaded
for s in ${STRENGTHS//,/ }; do variants+=",teacher-from-warp-s$s,teacher-on-warp-s$s,teacher-from-oracle-s$s,teacher-from-truth-s$s"; done
"$PY" -m igr.warp eval --model "$RUNS/warp/final" --prior-of "$TEACHER" --n "$N" --strengths "$STRENGTHS" \
    --variants "$variants" --out "$OUT"
"$PY" -m igr.warp report --prefix "$OUT" --variants "$variants" --log "WarpNet=reports/train-logs/warp.jsonl" \
    ${CONV_LOG:+--log "conv UNet with skips=$CONV_LOG"} --out reports/warp-prior
mv "$OUT-grid.png" reports/warp-prior-grid.png

#!/usr/bin/env bash
# The lean 2-step student (issue: the student's restore in 2.5 GFLOP): student-2's aligned prior distilled into a
# 16,32,48 UNet (0.13 GFLOP against 1.78), the EfficientNet-Lite0 tower at 128x96 (0.18 GFLOP against 0.71), and
# the denoiser with the token projection step-distilled again on the teacher's trajectories with both; beside it,
# the same without any prior. Light VAE attached, evaluated on the test split, reports/lean-students.*.
# Needs runs/cache-effnet and runs/distill-zsnr/trajectories (scripts/distill-students.sh with TAG=zsnr) and the
# light VAE run runs/light-full/w4-rgb (docs/distillation.md). About 70 min of two threads here.
#
#   scripts/lean-student.sh [RUNS_DIR]        STEPS (student optimizer steps, 2000), N (test pairs, 256)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
OUT=$RUNS/lean
N=${N:-256}
export OMP_NUM_THREADS=1
mkdir -p "$OUT"
SHARE=(models/student-2-zsnr-light models/student-2-zsnr models/teacher-zsnr models/teacher-small)
COMMON=(--from models/teacher-zsnr --cache "$RUNS/cache-effnet" --trajectories "$RUNS/distill-zsnr/trajectories"
        --n 1536 --record-steps 4,2,1 --threads 1 --method progressive --lr 2e-4 --train-steps "${STEPS:-2000}"
        --no-chain --steps 2)

# without any prior (beside the light prior's run)
[[ -f "$OUT/np-t128/student-2/final/config.json" ]] || "$PY" -m distill steps "${COMMON[@]}" --init models/student-2-zsnr \
    --out "$OUT/np-t128" --model-set aligned_prior=false 'encoder.input_size=[128,96]' > "$OUT/np-t128.out" 2>&1 &
# the light prior, then the student that learns with its answers
[[ -f "$OUT/student-2-lp16/config.json" ]] || "$PY" -m distill light-prior --model models/student-2-zsnr \
    --channels 16,32,48 --cache "$RUNS/cache-effnet" --train-steps 2500 --batch 32 --threads 1 --dtype fp32 \
    --out "$OUT/student-2-lp16" > "$OUT/lp16.out" 2>&1
[[ -f "$OUT/lp16-t128/student-2/final/config.json" ]] || "$PY" -m distill steps "${COMMON[@]}" \
    --init "$OUT/student-2-lp16" --out "$OUT/lp16-t128" --model-set 'encoder.input_size=[128,96]' \
    > "$OUT/lp16-t128.out" 2>&1
wait

"$PY" -m distill light-attach --model "$OUT/lp16-t128/student-2/final" --light "$RUNS/light-full/w4-rgb/final" \
    --dtype fp16 --out models/student-2-lean-light --share-with "${SHARE[@]}"
"$PY" -m distill light-attach --model "$OUT/np-t128/student-2/final" --light "$RUNS/light-full/w4-rgb/final" \
    --dtype fp16 --out "$OUT/student-2-noprior-light" --share-with "${SHARE[@]}"
for row in student-2-lean-light=models/student-2-lean-light student-2-noprior-light=$OUT/student-2-noprior-light; do
    "$PY" -m igr.eval --model "${row#*=}" --features models/teacher-small --split test --n "$N" \
        --out "reports/eval-zsnr/${row%%=*}"
done
"$PY" -m distill report --teacher models/teacher-zsnr --rows student-2-light=models/student-2-zsnr-light \
    student-2-lean-light=models/student-2-lean-light student-2-noprior-light=$OUT/student-2-noprior-light \
    --evals reports/eval-zsnr --out reports/lean-students

#!/usr/bin/env bash
# Lean 2-step students for the 2.5 GFLOP target: student-2 with the EfficientNet-Lite0 tower at 128x96
# (0.18 GFLOP instead of 0.71) and its aligned prior made light (`distill light-prior`) or dropped, the denoiser
# step-distilled again on the teacher's trajectories with them. Each gets the light VAE and a test-split
# evaluation; reports/lean-students.* sets them beside the shipped light student. None is shipped: see
# docs/distillation.md, "Lean students". Needs runs/cache-effnet and runs/distill-zsnr/trajectories
# (scripts/distill-students.sh with TAG=zsnr) and the light VAE run runs/light-full/w4-rgb (docs/distillation.md).
# About 3 h of one thread here, 1 h 40 min on two.
#
#   scripts/lean-student.sh [RUNS_DIR]        N (test pairs, 256)
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
        --n 1536 --record-steps 4,2,1 --threads 1 --method progressive --no-chain --steps 2)
T128='encoder.input_size=[128,96]'
done_() { [[ -f "$1/student-2/final/config.json" ]]; }

# light priors: 16,32,48 (0.13 GFLOP) and 32,64,96 (0.51), against the full prior's 1.78
for w in 16,32,48 32,64,96; do
    name=lp${w%%,*}
    [[ -f "$OUT/student-2-$name/config.json" ]] || "$PY" -m distill light-prior --model models/student-2-zsnr \
        --channels "$w" --cache "$RUNS/cache-effnet" --train-steps 2500 --batch 32 --threads 1 --dtype fp32 \
        --out "$OUT/student-2-$name" > "$OUT/$name.out" 2>&1
done
# no prior; the 16,32,48 prior (2,000 steps, then 3,000 more); the same with the token projection fitted first on
# 4,096 cache persons and then frozen; the 16,32,48 prior with the full tower; the 32,64,96 prior
done_ "$OUT/np-t128" || "$PY" -m distill steps "${COMMON[@]}" --lr 2e-4 --train-steps 2000 --init models/student-2-zsnr \
    --out "$OUT/np-t128" --model-set aligned_prior=false "$T128" > "$OUT/np-t128.out" 2>&1
done_ "$OUT/lp16-t128" || "$PY" -m distill steps "${COMMON[@]}" --lr 2e-4 --train-steps 2000 \
    --init "$OUT/student-2-lp16" --out "$OUT/lp16-t128" --model-set "$T128" > "$OUT/lp16-t128.out" 2>&1
done_ "$OUT/lp16-t128-more" || "$PY" -m distill steps "${COMMON[@]}" --lr 1e-4 --train-steps 3000 \
    --init "$OUT/lp16-t128/student-2/final" --out "$OUT/lp16-t128-more" > "$OUT/lp16-t128-more.out" 2>&1
done_ "$OUT/lp16-t128-tf" || "$PY" -m distill steps "${COMMON[@]}" --lr 1e-4 --train-steps 1500 \
    --init "$OUT/student-2-lp16" --out "$OUT/lp16-t128-tf" --model-set "$T128" --token-fit 4096 \
    > "$OUT/lp16-t128-tf.out" 2>&1
done_ "$OUT/lp16-t256" || "$PY" -m distill steps "${COMMON[@]}" --lr 1e-4 --train-steps 1500 \
    --init "$OUT/student-2-lp16" --out "$OUT/lp16-t256" > "$OUT/lp16-t256.out" 2>&1
done_ "$OUT/lp32-t128" || "$PY" -m distill steps "${COMMON[@]}" --lr 2e-4 --train-steps 3000 \
    --init "$OUT/student-2-lp32" --out "$OUT/lp32-t128" --model-set "$T128" > "$OUT/lp32-t128.out" 2>&1

ROWS=(student-2-light=models/student-2-zsnr-light)
for pair in noprior=np-t128 lean=lp16-t128 lean-more=lp16-t128-more lean-tf=lp16-t128-tf lean256=lp16-t256 \
            lean32=lp32-t128; do
    name=student-2-${pair%%=*}-light
    "$PY" -m distill light-attach --model "$OUT/${pair#*=}/student-2/final" --light "$RUNS/light-full/w4-rgb/final" \
        --dtype fp16 --out "$OUT/$name" --share-with "${SHARE[@]}"
    "$PY" -m igr.eval --model "$OUT/$name" --features models/teacher-small --split test --n "$N" \
        --out "reports/eval-zsnr/$name"
    ROWS+=("$name=$OUT/$name")
done
"$PY" -m distill report --teacher models/teacher-zsnr --rows "${ROWS[@]}" --evals reports/eval-zsnr \
    --out reports/lean-students

#!/usr/bin/env bash
# The warp teacher's students at guidance 1.5 (the guidance sweep's pick on val, reports/guidance-warp.md; on 1,024
# val pairs it puts the teacher's mask IoU over 0.85): models/teacher-warp sampled at that scale (`--guidance`),
# 1,536 training pairs cached with their warp rows, trajectories from its sampler at that scale (DPM-Solver++ 50 steps),
# then the 2- and 1-step students trained side by side on them from the shipped 2-step student (models/student-2-warp,
# distilled at guidance 2), the 4-step one after them, each with the default's light parts attached, and their evaluations on 1,024 test pairs
# beside the teacher's at the same guidance (reports/eval-warp/g15/). One thread per process; about 1.3 h here.
#
#   scripts/warp-students-g15.sh [RUNS_DIR]
#   GUIDANCE (1.5), STUDENT_STEPS (2400 each), N (test pairs, 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/g15}
PY=${PYTHON:-.venv/bin/python}
G=${GUIDANCE:-1.5}
TEACHER=models/teacher-warp
OUT=$RUNS/distill
EVAL=reports/eval-warp/g15
N=${N:-1024}
export OMP_NUM_THREADS=1
mkdir -p "$OUT" "$EVAL"

. scripts/lib/runs.sh
warp_cache "$TEACHER" "$RUNS/cache-warp"        # 1,536 pairs (5 min), then their warp rows (2 min)
STEPS=(--from "$TEACHER" --guidance "$G" --cache "$RUNS/cache-warp" --record-steps 4,2,1 --n 1536 --threads 1
       --trajectories "$OUT/trajectories")
[[ -f $OUT/trajectories/meta.json ]] || "$PY" -m distill steps "${STEPS[@]}" --out "$OUT" --steps 2 --record-only

# INIT: the guidance-2 2-step student the shipped run started from. models/student-2-warp is now the student this
# script made; to start as it did, copy that folder and put `git show 1180596:models/student-2-warp/denoiser.safetensors`
# in the copy, then INIT=the copy
INIT=${INIT:-models/student-2-warp}
TRAIN=(--method progressive --lr 1e-4 --train-steps "${STUDENT_STEPS:-2400}" --no-chain --init "$INIT")
[[ -f $OUT/s2/student-2/final/config.json ]] || "$PY" -m distill steps "${STEPS[@]}" "${TRAIN[@]}" --steps 2 \
    --out "$OUT/s2" > "$OUT/s2.out" 2>&1 &
[[ -f $OUT/s1/student-1/final/config.json ]] || "$PY" -m distill steps "${STEPS[@]}" "${TRAIN[@]}" --steps 1 \
    --gt-weight 0.5 --out "$OUT/s1" > "$OUT/s1.out" 2>&1 &
wait
# the 4-step student after them, on both threads, the same trajectories, from the 2-step student at guidance G (the
# shipped run took it packed at fp16, models/student-2-warp)
[[ -f $OUT/s4/student-4/final/config.json ]] || OMP_NUM_THREADS=2 "$PY" -m distill steps "${STEPS[@]}" "${TRAIN[@]}" \
    --init "$OUT/s2/student-2/final" --steps 4 --threads 2 --out "$OUT/s4" > "$OUT/s4.out" 2>&1

export OMP_NUM_THREADS=2
for k in 2 1 4; do
    [[ -f $RUNS/student-$k-light/config.json ]] || "$PY" -m distill light-attach --model "$OUT/s$k/student-$k/final" \
        --light models/student-2-warp-light --dtype fp16 --out "$RUNS/student-$k-light"
done
[[ -f $EVAL/test$N-teacher-g$G.json ]] || "$PY" -m igr.eval --model "$TEACHER" --guidance "$G" \
    --features models/teacher-small --split test --n "$N" --out "$EVAL/test$N-teacher-g$G"
for pair in student-2-light="$RUNS/student-2-light" student-1-light="$RUNS/student-1-light" \
            student-4-light="$RUNS/student-4-light"; do
    name=${pair%%=*}
    [[ -f $EVAL/test$N-$name.json ]] || "$PY" -m igr.eval --model "${pair#*=}" --features models/teacher-small \
        --split test --n "$N" --out "$EVAL/test$N-$name"
done

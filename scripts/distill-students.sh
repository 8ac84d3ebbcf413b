#!/usr/bin/env bash
# The shipped students from the shipped teacher: guidance distillation, the teacher's trajectories,
# the 4-, 2- and 1-step students, their test-split evaluations, the fp16 folders under models/ and
# reports/students.{md,json}. Needs runs/cache and runs/encoder/final from scripts/train-teacher.sh.
#
#   scripts/distill-students.sh [RUNS_DIR]
#   GUIDE_STEPS (default 800), STUDENT_STEPS (1200 each), TRAJ_N (1536), GT_WEIGHT (1-step, 0.5), N (test pairs, 256)
#   TEACHER (default models/teacher-small), CACHE (its latent cache, default RUNS_DIR/cache), FEATURES (the model
#   whose image encoder defines FD_garm, default RUNS_DIR/encoder/final), TAG (the shipped folders are
#   models/NAME-TAG, default small). The next teacher (zero SNR, aligned prior, EfficientNet tokens):
#   TEACHER=models/teacher-zsnr CACHE=runs/cache-effnet FEATURES=models/teacher-small TAG=zsnr
# Two streams on the two cores: guidance training beside the trajectory recording; the students after both.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
TAG=${TAG:-small}
OUT=$RUNS/distill$([[ $TAG == small ]] || echo "-$TAG")
TEACHER=${TEACHER:-models/teacher-small}
CACHE=${CACHE:-$RUNS/cache}
FEATURES=${FEATURES:-$RUNS/encoder/final}
N=${N:-256}
export OMP_NUM_THREADS=1
mkdir -p "$OUT"

[[ -f "$OUT/guided/final/config.json" ]] || "$PY" -m distill guidance --teacher "$TEACHER" --cache "$CACHE" \
    --out "$OUT/guided" --train-steps "${GUIDE_STEPS:-800}" --threads 1 > "$OUT/guided.out" 2>&1 &
STEPS=(--from "$TEACHER" --cache "$CACHE" --out "$OUT" --record-steps 4,2,1 --n "${TRAJ_N:-1536}" --threads 1)
"$PY" -m distill steps "${STEPS[@]}" --steps 4,2,1 --record-only > "$OUT/record.out" 2>&1 &
wait
# the 4-step student from the guided model, then the 2- and 1-step students from it, side by side
TRAIN=(--method progressive --lr 1e-4 --train-steps "${STUDENT_STEPS:-1200}" --no-chain)
"$PY" -m distill steps "${STEPS[@]}" "${TRAIN[@]}" --steps 4 --init "$OUT/guided/final" > "$OUT/student-4.out" 2>&1
"$PY" -m distill steps "${STEPS[@]}" "${TRAIN[@]}" --steps 2 --init "$OUT/student-4/final" > "$OUT/student-2.out" 2>&1 &
"$PY" -m distill steps "${STEPS[@]}" "${TRAIN[@]}" --steps 1 --init "$OUT/student-4/final" \
    --gt-weight "${GT_WEIGHT:-0.5}" > "$OUT/student-1.out" 2>&1 &
wait

# ship: fp16, the frozen parts linked to the teacher's files (shared.json) instead of copied
for name in guided student-4 student-2 student-1; do
    "$PY" -m igr.model pack --from "$OUT/$name/final" --out "models/$name-$TAG" --share-with "$TEACHER" --overwrite
done
EVAL=reports/eval$([[ $TAG == small ]] || echo "-$TAG")
for name in guided student-4 student-2 student-1; do
    "$PY" -m igr.eval --model "models/$name-$TAG" --features "$FEATURES" --split test --n "$N" --out "$EVAL/$name"
done
# the teacher's own evaluation: EVAL/teacher.json (scripts/evaluate-teacher*.sh, or igr.eval on TEACHER)
[[ -f "$EVAL/teacher.json" ]] || "$PY" -m igr.eval --model "$TEACHER" --features "$FEATURES" --split test --n "$N" \
    --out "$EVAL/teacher" --references
OMP_NUM_THREADS=2 "$PY" -m distill report --teacher "$TEACHER" --evals "$EVAL" --rows guided=models/guided-$TAG \
    student-4=models/student-4-$TAG student-2=models/student-2-$TAG student-1=models/student-1-$TAG \
    --out reports/students$([[ $TAG == small ]] || echo "-$TAG")

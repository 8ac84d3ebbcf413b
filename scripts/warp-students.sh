#!/usr/bin/env bash
# Students of the warp prior teacher (gpu-truewarp fed the 2.65 px WarpNet; docs/training.md "Long runs on a lent
# GPU"): the teacher shipped as models/teacher-warp (fp16), its latent cache warped by its own WarpNet, guidance
# distillation beside the trajectory recording, then the 4- and 2-step students side by side (both from the guided
# model), the 2-step student shipped with the light VAE parts of models/student-2-zsnr-light (the same VAE), the
# test-split evaluations (reports/eval-warp/) and reports/students-warp.{md,json}.
#
#   scripts/warp-students.sh [RUNS_DIR]
#   needs RUNS_DIR/gpu-truewarp-flip6k (scripts/gpu-teacher.sh on a GPU, then igr.warp attach of the WarpNet) unless
#   models/teacher-warp exists, and RUNS_DIR/cache-effnet (scripts/train-teacher-zsnr.sh)
#   GUIDE_STEPS (800), STUDENT_STEPS (1200 each), TRAJ_N (1536), N (test pairs, 128)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
TEACHER=models/teacher-warp
CACHE=$RUNS/cache-warp-flip6k
OUT=$RUNS/distill-warp
EVAL=reports/eval-warp
N=${N:-128}
export OMP_NUM_THREADS=1
mkdir -p "$OUT" "$EVAL"

[[ -f $TEACHER/config.json ]] || "$PY" -m igr.model pack --from "$RUNS/gpu-truewarp-flip6k" --out "$TEACHER" \
    --share-with models/teacher-zsnr --share-with models/teacher-small
# each cache row's warp prior input from the teacher's own WarpNet (a student restores from the photo alone)
[[ -f $CACHE/meta.json ]] || "$PY" -m igr.train.cache --model "$TEACHER" --warp-from "$RUNS/cache-effnet" \
    --out "$CACHE" --workers 1 > "$OUT/cache.out" 2>&1

[[ -f "$OUT/guided/final/config.json" ]] || "$PY" -m distill guidance --teacher "$TEACHER" --cache "$CACHE" \
    --out "$OUT/guided" --train-steps "${GUIDE_STEPS:-800}" --threads 1 > "$OUT/guided.out" 2>&1 &
STEPS=(--from "$TEACHER" --cache "$CACHE" --out "$OUT" --record-steps 4,2,1 --n "${TRAJ_N:-1536}" --threads 1)
"$PY" -m distill steps "${STEPS[@]}" --steps 4,2,1 --record-only > "$OUT/record.out" 2>&1 &
wait
TRAIN=(--method progressive --lr 1e-4 --train-steps "${STUDENT_STEPS:-1200}" --no-chain --init "$OUT/guided/final")
for k in 4 2; do
    [[ -f "$OUT/student-$k/final/config.json" ]] || \
        "$PY" -m distill steps "${STEPS[@]}" "${TRAIN[@]}" --steps $k > "$OUT/student-$k.out" 2>&1 &
done
wait

# ship the 2-step student (fp16, frozen parts linked to the teacher's) and its light twin (light parts linked)
"$PY" -m igr.model pack --from "$OUT/student-2/final" --out models/student-2-warp --share-with "$TEACHER" \
    --share-with models/teacher-small --overwrite
"$PY" -m distill light-attach --model models/student-2-warp --light models/student-2-zsnr-light --dtype fp16 \
    --out models/student-2-warp-light --share-with models/student-2-warp "$TEACHER" models/student-2-zsnr-light \
    models/teacher-small
export OMP_NUM_THREADS=2
for pair in teacher="$TEACHER" student-2-light=models/student-2-warp-light student-2=models/student-2-warp \
            student-4="$OUT/student-4/final" guided="$OUT/guided/final"; do
    name=${pair%%=*}
    [[ -f "$EVAL/$name.json" ]] || "$PY" -m igr.eval --model "${pair#*=}" --features models/teacher-small --split test \
        --n "$N" --out "$EVAL/$name" $([[ $name == teacher ]] && echo --references)
done
"$PY" -m distill report --teacher "$TEACHER" --evals "$EVAL" --rows guided="$OUT/guided/final" \
    student-4="$OUT/student-4/final" student-2=models/student-2-warp student-2-light=models/student-2-warp-light \
    --out reports/students-warp

#!/usr/bin/env bash
# The WarpNet's validation error was ~1 px above its training error after five continuations on the same 8,000
# items: it had begun to learn them by heart. Here it goes on with three times the items, then fine-truewarp (the
# teacher trained on the true field) is fed it:
#   1. RUNS/warp-data-16000.npz: train items 16,000-31,999 (python -m igr.warp data; none of the latent cache's 0-7,999)
#   2. RUNS/warp-joined: INIT trained STEPS more on that file and RUNS/warp-data-8000.npz joined, the latter last,
#      so its last 256 items validate as in every earlier run -> reports/train-logs/warp-items-8000-31999.jsonl
#   3. RUNS/fine-truewarp-joined: fine-truewarp with that WarpNet in place of its own (igr.warp attach --replace),
#      evaluated on N test pairs -> reports/eval-zsnr/fine-truewarp-on-warpnet-joined.*
#   -> reports/warp-more-data.{md,json}, -curves.png, -grid.png (against fine-ctl, beside fine-truewarp fed INIT and
#      fed the true field, and the regression baseline, from their committed evaluations)
# Measured on two threads here: the data 3 min, 9,000 steps 91 min, the evaluation 3 min.
#
#   scripts/warp-more-data.sh [RUNS_DIR]   (default runs/; needs RUNS_DIR/warp-data-8000.npz, RUNS_DIR/fine-truewarp/final
#                                           and INIT; re-run to resume: each stage is skipped once its output exists)
#   INIT (default RUNS_DIR/warp-more5/final: the 4.30 px WarpNet of docs/training.md's fifth continuation),
#   STEPS (default 9000), N (test pairs, default 128)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
INIT=${INIT:-$RUNS/warp-more5/final}
STEPS=${STEPS:-9000}
N=${N:-128}
EVALS=reports/eval-zsnr
src=$RUNS/fine-truewarp/final
for need in "$src/config.json" "$RUNS/warp-data-8000.npz" "$INIT/config.json"; do
    [[ -e $need ]] || { echo "missing $need (FIELD=true scripts/warp-teacher.sh $RUNS and docs/training.md's WarpNet continuations build them)" >&2; exit 1; }
done
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$EVALS" reports/train-logs

more=$RUNS/warp-data-16000.npz
[[ -f $more ]] || "$PY" -m igr.warp data --out "$more" --first 16000 --n 16000
warpnet=$RUNS/warp-joined
done_steps=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1])).get('step', 0))" "$warpnet/final/config.json" 2>/dev/null || echo 0)
if [[ $done_steps != "$STEPS" ]]; then
    resume=(); if [[ -f $warpnet/checkpoint/state.pt ]]; then resume=(--resume); fi
    "$PY" -m igr.warp train --data "$more" --data "$RUNS/warp-data-8000.npz" --out "$warpnet" --init "$INIT" \
        --steps "$STEPS" --batch 16 --lr 3e-4 "${resume[@]}" > "$RUNS/warp-joined.out" 2>&1
fi
cp "$warpnet/log.jsonl" reports/train-logs/warp-items-8000-31999.jsonl

model=$RUNS/fine-truewarp-joined
[[ -f $model/config.json && $model/config.json -nt $warpnet/final/config.json ]] ||
    "$PY" -m igr.warp attach --model "$src" --warp "$warpnet/final" --out "$model" --replace
ev=$EVALS/fine-truewarp-on-warpnet-joined
[[ -f $ev.json && $ev.json -nt $model/config.json ]] ||
    "$PY" -m igr.eval --model "$model" --features models/teacher-small --split test --n "$N" --out "$ev"

before=$RUNS/fine-truewarp-before-joined
[[ -f $before/config.json ]] || "$PY" -m igr.warp attach --model "$src" --warp "$INIT" --out "$before" --replace
"$PY" -m igr.compare --title "fine-truewarp fed a WarpNet trained on three times the items" \
    --against fine-ctl \
    --eval "on 4.30 px WarpNet=$EVALS/fine-truewarp-on-warpnet-more5.json" --model "on 4.30 px WarpNet=$before" \
    --eval "on the joined WarpNet=$ev.json" --model "on the joined WarpNet=$model" \
    --eval "fine-truewarp, true field=$EVALS/fine-truewarp.json" \
    --eval "fine-ctl=$EVALS/fine-ctl.json" \
    --eval "baseline=$EVALS/baseline-n$N.json" --out reports/warp-more-data
echo "finished under $RUNS: reports/warp-more-data.md"

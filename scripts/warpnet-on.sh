#!/usr/bin/env bash
# The shipped teacher's WarpNet trained on, then tried in a copy of models/ before it ships:
#   1. RUNS/warp-data-{48000,32000,8000}.npz: train items 48,000-63,999 (none seen before), 32,000-47,999, and
#      8,000-15,999 (last, so that its last 256 items validate as in every earlier WarpNet run)
#   2. RUNS/warp-more: models/teacher-warp's WarpNet (`igr.warp train --init models/teacher-warp`) trained STEPS
#      more steps on them (batch 16, LR, --flip); resumable -> its log copied to LOG
#   3. RUNS/models: a copy of models/ with that WarpNet swapped in (scripts/swap-warpnet.py), its teacher and the
#      default student's model evaluated on N test pairs -> RUNS/eval/test{N}-{teacher,default}-wn.json, paired
#      with the first N rows of the 1,024-pair evaluations in reports/eval-warp/g15/ (the models with the 2.65 px
#      WarpNet, and the regression baseline) by scripts/pair-first.py -> RUNS/pairs.md
# Shipping it: scripts/swap-warpnet.py --model models/teacher-warp --warp RUNS/warp-more/final, then the chain of
# docs/training.md ("The shipped WarpNet trained on"). Measured here: the data 8 min (one worker), 4,000 steps
# 47 min (two threads, the first 20 min beside a one-thread distillation), the two evaluations 4 min side by side.
#
#   scripts/warpnet-on.sh [RUNS_DIR]   (default runs/warpnet-on; re-run to resume: finished stages are skipped)
#   STEPS (default 4000), LR (default 1.5e-4), N (default 128),
#   LOG (default reports/train-logs/warp-items-8000-63999-from-shipped.jsonl),
#   DATA (default "48000 32000 8000": the first train item of each data file, 16,000 items each but 8,000 for the
#         file that starts at 8000, which goes last; a file already in RUNS is kept),
#   REF (default reports/eval-warp/g15; the 1,024-pair evaluations paired against: REF/REF_T.json for the teacher,
#        REF/REF_D.json for the default, defaults test1024-teacher-g1.5 and test1024-student-2-light; the baseline
#        is always reports/eval-warp/g15/test1024-baseline.json)
# A second round trains on from the WarpNet the first one shipped (--init models/teacher-warp reads the shipped one):
#   LOG=reports/train-logs/warp-items-8000-63999-round2.jsonl REF_T=test1024-teacher-wn REF_D=test1024-default-wn \
#       scripts/warpnet-on.sh runs/warpnet-on2     (measured: 4,000 steps 30 min of two threads, nothing else running)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/warpnet-on}
PY=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-4000}
LR=${LR:-1.5e-4}
N=${N:-128}
LOG=${LOG:-reports/train-logs/warp-items-8000-63999-from-shipped.jsonl}
DATA=${DATA:-48000 32000 8000}
REF=${REF:-reports/eval-warp/g15}
REF_T=${REF_T:-test1024-teacher-g1.5}
REF_D=${REF_D:-test1024-student-2-light}
mkdir -p "$RUNS/eval" reports/train-logs

data=()
for first in $DATA; do
    f=$RUNS/warp-data-$first.npz
    n=16000; [[ $first == 8000 ]] && n=8000
    [[ -f $f ]] || OMP_NUM_THREADS=1 "$PY" -m igr.warp data --out "$f" --first "$first" --n "$n" --workers 1
    data+=(--data "$f")
done

out=$RUNS/warp-more
if [[ ! -f $out/final/config.json ]] || [[ $("$PY" -c "import json,sys; print(json.load(open(sys.argv[1])).get('step'))" \
        "$out/final/config.json") != "$STEPS" ]]; then
    resume=(); [[ -f $out/checkpoint/state.pt ]] && resume=(--resume)
    OMP_NUM_THREADS=2 "$PY" -m igr.warp train "${data[@]}" --out "$out" --init models/teacher-warp \
        --steps "$STEPS" --batch 16 --lr "$LR" --flip ${resume[@]+"${resume[@]}"} > "$RUNS/warp-more.out" 2>&1
fi
cp "$out/log.jsonl" "$LOG"

if [[ ! -f $RUNS/models/teacher-warp/config.json ]]; then
    rm -rf "$RUNS/models.tmp"; cp -r models "$RUNS/models.tmp"
    "$PY" scripts/swap-warpnet.py --model "$RUNS/models.tmp/teacher-warp" --warp "$out/final" --models "$RUNS/models.tmp"
    mv "$RUNS/models.tmp" "$RUNS/models"
fi
pids=()
for m in teacher:teacher-warp default:student-2-warp-light; do
    ev=$RUNS/eval/test$N-${m%%:*}-wn
    if [[ ! -f $ev.json ]]; then
        OMP_NUM_THREADS=1 "$PY" -m igr.eval --model "$RUNS/models/${m#*:}" --features models/teacher-small \
            --split test --n "$N" --out "$ev" > "$ev.out" 2>&1 &
        pids+=($!)
    fi
done
for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid"; done
{
    "$PY" scripts/pair-first.py --ref teacher="$REF/$REF_T.json" \
        --eval teacher-wn="$RUNS/eval/test$N-teacher-wn.json" --eval default-wn="$RUNS/eval/test$N-default-wn.json"
    "$PY" scripts/pair-first.py --ref default="$REF/$REF_D.json" \
        --eval default-wn="$RUNS/eval/test$N-default-wn.json"
    "$PY" scripts/pair-first.py --ref baseline=reports/eval-warp/g15/test1024-baseline.json \
        --eval teacher-wn="$RUNS/eval/test$N-teacher-wn.json" --eval default-wn="$RUNS/eval/test$N-default-wn.json"
} > "$RUNS/pairs.md"
cat "$RUNS/pairs.md"

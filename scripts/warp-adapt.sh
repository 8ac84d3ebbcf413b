#!/usr/bin/env bash
# The teacher trained on the true field (fine-truewarp of FIELD=true scripts/warp-teacher.sh) learns to use a warp
# that is right; sampled with a WarpNet's field it trusts that field's errors and falls below fine-ctl. Here it goes
# on training on the WarpNet's field, so that it keeps what the true field taught and learns how far a WarpNet's
# warp can be trusted:
#   1. RUNS/fine-truewarp-wn: fine-truewarp with the WarpNet WARPNET attached in place of its own
#      (python -m igr.warp attach --replace); evaluated as it is, before any step on that field
#   2. RUNS/cache-warp-wn: RUNS/cache-effnet with each row warped by that WarpNet (igr.train.cache --warp-from)
#   3. fine-truewarp-then-warpnet: STEPS more full-size steps from 1. on 2., with fine-truewarp's learning rate
#      and input-convolution factor; evaluated on N test pairs with the swap test
#   -> reports/warp-adapt.{md,json}, -curves.png, -grid.png (against fine-ctl, beside 1. and fine-truewarp with the
#      true field, and the regression baseline; fine-ctl, fine-truewarp and the baseline from their committed evaluations),
#      reports/train-logs/fine-truewarp-then-warpnet.jsonl
# Measured on two threads here: the cache 11 min, 1,000 steps 23 min, an evaluation 3-5 min.
#
#   scripts/warp-adapt.sh [RUNS_DIR]   (default runs/; needs RUNS_DIR/fine-truewarp/final and RUNS_DIR/cache-effnet;
#                                       re-run to resume: each stage is skipped once its output exists)
#   WARPNET (default RUNS_DIR/warp-more2/final: the WarpNet of docs/training.md's two continuations, 5.41 px),
#   STEPS (default 1000), N (test pairs, default 128)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
WARPNET=${WARPNET:-$RUNS/warp-more2/final}
STEPS=${STEPS:-1000}
N=${N:-128}
EVALS=reports/eval-zsnr
name=fine-truewarp-then-warpnet
src=$RUNS/fine-truewarp/final
for need in "$src/config.json" "$RUNS/cache-effnet/meta.json" "$WARPNET/config.json"; do
    [[ -f $need ]] || { echo "missing $need (FIELD=true scripts/warp-teacher.sh $RUNS builds the first two)" >&2; exit 1; }
done
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$EVALS" reports/train-logs

init=$RUNS/fine-truewarp-wn
[[ -f $init/config.json ]] || "$PY" -m igr.warp attach --model "$src" --warp "$WARPNET" --out "$init" --replace
before=$EVALS/fine-truewarp-on-warpnet-wn
[[ -f $before.json && $before.json -nt $init/config.json ]] ||
    "$PY" -m igr.eval --model "$init" --features models/teacher-small --split test --n "$N" --out "$before"
cache=$RUNS/cache-warp-wn
[[ -f $cache/meta.json && $cache/meta.json -nt $init/config.json ]] ||
    "$PY" -m igr.train.cache --model "$init" --warp-from "$RUNS/cache-effnet" --out "$cache"

out=$RUNS/$name
if [[ ! -f $out/final/config.json ]]; then
    resume=(); if [[ -d $out/checkpoint ]]; then resume=(--resume); fi
    "$PY" -m igr.train --stage coarse --preset small --init "$init" --out "$out" --steps "$STEPS" \
        ${resume[@]+"${resume[@]}"} --set "cache=$cache" low_res_fraction=0 eval_every=500 lr=1e-4 \
        'lr_scale={"denoiser\\.unet\\.conv_in\\.": 10}' > "$RUNS/$name.out" 2>&1
fi
cp "$out/log.jsonl" "reports/train-logs/$name.jsonl"
[[ -f $EVALS/$name.json && $EVALS/$name.json -nt $out/final/config.json ]] ||
    "$PY" -m igr.eval --model "$out/final" --features models/teacher-small --split test --n "$N" --out "$EVALS/$name"
[[ -f $EVALS/probe-$name.json && $EVALS/probe-$name.json -nt $out/final/config.json ]] ||
    "$PY" -m igr.probe --model "$out/final" --n 64 --out "$EVALS/probe-$name" > /dev/null

"$PY" -m igr.compare --title "fine-truewarp trained on a WarpNet's field ($STEPS more full-size steps)" \
    --against fine-ctl \
    --eval "before=$before.json" --model "before=$init" \
    --eval "$name=$EVALS/$name.json" --probe "$name=$EVALS/probe-$name.json" --run "$name=$out" --model "$name=$out/final" \
    --eval "fine-truewarp=$EVALS/fine-truewarp.json" \
    --eval "fine-ctl=$EVALS/fine-ctl.json" --probe "fine-ctl=$EVALS/probe-fine-ctl.json" \
    --eval "baseline=$EVALS/baseline-n$N.json" --out reports/warp-adapt
echo "finished under $RUNS: reports/warp-adapt.md"

#!/usr/bin/env bash
# Tries at equal budget from the shipped teacher (models/teacher-zsnr): the open ways to make the person reach the
# print, each TRY_STEPS full-size steps on the same latent cache and data order, one CPU thread each:
#   fine-ctl   the shipped teacher's coarse stage, continued (lr LR)                      the control
#   fine-l0    the same with attention, and so GarmNet's fusion into the denoiser's self-attention, at the
#              first UNet level too: 32x24 reference tokens (8x8 pixels each) beside 16x12 and 8x6; the new
#              blocks start as identity (zero output projection, `IGRModel.transplant`) and GarmNet's missing
#              blocks as the denoiser's, so its step 0 is the shipped teacher (+0.32 M parameters)
#   hqft-lo    the paper's high-quality fine-tuning stage instead (its preset: lr 5e-5, timesteps biased to low
#              noise, t = T(1 - u^0.5), the pairs of quality >= 0.55)
# fine-ctl and fine-l0 train side by side, then hqft-lo; each is then evaluated on the test split (the config's
# sampler) with the swap test, and reports/tries-from-teacher.{md,json} compares them against fine-ctl, beside the
# shipped teacher (their step 0) and the regression baseline (RUNS_DIR/baseline-prior-effnet, made by
# scripts/train-teacher-zsnr.sh) on the same N test pairs.
#
#   scripts/try-from-teacher.sh [RUNS_DIR]   (default runs/; re-run to resume; needs RUNS_DIR/cache-effnet,
#                                              which scripts/train-teacher-zsnr.sh makes)
#   TRY_STEPS (default 1000), LR (default 1e-4), N (test pairs per run, default 128)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
TRY_STEPS=${TRY_STEPS:-1000}
LR=${LR:-1e-4}
N=${N:-128}
CACHE="$RUNS/cache-effnet"
INIT=models/teacher-zsnr
EVALS=reports/eval-zsnr
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [[ ! -f "$CACHE/meta.json" ]]; then echo "no latent cache at $CACHE: run scripts/train-teacher-zsnr.sh first" >&2; exit 1; fi
mkdir -p "$EVALS"
. scripts/lib/runs.sh

run() {   # run NAME STAGE [--model-set / --set arguments...]: train, evaluate, probe (each skipped once done)
    local name=$1 stage=$2; shift 2
    train_stage "$name" --stage "$stage" --init "$INIT" --steps "$TRY_STEPS" "$@"
    evaluate_run "$name"
}
C=(--set "cache=$CACHE" low_res_fraction=0 eval_every=500)
run fine-ctl coarse "${C[@]}" "lr=$LR" & a=$!
run fine-l0 coarse --model-set 'unet.attention=[true,true,true]' "${C[@]}" "lr=$LR" & b=$!
rc=0; wait $a || rc=1
run hqft-lo hqft "${C[@]}" || rc=1
wait $b || rc=1
if [[ $rc != 0 ]]; then echo "a run failed: see $RUNS/{fine,hqft}-*.out" >&2; exit 1; fi

reference() {   # reference NAME MODEL: evaluated on the same N pairs
    if [[ ! -f "$EVALS/$1-n$N.json" ]]; then
        "$PY" -m igr.eval --model "$2" --features models/teacher-small --split test --n "$N" --out "$EVALS/$1-n$N"
    fi
}
reference teacher "$INIT"
reference baseline "$RUNS/baseline-prior-effnet"

# shellcheck disable=SC2046
"$PY" -m igr.compare --title "Tries from the shipped teacher at equal budget ($TRY_STEPS full-size steps each)" \
    --against fine-ctl $(compare_args fine-ctl fine-l0 hqft-lo) --eval "teacher=$EVALS/teacher-n$N.json" --model "teacher=$INIT" \
    --eval "baseline=$EVALS/baseline-n$N.json" --model "baseline=$RUNS/baseline-prior-effnet" --out reports/tries-from-teacher
echo "tries finished under $RUNS"

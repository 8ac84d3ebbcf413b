#!/usr/bin/env bash
# fine-l0 of scripts/try-from-teacher.sh again, with its new blocks at a higher learning rate. fine-l0 adds
# attention, and so GarmNet's fusion, at the first UNet level (32x24 reference tokens); its new blocks start as
# identity and, at the shared lr 1e-4, barely opened in 1,000 steps (output projections |w| 0.0005 in the EMA,
# against 0.062 in the level beside them). Here those blocks, in the denoiser and in GarmNet, train at FACTOR x
# the rest's learning rate (`--set lr_scale=...`), for each FACTOR in FACTORS, TRY_STEPS full-size steps from
# models/teacher-zsnr on the same latent cache and data order as fine-ctl and fine-l0, side by side, one CPU
# thread each. Each is evaluated on the same N test pairs and probed (the swap test), its new blocks' output
# projections are measured, and reports/fine-l0-lr.{md,json} compares them against fine-ctl (and fine-l0) from
# their committed evaluations in reports/eval-zsnr/.
#
#   scripts/fine-l0-lr.sh [RUNS_DIR]   (default runs/; re-run to resume; needs RUNS_DIR/cache-effnet:
#                                        python -m igr.train.cache --model models/teacher-zsnr --out RUNS_DIR/cache-effnet
#                                        --sizes 256x192 --n 8000, about 30 min here)
#   FACTORS (default 10; several train side by side: two cost 6 s a step each here, one alone with
#   OMP_NUM_THREADS=2 about 3.8 s), TRY_STEPS (default 1000), LR (default 1e-4), N (test pairs, default 128)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
FACTORS=${FACTORS:-10}
TRY_STEPS=${TRY_STEPS:-1000}
LR=${LR:-1e-4}
N=${N:-128}
CACHE="$RUNS/cache-effnet"
INIT=models/teacher-zsnr
EVALS=reports/eval-zsnr
NEW='(down_blocks\\.0|up_blocks\\.2)\\.attentions\\.'     # the first level's blocks, in the denoiser and in GarmNet
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [[ ! -f "$CACHE/meta.json" ]]; then echo "no latent cache at $CACHE (see the header)" >&2; exit 1; fi

run() {   # run FACTOR: train, evaluate, probe (each skipped once done)
    local name="fine-l0-x$1" out="$RUNS/fine-l0-x$1" resume=()
    if [[ -f "$out/final/config.json" ]]; then echo "[$name] trained"; else
        if [[ -d "$out/checkpoint" ]]; then resume=(--resume); fi
        echo "[$name] $(date -u +%H:%M:%S) start"
        "$PY" -m igr.train --stage coarse --preset small --init "$INIT" --out "$out" --steps "$TRY_STEPS" \
            ${resume[@]+"${resume[@]}"} --model-set 'unet.attention=[true,true,true]' \
            --set "cache=$CACHE" low_res_fraction=0 eval_every=500 "lr=$LR" "lr_scale={\"$NEW\": $1}" \
            > "$RUNS/$name.out" 2>&1
        echo "[$name] $(date -u +%H:%M:%S) trained"
    fi
    if [[ ! -f "$EVALS/$name.json" || "$out/final/config.json" -nt "$EVALS/$name.json" ]]; then
        "$PY" -m igr.eval --model "$out/final" --features models/teacher-small --split test --n "$N" --out "$EVALS/$name"
    fi
    if [[ ! -f "$EVALS/probe-$name.json" || "$out/final/config.json" -nt "$EVALS/probe-$name.json" ]]; then
        "$PY" -m igr.probe --model "$out/final" --n 64 --out "$EVALS/probe-$name" > /dev/null
    fi
    mkdir -p reports/train-logs && cp "$out/log.jsonl" "reports/train-logs/$name.jsonl"
}
pids=()
for f in $FACTORS; do run "$f" & pids+=($!); done
rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done
if [[ $rc != 0 ]]; then echo "a run failed: see $RUNS/fine-l0-x*.out" >&2; exit 1; fi

# how far the new blocks opened: mean |w| of their output projections, beside the second level's
"$PY" - "$RUNS" $FACTORS > "$RUNS/fine-l0-lr-open.json" <<'PY'
import json, re, sys
from safetensors.torch import load_file
runs, factors = sys.argv[1], sys.argv[2:]
out = {}
for f in factors:
    row = {}
    for part in ("denoiser", "garmnet"):
        w = load_file(f"{runs}/fine-l0-x{f}/final/{part}.safetensors")
        for level, pat in (("level 0 (new)", r"(down_blocks\.0|up_blocks\.2)\.attentions\.\d+\.proj_out\.weight"),
                           ("level 1", r"(down_blocks\.1|up_blocks\.1)\.attentions\.\d+\.proj_out\.weight")):
            ts = [v.float().abs().mean().item() for k, v in w.items() if re.search(pat, k)]
            row[f"{part} {level}"] = sum(ts) / len(ts)
    out[f"fine-l0-x{f}"] = row
print(json.dumps(out, indent=1))
PY

args=()
for ref in fine-ctl fine-l0; do        # their learning curves, from the committed logs
    mkdir -p "$RUNS/logs/$ref" && cp "reports/train-logs/$ref.jsonl" "$RUNS/logs/$ref/log.jsonl"
    args+=(--eval "$ref=$EVALS/$ref.json" --probe "$ref=$EVALS/probe-$ref.json" --run "$ref=$RUNS/logs/$ref")
done
for f in $FACTORS; do
    name="fine-l0-x$f"
    args+=(--eval "$name=$EVALS/$name.json" --probe "$name=$EVALS/probe-$name.json"
           --run "$name=$RUNS/$name" --model "$name=$RUNS/$name/final")
done
"$PY" -m igr.compare --title "fine-l0's new first-level blocks at a higher learning rate ($TRY_STEPS full-size steps each)" \
    --against fine-ctl "${args[@]}" \
    --eval "teacher=$EVALS/teacher-n$N.json" --model "teacher=$INIT" \
    --eval "baseline=$EVALS/baseline-n$N.json" --out reports/fine-l0-lr
echo "finished under $RUNS; new blocks' output projections: $RUNS/fine-l0-lr-open.json"

#!/usr/bin/env bash
# Two long teacher runs side by side on one CUDA device, inside one call of fixed length (DEADLINE seconds), from
# models/teacher-zsnr at full size (256x192), on a latent cache built there:
#   gpu-ctl        the shipped teacher's coarse stage, continued (fine-ctl of scripts/try-from-teacher.sh, longer)
#   gpu-truewarp   the same with a warp prior trained on SynthGarment's true field (fine-truewarp of
#                  FIELD=true scripts/warp-teacher.sh, longer); WARPNET is attached for a photo alone to feed it
# Stages, each timed into OUT/timing.txt:
#   1. RUNS/cache: N SynthGarment train pairs encoded on DEVICE (WORKERS processes generate them); RUNS/cache-truewarp:
#      each row's warp input from the true field (python -m igr.train.cache --device --workers)
#   2. a TIME_STEPS-step timing run (default 40) of both side by side; STEPS = what fits before DEADLINE at that pace (a multiple of
#      100, at most MAX_STEPS), the same for both
#   3. both runs, STEPS steps of BATCH, lr LR, the learning-rate schedule of STEPS; each writes a compact
#      checkpoint (EMA in fp16) every STEPS/4 steps, what comes back if DEADLINE stops it first
#   4. OUT/gpu-teacher.tar.gz.part*: each run's final weights (components changed from their start, fp16),
#      config, stage.json, log and last sample grid, in parts of 15 MiB; OUT/outputs.txt: the end of each stage's
#      output (OUT/*.out until then)
# Back here: scripts/gpu-teacher-unpack.sh OUT_FOLDER puts them under runs/ as model folders (fp32 again).
#
#   DEVICE=cuda scripts/gpu-teacher.sh   (defaults: N 12000, WORKERS 14, BATCH 64, LR 1e-4, DEADLINE 560, MAX_STEPS
#                                          20000, WARPNET runs/warp-joined/final, RUNS runs/gpu, OUT RUNS/out)
# On this CPU the same runs go, smaller: DEVICE=cpu N=64 WORKERS=2 BATCH=4 TIME_STEPS=4 MAX_STEPS=8 DEADLINE=400.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
N=${N:-12000}
WORKERS=${WORKERS:-14}
BATCH=${BATCH:-64}
LR=${LR:-1e-4}
DEADLINE=${DEADLINE:-560}
MAX_STEPS=${MAX_STEPS:-20000}
TIME_STEPS=${TIME_STEPS:-40}
WARPNET=${WARPNET:-runs/warp-joined/final}
RUNS=${RUNS:-runs/gpu}
OUT=${OUT:-$RUNS/out}
INIT=models/teacher-zsnr
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1
if [[ ! -f "$WARPNET/config.json" ]]; then echo "no WarpNet at $WARPNET (set WARPNET)" >&2; exit 1; fi
mkdir -p "$RUNS" "$OUT"
log() { echo "[$SECONDS s] $*" | tee -a "$OUT/timing.txt"; }

log "cache: $N pairs on $DEVICE"
[[ -f "$RUNS/cache/meta.json" ]] ||
    "$PY" -m igr.train.cache --model "$INIT" --out "$RUNS/cache" --sizes 256x192 --n "$N" --batch 64 \
        --workers "$WORKERS" --device "$DEVICE" > "$OUT/cache.out" 2>&1
[[ -f "$RUNS/warp-init/config.json" ]] ||
    "$PY" -m igr.warp attach --model "$INIT" --warp "$WARPNET" --out "$RUNS/warp-init" >> "$OUT/cache.out" 2>&1
[[ -f "$RUNS/cache-truewarp/meta.json" ]] ||
    "$PY" -m igr.train.cache --model "$RUNS/warp-init" --warp-from "$RUNS/cache" --true-field --out "$RUNS/cache-truewarp" \
        --batch 64 --workers "$WORKERS" --device "$DEVICE" >> "$OUT/cache.out" 2>&1
log "caches built"

limit=$DEADLINE
train() {   # train NAME INIT CACHE STEPS [OPTION...] -- [FIELD=VALUE...]: stopped at $limit seconds from now
    local name=$1 init=$2 cache=$3 steps=$4 opts=(); shift 4
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done; shift
    timeout "$limit" "$PY" -m igr.train --stage coarse --preset small --init "$init" --out "$RUNS/$name" \
        --steps "$steps" --batch "$BATCH" ${opts[@]+"${opts[@]}"} --set "cache=$cache" low_res_fraction=0 "lr=$LR" "$@"
}
conv_in='lr_scale={"denoiser\\.unet\\.conv_in\\.": 10}'     # as fine-truewarp: the new input channels at 10x
pace() {    # seconds per step of a run's last logged rows
    "$PY" -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; r=[x["sec_per_step"] for x in r if "sec_per_step" in x]; print(max(r[-2:]))' "$1"
}
rm -rf "$RUNS/time-ctl" "$RUNS/time-warp"
quiet=(eval_every=0 sample_every=0 checkpoint_every=0 log_every=$(( TIME_STEPS >= 8 ? TIME_STEPS / 4 : 1 )))
train time-ctl "$INIT" "$RUNS/cache" 1000 --until "$TIME_STEPS" -- "${quiet[@]}" > "$OUT/time.out" 2>&1 & a=$!
train time-warp "$RUNS/warp-init" "$RUNS/cache-truewarp" 1000 --until "$TIME_STEPS" -- "$conv_in" "${quiet[@]}" \
    >> "$OUT/time.out" 2>&1 & b=$!
wait $a; wait $b
per=$("$PY" -c "print(max($(pace "$RUNS/time-ctl/log.jsonl"), $(pace "$RUNS/time-warp/log.jsonl")))")
left=$((DEADLINE - SECONDS - 60))       # 60 s: start-up, the evaluations and the checkpoints
STEPS=$("$PY" -c "print(min($MAX_STEPS, max(100, int($left / ($per * 1.1)) // 100 * 100)))")
every=$(( STEPS >= 4 ? STEPS / 4 : 1 ))
log "pace ${per} s/step side by side; $left s left: $STEPS steps each"

long=(eval_every=$every sample_every=$STEPS checkpoint_every=$every)
limit=$((DEADLINE - SECONDS))
train gpu-ctl "$INIT" "$RUNS/cache" "$STEPS" --compact-to "$RUNS/compact-ctl" -- "${long[@]}" \
    > "$OUT/gpu-ctl.out" 2>&1 & a=$!
train gpu-truewarp "$RUNS/warp-init" "$RUNS/cache-truewarp" "$STEPS" --compact-to "$RUNS/compact-truewarp" \
    -- "$conv_in" "${long[@]}" > "$OUT/gpu-truewarp.out" 2>&1 & b=$!
rc=0; wait $a || rc=$?; wait $b || rc=$((rc ? rc : $?))
log "trained (exit $rc)"

# each run's weights: final/ where it finished, else its last compact checkpoint; only what changed from the start
"$PY" - "$RUNS" "$INIT" <<'EOF'
import json, shutil, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
runs, init = Path(sys.argv[1]), Path(sys.argv[2])
for name, compact, start in (("gpu-ctl", "compact-ctl", init), ("gpu-truewarp", "compact-truewarp", runs / "warp-init")):
    run = runs / name
    src = run / "final" if (run / "final" / "config.json").is_file() else runs / compact / "ema"
    if not (src / "config.json").is_file():
        print(name, "stopped before its first checkpoint: nothing to pack")
        continue
    dest = runs / "pack" / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.safetensors"):
        t = load_file(str(f.resolve()))
        before = load_file(str(start / f.name)) if (start / f.name).is_file() else {}
        if before.keys() == t.keys() and all(torch.equal(v.float(), before[k].float()) for k, v in t.items()):
            continue                                        # frozen: the start's file serves
        save_file({k: v.half() if v.is_floating_point() else v for k, v in t.items()}, str(dest / f.name))
    shutil.copy(src / "config.json", dest)
    for f in ("log.jsonl", "stage.json"):
        if (run / f).is_file():
            shutil.copy(run / f, dest)
    grids = sorted((run / "samples").glob("*.png")) if (run / "samples").is_dir() else []
    if grids:
        shutil.copy(grids[-1], dest / "last-sample.png")
    (dest / "source.json").write_text(json.dumps({"weights": str(src.relative_to(runs)), "start": str(start)}) + "\n")
    print(name, "from", src, sorted(p.name for p in dest.iterdir()))
EOF
tar -C "$RUNS" -czf "$RUNS/gpu-teacher.tar.gz" pack
split -b 15M -d "$RUNS/gpu-teacher.tar.gz" "$OUT/gpu-teacher.tar.gz.part"
log "packed: $(du -b "$RUNS/gpu-teacher.tar.gz" | cut -f1) bytes"
for f in "$OUT"/*.out; do { echo "==== $(basename "$f")"; tr '\r' '\n' < "$f" | grep -v '^$' | tail -n 40; } >> "$OUT/outputs.txt"; rm "$f"; done

# Sourced by the scripts that train and compare runs (not run on its own). Each uses $PY, $RUNS and $EVALS.

# train_stage NAME ARGS...: `python -m igr.train --preset small --out $RUNS/NAME ARGS...` unless $RUNS/NAME/final
# exists, resuming $RUNS/NAME/checkpoint if there is one; its output in $RUNS/NAME.out
train_stage() {
    local name=$1; shift
    local out="$RUNS/$name" resume=()
    if [[ -f "$out/final/config.json" ]]; then echo "[$name] done"; return; fi
    if [[ -d "$out/checkpoint" ]]; then resume=(--resume); fi
    echo "[$name] $(date -u +%H:%M:%S) start"
    "$PY" -m igr.train --preset small --out "$out" "$@" ${resume[@]+"${resume[@]}"} > "$RUNS/$name.out" 2>&1
    echo "[$name] $(date -u +%H:%M:%S) finished"
}

# compare_args RUN...: the --eval/--probe/--run/--model flags of runs trained under $RUNS/RUN and evaluated into
# $EVALS/RUN.json and $EVALS/probe-RUN.json (word-split by the caller: run names hold no spaces)
compare_args() {
    local run
    for run in "$@"; do
        echo --eval "$run=$EVALS/$run.json" --probe "$run=$EVALS/probe-$run.json" --run "$run=$RUNS/$run" \
            --model "$run=$RUNS/$run/final"
    done
}

# evaluate_run NAME [igr.eval flags...]: $RUNS/NAME/final on $N test pairs (FD_garm in teacher-small's space) into
# $EVALS/NAME.json and its swap test (64 pairs) into $EVALS/probe-NAME.json, each once per finished run
evaluate_run() {
    local name=$1; shift
    local model="$RUNS/$name/final"
    if [[ ! -f "$EVALS/$name.json" || "$model/config.json" -nt "$EVALS/$name.json" ]]; then
        "$PY" -m igr.eval --model "$model" --features models/teacher-small --split test --n "$N" "$@" --out "$EVALS/$name"
    fi
    if [[ ! -f "$EVALS/probe-$name.json" || "$model/config.json" -nt "$EVALS/probe-$name.json" ]]; then
        "$PY" -m igr.probe --model "$model" --n 64 --out "$EVALS/probe-$name" > /dev/null
    fi
}

# warp_cache MODEL CACHE [N]: unless CACHE exists, N (default 1536) train pairs at 256x192 cached with MODEL's VAE
# and image tower into $RUNS/cache-base, then each row's warp input from MODEL's WarpNet into CACHE
warp_cache() {
    [[ -f "$2/meta.json" ]] && return
    [[ -f "$RUNS/cache-base/meta.json" ]] || "$PY" -m igr.train.cache --model "$1" --out "$RUNS/cache-base" \
        --sizes 256x192 --n "${3:-1536}" --workers 1
    "$PY" -m igr.train.cache --model "$1" --warp-from "$RUNS/cache-base" --out "$2" --workers 1
}

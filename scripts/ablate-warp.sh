#!/usr/bin/env bash
# The paper's two claims, re-measured in the shipped teacher's configuration (models/teacher-warp): zero terminal
# SNR, the EfficientNet-Lite0 tokens, the aligned prior and the warp prior, every step at full size (256x192).
# Every run starts from one init: models/teacher-warp's config with a fresh, seeded denoiser, GarmNet and token
# projection, and the shipped teacher's trained VAE, WarpNet and aligned prior (the prior trains on in every run,
# as it did in the teacher's). So the question each claim asks here is what the garment paths and the training
# schedule add on top of the aligned prior and the warped photo that the shipped teacher also reads. The same
# latent cache (its rows warped by the teacher's WarpNet) and data order for every run; one CPU thread per run,
# two runs side by side:
#   abl-both    coarse, ABL_STEPS, both garment paths
#   abl-low     coarse, ABL_STEPS, GarmNet only           } claim 1: both paths beat either one
#   abl-high    coarse, ABL_STEPS, the image tokens only  }
#   abl-c2f     abl-both, then hqft ABL_HQFT_STEPS        } claim 2: coarse-to-fine beats one stage
#   abl-single  coarse, ABL_STEPS + ABL_HQFT_STEPS, uniform timesteps, all pairs   } at equal steps
# then each on the test split (the config's sampler: dpmsolver++, 50 steps, the teacher's guidance) with the swap
# test, and two reports, reports/ablations-warp-paths.{md,json} (against abl-both) and
# reports/ablations-warp-c2f.{md,json} (against abl-single); compact logs in reports/train-logs/abl-warp-*.jsonl.
#
#   scripts/ablate-warp.sh [RUNS_DIR]     (default runs/abl-warp; re-run to resume; builds RUNS_DIR/cache-warp
#                                          where missing: CACHE_N train pairs and their warp rows, ~7 min)
#   ABL_STEPS (default 1000), ABL_HQFT_STEPS (default 300), N (test pairs per run, default 128),
#   CACHE_N (default 1536), CACHE (an existing warp cache of the teacher's VAE and WarpNet instead)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/abl-warp}
PY=${PYTHON:-.venv/bin/python}
ABL_STEPS=${ABL_STEPS:-1000}
ABL_HQFT_STEPS=${ABL_HQFT_STEPS:-300}
N=${N:-128}
TEACHER=models/teacher-warp
CACHE=${CACHE:-$RUNS/cache-warp}
INIT="$RUNS/init"
EVALS=reports/eval-warp/abl
export OMP_NUM_THREADS=1
mkdir -p "$RUNS" "$EVALS" reports/train-logs
. scripts/lib/runs.sh

warp_cache "$TEACHER" "$CACHE" "${CACHE_N:-1536}"

if [[ ! -f "$INIT/config.json" ]]; then   # fresh denoiser, GarmNet and projection; the teacher's VAE, WarpNet, prior
    "$PY" - "$TEACHER" "$INIT" <<'EOF'
import shutil, sys
import torch
from igr.model import IGRModel
source = IGRModel.from_pretrained(sys.argv[1]).float()
torch.manual_seed(0)
model = IGRModel(source.config)
for name in ("vae", "warpnet", "prior"):
    model.component(name).load_state_dict(source.component(name).state_dict())
tower = source.image_encoder.pretrained_keys()      # the frozen package tower: the same weights in both
fresh, shipped = model.image_encoder.state_dict(), source.image_encoder.state_dict()
assert tower and all(torch.equal(fresh[k], shipped[k]) for k in tower), "the image tower is not the package's"
model.save_pretrained(sys.argv[2] + ".tmp")
shutil.move(sys.argv[2] + ".tmp", sys.argv[2])
EOF
fi

stage() {   # stage NAME ARGS...: train_stage, then its compact log into reports/train-logs/
    train_stage "$@"
    cp "$RUNS/$1/log.jsonl" "reports/train-logs/abl-warp-${1#abl-}.jsonl"
}
C=(--set "cache=$CACHE" low_res_fraction=0 eval_every=250)
lane_a() {
    stage abl-both --stage coarse --init "$INIT" --steps "$ABL_STEPS" --paths both "${C[@]}"
    stage abl-c2f --stage hqft --init "$RUNS/abl-both/final" --steps "$ABL_HQFT_STEPS" "${C[@]}"
    stage abl-single --stage coarse --init "$INIT" --steps $((ABL_STEPS + ABL_HQFT_STEPS)) "${C[@]}" timestep_power=1
    evaluate_run abl-single
}
lane_b() {   # lane_b PID_OF_LANE_A
    stage abl-low --stage coarse --init "$INIT" --steps "$ABL_STEPS" --paths low "${C[@]}"
    stage abl-high --stage coarse --init "$INIT" --steps "$ABL_STEPS" --paths high "${C[@]}"
    for run in abl-low abl-high abl-both abl-c2f; do
        while [[ ! -f "$RUNS/$run/final/config.json" ]]; do   # lane a's runs: wait for them while it lives
            kill -0 "$1" 2> /dev/null || return 1; sleep 30
        done
        evaluate_run "$run"
    done
}
lane_a > "$RUNS/lane-a.log" 2>&1 & a=$!
lane_b $a > "$RUNS/lane-b.log" 2>&1 & b=$!
rc=0; wait $a || rc=1; wait $b || rc=1
if [[ $rc != 0 ]]; then echo "a run failed: see $RUNS/lane-a.log, $RUNS/lane-b.log and $RUNS/*.out" >&2; exit 1; fi

# shellcheck disable=SC2046
"$PY" -m igr.compare --title "Claim 1 in the warp teacher's configuration: both garment paths against either one ($ABL_STEPS full-size steps each)" \
    --against abl-both $(compare_args abl-both abl-low abl-high) --out reports/ablations-warp-paths
# shellcheck disable=SC2046
"$PY" -m igr.compare --title "Claim 2 in the warp teacher's configuration: coarse-to-fine against one stage ($((ABL_STEPS + ABL_HQFT_STEPS)) full-size steps each)" \
    --against abl-single $(compare_args abl-c2f abl-single) --out reports/ablations-warp-c2f
echo "ablations finished under $RUNS"

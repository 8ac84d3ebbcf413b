#!/usr/bin/env bash
# The paper's two claims, re-measured under the shipped teacher's schedule and extractors: zero terminal SNR,
# the EfficientNet-Lite0 tokens (frozen tower, its latent cache), every step at full size (256x192), no aligned
# prior (so that the two garment paths are the only ways the person reaches the garment). Every run starts
# from the same fresh init (seeded denoiser, GarmNet and token projection; teacher-small's frozen VAE, whose
# latents the cache holds) and sees the same data order; one CPU thread, one run after another:
#   abl-both    coarse, ABL_STEPS, both garment paths
#   abl-low     coarse, ABL_STEPS, GarmNet only           } claim 1: both paths beat either one
#   abl-high    coarse, ABL_STEPS, the image tokens only  }
#   abl-c2f     abl-both, then hqft ABL_HQFT_STEPS        } claim 2: coarse-to-fine beats one stage
#   abl-single  coarse, ABL_STEPS + ABL_HQFT_STEPS, uniform timesteps, all pairs   } at equal steps
# then each on the test split (the config's sampler: dpmsolver++, 50 steps, guidance 2) and two reports,
# reports/ablations-zsnr-paths.{md,json} (against abl-both) and reports/ablations-zsnr-c2f.{md,json}
# (against abl-single).
#
#   scripts/ablate-zsnr.sh [RUNS_DIR]     (default runs/; re-run to resume; needs RUNS_DIR/cache-effnet,
#                                          which scripts/train-teacher-zsnr.sh makes)
#   ABL_STEPS (default 1000), ABL_HQFT_STEPS (default 300), N (test pairs per run, default 128)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-.venv/bin/python}
ABL_STEPS=${ABL_STEPS:-1000}
ABL_HQFT_STEPS=${ABL_HQFT_STEPS:-300}
N=${N:-128}
CACHE="$RUNS/cache-effnet"
INIT="$RUNS/abl-zsnr-init"
EVALS=reports/eval-zsnr
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [[ ! -f "$CACHE/meta.json" ]]; then echo "no latent cache at $CACHE: run scripts/train-teacher-zsnr.sh first" >&2; exit 1; fi
mkdir -p "$EVALS"
. scripts/lib/runs.sh

if [[ ! -f "$INIT/config.json" ]]; then   # fresh weights everywhere but the frozen VAE (teacher-small's)
    "$PY" - models/teacher-small "$INIT" <<'EOF'
import shutil, sys
import torch
from igr.model import IGRModel
source = IGRModel.from_pretrained(sys.argv[1])
torch.manual_seed(0)
config = source.config.replace(zero_snr=True, encoder={"backbone": "efficientnet-lite0"})
model = IGRModel(config)
model.component("vae").load_state_dict(source.component("vae").state_dict())
model.save_pretrained(sys.argv[2] + ".tmp")
shutil.move(sys.argv[2] + ".tmp", sys.argv[2])
EOF
fi

C=(--set "cache=$CACHE" low_res_fraction=0 eval_every=250)
train_stage abl-both --stage coarse --init "$INIT" --steps "$ABL_STEPS" --paths both "${C[@]}"
train_stage abl-c2f --stage hqft --init "$RUNS/abl-both/final" --steps "$ABL_HQFT_STEPS" "${C[@]}"
train_stage abl-low --stage coarse --init "$INIT" --steps "$ABL_STEPS" --paths low "${C[@]}"
train_stage abl-high --stage coarse --init "$INIT" --steps "$ABL_STEPS" --paths high "${C[@]}"
train_stage abl-single --stage coarse --init "$INIT" --steps $((ABL_STEPS + ABL_HQFT_STEPS)) "${C[@]}" timestep_power=1

for run in abl-both abl-low abl-high abl-c2f abl-single; do evaluate_run "$run"; done  # scripts/lib/runs.sh

# shellcheck disable=SC2046
"$PY" -m igr.compare --title "Claim 1 under zero SNR: both garment paths against either one ($ABL_STEPS full-size steps each)" \
    --against abl-both $(compare_args abl-both abl-low abl-high) --out reports/ablations-zsnr-paths
# shellcheck disable=SC2046
"$PY" -m igr.compare --title "Claim 2 under zero SNR: coarse-to-fine against one stage ($((ABL_STEPS + ABL_HQFT_STEPS)) full-size steps each)" \
    --against abl-single $(compare_args abl-c2f abl-single) --out reports/ablations-zsnr-c2f
echo "ablations finished under $RUNS"

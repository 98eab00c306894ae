#!/usr/bin/env bash
# Rebuild models/default (the bundle `har run` uses before anyone trains) from MANY simulated
# subjects. One command:   bash scripts/rebuild_default_model.sh
#
# Data: `har simulate --seed 1`, `--seed 2` and `--seed 3`: 297 simulated wrist wearers (subject
# seeds 1001-1099, 2001-2099, 3001-3099), 30 s of each of the six activities each, written to a
# temporary directory (nothing is stored in the repo). Every seed names its wearers sim01..sim99, so
# `simNN` groups three people (always on the same side of a split). sim90-sim99 (30 people) are the
# training report's test subjects; 10% of the rest validate (early stopping, learning-rate schedule).
# Seeds 5, 6, 7, 41, 97 (fresh wearers) and 42, 98 (live streams) are the validation seeds
# (scripts/validate_default_model.py), 17 and 18 the test seeds (tests/test_default_accuracy.py):
# never training seeds.
#
# Every model and training setting is pinned here (har's defaults may move; these are the defaults
# of 2026-12-01 after issue 10: gravity/body split + magnitude in the graph, Conv1D(32, k5, s2),
# LSTM(64) (one model: built before the ensemble-of-2 default, not yet rebuilt with it), last-state
# head, no distillation; 20 epochs max, early-stopping patience 5, plateau LR), so the bundle is
# reproducible. Set for this data and the live use of the bundle, chosen on the validation seeds
# only (models/README.md lists what was tried):
#   --window 2.5 --hop 0.5  a new activity is shown within 3 s of its start (5 s windows cannot)
#   --rotation 0 --rotation-z 0  the simulated wearers already vary the wrist posture
#   --smooth avg:3,enter=0.6  the stored live smoothing (3 windows = 1.5 s at a 0.5 s hop)
#   --no-equalize-channels  the bundle was exported before the int8 channel equalization existed;
#                           with it this recipe validates at 98.0% / 83.3% / 83 of 85 (not better
#                           on every measure than 97.9% / 83.3% / 84 of 85: models/README.md)
# Deterministic for a given machine kind and package set (--seed 0, op determinism).
# Took 391 s on the shared 2-core development machine when it was quiet, 15-20 min under load.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/har ] || bash scripts/setup.sh "train,edge"
export PATH="$PWD/.venv/bin:$PATH"
t0=$(date +%s)
if [ -n "${HAR_REBUILD_WORK:-}" ]; then  # keep the data and model directory there
    work="$HAR_REBUILD_WORK"; rm -rf "$work"; mkdir -p "$work"
else
    work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fi
for seed in 1 2 3; do
    har simulate --out "$work/sim/$seed" --subjects 99 --seconds 30 --rate 50 --seed "$seed" >/dev/null
done
har train "$work/sim" --out "$work/model" --seed 0 \
    --window 2.5 --hop 0.5 --rate 50 --purity 0.9 \
    --representation gravity_body_magnitude --conv-filters 32 --conv-kernel 5 --conv-stride 2 \
    --conv-layers 1 --conv-dilation 1 --lstm-units 64 --pooling last --dropout 0.2 --label-smoothing 0 \
    --ensemble 1 --distill none --no-equalize-channels --rocket-features 0 \
    --augment --augment-p 0.5 --rotation 0 --rotation-z 0 --scale 0.1 --jitter 0.01 --time-warp 0.1 \
    --epochs 20 --patience 5 --batch-size 64 --lr 0.002 --lr-schedule plateau --lr-factor 0.5 \
    --lr-patience 2 --min-lr 1e-5 --clipnorm 1.0 --class-weights \
    --test-subjects sim90,sim91,sim92,sim93,sim94,sim95,sim96,sim97,sim98,sim99 --val-fraction 0.1
rm -rf models/default
har deploy "$work/model" --out models/default --quantize int8 --smooth "avg:3,enter=0.6"
rm -rf models/default-report
mkdir -p models/default-report
cp "$work/model"/report.txt "$work/model"/*.png models/default-report/
har info models/default
echo "rebuilt models/default in $(( $(date +%s) - t0 )) s"

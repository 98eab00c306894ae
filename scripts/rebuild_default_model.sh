#!/usr/bin/env bash
# Rebuild models/default (the bundle `har run` uses before anyone trains) from MANY simulated
# subjects. One command:   bash scripts/rebuild_default_model.sh
#
# Data: `har simulate --seed 1`, `--seed 2` and `--seed 3`: 297 simulated wrist wearers (subject
# seeds 1001-1099, 2001-2099, 3001-3099), 30 s of each of the six activities each, written to a
# temporary directory (nothing is stored in the repo). Every seed names its wearers sim01..sim99, so
# `simNN` groups three people (always on the same side of a split). sim90-sim99 (30 people) are the
# training report's test subjects; 10% of the rest validate.
# The model, training and augmentation settings are har's defaults (TrainConfig in har/config.py,
# what `har train` uses without options), so re-running this after the defaults change picks them
# up. Only these are set here, for this data and the live use of the bundle, chosen on the
# held-out training-seed subjects (never on the test seeds of tests/test_default_accuracy.py):
#   --window 2.5 --hop 0.5  a new activity is shown within 3 s of its start (5 s windows cannot)
#   --rotation 0 --rotation-z 0  the simulated wearers already vary the wrist posture; random
#                           rotations move standing windows into the sitting postures (and z twists
#                           blur lying), where only the small postural sway tells them apart
#   --smooth avg:3,enter=0.6  the stored live smoothing (3 windows = 1.5 s at a 0.5 s hop)
# Deterministic for a given machine kind and package set (--seed 0, op determinism).
# Took 690 s (11.5 min) on the shared 2-core development machine while other jobs ran.
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
har train "$work/sim" --out "$work/model" --seed 0 --window 2.5 --hop 0.5 --rotation 0 --rotation-z 0 \
    --test-subjects sim90,sim91,sim92,sim93,sim94,sim95,sim96,sim97,sim98,sim99 --val-fraction 0.1
rm -rf models/default
har deploy "$work/model" --out models/default --quantize int8 --smooth "avg:3,enter=0.6"
rm -rf models/default-report
mkdir -p models/default-report
cp "$work/model"/report.txt "$work/model"/*.png models/default-report/
har info models/default
echo "rebuilt models/default in $(( $(date +%s) - t0 )) s"

#!/usr/bin/env bash
# Rebuild models/default (the bundle `har run` uses before anyone trains) from data/.
# Deterministic for a given machine kind and package set (--seed 0, op determinism).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/har ] || bash scripts/setup.sh "train,edge"
export PATH="$PWD/.venv/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
har train data/ --out "$work/model" --seed 0
rm -rf models/default
har deploy "$work/model" --out models/default --quantize int8
mkdir -p models/default-report
cp "$work/model"/report.txt "$work/model"/*.png models/default-report/
har info models/default

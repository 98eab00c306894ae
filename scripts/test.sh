#!/usr/bin/env bash
# Set up (./.venv, Debian packages for the firmware tests) and run the whole test suite.
#   bash scripts/test.sh [PYTEST ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."
HAR_APT_PACKAGES="${HAR_APT_PACKAGES:-gcc g++ libc6-dev gcc-avr avr-libc simavr openssh-server openssh-client rsync systemd mosquitto}" bash scripts/setup.sh "train,edge,dev,reference"
.venv/bin/ruff check .
.venv/bin/python -m pytest -q --durations=25 "$@"

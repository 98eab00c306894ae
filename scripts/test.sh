#!/usr/bin/env bash
# Set up (./.venv, Debian packages for the firmware tests) and run the whole test suite.
#   bash scripts/test.sh [PYTEST ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."
HAR_APT_PACKAGES="${HAR_APT_PACKAGES:-gcc g++ libc6-dev gcc-avr avr-libc simavr openssh-server openssh-client rsync systemd mosquitto}" bash scripts/setup.sh "train,edge,dev,reference"
.venv/bin/ruff check .
# two workers (HAR_TEST_WORKERS), each test file on one of them (--dist loadfile: a file's module
# fixtures, e.g. a trained model, are built once): many tests wait on subprocesses, serial ports and
# the arm64 check under qemu, so two overlap well on 2 cores. HAR_TEST_WORKERS=0 runs in one process.
.venv/bin/python -m pytest -q --durations=25 -n "${HAR_TEST_WORKERS:-2}" --dist loadfile "$@"

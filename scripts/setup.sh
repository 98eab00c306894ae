#!/usr/bin/env bash
# Set up har in ./.venv on a fresh Debian machine with Python 3.11.
#   bash scripts/setup.sh [EXTRAS]        EXTRAS defaults to "train,edge"
#   HAR_APT_PACKAGES="gcc-avr ..."          extra Debian packages to install (tests use this)
# Installs Debian packages only when they are missing (needs root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-train,edge}"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else return 1; fi
}

apt_missing=()
want_apt() { dpkg -s "$1" >/dev/null 2>&1 || apt_missing+=("$1"); }

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    for c in python3.11 python3; do command -v "$c" >/dev/null 2>&1 && PY="$c" && break; done
fi
[ -n "$PY" ] || { echo "setup: python3 not found (install Python 3.11)" >&2; exit 1; }

if command -v dpkg >/dev/null 2>&1; then
    # Debian splits venv/ensurepip out of the interpreter package.
    if ! "$PY" -c "import ensurepip, venv" >/dev/null 2>&1; then
        ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        want_apt "python${ver}-venv"
    fi
    for p in ${HAR_APT_PACKAGES:-}; do want_apt "$p"; done
    if [ "${#apt_missing[@]}" -gt 0 ]; then
        echo "setup: installing Debian packages: ${apt_missing[*]}"
        as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" \
            || echo "setup: could not install ${apt_missing[*]} (no root?); tests that need them will skip" >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PY"
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
echo "setup: pip install -e .[$extras] (TensorFlow is large: the first time takes a few minutes)"
.venv/bin/python -m pip install -q -e ".[$extras]"

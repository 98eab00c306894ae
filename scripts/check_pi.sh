#!/usr/bin/env bash
# A Pi-like arm64 check: a Debian bookworm arm64 root (what Raspberry Pi OS 64-bit is) under
# qemu-user, reached over ssh like a fresh Pi, and har installed into it from this checkout.
#
#   sudo bash scripts/check_pi.sh [--root-only]
#
# 1. Builds (once; cached outside the checkout in $HAR_PI_CACHE, default /var/cache/har-pi/<key>,
#    keyed by the suite, arch, package list, qemu version and this script's ROOT_RECIPE) a bookworm
#    arm64 root with debootstrap. Emulation uses qemu-user 10.x from Debian trixie (a static binary,
#    registered with binfmt_misc under its own name): bookworm's qemu-user 7.2 segfaults in
#    ai-edge-litert's Interpreter().
# 2. Starts the root's own sshd on 127.0.0.1 (free port, throw-away host and user keys).
# 3. From the host: `har simulate` + `har train` of a tiny model (seconds), then for each runtime
#    (ai-edge-litert + numpy 2; tflite-runtime 2.14 + numpy<2) `har deploy MODEL_DIR --to
#    pi@127.0.0.1:HOME --install --service --port PTY` into the root: ai-edge-litert --offline
#    (wheels downloaded here for the platform the device reports) into a cached har home, chosen by
#    the default runtime order; tflite-runtime online (pip on the device from PyPI; the check first
#    verifies the device reaches it, CHECK_PI_ONLINE= turns it off) into a fresh directory. Then
#    `har doctor` there, `systemd-analyze verify` of the unit --service wrote (not installed: no
#    systemd as PID 1 in a chroot), the har-supervise.sh fallback running the service and restarting
#    a killed `har run`, `har replay` of a recording there against the same bundle's replay here,
#    `har run --port` there on a pty made by `har emulate` here for CHECK_PI_LIVE_S (default 20)
#    seconds with zero lost samples, and the venv's size (target <= 150 MB). It ends with what was
#    exercised and what was not.
#
# Timings under qemu are NOT device timings: this is a correctness check.
# Exit 0: all passed; 1: a check failed; 77: skipped (the reason is printed on one line starting
# with "SKIP:"), e.g. not root, binfmt_misc cannot be mounted, debootstrap or the trixie qemu
# cannot be fetched.
set -euo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"
PY="${HAR_PYTHON:-$HERE/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
SUITE=bookworm
ARCH=arm64
QEMU_SUITE=trixie
ROOT_RECIPE=3  # bump when the root's contents change
PACKAGES="python3,python3-venv,openssh-server,rsync,ca-certificates,procps"
CACHE_BASE="${HAR_PI_CACHE:-/var/cache/har-pi}"
LIVE_S="${CHECK_PI_LIVE_S:-20}"
VENV_LIMIT_MB=150
BINFMT_NAME=har-qemu-aarch64
ROOT_ONLY=0
[ "${1:-}" = "--root-only" ] && ROOT_ONLY=1

say() { echo "check_pi: $*"; }
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
t_start=$(date +%s)
elapsed() { echo $(( $(date +%s) - t_start )); }

[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, chroot, binfmt_misc)"
[ "$(uname -m)" = x86_64 ] || skip "written for an x86_64 host (found $(uname -m))"
command -v chroot >/dev/null || skip "chroot not found"

# --- tools: debootstrap (bookworm) and qemu-user 10.x (trixie, static) ----------------------------
need_apt=()
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null || need_apt+=(openssh-client)
command -v rsync >/dev/null || need_apt+=(rsync)
if [ "${#need_apt[@]}" -gt 0 ]; then
    say "installing ${need_apt[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null; } \
        || skip "cannot install ${need_apt[*]} with apt-get"
fi

mkdir -p "$CACHE_BASE"
QEMU_DIR="$CACHE_BASE/qemu-$QEMU_SUITE"
if [ ! -x "$QEMU_DIR/qemu-aarch64" ]; then
    say "fetching qemu-user from Debian $QEMU_SUITE"
    tmp_apt="$(mktemp -d)"
    mkdir -p "$tmp_apt"/{lists/partial,cache/archive/partial}
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $QEMU_SUITE main" \
        > "$tmp_apt/sources.list"
    cat > "$tmp_apt/apt.conf" <<EOF
Dir::Etc::SourceList "$tmp_apt/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::State::Lists "$tmp_apt/lists";
Dir::Cache "$tmp_apt/cache";
EOF
    ( cd "$tmp_apt" && APT_CONFIG="$tmp_apt/apt.conf" apt-get update -qq && \
      APT_CONFIG="$tmp_apt/apt.conf" apt-get download -qq qemu-user ) >/dev/null 2>&1 \
        || { rm -rf "$tmp_apt"; skip "cannot fetch qemu-user from Debian $QEMU_SUITE"; }
    dpkg-deb -x "$tmp_apt"/qemu-user_*.deb "$tmp_apt/x"
    mkdir -p "$QEMU_DIR.tmp"
    cp "$tmp_apt/x/usr/bin/qemu-aarch64" "$QEMU_DIR.tmp/"
    rm -rf "$tmp_apt" "$QEMU_DIR"
    mv -T "$QEMU_DIR.tmp" "$QEMU_DIR"
fi
QEMU_VERSION="$("$QEMU_DIR/qemu-aarch64" --version | head -1 | awk '{print $3}')"
case "$QEMU_VERSION" in
    [0-7].*) skip "qemu-user $QEMU_VERSION is too old (ai-edge-litert segfaults under 7.2; need 10.x)";;
esac

# --- binfmt_misc: our qemu, under its own name, opened once (F) so it works inside the chroot -------
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null \
        || skip "binfmt_misc cannot be mounted here (mount -t binfmt_misc: not permitted in this container)"
fi
[ -e "$BINFMT/register" ] || skip "binfmt_misc is not available"
if [ -e "$BINFMT/$BINFMT_NAME" ] && ! grep -q "interpreter $QEMU_DIR/qemu-aarch64" "$BINFMT/$BINFMT_NAME"; then
    echo -1 > "$BINFMT/$BINFMT_NAME"
fi
# An older qemu registered for the same magic would shadow ours: switch it off (said aloud).
for e in "$BINFMT"/qemu-aarch64*; do
    [ -e "$e" ] || continue
    if grep -q '^enabled' "$e"; then say "disabling $(basename "$e") ($(sed -n 's/^interpreter //p' "$e")) in binfmt_misc"; echo 0 > "$e"; fi
done
if [ ! -e "$BINFMT/$BINFMT_NAME" ]; then
    printf '%s' ":$BINFMT_NAME:M::\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:$QEMU_DIR/qemu-aarch64:FPC" \
        > "$BINFMT/register" 2>/dev/null || skip "cannot register qemu-aarch64 with binfmt_misc"
fi
echo 1 > "$BINFMT/$BINFMT_NAME"

# --- the root (cached, keyed by its inputs) ------------------------------------------------------
KEY="$(printf '%s\n' "$SUITE" "$ARCH" "$PACKAGES" "$QEMU_VERSION" "$ROOT_RECIPE" | sha256sum | cut -c1-16)"
CACHE="$CACHE_BASE/$KEY"
ROOT="$CACHE/root"
if [ ! -e "$CACHE/ok" ]; then
    say "building a $SUITE $ARCH root in $ROOT (debootstrap under qemu $QEMU_VERSION; a few minutes, once)"
    rm -rf "$CACHE"
    mkdir -p "$CACHE"
    if ! nice -n 10 debootstrap --arch="$ARCH" --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" \
            http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1; then
        tail -3 "$CACHE/debootstrap.log"
        fail "debootstrap failed (log: $CACHE/debootstrap.log)"
    fi
    chroot "$ROOT" apt-get clean
    cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt" 2>/dev/null || true
    chroot "$ROOT" useradd -m -s /bin/bash pi
    touch "$CACHE/ok"
    say "root built in $(elapsed) s"
fi
say "root: $ROOT (cache key $KEY; qemu-user $QEMU_VERSION)"
[ "$ROOT_ONLY" = 1 ] && exit 0

exec "$PY" "$HERE/scripts/check_pi.py" --root "$ROOT" --cache "$CACHE" --live-seconds "$LIVE_S" \
    --venv-limit-mb "$VENV_LIMIT_MB"

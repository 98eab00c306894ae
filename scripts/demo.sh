#!/usr/bin/env bash
# The whole path with no hardware: emulated device -> har record -> har train -> har deploy -> har run.
#   bash scripts/demo.sh            (sets up ./.venv first; outputs go to ./demo-out/)
# Environment: DEMO_EPOCHS (default 12), DEMO_LIVE_S (seconds of live predictions, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "train,edge"
export PATH="$PWD/.venv/bin:$PATH"
out=demo-out
epochs="${DEMO_EPOCHS:-12}"
live_s="${DEMO_LIVE_S:-30}"
rm -rf "$out"
mkdir -p "$out/recordings"

EMU_PID=""
cleanup() { [ -n "$EMU_PID" ] && kill "$EMU_PID" 2>/dev/null || true; }
trap cleanup EXIT

start_emulator() {  # args: har emulate options; sets PORT and EMU_PID
    : > "$out/port"
    har emulate --simulate "$@" > "$out/port" 2>> "$out/emulator.log" &
    EMU_PID=$!
    for _ in $(seq 100); do [ -s "$out/port" ] && break; sleep 0.1; done
    PORT=$(head -n 1 "$out/port")
    [ -n "$PORT" ] || { echo "demo: the emulator did not start (see $out/emulator.log)" >&2; exit 1; }
}
stop_emulator() { kill "$EMU_PID" 2>/dev/null || true; wait "$EMU_PID" 2>/dev/null || true; EMU_PID=""; }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/5 record: an emulated wrist sensor streams over a virtual serial port; har record captures it"
for label in walking sitting; do
    start_emulator --activity "$label" --subject 42 --rate 50
    echo "emulator on $PORT ($label)"
    har record --port "$PORT" --label "$label" --subject demo42 --duration 8 --out "$out/recordings/demo42_$label.csv"
    stop_emulator
done
har info "$out/recordings/demo42_walking.csv"

step "2/5 train: LSTM on the project's simulated recordings (data/) plus the new ones, tested on unseen subjects"
har train data/ "$out/recordings" --out "$out/model" --epochs "$epochs" --seed 0

step "3/5 deploy: full-integer (int8) TFLite, verified against the Keras model, bundled with checksums"
har deploy "$out/model" --out "$out/bundle" --quantize int8

step "4/5 replay: a recorded session through the live path, as fast as possible"
har replay "$out/bundle" data/sim/sim08.csv | tail -n 12

step "5/5 run: live predictions of the shipped default bundle from the emulated device (${live_s} s; activity changes every 10 s)"
# models/default is trained on 1,782 simulated wearers (scripts/rebuild_default_model.sh) and shows each
# new activity within 3 s of its start (tests/test_default_accuracy.py). The bundle made in step 3
# (trained on 10 wearers for the demo) runs the same way: har run "$out/bundle" --port PORT
start_emulator --activity walking --activity sitting --activity running --activity standing --segment 10 --subject 77
echo "emulator on $PORT; the true activity is logged to $out/emulator.log"
har run models/default --port "$PORT" --duration "$live_s"
stop_emulator
echo
echo "Done. Model report: $out/model/report.txt  plots: $out/model/*.png  bundle: $out/bundle"

"""Load test of `har fleet` on loopback with a real mosquitto: N devices (default 50), each publishing
one activity change per second for S seconds (default 60) with the real `har run --mqtt` sink
(MqttSink: session + seq, QoS 1, retained), from a separate publisher process.

Measured in this process: the fleet's CPU time (all threads) per second and per message, the
publish -> table latency (the payload's wall_time to the moment the table applied it), and whether
every change arrived exactly once and in order per device. Baseline, same process, same load: a bare
paho subscriber that only counts messages (the floor any MQTT consumer pays).

    python bench/bench_fleet.py [--devices 50] [--seconds 60]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from mosquitto_fixture import Broker, mosquitto_bin  # noqa: E402

PUBLISHER = r"""
import sys, threading, time
import numpy as np
from har.runtime.live import Prediction
from har.runtime.outputs import MqttSink, OutputEvent
port, n_dev, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
classes = ("walking", "sitting", "standing", "running")
sinks = [MqttSink(f"127.0.0.1:{port}", classes, f"dev{i:03d}") for i in range(n_dev)]
print("ready", flush=True)
sys.stdin.readline()
t0 = time.monotonic()
k = 0
while time.monotonic() - t0 < seconds:
    for i, s in enumerate(sinks):   # spread the devices over the second
        label = classes[(k + i) % len(classes)]
        probs = np.full(len(classes), 0.1, dtype=np.float32)
        s.prediction(OutputEvent(Prediction(float(k), label, 0.7, probs), None, True, time.time()))
        time.sleep(max(0.0, t0 + k + (i + 1) / n_dev - time.monotonic()))
    k += 1
for s in sinks:
    s.close(time.monotonic() + 10)
print(k, flush=True)
"""


def _run_load(port: int, n_dev: int, seconds: float) -> int:
    p = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(port), str(n_dev), str(seconds)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdin is not None
    assert p.stdout.readline().strip() == "ready"
    p.stdin.write("go\n")
    p.stdin.flush()
    rounds = int(p.stdout.readline())
    p.wait(30)
    return rounds


def bench_fleet(port: int, n_dev: int, seconds: float) -> dict:
    from har.fleet import FleetConfig, FleetEvent, FleetMonitor

    events: list[FleetEvent] = []
    lock = threading.Lock()

    def on_event(ev: FleetEvent) -> None:
        with lock:
            events.append(ev)

    mon = FleetMonitor(FleetConfig(f"127.0.0.1:{port}"), on_event=on_event)
    mon.start()
    c0, w0 = time.process_time(), time.monotonic()
    rounds = _run_load(port, n_dev, seconds)
    deadline = time.monotonic() + 10
    while mon.table.counts.changes < rounds * n_dev and time.monotonic() < deadline:
        time.sleep(0.05)
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    mon.stop()
    changes = [e for e in events if e.event == "change"]
    ok = True
    for i in range(n_dev):
        seqs = [e.seq for e in changes if e.device == f"dev{i:03d}"]
        ok &= seqs == list(range(1, rounds + 1))
    lat = sorted(e.latency_s for e in changes if e.latency_s is not None)
    c = mon.table.counts
    return {"rounds": rounds, "expected": rounds * n_dev, "changes": c.changes, "repeats": c.repeats,
            "missed": c.missed, "malformed": c.malformed, "in_order_exactly_once": ok, "cpu_s": cpu, "wall_s": wall,
            "lat_p50_ms": 1e3 * lat[len(lat) // 2], "lat_p95_ms": 1e3 * lat[int(len(lat) * 0.95)],
            "lat_max_ms": 1e3 * lat[-1], "messages": c.messages}


def bench_bare(port: int, n_dev: int, seconds: float) -> dict:
    import paho.mqtt.client as mqtt

    n = {"msgs": 0}
    sub = threading.Event()
    cl = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    cl.on_connect = lambda client, *a: client.subscribe([("har/+/activity", 1), ("har/+/activity/status", 1)])
    cl.on_subscribe = lambda *a: sub.set()

    def on_message(client, userdata, msg) -> None:  # noqa: ANN001
        n["msgs"] += 1

    cl.on_message = on_message
    cl.connect("127.0.0.1", port)
    cl.loop_start()
    sub.wait(10)
    c0, w0 = time.process_time(), time.monotonic()
    rounds = _run_load(port, n_dev, seconds)
    time.sleep(1.0)
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    cl.disconnect()
    cl.loop_stop()
    return {"rounds": rounds, "messages": n["msgs"], "cpu_s": cpu, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    exe = mosquitto_bin()
    if exe is None:
        sys.exit("mosquitto is not installed (apt-get install mosquitto)")
    with tempfile.TemporaryDirectory() as d:
        for sub in ("bare", "fleet"):
            (Path(d) / sub).mkdir()
        b1 = Broker(exe, Path(d) / "bare")
        b1.start()
        try:
            base = bench_bare(b1.port, args.devices, args.seconds)
        finally:
            b1.stop()
        b2 = Broker(exe, Path(d) / "fleet")
        b2.start()
        try:
            fl = bench_fleet(b2.port, args.devices, args.seconds)
        finally:
            b2.stop()
    print(f"load: {args.devices} devices x 1 change/s x {args.seconds:g} s, QoS 1, loopback mosquitto")
    print(f"har fleet: {fl['changes']}/{fl['expected']} changes, exactly once and in order per device: "
          f"{fl['in_order_exactly_once']} (repeats {fl['repeats']}, missed {fl['missed']}, "
          f"malformed {fl['malformed']})")
    print(f"  CPU {fl['cpu_s']:.2f} s over {fl['wall_s']:.1f} s = {100 * fl['cpu_s'] / fl['wall_s']:.2f}% of a core; "
          f"{1e6 * fl['cpu_s'] / max(fl['messages'], 1):.0f} us per message")
    print(f"  latency publish -> table: p50 {fl['lat_p50_ms']:.1f} ms, p95 {fl['lat_p95_ms']:.1f} ms, "
          f"max {fl['lat_max_ms']:.1f} ms")
    print(f"baseline (bare paho subscriber, counting only): {base['messages']} messages, CPU {base['cpu_s']:.2f} s "
          f"= {100 * base['cpu_s'] / base['wall_s']:.2f}% of a core; "
          f"{1e6 * base['cpu_s'] / max(base['messages'], 1):.0f} us per message")
    print(f"ratio fleet / bare CPU: x{fl['cpu_s'] / max(base['cpu_s'], 1e-9):.2f}")


if __name__ == "__main__":
    main()

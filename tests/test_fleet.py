"""`har fleet`: the pure table (har.fleet.FleetTable) and the monitor against a real mosquitto broker
on 127.0.0.1, fed by the real `har run --mqtt` sink (MqttSink) of several devices."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from mosquitto_fixture import Broker, free_port, mosquitto_bin

from har.cli import cli
from har.errors import OutputError
from har.fleet import FleetConfig, FleetEvent, FleetMonitor, FleetTable, render_table
from har.runtime.live import Prediction
from har.runtime.outputs import MqttSink, OutputEvent

CLASSES = ("walking", "sitting", "standing")


def _payload(label: str, seq: int | None = None, session: str | None = "s1", conf: float = 0.9,
             wall: str = "2026-12-01T10:00:00.000Z") -> bytes:
    d: dict = {"t": 1.0, "label": label, "confidence": conf, "wall_time": wall}
    if seq is not None:
        d["seq"] = seq
    if session is not None:
        d["session"] = session
    return json.dumps(d).encode()


# --- the table, no broker ------------------------------------------------------------------------
def test_changes_repeats_and_gaps() -> None:
    t = FleetTable()
    ev = t.handle("har/pi1/activity", _payload("walking", 1), now=100.0)
    assert [(e.event, e.activity, e.previous, e.seq) for e in ev] == [("change", "walking", None, 1)]
    assert t.handle("har/pi1/activity", _payload("walking", 1), now=101.0) == []  # retained re-delivery
    ev = t.handle("har/pi1/activity", _payload("sitting", 4), now=102.0)
    assert ev[0].previous == "walking" and ev[0].activity == "sitting"
    assert t.handle("har/pi1/activity", _payload("standing", 3), now=103.0) == []  # older: ignored
    c = t.counts
    assert (c.changes, c.repeats, c.missed, c.out_of_order, c.malformed) == (2, 1, 2, 1, 0)
    st = t.devices["pi1"]
    assert st.activity == "sitting" and st.status == "online" and st.last_seen == 103.0 and st.changes == 2
    # a new session (har run restarted) starts its own seq
    ev = t.handle("har/pi1/activity", _payload("walking", 1, session="s2"), now=104.0)
    assert ev[0].activity == "walking" and t.counts.missed == 2


def test_status_and_stale() -> None:
    t = FleetTable(stale_after_s=5.0)
    assert [e.event for e in t.handle("har/pi2/activity/status", b"online", now=0.0)] == ["online"]
    assert t.handle("har/pi2/activity/status", b"online", now=1.0) == []
    t.handle("har/pi2/activity", _payload("walking", 1), now=2.0)
    assert t.sweep(now=6.0) == []
    ev = t.sweep(now=7.5)
    assert [(e.device, e.event) for e in ev] == [("pi2", "stale")] and t.devices["pi2"].stale
    assert t.sweep(now=9.0) == []  # reported once
    assert [e.event for e in t.handle("har/pi2/activity/status", b"offline", now=10.0)] == ["offline"]
    assert not t.devices["pi2"].stale  # heard from again
    text = render_table(t, now=11.0)
    assert "pi2" in text and "offline" in text and "walking" in text


@pytest.mark.parametrize(
    "topic,payload",
    [
        ("har/pi/activity", b"\xff\xfe not utf8"),
        ("har/pi/activity", b"{not json"),
        ("har/pi/activity", b"[1, 2]"),
        ("har/pi/activity", b'{"confidence": 0.5}'),
        ("har/pi/activity", b'{"label": "", "confidence": 0.5}'),
        ("har/pi/activity", b'{"label": "walking", "confidence": "high"}'),
        ("har/pi/activity", b'{"label": "walking", "confidence": 7}'),
        ("har/pi/activity", b'{"label": "walking", "confidence": NaN}'),
        ("har/pi/activity", b'{"label": "walking", "confidence": 0.5, "seq": -1}'),
        ("har/pi/activity", b'{"label": "walking", "confidence": 0.5, "seq": 1.5}'),
        ("har/pi/activity", b'{"label": "walking", "confidence": 0.5, "seq": 1, "session": 3}'),
        ("har/pi/activity/status", b"maybe"),
        ("har/pi/activity/status", b"\xff"),
        ("har//activity", b'{"label": "walking", "confidence": 0.5}'),
        ("har/pi/other", b"x"),
        ("other/pi/activity", b"x"),
    ],
)
def test_malformed_messages_are_counted_and_skipped(topic: str, payload: bytes) -> None:
    t = FleetTable()
    assert t.handle(topic, payload, now=1.0) == []
    assert t.counts.malformed == 1 and t.counts.changes == 0 and len(t.counts.malformed_examples) == 1
    assert t.handle("har/pi/activity", _payload("walking", 1), now=2.0)  # still works afterwards


def test_bad_options_are_clear() -> None:
    with pytest.raises(OutputError, match="topic prefix"):
        FleetTable(prefix="har/#")
    with pytest.raises(OutputError, match="stale-after"):
        FleetTable(stale_after_s=float("nan"))


# --- against a real broker -----------------------------------------------------------------------
@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    exe = mosquitto_bin()
    if exe is None:
        pytest.skip("the mosquitto broker is not installed (apt-get install mosquitto; scripts/test.sh does)")
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install 'har-edge[mqtt]')")
    b = Broker(exe, tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def _wait(cond: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def _event(label: str, previous: str | None) -> OutputEvent:
    probs = np.full(len(CLASSES), 0.05, dtype=np.float32)
    probs[CLASSES.index(label)] = 0.9
    return OutputEvent(Prediction(1.0, label, 0.9, probs), previous, True, time.time())


def _publish_changes(sink: MqttSink, n: int, period_s: float, offset: int) -> list[str]:
    sent, prev = [], None
    for i in range(n):
        label = CLASSES[(i + offset) % len(CLASSES)]
        sink.prediction(_event(label, prev))
        sent.append(label)
        prev = label
        time.sleep(period_s)
    return sent


def test_every_change_arrives_once_in_order_per_device(broker: Broker) -> None:
    events: list[FleetEvent] = []
    lock = threading.Lock()

    def on_event(ev: FleetEvent) -> None:
        with lock:
            events.append(ev)

    mon = FleetMonitor(FleetConfig(f"127.0.0.1:{broker.port}"), on_event=on_event)
    mon.start()
    n_dev, n_changes = 10, 25
    sinks = [MqttSink(f"127.0.0.1:{broker.port}", CLASSES, f"dev{i:02d}") for i in range(n_dev)]
    sent: dict[str, list[str]] = {}
    try:
        threads = []
        for i, s in enumerate(sinks):
            def job(s: MqttSink = s, i: int = i) -> None:
                sent[f"dev{i:02d}"] = _publish_changes(s, n_changes, 0.02, i)
            threads.append(threading.Thread(target=job))
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert _wait(lambda: mon.table.counts.changes >= n_dev * n_changes)
        time.sleep(0.3)
    finally:
        for s in sinks:
            s.close(time.monotonic() + 5)
        assert _wait(lambda: all(st.status == "offline" for st in mon.table.rows()))
        mon.stop()
    c = mon.table.counts
    assert (c.changes, c.missed, c.out_of_order, c.malformed) == (n_dev * n_changes, 0, 0, 0)
    for dev, labels in sent.items():
        got = [e for e in events if e.device == dev and e.event == "change"]
        assert [e.activity for e in got] == labels
        assert [e.seq for e in got] == list(range(1, n_changes + 1))
        assert all(e.latency_s is not None and -1.0 < e.latency_s < 10.0 for e in got)
    assert {e.event for e in events} == {"change", "online", "offline"}


def test_malformed_payloads_over_the_broker_and_a_broker_restart(broker: Broker) -> None:
    import paho.mqtt.client as mqtt

    warnings: list[str] = []
    mon = FleetMonitor(FleetConfig(f"127.0.0.1:{broker.port}", keepalive_s=2), warn=warnings.append)
    mon.start()
    raw = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    raw.connect("127.0.0.1", broker.port)
    raw.loop_start()
    try:
        for p in (b"garbage", b'{"label": 3}', b"\x00\xff", b'{"label": "walking", "confidence": -1}'):
            raw.publish("har/evil/activity", p, qos=1).wait_for_publish(5)
        assert _wait(lambda: mon.table.counts.malformed == 4)
        assert "evil" not in mon.table.devices
        raw.disconnect()
        raw.loop_stop()

        broker.stop()  # the broker restarts on the same port: the fleet reconnects and subscribes again
        assert _wait(lambda: any("lost the broker" in w for w in warnings), 10)
        broker.start()
        assert _wait(lambda: mon.connects >= 2, 30), warnings
        sink = MqttSink(f"127.0.0.1:{broker.port}", CLASSES, "late")
        try:
            _publish_changes(sink, 3, 0.01, 0)
            assert _wait(lambda: mon.table.devices.get("late") is not None
                         and mon.table.devices["late"].changes == 3)
        finally:
            sink.close(time.monotonic() + 5)
    finally:
        mon.stop()


def test_cli_fleet_json_and_logs(broker: Broker, tmp_path: Path) -> None:
    sink = MqttSink(f"127.0.0.1:{broker.port}", CLASSES, "pi-kitchen")
    try:
        _publish_changes(sink, 2, 0.01, 1)  # retained: the fleet gets the last one at subscription
    finally:
        sink.close(time.monotonic() + 5)
    csv_path, jsonl = tmp_path / "fleet.csv", tmp_path / "fleet.jsonl"
    r = CliRunner().invoke(cli, ["fleet", "--mqtt", f"127.0.0.1:{broker.port}", "--duration", "1.5",
                                 "--refresh", "0.2", "--json", "--csv", str(csv_path), "--jsonl", str(jsonl)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    (row,) = out["devices"]
    assert row["device"] == "pi-kitchen" and row["activity"] == "standing" and row["status"] == "offline"
    assert out["counts"]["malformed"] == 0
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "time,device,event,activity,previous,confidence,seq,latency_s"
    assert any(",pi-kitchen,change,standing," in ln for ln in lines[1:])
    assert any(json.loads(ln)["event"] == "change" for ln in jsonl.read_text().splitlines())


def test_cli_fleet_plain_lines_and_unreachable_broker(broker: Broker) -> None:
    sink = MqttSink(f"127.0.0.1:{broker.port}", CLASSES, "pi-hall")
    try:
        _publish_changes(sink, 1, 0.01, 0)
        r = CliRunner().invoke(cli, ["fleet", "--mqtt", f"127.0.0.1:{broker.port}", "--duration", "1"])
    finally:
        sink.close(time.monotonic() + 5)
    assert r.exit_code == 0, r.output
    assert any("pi-hall  change  - -> walking (90%)" in ln for ln in r.output.splitlines())
    assert "1 device(s), 1 change(s), 0 malformed" in r.output  # the table at exit
    r = CliRunner().invoke(cli, ["fleet", "--mqtt", f"127.0.0.1:{free_port()}", "--duration", "1"])
    assert r.exit_code == 1 and "cannot connect to the MQTT broker" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(cli, ["fleet", "--mqtt", "host:notaport"])
    assert r.exit_code == 1 and "bad port" in r.output

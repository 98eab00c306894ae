"""Outputs for other programs (`har run --jsonl/--csv/--on-change/--post/--mqtt`).

Real parts only: the --on-change command is a real subprocess (a small Python script), --post goes
to a real http.server on 127.0.0.1, --mqtt to a real mosquitto broker on 127.0.0.1 (skipped when
the `mosquitto` binary is missing) read back with a paho subscriber. The CLI runs use the shipped
default bundle (runtime only, no TensorFlow) on a short recording cut from data/sim."""

from __future__ import annotations

import csv
import http.server
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from mosquitto_fixture import Broker, mosquitto_bin

from har.cli import cli
from har.errors import MissingDependencyError, OutputError
from har.recording.format import Recording, RecordingMeta, read_recording, write_recording
from har.runtime.live import Prediction
from har.runtime.outputs import (
    CommandSink,
    CsvSink,
    JsonlSink,
    OutputConfig,
    OutputEvent,
    Outputs,
    OutputSink,
    _BackgroundSink,
    build_outputs,
    csv_header,
    default_mqtt_topic,
    parse_mqtt_address,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "models" / "default"
CLASSES = ("lying", "running", "sitting", "stairs", "standing", "walking")
HOOK = """\
import json, os, sys
env = {k: os.environ[k] for k in ("HAR_LABEL", "HAR_PREVIOUS", "HAR_CONFIDENCE", "HAR_TIME", "HAR_RAW_LABEL")}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps({"argv": sys.argv[2:], "env": env}) + "\\n")
"""


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2
    except TypeError:
        return CliRunner()


def _pred(label: str, t: float = 1.0, conf: float = 0.9, raw: str | None = None) -> Prediction:
    probs = np.full(len(CLASSES), (1 - conf) / (len(CLASSES) - 1), dtype=np.float32)
    probs[CLASSES.index(label)] = conf
    return Prediction(t, label, conf, probs, raw_label=raw)


def _event(label: str, previous: str | None = None, changed: bool = True, t: float = 1.0) -> OutputEvent:
    return OutputEvent(_pred(label, t), previous, changed, time.time())


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """45 s at 50 Hz: 15 s each of sitting, walking and running (from data/sim/sim08), one
    continuous sequence."""
    src = read_recording(ROOT / "data" / "sim" / "sim08.csv")
    parts = [slice(250, 1000), slice(6250, 7000), slice(10250, 11000)]
    xyz = np.concatenate([src.xyz[s] for s in parts])
    labels = np.concatenate([src.labels[s] for s in parts])
    n = xyz.shape[0]
    rec = Recording(time=np.arange(n) / 50.0, xyz=xyz, labels=labels, seq=np.arange(n, dtype=np.int64),
                    meta=RecordingMeta(subject="sim08", device="test", rate_hz=50.0, complete=True))
    return write_recording(tmp_path_factory.mktemp("rec") / "three.csv", rec)


def _changes(jsonl: Path) -> list[tuple[str | None, str]]:
    """(previous, label) of each activity change in a --jsonl file."""
    out: list[tuple[str | None, str]] = []
    prev: str | None = None
    for ln in jsonl.read_text().splitlines():
        label = json.loads(ln)["label"]
        if label != prev:
            out.append((prev, label))
            prev = label
    return out


# --- the fan-out and the sinks, with hand-made predictions -----------------------------------------
class _Recorder(OutputSink):
    what = "recorder"

    def __init__(self) -> None:
        self.events: list[OutputEvent] = []
        self.closed = False

    def prediction(self, event: OutputEvent) -> None:
        self.events.append(event)

    def close(self, deadline: float) -> None:
        self.closed = True


class _Broken(OutputSink):
    what = "broken"

    def prediction(self, event: OutputEvent) -> None:
        raise OSError("disk full")


def test_change_detection_and_event_fields() -> None:
    rec, warnings = _Recorder(), []
    outs = Outputs([_Broken(), rec], warn=warnings.append)
    for lab in ("sitting", "sitting", "walking", "walking", "sitting"):
        outs(_pred(lab))
    outs.close()
    outs.close()  # idempotent
    assert [(e.changed, e.previous, e.prediction.label) for e in rec.events] == [
        (True, None, "sitting"), (False, None, "sitting"), (True, "sitting", "walking"),
        (False, "sitting", "walking"), (True, "walking", "sitting")]
    assert outs.changes == 3 and outs.predictions == 5 and rec.closed
    # a sink that raises is a (rate-limited) warning, never an exception, and the others still get everything
    assert warnings[0] == "broken: OSError: disk full" and warnings[-1] == "broken: 4 more warning(s) not shown"
    assert len(warnings) == 2
    d = OutputEvent(_pred("walking", t=12.345678, raw="running"), "sitting", True, 0.0).to_dict(CLASSES, "pi")
    assert d["t"] == 12.3457 and d["label"] == "walking" and d["raw_label"] == "running"
    assert d["previous"] == "sitting" and d["changed"] is True and d["host"] == "pi"
    assert d["wall_time"] == "1970-01-01T00:00:00.000Z" and set(d["probs"]) == set(CLASSES)


def test_csv_appends_keeps_one_header_and_refuses_another(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    s = CsvSink(path, CLASSES)
    s.prediction(_event("sitting"))
    s.prediction(OutputEvent(_pred("walking", t=2.0, raw="running"), "sitting", True, time.time()))
    # flushed per line: readable while still open
    assert len(path.read_text().splitlines()) == 3
    s.close(time.monotonic())
    with open(path, "a") as f:  # a crash in the middle of a row
        f.write("3.0000,sitt")
    s = CsvSink(path, CLASSES)
    s.prediction(_event("running", t=4.0))
    s.close(time.monotonic())
    rows = list(csv.reader(path.open()))
    assert rows[0] == csv_header(CLASSES)
    assert rows[0] == ["time_s", "label", "confidence", "raw_label", *(f"p_{c}" for c in CLASSES)]
    assert [r[:4] for r in rows[1:]] == [
        ["1.0000", "sitting", "0.9000", ""], ["2.0000", "walking", "0.9000", "running"],
        ["4.0000", "running", "0.9000", ""]]
    assert float(rows[1][4 + CLASSES.index("sitting")]) == pytest.approx(0.9)
    with pytest.raises(OutputError, match="other columns"):
        CsvSink(path, ("a", "b"))
    assert len(path.read_text().splitlines()) == 4  # untouched


def test_jsonl_appends_the_json_format(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    for lab in ("sitting", "walking"):
        s = JsonlSink(path, CLASSES)
        s.prediction(_event(lab))
        s.close(time.monotonic())
    objs = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert [o["label"] for o in objs] == ["sitting", "walking"]
    assert set(objs[0]) == {"t", "label", "confidence", "probs"}


def test_failing_command_is_a_warning_and_runs_only_on_changes(tmp_path: Path) -> None:
    warnings: list[str] = []
    code = "import sys; print('hook broke', file=sys.stderr); sys.exit(3)"
    s = CommandSink(shlex.join([sys.executable, "-c", code]), warn=warnings.append)
    s.prediction(_event("sitting"))
    s.prediction(_event("sitting", changed=False))
    s.prediction(_event("walking", "sitting"))
    s.prediction(_event("running", "walking"))
    s.close(time.monotonic() + 30)
    assert s.failed == 3 and s.delivered == 0
    assert warnings[0].startswith("--on-change: ") and "exited with status 3: hook broke" in warnings[0]
    assert warnings[1:] == ["--on-change: 2 more warning(s) not shown"]


def test_command_timeout_is_killed_and_warned() -> None:
    warnings: list[str] = []
    s = CommandSink(shlex.join([sys.executable, "-c", "import time; time.sleep(120)"]), warn=warnings.append,
                    timeout_s=0.5)
    s.prediction(_event("sitting"))
    s.close(time.monotonic() + 30)
    assert s.failed == 1 and len(warnings) == 1 and "timed out after 0.5 s (killed)" in warnings[0]


class _Blocking(_BackgroundSink):
    def __init__(self, warn: Callable[[str], None]) -> None:
        self.release = threading.Event()
        self.seen: list[str] = []
        super().__init__("--blocking", warn, queue_size=2, warn_interval_s=0.0)

    def _run(self, event: OutputEvent) -> str | None:
        self.seen.append(event.prediction.label)
        self.release.wait(30)
        return None


def test_full_queue_drops_oldest_and_close_gives_up_at_deadline() -> None:
    warnings: list[str] = []
    s = _Blocking(warnings.append)
    try:
        s.prediction(_event("sitting"))
        assert _wait(lambda: s.seen == ["sitting"])  # the worker is busy with it
        for lab in ("walking", "running", "stairs", "lying"):
            s.prediction(_event(lab))  # never blocks: the queue holds 2
        assert s.dropped == 2 and [e.prediction.label for e in s._pending] == ["stairs", "lying"]
        assert sum("dropped the oldest" in w for w in warnings) == 2
        s.close(time.monotonic() + 0.2)  # still blocked at the deadline: give up
        assert warnings[-1] == "--blocking: 3 change(s) not delivered: gave up at exit"
    finally:
        s.release.set()


def test_setup_errors_are_clear(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="command not found or not executable: no-such-har-hook"):
        build_outputs(OutputConfig(on_change="no-such-har-hook {label}"), CLASSES)
    with pytest.raises(OutputError, match="cannot parse the command"):
        build_outputs(OutputConfig(on_change="echo 'unclosed"), CLASSES)
    with pytest.raises(OutputError, match="http:// or https:// URL"):
        build_outputs(OutputConfig(post="ftp://example.org/x"), CLASSES)
    with pytest.raises(OutputError, match="need --mqtt"):
        build_outputs(OutputConfig(mqtt_topic="a/b"), CLASSES)
    with pytest.raises(OutputError, match="is a directory"):
        build_outputs(OutputConfig(csv=str(tmp_path)), CLASSES)
    assert parse_mqtt_address("broker") == ("broker", 1883)
    assert parse_mqtt_address("mqtt://10.0.0.2:1884/") == ("10.0.0.2", 1884)
    assert parse_mqtt_address("[::1]:2000") == ("::1", 2000)
    with pytest.raises(OutputError, match="bad port"):
        parse_mqtt_address("broker:http")
    assert default_mqtt_topic("my pi/1") == "har/my_pi_1/activity"
    monkeypatch.setitem(sys.modules, "paho", None)  # paho-mqtt not installed
    monkeypatch.setitem(sys.modules, "paho.mqtt", None)
    monkeypatch.setitem(sys.modules, "paho.mqtt.client", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'har-edge\[mqtt\]'"):
        build_outputs(OutputConfig(mqtt="127.0.0.1:1"), CLASSES)


# --- through `har run` -------------------------------------------------------------------------
class _Hook(http.server.BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]]
    status = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        n = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(n))
        body["_content_type"] = self.headers.get("Content-Type")
        type(self).bodies.append(body)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_hook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"bodies": [], "status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


def test_run_feeds_files_command_and_url(tmp_path: Path, recording: Path, http_hook: tuple[str, Any]) -> None:
    url, handler = http_hook
    hook = tmp_path / "hook.py"
    hook.write_text(HOOK)
    calls = tmp_path / "calls.jsonl"
    cmd = shlex.join([sys.executable, str(hook), str(calls), "{previous}->{label}", "{confidence}"])
    args = ["run", str(DEFAULT), "--file", str(recording), "--speed", "0", "--jsonl", str(tmp_path / "p.jsonl"),
            "--csv", str(tmp_path / "p.csv"), "--on-change", cmd, "--post", url]
    r = _runner().invoke(cli, args)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "Warning" not in r.stderr
    windows = int(next(ln for ln in r.stdout.splitlines() if " windows from " in ln).split()[0])
    preds = [json.loads(ln) for ln in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(preds) == windows > 0
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [(r_["label"], float(r_["time_s"])) for r_ in rows] == [(p["label"], p["t"]) for p in preds]
    changes = _changes(tmp_path / "p.jsonl")
    assert len(changes) >= 3 and {"sitting", "walking", "running"} <= {lab for _, lab in changes}
    # the command ran once per change, in order, after all were drained at exit
    got = [json.loads(ln) for ln in calls.read_text().splitlines()]
    assert [(c["env"]["HAR_PREVIOUS"] or None, c["env"]["HAR_LABEL"]) for c in got] == changes
    first = got[0]
    assert first["argv"][0] == f"->{changes[0][1]}" and first["argv"][1] == first["env"]["HAR_CONFIDENCE"]
    assert 0 < float(first["env"]["HAR_CONFIDENCE"]) <= 1 and float(first["env"]["HAR_TIME"]) == preds[0]["t"]
    # one POST per change, JSON body
    assert [(b["previous"], b["label"]) for b in handler.bodies] == changes
    b = handler.bodies[0]
    assert b["_content_type"] == "application/json" and b["changed"] is True and b["host"]
    assert set(b["probs"]) == set(CLASSES) and b["wall_time"].endswith("Z")

    # a second run appends to both files (one header)
    r = _runner().invoke(cli, args[:6] + ["--csv", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.stderr
    assert sum(1 for ln in (tmp_path / "p.csv").read_text().splitlines() if ln.startswith("time_s")) == 1
    assert len(list(csv.DictReader((tmp_path / "p.csv").open()))) == 2 * windows


def test_run_survives_failing_command_and_url(tmp_path: Path, recording: Path, http_hook: tuple[str, Any]) -> None:
    url, handler = http_hook
    handler.status = 500
    cmd = shlex.join([sys.executable, "-c", "import sys; sys.exit(2)"])
    refused = f"http://127.0.0.1:{_free_port()}/nobody"
    r = _runner().invoke(cli, ["run", str(DEFAULT), "--file", str(recording), "--speed", "0", "--json",
                               "--on-change", cmd, "--post", url])
    assert r.exit_code == 0, r.stderr
    n = len(r.stdout.strip().splitlines())
    assert n > 0 and json.loads(r.stderr.strip().splitlines()[-1])["summary"]["windows"] == n
    warn = [ln for ln in r.stderr.splitlines() if ln.startswith("Warning: ")]
    assert any("--on-change" in w and "exited with status 2" in w for w in warn)
    assert any(w.startswith(f"Warning: --post {url}: HTTP 500") for w in warn)
    assert len(handler.bodies) >= 3  # the server got them all, it just answered 500
    r = _runner().invoke(cli, ["run", str(DEFAULT), "--file", str(recording), "--speed", "0", "--post", refused])
    assert r.exit_code == 0, r.stderr
    warn = [ln for ln in r.stderr.splitlines() if ln.startswith("Warning: ")]
    assert warn[0] == f"Warning: --post {refused}: Connection refused"
    assert warn[-1].endswith("more warning(s) not shown") and len(warn) == 2  # rate-limited


def test_sigterm_drains_outputs(tmp_path: Path, recording: Path) -> None:
    hook = tmp_path / "hook.py"
    hook.write_text(HOOK)
    calls, log = tmp_path / "calls.jsonl", tmp_path / "p.csv"
    cmd = shlex.join([sys.executable, str(hook), str(calls), "{label}"])
    p = subprocess.Popen(
        [sys.executable, "-c", "from har.cli import main; main()", "run", str(DEFAULT), "--file", str(recording),
         "--speed", "5", "--csv", str(log), "--on-change", cmd],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert p.stdout is not None
    first = p.stdout.readline().split()  # the first prediction, then stop
    p.terminate()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert "(signal)" in out
    rows = list(csv.DictReader(log.open()))
    assert rows and rows[0]["label"] == first[1]
    assert all(len(r) == 4 + len(CLASSES) and None not in r.values() for r in rows)  # complete rows only
    got = [json.loads(ln) for ln in calls.read_text().splitlines()]  # the queued change ran before exit
    assert got and got[0]["argv"] == [first[1]]


def test_run_refuses_csv_with_other_header(tmp_path: Path, recording: Path) -> None:
    log = tmp_path / "old.csv"
    log.write_text("time_s,label,x\n1,a,2\n")
    r = _runner().invoke(cli, ["run", str(DEFAULT), "--file", str(recording), "--speed", "0", "--csv", str(log)])
    assert r.exit_code == 1 and r.stderr.startswith("Error: --csv: ") and "other columns" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert log.read_text() == "time_s,label,x\n1,a,2\n"


# --- MQTT against a real broker -------------------------------------------------------------------
@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A mosquitto broker on 127.0.0.1 (a free port), killed at the end."""
    exe = mosquitto_bin()
    if exe is None:
        pytest.skip("the mosquitto broker is not installed (apt-get install mosquitto; scripts/test.sh does)")
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install 'har-edge[mqtt]')")
    broker = Broker(exe, tmp_path_factory.mktemp("mosquitto"))
    try:
        broker.start()
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield broker.port
    finally:
        broker.stop()


class _Subscriber:
    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.msgs: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
        c.on_connect = lambda client, *a: client.subscribe(topic, qos=1)
        c.on_subscribe = lambda *a: subscribed.set()
        c.on_message = self._on_message
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c
        assert subscribed.wait(10), "could not subscribe"

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.msgs.append((msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self._lock:
            return [(p, r) for t, p, r in self.msgs if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_run_publishes_changes_to_mqtt(tmp_path: Path, recording: Path, mosquitto: int) -> None:
    topic = f"har/test-{uuid.uuid4().hex[:8]}/activity"
    live = _Subscriber(mosquitto, f"{topic}/#")
    try:
        r = _runner().invoke(cli, ["run", str(DEFAULT), "--file", str(recording), "--speed", "0",
                                   "--jsonl", str(tmp_path / "p.jsonl"), "--mqtt", f"127.0.0.1:{mosquitto}",
                                   "--mqtt-topic", topic])
        assert r.exit_code == 0, r.stderr
        assert f"--mqtt 127.0.0.1:{mosquitto} (topic {topic})" in r.stderr and "Warning" not in r.stderr
        changes = _changes(tmp_path / "p.jsonl")
        assert _wait(lambda: len(live.on(topic)) >= len(changes) and (b"offline", False) in live.on(f"{topic}/status"))
        got = [json.loads(p) for p, _ in live.on(topic)]
        assert [(g["previous"], g["label"]) for g in got] == changes
        assert all(g["changed"] for g in got) and set(got[0]["probs"]) == set(CLASSES)
        assert [p for p, _ in live.on(f"{topic}/status")] == [b"online", b"offline"]
    finally:
        live.close()
    # a dashboard subscribing later gets the current activity and the status at once (retained)
    late = _Subscriber(mosquitto, f"{topic}/#")
    try:
        assert _wait(lambda: len(late.on(topic)) == 1 and len(late.on(f"{topic}/status")) == 1)
        (payload, retained), = late.on(topic)
        assert retained and json.loads(payload)["label"] == changes[-1][1]
        assert late.on(f"{topic}/status") == [(b"offline", True)]
    finally:
        late.close()

    # --mqtt-every: every prediction, same payload format
    topic2 = f"{topic}-every"
    live = _Subscriber(mosquitto, topic2)
    try:
        r = _runner().invoke(cli, ["run", str(DEFAULT), "--file", str(recording), "--speed", "0", "--json",
                                   "--mqtt", f"127.0.0.1:{mosquitto}", "--mqtt-topic", topic2, "--mqtt-every"])
        assert r.exit_code == 0, r.stderr
        preds = [json.loads(ln) for ln in r.stdout.strip().splitlines()]
        assert _wait(lambda: len(live.on(topic2)) >= len(preds))
        got = [json.loads(p) for p, _ in live.on(topic2)]
        assert [g["label"] for g in got] == [p["label"] for p in preds]
        assert sum(g["changed"] for g in got) == len(changes)
    finally:
        live.close()


def test_run_mqtt_broker_down_is_a_clear_error(recording: Path) -> None:
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (pip install 'har-edge[mqtt]')")
    port = _free_port()
    r = _runner().invoke(cli, ["run", str(DEFAULT), "--file", str(recording), "--speed", "0",
                               "--mqtt", f"127.0.0.1:{port}"])
    assert r.exit_code == 1, r.stderr
    assert r.stderr.startswith(f"Error: --mqtt: cannot connect to the MQTT broker at 127.0.0.1:{port}")
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""

"""`har fleet`: one live table of many devices that publish with `har run --mqtt`. No TensorFlow.

Every device's `har run --mqtt` publishes its activity changes (retained, QoS 1) to
``<prefix>/<device>/activity`` and ``online`` / ``offline`` (retained; ``offline`` is also its last
will) to ``<prefix>/<device>/activity/status``. A change payload carries the device's publisher
``session`` (one per `har run` process) and ``seq`` (1, 2, ... per session), so the fleet can tell a
new change from a repeat: the broker re-sends the retained last change on every (re)subscription,
and QoS 1 may deliver a message twice.

* :class:`FleetTable` holds the state and is pure (no I/O, the clock is passed in): feed it
  ``(topic, payload, now)`` with :meth:`FleetTable.handle`, it returns the :class:`FleetEvent` that
  message caused (a change, a status change, or nothing for a repeat) and counts malformed payloads,
  repeats and missed changes (a ``seq`` that jumps). :meth:`FleetTable.sweep` marks devices stale.
* :class:`FleetMonitor` connects it to a broker with paho-mqtt (subscribing again on every
  reconnect: a broker that restarts loses the subscription), and writes events to CSV / JSON lines.
* :func:`render_table` formats the table for the terminal.
"""

from __future__ import annotations

import csv
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from har.errors import OutputError
from har.runtime.mqtt import connect_and_wait, import_paho, parse_mqtt_address
from har.runtime.outputs import refuse_foreign_file

DEFAULT_PREFIX = "har"
DEFAULT_STALE_S = 30.0
EVENT_FIELDS = ("time", "device", "event", "activity", "previous", "confidence", "seq", "latency_s")


def _iso_utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(s: Any) -> float | None:
    if not isinstance(s, str):
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class DeviceState:
    """One row of the table."""

    device: str
    activity: str | None = None
    since: float | None = None  # wall time the current activity started (the device's clock)
    confidence: float | None = None
    last_seen: float | None = None  # wall time (this machine) of the last message from the device
    status: str = "unknown"  # online | offline | unknown (from the status topic)
    stale: bool = False  # no message for longer than the stale timeout
    session: str | None = None
    seq: int | None = None
    changes: int = 0


@dataclass(frozen=True)
class FleetEvent:
    """What one message (or a sweep) changed: ``event`` is change | online | offline | stale."""

    time: float
    device: str
    event: str
    activity: str | None = None
    previous: str | None = None
    confidence: float | None = None
    seq: int | None = None
    latency_s: float | None = None  # publish (device wall clock) -> table (this machine)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in EVENT_FIELDS}
        d["time"] = _iso_utc(self.time)
        if self.latency_s is not None:
            d["latency_s"] = round(self.latency_s, 4)
        return d


@dataclass
class FleetCounts:
    messages: int = 0
    changes: int = 0
    repeats: int = 0  # a change already in the table (retained re-delivery, QoS 1 duplicate)
    missed: int = 0  # changes skipped over by a jump in seq (lost before they reached the broker)
    out_of_order: int = 0  # an older seq after a newer one (ignored)
    malformed: int = 0
    malformed_examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "malformed_examples"}
        d["malformed_examples"] = self.malformed_examples[:5]
        return d


class FleetTable:
    """The fleet's state, fed one MQTT message at a time. Pure: no I/O, ``now`` is passed in."""

    def __init__(self, prefix: str = DEFAULT_PREFIX, stale_after_s: float = DEFAULT_STALE_S) -> None:
        if not prefix or any(c in prefix for c in "+#\0"):
            raise OutputError(f"--topic-prefix: {prefix!r} is not a topic prefix (no wildcards)")
        if not (stale_after_s > 0 and math.isfinite(stale_after_s)):
            raise OutputError(f"--stale-after must be a positive number of seconds, not {stale_after_s!r}")
        self.prefix = prefix.rstrip("/")
        self.stale_after_s = stale_after_s
        self.devices: dict[str, DeviceState] = {}
        self.counts = FleetCounts()

    @property
    def subscriptions(self) -> tuple[str, str]:
        return f"{self.prefix}/+/activity", f"{self.prefix}/+/activity/status"

    def _device_of(self, topic: str) -> tuple[str, str] | None:
        parts = topic.split("/")
        pre = self.prefix.split("/")
        if parts[: len(pre)] != pre:
            return None
        rest = parts[len(pre):]
        if len(rest) == 2 and rest[1] == "activity" and rest[0]:
            return rest[0], "activity"
        if len(rest) == 3 and rest[1:] == ["activity", "status"] and rest[0]:
            return rest[0], "status"
        return None

    def _malformed(self, topic: str, why: str) -> list[FleetEvent]:
        self.counts.malformed += 1
        if len(self.counts.malformed_examples) < 20:
            self.counts.malformed_examples.append(f"{topic}: {why}")
        return []

    def handle(self, topic: str, payload: bytes, now: float) -> list[FleetEvent]:
        """Apply one message; returns the events it caused (empty for a repeat or a bad message)."""
        self.counts.messages += 1
        where = self._device_of(topic)
        if where is None:
            return self._malformed(topic, "not a har device topic")
        device, kind = where
        old = self.devices.get(device) or DeviceState(device)
        events: list[FleetEvent] = []
        if old.stale:
            old = replace(old, stale=False)
        if kind == "status":
            try:
                status = payload.decode("utf-8").strip()
            except UnicodeDecodeError:
                return self._malformed(topic, "status is not UTF-8")
            if status not in ("online", "offline"):
                return self._malformed(topic, f"status {status[:20]!r} is not online/offline")
            if status != old.status:
                events.append(FleetEvent(now, device, status))
            self.devices[device] = replace(old, status=status, last_seen=now)
            return events
        try:
            d = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._malformed(topic, "payload is not JSON")
        if not isinstance(d, dict):
            return self._malformed(topic, "payload is not a JSON object")
        label, conf = d.get("label"), d.get("confidence")
        seq, session = d.get("seq"), d.get("session")
        if not isinstance(label, str) or not label:
            return self._malformed(topic, "no 'label' string")
        if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not (0.0 <= conf <= 1.0):
            return self._malformed(topic, "'confidence' is not a number in [0, 1]")
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
            return self._malformed(topic, "'seq' is not a non-negative integer")
        if session is not None and not isinstance(session, str):
            return self._malformed(topic, "'session' is not a string")
        sent = _parse_iso(d.get("wall_time"))
        if seq is not None and session is not None and session == old.session and old.seq is not None:
            if seq == old.seq:
                self.counts.repeats += 1
                self.devices[device] = replace(old, last_seen=now)
                return events
            if seq < old.seq:
                self.counts.out_of_order += 1
                self.devices[device] = replace(old, last_seen=now)
                return events
            self.counts.missed += seq - old.seq - 1
        elif seq is None and label == old.activity and session == old.session and sent == old.since:
            self.counts.repeats += 1  # a publisher without seq: the same retained change again
            self.devices[device] = replace(old, last_seen=now)
            return events
        self.counts.changes += 1
        previous = old.activity
        status = old.status if old.status != "unknown" else "online"
        since = sent if sent is not None else now
        self.devices[device] = replace(
            old, activity=label, since=since, confidence=float(conf), last_seen=now, status=status,
            session=session, seq=seq, changes=old.changes + 1,
        )
        events.append(FleetEvent(now, device, "change", label, previous, float(conf), seq,
                                 None if sent is None else now - sent))
        return events

    def sweep(self, now: float) -> list[FleetEvent]:
        """Mark devices silent for longer than the stale timeout; returns their 'stale' events."""
        events = []
        for name, st in self.devices.items():
            if not st.stale and st.last_seen is not None and now - st.last_seen > self.stale_after_s:
                self.devices[name] = replace(st, stale=True)
                events.append(FleetEvent(now, name, "stale", st.activity))
        return events

    def rows(self) -> list[DeviceState]:
        return [self.devices[k] for k in sorted(self.devices)]


def _ago(now: float, t: float | None) -> str:
    if t is None:
        return "-"
    s = max(0.0, now - t)
    if s < 60:
        return f"{s:.0f}s ago"
    if s < 3600:
        return f"{s / 60:.0f}m ago"
    return f"{s / 3600:.1f}h ago"


def render_table(table: FleetTable, now: float) -> str:
    """The table as fixed-width text: device, activity, since, confidence, last seen, state."""
    head = ("device", "activity", "since", "conf", "last seen", "state")
    rows = [head]
    for st in table.rows():
        state = "stale" if st.stale else st.status
        conf = "-" if st.confidence is None else f"{st.confidence * 100:.0f}%"
        rows.append((st.device, st.activity or "-", _ago(now, st.since), conf, _ago(now, st.last_seen), state))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    c = table.counts
    lines.append(f"{len(table.devices)} device(s), {c.changes} change(s), {c.malformed} malformed, "
                 f"{c.repeats} repeat(s), {c.missed} missed")
    return "\n".join(lines)


class EventLog:
    """``--csv`` / ``--jsonl`` event logs (appended, flushed per event; a CSV with another header
    is refused)."""

    def __init__(self, csv_path: str | None = None, jsonl_path: str | None = None) -> None:
        self._files: list[IO[str]] = []
        self._csv: Any = None
        self._jsonl: IO[str] | None = None
        for path, what in ((csv_path, "--csv"), (jsonl_path, "--jsonl")):
            if path:
                refuse_foreign_file(path, what)  # never append to a recording, sidecar, model or bundle
        try:
            if csv_path:
                p = Path(csv_path)
                head = ",".join(EVENT_FIELDS)
                if p.is_file() and p.stat().st_size > 0:
                    with p.open(encoding="utf-8", errors="replace") as f:
                        first = f.readline().strip()
                    if first != head:
                        raise OutputError(f"--csv {csv_path}: the file exists with another header ({first[:60]!r});"
                                          " choose another file")
                    fh = p.open("a", newline="", encoding="utf-8")
                else:
                    fh = p.open("a", newline="", encoding="utf-8")
                    fh.write(head + "\n")
                self._files.append(fh)
                self._csv = csv.writer(fh)
            if jsonl_path:
                self._jsonl = Path(jsonl_path).open("a", encoding="utf-8")
                self._files.append(self._jsonl)
        except OSError as e:
            self.close()
            raise OutputError(f"cannot write {e.filename}: {e.strerror}") from e

    def write(self, ev: FleetEvent) -> None:
        d = ev.to_dict()
        if self._csv is not None:
            self._csv.writerow(["" if d[k] is None else d[k] for k in EVENT_FIELDS])
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(d) + "\n")
        for f in self._files:
            f.flush()

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files = []


@dataclass(frozen=True)
class FleetConfig:
    broker: str  # HOST[:PORT]
    prefix: str = DEFAULT_PREFIX
    stale_after_s: float = DEFAULT_STALE_S
    connect_timeout_s: float = 5.0
    keepalive_s: int = 10


class FleetMonitor:
    """Subscribes a :class:`FleetTable` to a broker. Messages are applied on paho's network
    thread under a lock; ``on_event`` is called for every event (changes, status, stale)."""

    def __init__(self, config: FleetConfig, on_event: Callable[[FleetEvent], None] | None = None,
                 warn: Callable[[str], None] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.table = FleetTable(config.prefix, config.stale_after_s)
        self.lock = threading.Lock()
        self.on_event = on_event
        self.warn = warn or (lambda m: None)
        self.clock = clock
        self.connects = 0
        self._connected = threading.Event()
        self._refused: str | None = None
        self._closing = False
        self._mqtt = import_paho()
        mqtt = self._mqtt
        self.host, self.port = parse_mqtt_address(config.broker)
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.connect_timeout = config.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client

    def start(self) -> None:
        connect_and_wait(self._client, self.host, self.port, self.config.keepalive_s, self.config.connect_timeout_s,
                         self._connected, lambda: self._refused, self.stop)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            if not self._connected.is_set():
                self._refused = str(reason_code)
                self._connected.set()
            else:
                self.warn(f"the broker refused to reconnect: {reason_code}")
            return
        # Subscribe on every connect: a broker that restarted has forgotten the subscription.
        client.subscribe([(t, 1) for t in self.table.subscriptions])
        self.connects += 1
        if self._connected.is_set():
            self.warn("reconnected to the broker; subscribed again")

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, reason_codes: Any, properties: Any) -> None:
        # start() returns once the broker has acknowledged the subscription (SUBACK), not when it
        # was sent: a device publishing right after start() is then never missed.
        self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if not self._closing:
            self.warn(f"lost the broker ({reason_code}); reconnecting in the background")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            events = self.table.handle(msg.topic, msg.payload, self.clock())
        for ev in events:
            if self.on_event is not None:
                self.on_event(ev)

    def sweep(self) -> list[FleetEvent]:
        with self.lock:
            events = self.table.sweep(self.clock())
        for ev in events:
            if self.on_event is not None:
                self.on_event(ev)
        return events

    def render(self) -> str:
        with self.lock:
            return render_table(self.table, self.clock())

    def stop(self) -> None:
        self._closing = True
        try:
            self._client.disconnect()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
        self._client.loop_stop()


def watch_fleet(
    config: FleetConfig, *, csv_path: str | None = None, jsonl_path: str | None = None,
    duration_s: float | None = None, refresh_s: float = 1.0, stop: threading.Event | None = None,
    show: Callable[[str], None] | None = None, on_line: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> FleetMonitor:
    """Run the fleet table until ``stop`` is set or ``duration_s`` has passed. ``show`` gets the
    rendered table every ``refresh_s`` (a terminal redraw); ``on_line`` gets one line per event
    (for logs and pipes). Returns the monitor (its table and counts) at the end."""
    log = EventLog(csv_path, jsonl_path)
    stop = stop or threading.Event()

    def on_event(ev: FleetEvent) -> None:
        log.write(ev)
        if on_line is not None:
            what = ev.activity or ""
            if ev.event == "change":
                what = f"{ev.previous or '-'} -> {ev.activity} ({(ev.confidence or 0) * 100:.0f}%)"
            on_line(f"{_iso_utc(ev.time)}  {ev.device}  {ev.event}  {what}".rstrip())

    mon = FleetMonitor(config, on_event=on_event, warn=warn)
    try:
        mon.start()
        end = None if duration_s is None else time.monotonic() + duration_s
        while not stop.is_set():
            left = refresh_s if end is None else min(refresh_s, end - time.monotonic())
            if left <= 0 or stop.wait(left):
                break
            mon.sweep()
            if show is not None:
                show(mon.render())
    finally:
        mon.stop()
        log.close()
    return mon

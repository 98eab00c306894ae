"""MQTT for `har run --mqtt` (:class:`MqttSink`) and `har fleet` (the address parser, paho import).
No TensorFlow; paho-mqtt is imported only when MQTT is used.

The sink publishes activity changes, retained, QoS 1 (see :mod:`har.runtime.outputs` for the
payload and the topics); :func:`~har.runtime.outputs.build_outputs` makes it for ``--mqtt``. Split
out of outputs.py, which still re-exports these names."""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from har.errors import MissingDependencyError, OutputError
from har.runtime.outputs import DEFAULT_MQTT_PORT, OutputEvent, OutputSink, Warn, _stderr_warn, _Warner


# --------------------------------------------------------------------------------------
def parse_mqtt_address(address: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT``, ``[IPv6]:PORT`` or ``mqtt://HOST[:PORT]`` -> (host, port)."""
    s = address.strip()
    if s.startswith("mqtt://"):
        s = s[len("mqtt://"):]
    s = s.rstrip("/")
    port_s = ""
    if s.startswith("["):
        host, _, rest = s[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise OutputError(f"--mqtt: cannot parse {address!r} (expected HOST[:PORT])")
        port_s = rest[1:]
    elif s.count(":") == 1:
        host, port_s = s.split(":")
    else:
        host = s
    if not host or "/" in host:
        raise OutputError(f"--mqtt: cannot parse {address!r} (expected HOST[:PORT])")
    if not port_s:
        return host, DEFAULT_MQTT_PORT
    try:
        port = int(port_s)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise OutputError(f"--mqtt: bad port in {address!r}")
    return host, port


def default_mqtt_topic(host: str) -> str:
    safe = "".join("_" if c in "/+#" or c.isspace() else c for c in host) or "device"
    return f"har/{safe}/activity"


def import_paho() -> Any:
    try:
        import paho.mqtt.client as mqtt  # noqa: PLC0415
    except ImportError as e:
        raise MissingDependencyError(
            "--mqtt needs paho-mqtt (>= 2.0): pip install 'har-edge[mqtt]'"
        ) from e
    if not hasattr(mqtt, "CallbackAPIVersion"):
        raise MissingDependencyError("--mqtt needs paho-mqtt >= 2.0: pip install 'har-edge[mqtt]'")
    return mqtt


def connect_and_wait(
    client: Any, host: str, port: int, keepalive_s: int, timeout_s: float,
    connected: threading.Event, refused: Callable[[], str | None], on_fail: Callable[[], None],
) -> None:
    """Connect ``client`` and start its network loop, then wait until its on_connect callback set
    ``connected``. A connection error, no answer within ``timeout_s`` or a refusal (``refused()``
    not None) calls ``on_fail`` (stop the client) and raises :class:`OutputError` naming the broker."""
    try:
        client.connect(host, port, keepalive=keepalive_s)
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise OutputError(f"--mqtt: cannot connect to the MQTT broker at {host}:{port}: {why}") from e
    client.loop_start()
    ok = connected.wait(timeout_s)
    why = refused()
    if not ok or why is not None:
        on_fail()
        if not ok:
            raise OutputError(f"--mqtt: the MQTT broker at {host}:{port} did not answer within {timeout_s:g} s")
        raise OutputError(f"--mqtt: the MQTT broker at {host}:{port} refused the connection: {why}")


class MqttSink(OutputSink):
    """``--mqtt HOST[:PORT]``: publish activity changes (``every``: all predictions) to ``topic``,
    retained (a dashboard that subscribes later gets the current activity at once); changes at QoS
    1, other predictions at QoS 0. ``<topic>/status`` holds ``online`` / ``offline`` (retained; the
    last will is ``offline``). Connecting at start must succeed within ``connect_timeout_s``;
    later disconnections are warnings and paho reconnects in the background."""

    def __init__(
        self, address: str, classes: Sequence[str], host: str, topic: str | None = None, every: bool = False,
        warn: Warn = _stderr_warn, connect_timeout_s: float = 5.0, warn_interval_s: float = 30.0,
        keepalive_s: int = 30,
    ) -> None:
        mqtt = import_paho()
        self._mqtt = mqtt
        self.broker = parse_mqtt_address(address)
        self.topic = topic if topic is not None else default_mqtt_topic(host)
        if not self.topic or any(c in self.topic for c in "+#\0"):
            raise OutputError(f"--mqtt-topic: {self.topic!r} is not a topic to publish to (no wildcards)")
        self.status_topic = f"{self.topic}/status"
        self.classes = tuple(classes)
        self.host = host
        self.every = every
        self.what = f"--mqtt {self.broker[0]}:{self.broker[1]}"
        self._warner = _Warner(self.what, warn, warn_interval_s)
        self._connected = threading.Event()
        self._refused: str | None = None
        self._closing = False
        self._pending: list[Any] = []  # MQTTMessageInfo of QoS 1 publishes not yet acknowledged
        self.published = 0
        # `har fleet` tells a new message from a repeat (retained re-delivery, QoS 1 duplicate) by these.
        self.session = f"{os.getpid():x}-{secrets.token_hex(4)}"
        self.seq = 0
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"har-{host}-{os.getpid()}"[:64])
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_queued_messages_set(1000)
        client.connect_timeout = connect_timeout_s
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client
        connect_and_wait(client, *self.broker, keepalive_s, connect_timeout_s, self._connected,
                         lambda: self._refused, self._abandon)

    def _abandon(self) -> None:
        self._closing = True
        self._client.loop_stop()
        try:
            self._client.disconnect()
        except Exception:  # noqa: BLE001
            pass

    def describe(self) -> str:
        return f"{self.what} (topic {self.topic}{', every prediction' if self.every else ''})"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            if not self._connected.is_set():
                self._refused = str(reason_code)
                self._connected.set()
            else:
                self._warner(f"the broker refused to reconnect: {reason_code}")
            return
        client.publish(self.status_topic, "online", qos=1, retain=True)
        if self._connected.is_set():
            self._warner("reconnected to the broker")
        self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if not self._closing and self._refused is None:
            self._warner(f"lost the broker ({reason_code}); reconnecting in the background")

    def prediction(self, event: OutputEvent) -> None:
        if not (event.changed or self.every):
            return
        d = event.to_dict(self.classes, self.host)
        d["session"] = self.session
        d["seq"] = self.seq = self.seq + 1
        payload = json.dumps(d)
        qos = 1 if event.changed else 0
        info = self._client.publish(self.topic, payload, qos=qos, retain=True)
        mqtt = self._mqtt
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self._warner(f"publish failed: {mqtt.error_string(info.rc)}")
            return
        self.published += 1
        if qos:
            self._pending = [i for i in self._pending if not i.is_published()]
            self._pending.append(info)

    def close(self, deadline: float) -> None:
        if self._closing:
            return
        self._closing = True
        try:
            self._pending.append(self._client.publish(self.status_topic, "offline", qos=1, retain=True))
            for info in self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    info.wait_for_publish(left)
                except (RuntimeError, ValueError):  # not queued (e.g. no connection)
                    pass
            lost = sum(1 for i in self._pending[:-1] if not i.is_published())
            if lost:
                self._warner.always(f"{lost} change(s) not acknowledged by the broker at exit")
            self._client.disconnect()
        finally:
            self._client.loop_stop()
            self._warner.flush()


# --- fan-out -------------------------------------------------------------------------------------

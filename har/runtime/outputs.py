"""Outputs for other programs (`har run --jsonl/--csv/--on-change/--post/--mqtt`). No TensorFlow.

Every prediction :func:`run_live` emits goes through one :class:`Outputs` fan-out, which tracks
activity changes (a change = the emitted ``label`` differs from the previous emitted label; the
first prediction is a change from none) and hands each sink an :class:`OutputEvent`:

* :class:`JsonlSink` (``--jsonl PATH``): ``Prediction.to_dict`` per line, appended, flushed per line.
* :class:`CsvSink` (``--csv PATH``): ``time_s,label,confidence,raw_label,p_<class>...``, appended
  (the header is written once; a file with another header is refused), flushed per line.
* :class:`CommandSink` (``--on-change CMD``) and :class:`PostSink` (``--post URL``): on each
  change, from a background worker thread with a bounded queue (when it is full the oldest pending
  change is dropped), so a slow command or server never stalls classification. Failures
  (non-zero exit, timeout, connection refused, HTTP errors) are one rate-limited warning line on
  stderr each, never an exception. On close, what is queued is drained until a short deadline;
  what is left (and a command still running) is then abandoned (killed) with a warning.
* :class:`~har.runtime.mqtt.MqttSink` (``--mqtt HOST[:PORT]``, in har/runtime/mqtt.py): paho-mqtt (only when used)
  publishes each change, retained, QoS 1, to ``har/<hostname>/activity`` (``--mqtt-every``: every
  prediction, non-changes at QoS 0; each payload adds ``session``, one per process, and ``seq``,
  1, 2, ... within it, so `har fleet` counts every change exactly once), plus ``<topic>/status`` =
  ``online`` / ``offline`` (retained; ``offline`` is also the last will). The broker must answer at
  start (else :class:`OutputError`); a broker lost later is reconnected to in the background by
  paho, QoS 1 messages wait for it.

Change events (``--post`` body and MQTT payload) are the prediction's JSON plus ``previous`` (the
activity before the current one, null at first), ``changed``, ``host`` and ``wall_time`` (UTC)."""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from har.artifacts.layout import MANIFEST_FILE, METADATA_FILE
from har.errors import OutputError
from har.runtime.live import Prediction

Warn = Callable[[str], None]

DEFAULT_MQTT_PORT = 1883
PLACEHOLDERS = ("label", "previous", "confidence", "time", "raw_label")  # {name} in --on-change arguments


def _stderr_warn(msg: str) -> None:
    stream = sys.stderr  # looked up at call time (click's CliRunner swaps it)
    try:
        stream.write(f"Warning: {msg}\n")
        stream.flush()
    except (OSError, ValueError):  # stderr closed: nothing useful left to do
        pass


class _Warner:
    """One warning line per failure, at most one per ``interval_s`` (the rest are counted and
    reported with the next shown warning or at :meth:`flush`)."""

    def __init__(self, what: str, warn: Warn, interval_s: float) -> None:
        self.what = what
        self._warn = warn
        self.interval_s = interval_s
        self._last: float | None = None
        self._lock = threading.Lock()
        self.suppressed = 0
        self.count = 0

    def __call__(self, msg: str) -> None:
        with self._lock:
            self.count += 1
            now = time.monotonic()
            if self._last is not None and now - self._last < self.interval_s:
                self.suppressed += 1
                return
            self._last = now
            extra = f" (+{self.suppressed} similar warning(s) not shown)" if self.suppressed else ""
            self.suppressed = 0
        self._warn(f"{self.what}: {msg}{extra}")

    def always(self, msg: str) -> None:
        self._warn(f"{self.what}: {msg}")

    def flush(self) -> None:
        with self._lock:
            n, self.suppressed = self.suppressed, 0
        if n:
            self._warn(f"{self.what}: {n} more warning(s) not shown")


def _iso_utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class OutputEvent:
    """One emitted prediction as the sinks see it."""

    prediction: Prediction
    previous: str | None  # the activity before the current one (None until there was one)
    changed: bool  # this prediction starts a new activity (the first prediction does)
    wall_time: float  # time.time() when it was emitted

    def to_dict(self, classes: tuple[str, ...], host: str) -> dict[str, Any]:
        """The ``--post`` body / MQTT payload: ``Prediction.to_dict`` + previous, changed, host, wall_time."""
        d = self.prediction.to_dict(classes)
        d["previous"] = self.previous
        d["changed"] = self.changed
        d["host"] = host
        d["wall_time"] = _iso_utc(self.wall_time)
        return d


class OutputSink:
    """Interface of every output: :meth:`prediction` for each emitted prediction (from the
    classification thread: must not block for long), :meth:`request_close` then :meth:`close`."""

    what = "output"  # how warnings name this sink (e.g. "--csv log.csv")

    def prediction(self, event: OutputEvent) -> None:
        raise NotImplementedError

    def request_close(self) -> None:
        """Stop accepting events (background sinks start draining)."""

    def close(self, deadline: float) -> None:
        """Finish (``deadline`` is a time.monotonic() value) and release resources."""

    def describe(self) -> str:
        return self.what


# --- files ------------------------------------------------------------------------------------
_TAIL = 65536


_ARTIFACT_SUFFIXES = (".tflite", ".h5", ".keras", ".npz", ".npy")
_ARTIFACT_FORMATS = ("har-recording", "har-model", "har-bundle")


def _har_format(path: Path) -> str | None:
    """The ``format`` field of a JSON file (a har sidecar, metadata or manifest), else None."""
    try:
        if not path.is_file() or path.stat().st_size > (1 << 22):
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    fmt = data.get("format") if isinstance(data, dict) else None
    return fmt if isinstance(fmt, str) else None


def refuse_foreign_file(path: str | os.PathLike[str], what: str) -> None:
    """A log output (``--jsonl``/``--csv``) appends only to its own kind of file: never to a recording
    (CSV with time and x/y/z columns, or one with a har sidecar), a sidecar, a model or bundle file
    (``.tflite``, ``.h5``, har metadata/manifest JSON) or anything inside a model directory or
    bundle. OutputError (one line) before anything is touched."""
    p = Path(path)
    if p.suffix.lower() in _ARTIFACT_SUFFIXES:
        raise OutputError(f"{what}: {p} is a model file ({p.suffix}); write the log elsewhere")
    for name in (MANIFEST_FILE, METADATA_FILE):
        if _har_format(p.parent / name) in _ARTIFACT_FORMATS:
            raise OutputError(f"{what}: {p} is inside a model directory or bundle ({p.parent}); "
                              "write the log elsewhere")
    if not p.is_file():
        return
    try:
        with open(p, "rb") as f:
            head = f.read(_TAIL)
    except OSError:
        return  # the caller reports the open error
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().lstrip("\ufeff").lower()
    cols = {c.strip().strip('"') for c in first.split(",")}
    if ({"x", "x_g"} & cols) and ({"y", "y_g"} & cols) and ({"z", "z_g"} & cols):
        raise OutputError(f"{what}: {p} is a recording (columns {first[:40]}); write the log elsewhere")
    side = p.with_suffix(".json")
    for j in ([side] if side != p else []) + ([p] if p.suffix.lower() == ".json" else []):
        fmt = _har_format(j)
        if fmt in _ARTIFACT_FORMATS:
            kind = f"a {fmt} file" if j == p else f"a recording (its sidecar {j} says {fmt})"
            raise OutputError(f"{what}: {p} is {kind}; write the log elsewhere")
    if p.suffix.lower() == ".json" and p.with_suffix(".csv").is_file():
        csv_file = p.with_suffix(".csv")
        raise OutputError(f"{what}: {p} is the sidecar of the recording {csv_file}; write the log elsewhere")


def _open_append(path: str | os.PathLike[str], what: str) -> tuple[IO[str], str]:
    """Open ``path`` for appending text; return the stream and the file's first line ("" when new
    or empty). An incomplete last line (a crash while it was written) is cut off first. Recordings,
    sidecars, model and bundle files are refused (:func:`refuse_foreign_file`)."""
    p = Path(path)
    first = ""
    try:
        if p.is_dir():
            raise OutputError(f"{what}: {p} is a directory")
        refuse_foreign_file(p, what)
        if p.exists():
            with open(p, "rb+") as f:
                size = f.seek(0, io.SEEK_END)
                if size:
                    f.seek(0)
                    head = f.read(_TAIL)
                    first = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
                    f.seek(max(0, size - _TAIL))
                    tail = f.read()
                    if not tail.endswith(b"\n"):
                        cut = tail.rfind(b"\n")
                        if cut < 0 and size > _TAIL:
                            raise OutputError(f"{what}: {p} does not look like a har log (no line ends)")
                        f.truncate(size - len(tail) + cut + 1)  # cut + 1 == 0 when there was no full line
                        if cut < 0:
                            first = ""
        stream = open(p, "a", encoding="utf-8", newline="")  # noqa: SIM115 - closed by the sink
    except OSError as e:
        raise OutputError(f"{what}: cannot open {p}: {e.strerror or e}") from e
    return stream, first


class _FileSink(OutputSink):
    def __init__(self, stream: IO[str], what: str) -> None:
        self._f = stream
        self.what = what

    def close(self, deadline: float) -> None:
        if self._f.closed:
            return
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError:
            pass
        finally:
            self._f.close()


class JsonlSink(_FileSink):
    """``--jsonl PATH``: one ``Prediction.to_dict`` object per line (the ``--json`` format), appended."""

    def __init__(self, path: str | os.PathLike[str], classes: Sequence[str]) -> None:
        stream, _ = _open_append(path, "--jsonl")
        super().__init__(stream, f"--jsonl {path}")
        self.classes = tuple(classes)

    def prediction(self, event: OutputEvent) -> None:
        self._f.write(json.dumps(event.prediction.to_dict(self.classes)) + "\n")
        self._f.flush()


def csv_header(classes: Sequence[str]) -> list[str]:
    return ["time_s", "label", "confidence", "raw_label", *(f"p_{c}" for c in classes)]


class CsvSink(_FileSink):
    """``--csv PATH``: ``time_s,label,confidence,raw_label,p_<class>...`` (raw_label empty without
    smoothing), appended; the header is written only to a new or empty file."""

    def __init__(self, path: str | os.PathLike[str], classes: Sequence[str]) -> None:
        header = csv_header(classes)
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(header)
        line = buf.getvalue().rstrip("\n")
        stream, first = _open_append(path, "--csv")
        if first and first != line:
            stream.close()
            raise OutputError(
                f"--csv: {path} has other columns ({_short(first)}) than this bundle's ({_short(line)}); "
                "use another file"
            )
        super().__init__(stream, f"--csv {path}")
        self._w = csv.writer(self._f, lineterminator="\n")
        if not first:
            self._w.writerow(header)
            self._f.flush()

    def prediction(self, event: OutputEvent) -> None:
        p = event.prediction
        self._w.writerow(
            [f"{p.time:.4f}", p.label, f"{p.confidence:.4f}", p.raw_label or "",
             *(f"{v:.4f}" for v in p.probs.tolist())]
        )
        self._f.flush()


def _short(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


# --- actions on activity changes (background worker) -----------------------------------------
class _BackgroundSink(OutputSink):
    """Runs :meth:`_run` for each activity change on its own thread, in order. Bounded queue: when
    ``queue_size`` changes are pending, the oldest is dropped (with a warning)."""

    def __init__(self, what: str, warn: Warn, queue_size: int, warn_interval_s: float) -> None:
        self.what = what
        self.queue_size = max(1, int(queue_size))
        self._warner = _Warner(what, warn, warn_interval_s)
        self._pending: deque[OutputEvent] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._abort = False
        self._busy = False
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name=f"har-output-{what.split()[0].strip('-')}",
                                        daemon=True)
        self._thread.start()

    def _run(self, event: OutputEvent) -> str | None:
        """Deliver one change; return None on success, else a one-line reason."""
        raise NotImplementedError

    def _cancel(self) -> None:
        """Abandon the delivery in progress (called from another thread at the close deadline)."""

    def prediction(self, event: OutputEvent) -> None:
        if not event.changed:
            return
        dropped = False
        with self._cond:
            if self._closing:
                return
            if len(self._pending) >= self.queue_size:
                self._pending.popleft()
                self.dropped += 1
                dropped = True
            self._pending.append(event)
            self._cond.notify()
        if dropped:
            self._warner(f"still busy with earlier changes: dropped the oldest pending one ({self.queue_size} queued)")

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if self._abort or not self._pending:
                    return
                event = self._pending.popleft()
                self._busy = True
            try:
                err = self._run(event)
            except Exception as e:  # noqa: BLE001 - a failing action must never end the worker
                err = f"{type(e).__name__}: {e}"
            with self._cond:
                self._busy = False
                aborted = self._abort
                if err is None:
                    self.delivered += 1
                else:
                    self.failed += 1
            if err is not None and not aborted:
                self._warner(err)

    def request_close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def close(self, deadline: float) -> None:
        self.request_close()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            with self._cond:
                self._abort = True
                left = len(self._pending) + int(self._busy)
                self._pending.clear()
            self._cancel()
            self._thread.join(0.5)
            self._warner.always(f"{left} change(s) not delivered: gave up at exit")
        self._warner.flush()


def _subst(arg: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        arg = arg.replace("{" + k + "}", v)
    return arg


class CommandSink(_BackgroundSink):
    """``--on-change CMD``: run CMD (split with shlex, no shell) on each activity change.

    The command gets ``HAR_LABEL``, ``HAR_PREVIOUS`` (empty at first), ``HAR_CONFIDENCE`` (0-1),
    ``HAR_TIME`` (seconds, source clock), ``HAR_RAW_LABEL`` (empty without smoothing) in its
    environment, and ``{label}``, ``{previous}``, ``{confidence}``, ``{time}``, ``{raw_label}`` in
    its arguments are replaced by the same values (each argument stays one argument). Its stdin and
    stdout are /dev/null (stdout may be a JSON stream), stderr's last line goes into the warning on
    failure. It runs in its own session (a Ctrl-C in the terminal does not reach it); after
    ``timeout_s`` its process group is killed."""

    def __init__(
        self, command: str, warn: Warn = _stderr_warn, timeout_s: float = 10.0, queue_size: int = 16,
        warn_interval_s: float = 30.0,
    ) -> None:
        try:
            argv = shlex.split(command)
        except ValueError as e:
            raise OutputError(f"--on-change: cannot parse the command: {e}") from e
        if not argv:
            raise OutputError("--on-change: the command is empty")
        if "{" not in argv[0] and shutil.which(argv[0]) is None:
            raise OutputError(f"--on-change: command not found or not executable: {argv[0]}")
        self.argv = argv
        self.timeout_s = float(timeout_s)
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc_lock = threading.Lock()
        super().__init__("--on-change", warn, queue_size, warn_interval_s)

    def describe(self) -> str:
        return f"--on-change {_short(shlex.join(self.argv), 80)}"

    def values(self, event: OutputEvent) -> dict[str, str]:
        p = event.prediction
        return {"label": p.label, "previous": event.previous or "", "confidence": f"{p.confidence:.4f}",
                "time": f"{p.time:.4f}", "raw_label": p.raw_label or ""}

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (OSError, AttributeError):
            try:
                proc.kill()
            except OSError:
                pass

    def _run(self, event: OutputEvent) -> str | None:
        vals = self.values(event)
        argv = [_subst(a, vals) for a in self.argv]
        env = dict(os.environ, **{f"HAR_{k.upper()}": v for k, v in vals.items()})
        name = _short(shlex.join(argv), 80)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as e:
            return f"cannot run {name}: {e.strerror or e}"
        with self._proc_lock:
            self._proc = proc
        try:
            try:
                _, err = proc.communicate(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                try:
                    proc.communicate(timeout=2.0)
                except subprocess.TimeoutExpired:
                    pass
                return f"{name} timed out after {self.timeout_s:g} s (killed)"
        finally:
            with self._proc_lock:
                self._proc = None
        rc = proc.returncode
        if rc == 0:
            return None
        lines = (err or b"").decode("utf-8", errors="replace").strip().splitlines()
        why = f"exited with status {rc}" if rc > 0 else f"killed by signal {-rc}"
        return f"{name} {why}" + (f": {_short(lines[-1], 120)}" if lines else "")

    def _cancel(self) -> None:
        with self._proc_lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            self._kill(proc)


class PostSink(_BackgroundSink):
    """``--post URL``: POST the change event (``OutputEvent.to_dict``) as JSON (urllib, ``timeout_s``)."""

    def __init__(
        self, url: str, classes: Sequence[str], host: str, warn: Warn = _stderr_warn, timeout_s: float = 10.0,
        queue_size: int = 16, warn_interval_s: float = 30.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise OutputError(f"--post: need an http:// or https:// URL, got {url!r}")
        self.url = url
        self.classes = tuple(classes)
        self.host = host
        self.timeout_s = float(timeout_s)
        super().__init__(f"--post {url}", warn, queue_size, warn_interval_s)

    def _run(self, event: OutputEvent) -> str | None:
        import urllib.error  # noqa: PLC0415 - http.client/ssl/email cost ~20 ms at `har run` start-up
        import urllib.request  # noqa: PLC0415

        from har import __version__  # noqa: PLC0415

        body = json.dumps(event.to_dict(self.classes, self.host)).encode("utf-8")
        req = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"har/{__version__}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
                r.read(65536)
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code} {e.reason}"
        except urllib.error.URLError as e:
            reason = e.reason
            return f"{getattr(reason, 'strerror', None) or reason}"
        except (OSError, TimeoutError) as e:  # e.g. a timeout while reading the answer
            return f"{type(e).__name__}: {e}" if not str(e) else str(e)
        return None


# --- MQTT: har/runtime/mqtt.py (imported only when used; its names are re-exported here) -------
_MQTT_NAMES = ("MqttSink", "parse_mqtt_address", "default_mqtt_topic", "import_paho")


def __getattr__(name: str) -> Any:
    if name in _MQTT_NAMES:
        from har.runtime import mqtt  # noqa: PLC0415 - it imports this module

        return getattr(mqtt, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class OutputConfig:
    """What `har run` sends where (None / False: not used). See :func:`build_outputs`."""

    jsonl: str | None = None  # path, appended
    csv: str | None = None  # path, appended
    on_change: str | None = None  # command line (shlex, no shell)
    post: str | None = None  # http(s) URL
    mqtt: str | None = None  # HOST[:PORT]
    mqtt_topic: str | None = None  # default har/<hostname>/activity
    mqtt_every: bool = False  # publish every prediction, not only changes
    action_timeout_s: float = 10.0  # --on-change command / --post request timeout
    queue_size: int = 16  # pending changes per background action
    drain_s: float = 3.0  # at close: how long queued actions and MQTT acknowledgements may take
    warn_interval_s: float = 30.0  # at most one warning line per output per interval

    @property
    def active(self) -> bool:
        return any((self.jsonl, self.csv, self.on_change, self.post, self.mqtt))


class Outputs:
    """The fan-out: call it with each Prediction (``emit`` for :func:`run_live`); it detects
    activity changes and feeds every sink. A sink that raises becomes a (rate-limited) warning.
    :meth:`close` (idempotent; also the context manager's exit) drains and closes the sinks."""

    def __init__(
        self, sinks: Sequence[OutputSink] = (), warn: Warn = _stderr_warn, drain_s: float = 3.0,
        warn_interval_s: float = 30.0,
    ) -> None:
        self.sinks = list(sinks)
        self.drain_s = drain_s
        self.current: str | None = None
        self.previous: str | None = None
        self.predictions = 0
        self.changes = 0
        self._warners = [_Warner(s.what, warn, warn_interval_s) for s in self.sinks]
        self._closed = False

    def __bool__(self) -> bool:
        return bool(self.sinks)

    def describe(self) -> str:
        return ", ".join(s.describe() for s in self.sinks)

    def __call__(self, p: Prediction) -> None:
        self.prediction(p)

    def prediction(self, p: Prediction) -> OutputEvent:
        changed = p.label != self.current
        if changed:
            self.previous, self.current = self.current, p.label
            self.changes += 1
        self.predictions += 1
        event = OutputEvent(p, self.previous, changed, time.time())
        if not self._closed:
            for sink, warner in zip(self.sinks, self._warners, strict=True):
                try:
                    sink.prediction(event)
                except Exception as e:  # noqa: BLE001 - an output must never stop classification
                    warner(f"{type(e).__name__}: {e}")
        return event

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + self.drain_s
        for s in self.sinks:
            s.request_close()
        for sink, warner in zip(self.sinks, self._warners, strict=True):
            try:
                sink.close(deadline)
            except Exception as e:  # noqa: BLE001
                warner(f"closing failed: {type(e).__name__}: {e}")
        for w in self._warners:
            w.flush()

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_outputs(
    config: OutputConfig, classes: Sequence[str], warn: Warn | None = None, host: str | None = None
) -> Outputs:
    """Make the sinks ``config`` asks for (files first, MQTT last: it connects). Raises
    :class:`OutputError` (or MissingDependencyError for MQTT without paho-mqtt); sinks made before
    the failure are closed again."""
    warn = warn or _stderr_warn
    host = host or socket.gethostname()
    if (config.mqtt_topic is not None or config.mqtt_every) and not config.mqtt:
        raise OutputError("--mqtt-topic and --mqtt-every need --mqtt HOST[:PORT]")
    classes = tuple(classes)
    sinks: list[OutputSink] = []
    try:
        if config.jsonl:
            sinks.append(JsonlSink(config.jsonl, classes))
        if config.csv:
            sinks.append(CsvSink(config.csv, classes))
        if config.on_change:
            sinks.append(CommandSink(config.on_change, warn=warn, timeout_s=config.action_timeout_s,
                                     queue_size=config.queue_size, warn_interval_s=config.warn_interval_s))
        if config.post:
            sinks.append(PostSink(config.post, classes, host, warn=warn, timeout_s=config.action_timeout_s,
                                  queue_size=config.queue_size, warn_interval_s=config.warn_interval_s))
        if config.mqtt:
            from har.runtime.mqtt import MqttSink  # noqa: PLC0415 - it imports this module

            sinks.append(MqttSink(config.mqtt, classes, host, topic=config.mqtt_topic, every=config.mqtt_every,
                                  warn=warn, warn_interval_s=config.warn_interval_s))
    except BaseException:
        deadline = time.monotonic() + 1.0
        for s in sinks:
            try:
                s.close(deadline)
            except Exception:  # noqa: BLE001
                pass
        raise
    return Outputs(sinks, warn=warn, drain_s=config.drain_s, warn_interval_s=config.warn_interval_s)

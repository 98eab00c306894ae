"""`har deploy`: convert a model directory to a verified TFLite bundle.

Conversion runs in a child process (``python -m har.training._convert_worker``): the TFLite converter can
crash (segfault) and would take the CLI with it. This module itself does not import TensorFlow;
verification runs the converted model in the real runtime (har.runtime.classifier) against the
Keras probabilities the worker computed on the heldout windows.

int8 means full integer quantisation (weights and activations, calibrated on ``calib_x``) with
float32 input and output, except the MiniRocket branch of a ``rocket_features`` model, which stays
float32 and reads the float input (har.training._convert_worker.FLOAT_LAYER_PREFIXES): the model
quantises its input and dequantises its probabilities itself, so verification compares probabilities
without an 8-bit output step (which alone costs up to 1/256 per probability); the runtime also
accepts int8 I/O models (``int8_io=True``)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from har.artifacts.bundle import write_manifest
from har.artifacts.layout import (
    BATCH_MODEL_FILE,
    BATCH_OPS_FILE,
    BUNDLE_FILES,
    DEPLOY_WINDOWS_FILE,
    HEAD_FILE,
    KERAS_PROBS_FILE,
    MANIFEST_FILE,
    MODEL_FILE,
    OPS_FILE,
    REPORT_FILE,
    WEIGHTS_FILE,
    WORKER_STDERR_FILE,
)
from har.artifacts.metadata import ModelMetadata, load_metadata, save_metadata
from har.config import ExportConfig
from har.errors import ExportError, HarError, ModelError
from har.recording.format import utc_now_iso

DEFAULT_MIN_AGREEMENT = 0.98
# Below min_agreement a model is still kept when the heldout windows carry labels, its accuracy there
# is at most this far below Keras's and it agrees on at least AGREEMENT_FLOOR: an int8 model whose
# argmax flips only on windows Keras itself is unsure of (accuracy unchanged) is not a broken export.
DEFAULT_MAX_ACCURACY_LOSS = 0.005
AGREEMENT_FLOOR = 0.9
DEFAULT_BATCH = 128


@dataclass
class ModelCheck:
    """Verification numbers of one converted model against Keras on the heldout windows."""

    file: str
    agreement: float  # fraction of windows with the same argmax
    max_prob_diff: float  # max |p_tflite - p_keras| over all windows and classes
    tflite_accuracy: float | None  # vs heldout_y (None without labels)
    size_kb: float
    latency_ms: float | None = None  # median single-thread time per window, batch-1 model
    latency_p95_ms: float | None = None
    ms_per_window_batched: float | None = None  # batched model: time per window
    agreement_live: float | None = None  # batched model: argmax agreement with the batch-1 (live) model
    head_agreement: float | None = None  # argmax agreement of head.npz on the embedding output vs the model


@dataclass
class ExportResult:
    bundle_dir: Path
    quantize: str
    model: ModelCheck
    batch_model: ModelCheck | None
    keras_accuracy: float | None
    n_windows: int
    runtime_name: str
    ops: list[str]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    float_layers: list[str] = field(default_factory=list)  # layers an int8 export kept float32

    @property
    def verification(self) -> dict[str, Any]:
        return _verification_dict(self)


def _verification_dict(r: ExportResult) -> dict[str, Any]:
    v: dict[str, Any] = {
        "agreement": r.model.agreement,
        "max_prob_diff": r.model.max_prob_diff,
        "keras_accuracy": r.keras_accuracy,
        "tflite_accuracy": r.model.tflite_accuracy,
        "size_kb": r.model.size_kb,
        "latency_ms": r.model.latency_ms,
        "latency_p95_ms": r.model.latency_p95_ms,
        "head_agreement": r.model.head_agreement,
        "n_windows": r.n_windows,
        "runtime": r.runtime_name,
    }
    if r.float_layers:
        v["float_layers"] = list(r.float_layers)
    if r.batch_model is not None:
        v["batch_model"] = {
            "agreement": r.batch_model.agreement,
            "max_prob_diff": r.batch_model.max_prob_diff,
            "size_kb": r.batch_model.size_kb,
            "ms_per_window": r.batch_model.ms_per_window_batched,
            "agreement_live": r.batch_model.agreement_live,
            "precision": "fp32",
        }
    return v


# --- inputs ---------------------------------------------------------------------------------
def load_deploy_windows(model_dir: Path, meta: ModelMetadata) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(calib_x, heldout_x, heldout_y)`` from deploy_windows.npz: float32 g and int class indices."""
    path = model_dir / DEPLOY_WINDOWS_FILE
    if not path.is_file():
        raise ModelError(f"{model_dir}: no {DEPLOY_WINDOWS_FILE} (re-run `har train`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("calib_x", "heldout_x", "heldout_y") if k not in z.files]
            if missing:
                raise ModelError(f"{path}: missing array(s) {', '.join(missing)}")
            calib = np.asarray(z["calib_x"], dtype=np.float32)
            hx = np.asarray(z["heldout_x"], dtype=np.float32)
            hy_raw = np.asarray(z["heldout_y"])
    except (ValueError, OSError) as e:
        raise ModelError(f"{path}: unreadable ({' '.join(str(e).split())[:200]})") from None
    shape = (meta.window.window_samples, meta.n_channels)
    for name, a in (("calib_x", calib), ("heldout_x", hx)):
        if a.ndim != 3 or a.shape[1:] != shape:
            raise ModelError(f"{path}: {name} has shape {a.shape}, expected (n, {shape[0]}, {shape[1]})")
    if calib.shape[0] == 0:
        raise ModelError(f"{path}: calib_x is empty")
    if hx.shape[0] == 0:
        raise ModelError(f"{path}: heldout_x is empty: nothing to verify the export on")
    if hy_raw.dtype.kind in "US":
        lookup = {c: i for i, c in enumerate(meta.classes)}
        hy = np.array([lookup.get(str(s), -1) for s in hy_raw.tolist()], dtype=np.int64)
    else:
        hy = hy_raw.astype(np.int64)
    if hy.shape != (hx.shape[0],):
        raise ModelError(f"{path}: heldout_y has shape {hy.shape}, expected ({hx.shape[0]},)")
    return calib, hx, hy


def _check_model_dir(model_dir: Path) -> ModelMetadata:
    if not model_dir.is_dir():
        raise ModelError(f"no such model directory: {model_dir}")
    if (model_dir / MANIFEST_FILE).exists():
        raise ModelError(f"{model_dir} is a bundle, not a model directory (deploy the output of `har train`)")
    meta = load_metadata(model_dir)
    if not (model_dir / WEIGHTS_FILE).is_file():
        raise ModelError(f"{model_dir}: no {WEIGHTS_FILE} (re-run `har train`)")
    check_weights_file(model_dir / WEIGHTS_FILE)
    return meta


def check_weights_file(path: Path) -> None:
    """The weights file is a complete HDF5 file (signature, stored end of file, every dataset
    readable): a truncated or corrupted file fails here with one line naming it, not inside the
    converter."""
    hint = "truncated or corrupted; re-run `har train`"
    try:
        with open(path, "rb") as f:
            sig = f.read(8)
    except OSError as e:
        raise ModelError(f"{path}: cannot read ({e.strerror})") from None
    if sig != b"\x89HDF\r\n\x1a\n":
        raise ModelError(f"{path}: not an HDF5 weights file ({hint})")
    try:
        import h5py  # noqa: PLC0415 - installed with tensorflow (the train extra)
    except ImportError:
        return
    try:
        with h5py.File(path, "r") as h5:
            h5.visititems(lambda _name, obj: obj[()] if isinstance(obj, h5py.Dataset) else None)
    except Exception as e:  # noqa: BLE001 - h5py raises OSError, RuntimeError, KeyError, ...
        first = (str(e).splitlines() or [type(e).__name__])[0][:100]
        raise ModelError(f"{path}: unreadable weights ({first}): {hint}") from None


def _prepare_out(out_dir: Path, model_dir: Path, overwrite: bool) -> None:
    if out_dir.resolve() == model_dir.resolve():
        raise ExportError("--out must differ from the model directory")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ExportError(f"{out_dir} exists and is not a directory")
        contents = {p.name for p in out_dir.iterdir()}
        if contents and not overwrite:
            raise ExportError(f"{out_dir} exists (choose another --out or pass --overwrite)")
        foreign = sorted(contents - BUNDLE_FILES)
        if foreign:
            raise ExportError(f"{out_dir} holds files that are not part of a bundle ({foreign[0]}...): not overwriting")


# --- the conversion subprocess ----------------------------------------------------------------
def _run_worker(
    model_dir: Path,
    work: Path,
    cfg: ExportConfig,
    batch: int,
    int8_io: bool,
    echo: Callable[[str], Any],
    timeout_s: float,
) -> tuple[set[str], int, str]:
    """Run the worker; return (completed stages, exit code, last stderr line)."""
    env = dict(os.environ)
    env["TF_USE_LEGACY_KERAS"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    cmd = [
        sys.executable,
        "-m",
        "har.training._convert_worker",
        str(model_dir),
        str(work),
        "--quantize",
        cfg.quantize,
        "--calibration-windows",
        str(cfg.calibration_windows),
        "--batch",
        str(batch),
    ]
    if int8_io:
        cmd.append("--int8-io")
    labels = {
        "build": "rebuilding the model (tf_keras, batch 1) and loading weights",
        "keras": "Keras reference predictions on the heldout windows",
        "single": f"converting to TFLite ({cfg.quantize}, batch 1)",
        "batch": f"converting the batched replay model (float32, LSTM unrolled, batch {batch})",
    }
    done: set[str] = set()
    started: dict[str, float] = {}
    stderr_path = work / WORKER_STDERR_FILE
    with open(stderr_path, "w+b") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env, text=True)
        t_end = time.monotonic() + timeout_s
        watchdog = threading.Timer(timeout_s, proc.kill)  # a hung converter prints nothing
        watchdog.daemon = True
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                tag, _, name = line.strip().partition(" ")
                if tag == "STEP":
                    started[name] = time.monotonic()
                    echo(f"  {labels.get(name, name)} ...")
                elif tag == "DONE":
                    done.add(name)
                    echo(f"  {labels.get(name, name)}: done in {time.monotonic() - started.get(name, 0):.1f} s")
                if time.monotonic() > t_end:
                    proc.kill()
            rc = proc.wait(timeout=max(1.0, t_end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = -9
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            watchdog.cancel()
        err.seek(0)
        lines = [ln.strip() for ln in err.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if rc != 0 and time.monotonic() >= t_end:
        last = f"timed out after {timeout_s:g} s"
    return done, rc, last


def _describe_rc(rc: int) -> str:
    if rc < 0:
        import signal

        try:
            return f"killed by signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    if rc > 128:
        return f"exit code {rc} (signal {rc - 128}?)"
    return f"exit code {rc}"


def _float_layers(work: Path) -> list[str]:
    """The layers the worker kept float32 in an int8 export (``ops.json``'s ``float_layers``)."""
    return [str(n) for n in json.loads((work / OPS_FILE).read_text(encoding="utf-8")).get("float_layers", [])]


def _quantization_line(quantize: str, float_layers: list[str]) -> str:
    if quantize != "int8":
        return quantize
    if not float_layers:
        return "int8 (full integer, float32 I/O)"
    return (f"int8 (float32 I/O; {len(float_layers)} layers float32, reading the float input: "
            f"{', '.join(float_layers[:4])}{', ...' if len(float_layers) > 4 else ''}; the rest full integer)")


def _check_ops(work: Path, ops_file: str, model_name: str) -> list[str]:
    data = json.loads((work / ops_file).read_text(encoding="utf-8"))
    ops = data["ops"]
    bad = sorted({o["name"] for o in ops if not o["builtin"] or str(o["name"]).startswith("Flex")})
    if bad:
        raise ExportError(
            f"{model_name} needs non-builtin ops ({', '.join(bad)}): the TFLite runtime cannot run it "
            "(convert with tf_keras at a fixed batch size)"
        )
    return sorted({o["name"] for o in ops})


# --- verification -------------------------------------------------------------------------------
def _accuracy(probs: np.ndarray, y: np.ndarray) -> float | None:
    ok = y >= 0
    if not ok.any():
        return None
    return float(np.mean(np.argmax(probs[ok], axis=1) == y[ok]))


def _latency(clf: Any, x: np.ndarray, n: int = 200) -> tuple[float, float]:
    """Median and p95 (ms) of predict_one over up to ``n`` windows (after a warm-up)."""
    k = min(n, x.shape[0])
    idx = np.arange(max(k, 30)) % x.shape[0]
    for i in idx[:5]:
        clf.predict_one(x[i])
    times = []
    for i in idx:
        t0 = time.perf_counter()
        clf.predict_one(x[i])
        times.append(time.perf_counter() - t0)
    a = np.asarray(times) * 1e3
    return float(np.median(a)), float(np.percentile(a, 95))


def _compare(p: np.ndarray, keras: np.ndarray, y: np.ndarray) -> tuple[float, float, float | None]:
    agree = float(np.mean(np.argmax(p, axis=1) == np.argmax(keras, axis=1)))
    diff = float(np.max(np.abs(p - keras))) if p.size else 0.0
    return agree, diff, _accuracy(p, y)


def _head_agreement(clf: Any, head_path: Path, x: np.ndarray) -> float:
    """Argmax agreement of the numpy head (``head.npz`` on the embedding output) with the model's own
    probabilities: what `har adapt` starts from must be the model. ExportError without an embedding."""
    from har.runtime.adapt import load_head  # noqa: PLC0415 - numpy only

    if not clf.has_embedding:
        raise ExportError(f"the converted {MODEL_FILE} has no embedding output")
    probs, emb = clf.predict_with_embedding(x, batched=False)
    mine = load_head(head_path, clf.embedding_dim, len(clf.classes))(emb)
    return float(np.mean(np.argmax(mine, axis=1) == np.argmax(probs, axis=1))) if probs.size else 1.0


ANCHORS_PER_CLASS = 32


def _add_anchors(clf: Any, head_path: Path, calib_x: np.ndarray, per_class: int = ANCHORS_PER_CLASS) -> None:
    """Add ``anchors`` / ``anchor_y`` to ``head.npz``: embeddings of up to ``per_class`` training
    windows per class the model predicts, labelled with its own prediction, both from the LIVE model
    (batch 1, e.g. int8: the embeddings `har adapt` fits the personal head on and `har run` applies it
    to). `har adapt` rehearses them, so the calibrated activities keep fitting the base model's windows."""
    rng = np.random.default_rng(0)
    idx = rng.permutation(calib_x.shape[0])[: per_class * len(clf.classes) * 4]
    probs, emb = clf.predict_with_embedding(calib_x[np.sort(idx)], batched=False)  # the live model's, as adapt's
    pred = np.argmax(probs, axis=1)
    keep = np.concatenate([np.flatnonzero(pred == c)[:per_class] for c in range(len(clf.classes))]).astype(np.int64)
    with np.load(head_path, allow_pickle=False) as z:
        w, b = z["W"], z["b"]
    with open(head_path, "wb") as f:
        np.savez(f, W=w, b=b, anchors=emb[keep].astype(np.float32), anchor_y=pred[keep].astype(np.int64))


def _report_text(r: ExportResult, meta: ModelMetadata, model_dir: Path, min_agreement: float) -> str:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.2f}%"

    m = r.model
    lines = [
        "har bundle report",
        f"created        {utc_now_iso()}",
        f"from model     {model_dir}",
        f"classes        {', '.join(meta.classes)}",
        f"window         {meta.window.window_samples} samples x {meta.n_channels} axes at {meta.window.rate_hz:g} Hz "
        f"({meta.window.window_s:g} s, hop {meta.window.hop_s:g} s)",
        f"quantization   {_quantization_line(r.quantize, r.float_layers)}",
        f"operators      {', '.join(r.ops)}",
        f"runtime        {r.runtime_name}, 1 thread",
        "",
        f"verification on {r.n_windows} heldout windows (minimum agreement {pct(min_agreement)})",
        f"  {MODEL_FILE:<20} agreement {pct(m.agreement)}  max|dp| {m.max_prob_diff:.2e}  "
        f"accuracy {pct(m.tflite_accuracy)} (Keras {pct(r.keras_accuracy)})  {m.size_kb:.1f} KB  "
        f"{m.latency_ms:.3f} ms/window (p95 {m.latency_p95_ms:.3f})",
        f"  {HEAD_FILE:<20} classifier head on the embedding output (for `har adapt`): agreement with the model "
        f"{pct(m.head_agreement)}",
    ]
    if r.batch_model is not None:
        b = r.batch_model
        lines.append(
            f"  {BATCH_MODEL_FILE:<20} agreement {pct(b.agreement)}  max|dp| {b.max_prob_diff:.2e}  "
            f"accuracy {pct(b.tflite_accuracy)}  {b.size_kb:.1f} KB  {b.ms_per_window_batched:.3f} ms/window batched"
        )
        lines.append(
            f"  {'':<20} (float32 replay model, LSTM unrolled; agreement with {MODEL_FILE}: {pct(b.agreement_live)})"
        )
    for w in r.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines) + "\n"


def export_bundle(
    model_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cfg: ExportConfig,
    echo: Callable[[str], Any] = print,
    overwrite: bool = False,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    max_accuracy_loss: float = DEFAULT_MAX_ACCURACY_LOSS,
    batch_size: int = DEFAULT_BATCH,
    int8_io: bool = False,
    timeout_s: float = 900.0,
    smoothing: dict[str, Any] | None = None,
) -> ExportResult:
    """Convert ``model_dir`` (written by `har train`) into a verified bundle at ``out_dir``.

    ``batch_size`` > 1 also exports ``model_batch.tflite`` (skipped with a warning when it does not
    convert to builtin ops or fails verification). Raises ExportError when the converter crashes,
    the model needs non-builtin ops, or the batch-1 model agrees with Keras (argmax) on fewer than
    ``min_agreement`` of the heldout windows, unless those windows are labelled, its accuracy there is
    at most ``max_accuracy_loss`` below Keras's and it agrees on at least AGREEMENT_FLOOR (then a
    warning says so). The bundle is assembled in a temporary directory and
    moved into place only when everything passed. ``smoothing`` (``SmoothingConfig.to_dict()``; None
    or empty = no smoothing) is stored as the bundle's default in ``metadata.smoothing``, before the
    manifest is written."""
    from har.runtime.classifier import WindowClassifier  # the runtime only; no TensorFlow

    t_start = time.monotonic()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if not 0.0 <= min_agreement <= 1.0:
        raise ExportError(f"min agreement must be in [0, 1], got {min_agreement}")
    if smoothing:
        from har.runtime.smoothing import SmoothingConfig  # noqa: PLC0415

        smoothing = SmoothingConfig.from_dict(smoothing).to_dict()  # validated (SmoothingError)
    meta = _check_model_dir(model_dir)
    _prepare_out(out_dir, model_dir, overwrite)
    calib_x, hx, hy = load_deploy_windows(model_dir, meta)
    echo(f"Exporting {model_dir} -> {out_dir} ({cfg.quantize}); verifying on {hx.shape[0]} heldout windows")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(prefix=".har-export-", dir=out_dir.parent) as tmp:
        work = Path(tmp) / "work"
        stage = Path(tmp) / "bundle"
        work.mkdir()
        stage.mkdir()
        done, rc, last = _run_worker(model_dir, work, cfg, batch_size, int8_io, echo, timeout_s)
        if not {"keras", "single"} <= done:
            raise ExportError(f"TFLite conversion failed ({_describe_rc(rc)}): {last or 'no error message'}")
        has_batch = batch_size > 1 and "batch" in done
        if batch_size > 1 and not has_batch:
            warnings.append(f"batched model not exported ({_describe_rc(rc)}: {last or 'no message'})")
        ops = _check_ops(work, OPS_FILE, MODEL_FILE)
        if "UNIDIRECTIONAL_SEQUENCE_LSTM" not in ops:
            warnings.append("no fused UNIDIRECTIONAL_SEQUENCE_LSTM op: the LSTM was not fused (slower)")
        if has_batch:
            try:
                _check_ops(work, BATCH_OPS_FILE, BATCH_MODEL_FILE)
            except ExportError as e:
                warnings.append(f"batched model dropped: {e}")
                has_batch = False
        shutil.copy2(work / MODEL_FILE, stage / MODEL_FILE)
        shutil.copy2(work / HEAD_FILE, stage / HEAD_FILE)
        if has_batch:
            shutil.copy2(work / BATCH_MODEL_FILE, stage / BATCH_MODEL_FILE)
        keras = np.load(work / KERAS_PROBS_FILE, allow_pickle=False)

        echo("  verifying in the TFLite runtime (batch 1) ...")
        meta_b = dataclasses.replace(meta, export=cfg, verification={}, created=utc_now_iso())
        try:
            clf = WindowClassifier(stage / MODEL_FILE, meta_b, None, num_threads=1)
            p1 = clf.predict_proba(hx, batched=False)
        except HarError as e:
            raise ExportError(f"the converted model does not run: {e}") from None
        agree, diff, acc = _compare(p1, keras, hy)
        lat, p95 = _latency(clf, hx)
        head_agree = _head_agreement(clf, stage / HEAD_FILE, hx)
        _add_anchors(clf, stage / HEAD_FILE, calib_x)
        check = ModelCheck(
            MODEL_FILE, agree, diff, acc, (stage / MODEL_FILE).stat().st_size / 1024, lat, p95,
            head_agreement=head_agree,
        )
        if head_agree < min_agreement:
            warnings.append(
                f"{HEAD_FILE} on the embedding output agrees with the model on only {100 * head_agree:.1f}% of the "
                "heldout windows: `har adapt` starts from a different head"
            )
        batch_check: ModelCheck | None = None
        if has_batch:
            echo(f"  verifying the batched model (batch {batch_size}) ...")
            try:
                cb = WindowClassifier(stage / MODEL_FILE, meta_b, stage / BATCH_MODEL_FILE, num_threads=1)
                t0 = time.perf_counter()
                pb = cb.predict_proba(hx, batched=True)
                per = (time.perf_counter() - t0) * 1e3 / hx.shape[0]
                a_b, d_b, acc_b = _compare(pb, keras, hy)
                a_live = float(np.mean(np.argmax(pb, axis=1) == np.argmax(p1, axis=1))) if pb.size else 1.0
                batch_check = ModelCheck(
                    BATCH_MODEL_FILE,
                    a_b,
                    d_b,
                    acc_b,
                    (stage / BATCH_MODEL_FILE).stat().st_size / 1024,
                    ms_per_window_batched=per,
                    agreement_live=a_live,
                )
                if a_b < min_agreement:
                    warnings.append(f"batched model dropped: agreement {a_b:.3f} < {min_agreement}")
                    batch_check = None
            except HarError as e:
                warnings.append(f"batched model dropped: {e}")
                batch_check = None
            if batch_check is None:
                (stage / BATCH_MODEL_FILE).unlink()

        result = ExportResult(
            bundle_dir=out_dir,
            quantize=cfg.quantize,
            model=check,
            batch_model=batch_check,
            keras_accuracy=_accuracy(keras, hy),
            n_windows=int(hx.shape[0]),
            runtime_name=clf.runtime_name,
            ops=ops,
            warnings=warnings,
            float_layers=_float_layers(work),
        )
        pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        loss = None if acc is None or result.keras_accuracy is None else result.keras_accuracy - acc
        accuracy_holds = loss is not None and loss <= max_accuracy_loss and agree >= AGREEMENT_FLOOR
        if agree < min_agreement and accuracy_holds:
            warnings.append(
                f"agreement with Keras {pct(agree)} is under {pct(min_agreement)}, but the heldout accuracy holds "
                f"(TFLite {pct(acc)} / Keras {pct(result.keras_accuracy)}, at most "
                f"{100 * max_accuracy_loss:.1f} points lower allowed): kept"
            )
        echo(
            f"  agreement with Keras {pct(agree)}, max |prob diff| {diff:.2e}, accuracy TFLite {pct(acc)} / "
            f"Keras {pct(result.keras_accuracy)}, {check.size_kb:.1f} KB, {lat:.3f} ms/window (1 thread, "
            f"{clf.runtime_name})"
        )
        for w in warnings:
            echo(f"  warning: {w}")
        if agree < min_agreement and not accuracy_holds:
            lost = "" if loss is None else f", accuracy {pct(acc)} vs Keras {pct(result.keras_accuracy)}"
            raise ExportError(
                f"{cfg.quantize} model agrees with Keras on only {100 * agree:.1f}% of {hx.shape[0]} heldout windows "
                f"(minimum {100 * min_agreement:.1f}%{lost}): try --quantize fp32/fp16 or --min-agreement"
            )

        final_meta = dataclasses.replace(
            meta_b, verification=_verification_dict(result), smoothing=dict(smoothing or {})
        )
        save_metadata(stage, final_meta)
        (stage / REPORT_FILE).write_text(_report_text(result, meta, model_dir, min_agreement), encoding="utf-8")
        write_manifest(stage)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(stage, out_dir)
    result.seconds = time.monotonic() - t_start
    echo(f"Bundle written to {out_dir} in {result.seconds:.1f} s")
    return result

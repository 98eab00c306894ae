"""WindowClassifier: one bundle's TFLite model(s) plus its metadata.

Takes raw windows in g, normalises them with the bundle's training statistics, quantises the
input when the model has int8 input, resets the LSTM state before every window (the fused op
keeps its state in variable tensors between ``invoke()`` calls), and returns float32
probabilities. No TensorFlow."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from har.artifacts.bundle import verify_bundle
from har.artifacts.layout import ADAPTED_HEAD_FILE, BATCH_MODEL_FILE, MODEL_FILE, ROCKET_PPV_LAYER
from har.artifacts.metadata import ModelMetadata, load_metadata
from har.errors import HarError, RuntimeInferenceError
from har.runtime.interpreter import RuntimeChoice, choose_runtime, load_interpreter

# Use the batched model from this many windows on (below it, padding costs more than it saves).
BATCH_THRESHOLD = 8


class _Model:
    """One interpreter with its input/output bindings and (de)quantisation parameters."""

    def __init__(self, path: Path, num_threads: int, prefer: str | None = None, only: bool = False) -> None:
        self.path = path
        self.interp, self.runtime_name = load_interpreter(path, num_threads=num_threads, prefer=prefer, only=only)
        ins = self.interp.get_input_details()
        outs = self.interp.get_output_details()
        if len(ins) != 1 or len(outs) not in (1, 2):
            raise RuntimeInferenceError(f"{path}: expected 1 input and 1-2 outputs, got {len(ins)} and {len(outs)}")
        self.inp = ins[0]
        self.out, self.emb = probs_and_embedding(self.interp, outs)
        self.in_shape = tuple(int(v) for v in self.inp["shape"])
        self.out_shape = tuple(int(v) for v in self.out["shape"])
        if len(self.in_shape) != 3 or len(self.out_shape) != 2:
            raise RuntimeInferenceError(f"{path}: unexpected input/output shapes {self.in_shape} / {self.out_shape}")
        self.batch = self.in_shape[0]
        self.in_dtype = np.dtype(self.inp["dtype"])
        self.out_dtype = np.dtype(self.out["dtype"])
        self.in_scale, self.in_zero = (float(v) for v in self.inp.get("quantization", (0.0, 0)))
        self.out_scale, self.out_zero = (float(v) for v in self.out.get("quantization", (0.0, 0)))
        self._in_index = int(self.inp["index"])
        self._out_index = int(self.out["index"])
        # the embedding feeding the classifier head (models exported by a har that writes it)
        self.emb_dim = int(self.emb["shape"][-1]) if self.emb is not None else 0
        self._emb_index = int(self.emb["index"]) if self.emb is not None else -1
        self._emb_scale, self._emb_zero = (
            (float(v) for v in self.emb.get("quantization", (0.0, 0))) if self.emb is not None else (0.0, 0.0)
        )

    def quantize_input(self, xn: np.ndarray) -> np.ndarray:
        if self.in_dtype == np.float32:
            return xn.astype(np.float32, copy=False)
        if self.in_scale <= 0:
            raise RuntimeInferenceError(f"{self.path}: integer input without quantisation parameters")
        info = np.iinfo(self.in_dtype)
        q = np.round(xn / self.in_scale + self.in_zero)
        return np.clip(q, info.min, info.max).astype(self.in_dtype)

    def dequantize_output(self, y: np.ndarray) -> np.ndarray:
        if self.out_dtype == np.float32:
            return y.astype(np.float32, copy=True)
        return ((y.astype(np.float32) - self.out_zero) * self.out_scale).astype(np.float32)

    def run(self, xq: np.ndarray) -> np.ndarray:
        """One invoke on a full input batch (already quantised); state reset first."""
        self.interp.reset_all_variables()
        self.interp.set_tensor(self._in_index, xq)
        self.interp.invoke()
        return self.interp.get_tensor(self._out_index)

    def embedding(self) -> np.ndarray:
        """The embedding output (float32) of the last :meth:`run`."""
        e = self.interp.get_tensor(self._emb_index)
        if e.dtype == np.float32:
            return e.astype(np.float32, copy=True)
        return ((e.astype(np.float32) - self._emb_zero) * self._emb_scale).astype(np.float32)


def probs_and_embedding(interp: Any, outs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Which output is the probabilities and which the embedding: by the signature's output names
    (the probabilities come from the layer named ``probs``), else the last output."""
    if len(outs) == 1:
        return outs[0], None
    by_index = {int(o["index"]): o for o in outs}
    try:
        sig = interp._get_full_signature_list()  # {key: {"inputs": {name: index}, "outputs": {...}}}
        names = next(iter(sig.values()))["outputs"]
        probs = by_index[int(names["probs"])]
        other = next(o for o in outs if o is not probs)
        return probs, other
    except Exception:  # noqa: BLE001 - no signature: outputs come sorted by name and "probs" sorts last
        return outs[1], outs[0]


class WindowClassifier:
    """Classify windows of raw accelerometer samples (g) with a bundle's TFLite model."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        metadata: ModelMetadata,
        batch_model_path: str | os.PathLike[str] | None = None,
        num_threads: int = 1,
        prefer_runtime: str | None = None,
        only_runtime: bool = False,
    ) -> None:
        self.metadata = metadata
        self.runtime_choice: RuntimeChoice | None = None
        self.classes: tuple[str, ...] = tuple(metadata.classes)
        self.window_samples = int(metadata.window.window_samples)
        self.n_channels = int(metadata.n_channels)
        self._norm = metadata.normalization
        mean, std = self._norm.arrays
        if mean.shape != (self.n_channels,) or std.shape != (self.n_channels,):
            raise RuntimeInferenceError("metadata normalisation does not match the number of channels")
        if np.any(std <= 0):
            raise RuntimeInferenceError("metadata normalisation has a non-positive std")
        self._single = _Model(Path(model_path), num_threads, prefer_runtime, only_runtime)
        self._check(self._single, want_batch=1)
        self._batched: _Model | None = None
        if batch_model_path is not None and Path(batch_model_path).is_file():
            self._batched = _Model(Path(batch_model_path), num_threads, prefer_runtime, only_runtime)
            self._check(self._batched, want_batch=None)
        self.runtime_name: str = self._single.runtime_name
        self.num_threads = num_threads
        # A personal head (`har adapt`): (embeddings (n, d), the model's own probabilities (n, classes))
        # -> probabilities (n, classes), applied after the interpreter instead of the model's own last
        # layer (skipped activities keep the model's own probabilities). None = the model's output.
        self.head: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
        self._rocket_width: int | None = None

    def _check(self, m: _Model, want_batch: int | None) -> None:
        want = (self.window_samples, self.n_channels)
        if m.in_shape[1:] != want:
            raise RuntimeInferenceError(
                f"{m.path.name}: model input {m.in_shape[1:]} does not match metadata window {want}"
            )
        if m.out_shape[-1] != len(self.classes):
            raise RuntimeInferenceError(
                f"{m.path.name}: model has {m.out_shape[-1]} outputs but metadata lists {len(self.classes)} classes"
            )
        if want_batch is not None and m.batch != want_batch:
            raise RuntimeInferenceError(f"{m.path.name}: expected a batch-{want_batch} model, got {m.batch}")

    @classmethod
    def from_bundle(
        cls,
        path: str | os.PathLike[str],
        verify: bool = True,
        num_threads: int = 1,
        prefer_runtime: str | None = None,
        use_batch_model: bool = True,
        probe: bool = False,
        only_runtime: bool = False,
    ) -> WindowClassifier:
        """Open a bundle directory. ``verify`` checks the manifest checksums first (BundleError).

        ``probe`` first proves the runtime in a child process (`choose_runtime`: a runtime that
        crashes is skipped, never this process); the choice is ``runtime_choice`` and its one line
        ``runtime_choice.line``. RuntimeInferenceError when no runtime can run the model."""
        d = Path(path)
        if verify:
            meta = verify_bundle(d)
        else:
            try:
                meta = load_metadata(d)
            except HarError as e:
                raise RuntimeInferenceError(str(e)) from None
        # An adapted bundle's personal head applies to the live model's embeddings (it was fitted on
        # them; predict_proba never uses the batched model with it): its batched model is not opened.
        adapted = (d / ADAPTED_HEAD_FILE).is_file()
        batch = d / BATCH_MODEL_FILE if use_batch_model and not adapted else None
        choice = None
        if probe:
            choice = choose_runtime(d / MODEL_FILE, num_threads=num_threads)
            if choice.name is None:
                raise RuntimeInferenceError(choice.line)
            prefer_runtime = choice.name
        clf = cls(d / MODEL_FILE, meta, batch, num_threads=num_threads, prefer_runtime=prefer_runtime,
                  only_runtime=probe or only_runtime)
        clf.runtime_choice = choice
        if adapted:
            from har.runtime.adapt import load_head  # noqa: PLC0415 - numpy only, adapted bundles only

            clf.set_head(load_head(d / ADAPTED_HEAD_FILE, clf.embedding_dim, len(clf.classes)))
        return clf

    def set_head(self, head: Callable[[np.ndarray, np.ndarray], np.ndarray] | None) -> None:
        """Use ``head`` ((embeddings, the model's own probabilities) -> probabilities) instead of the
        model's last layer; None = off. While a head is set, :meth:`predict_proba` runs the live
        model (batch 1) on every window: the head is fitted on its embeddings (`har adapt`), which an
        int8 live model's differ from the float batched model's."""
        if head is not None and not self.has_embedding:
            raise RuntimeInferenceError(
                f"{self._single.path.name} has no embedding output: redeploy with a har that writes it"
            )
        self.head = head

    # -- properties -------------------------------------------------------------------
    @property
    def has_batch_model(self) -> bool:
        return self._batched is not None

    @property
    def uses_batch_model(self) -> bool:
        """True when :meth:`predict_proba` may use the batched model: there is one and no personal
        head is set (a personal head is applied to the live model's embeddings only)."""
        return self._batched is not None and self.head is None

    @property
    def scored_model(self) -> str:
        """What :meth:`predict_proba` with ``batched=False`` computes, for reports: ``model.tflite``,
        plus ``head_adapted.npz`` when a personal head is set."""
        return MODEL_FILE + (f" + {ADAPTED_HEAD_FILE}" if self.head is not None else "")

    @property
    def batch_size(self) -> int:
        """Windows per invoke of the batched model (1 without one)."""
        return self._batched.batch if self._batched is not None else 1

    @property
    def has_embedding(self) -> bool:
        """True when the live model also outputs the embedding feeding its classifier head."""
        return self._single.emb is not None

    @property
    def embedding_dim(self) -> int:
        return self._single.emb_dim

    @property
    def rocket_width(self) -> int:
        """How many of the embedding's columns are MiniRocket features (the last ones: the model
        concatenates [LSTM embedding, MiniRocket features]): the width of the live model's
        ``rocket_ppv`` tensors (har.artifacts.layout.ROCKET_PPV_LAYER); 0 for a model without the branch.
        RuntimeInferenceError when the graph's rocket_ppv tensors disagree on their width."""
        if self._rocket_width is None:
            widths = set()
            for t in self._single.interp.get_tensor_details():
                shape = tuple(int(v) for v in t.get("shape", ()))
                if len(shape) == 2 and ROCKET_PPV_LAYER in str(t.get("name", "")).split("/"):
                    widths.add(shape[1])
            if len(widths) > 1:
                raise RuntimeInferenceError(
                    f"{self._single.path.name}: its rocket_ppv tensors have different widths {sorted(widths)}"
                )
            self._rocket_width = widths.pop() if widths else 0
        return self._rocket_width

    @property
    def input_dtype(self) -> str:
        return str(self._single.in_dtype)

    # -- inference --------------------------------------------------------------------
    def normalize(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` per axis (the saved :class:`~har.artifacts.metadata.Normalization`);
        ``x`` float (n, window, channels) in g."""
        return self._norm.apply(x)

    def _validate(self, x: np.ndarray) -> np.ndarray:
        a = np.asarray(x, dtype=np.float32)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[1:] != (self.window_samples, self.n_channels):
            raise RuntimeInferenceError(
                f"expected windows of shape (n, {self.window_samples}, {self.n_channels}), got {a.shape}"
            )
        return a

    def predict_proba(self, x: np.ndarray, batched: bool | None = None) -> np.ndarray:
        """Class probabilities, float32 (n, n_classes), for raw windows float32 (n, window, 3) in g.

        ``batched=None`` uses ``model_batch.tflite`` when present and n >= BATCH_THRESHOLD;
        True / False force the choice (True falls back to batch 1 without a batched model). The
        batched model's last batch is padded, so one call never mixes the two models. With a
        personal head set, always the live model (batch 1), whatever ``batched``: the head is
        applied to the embeddings it was fitted on, so replay and evaluate give `har run`'s output."""
        a = self._validate(x)
        n = a.shape[0]
        out = np.empty((n, len(self.classes)), dtype=np.float32)
        if n == 0:
            return out
        use_batch = self.uses_batch_model and (batched if batched is not None else n >= BATCH_THRESHOLD)
        m = self._batched if use_batch and self._batched is not None else self._single
        xq = m.quantize_input(self.normalize(a))
        b = m.batch
        if b == 1:
            for i in range(n):
                out[i] = self._probs(m, m.run(xq[i : i + 1]))[0]
            return out
        full = n - n % b
        for s in range(0, full, b):
            out[s : s + b] = self._probs(m, m.run(xq[s : s + b]))
        if full < n:
            # Pad the last batch rather than finish with the batch-1 model: one model for every
            # window of a call (the two can differ slightly, e.g. an int8 live model).
            rest = n - full
            pad = np.repeat(xq[full : full + 1], b - rest, axis=0)
            out[full:] = self._probs(m, m.run(np.concatenate([xq[full:], pad])))[:rest]
        return out

    def _probs(self, m: _Model, y: np.ndarray) -> np.ndarray:
        """Probabilities of the last invoke of ``m`` (output ``y``): the model's, or the personal head's."""
        if self.head is None:
            return m.dequantize_output(y)
        return self.head(m.embedding(), m.dequantize_output(y))

    def predict_with_embedding(self, x: np.ndarray, batched: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities of the model itself, embeddings)`` float32 (n, classes) and (n, d),
        whatever personal head is set; ``batched`` as :meth:`predict_proba` (`har adapt` fits on
        ``batched=False``: the live model's, which a personal head is applied to)."""
        if not self.has_embedding:
            raise RuntimeInferenceError(
                f"{self._single.path.name} has no embedding output: redeploy with a har that writes it"
            )
        a = self._validate(x)
        n = a.shape[0]
        probs = np.empty((n, len(self.classes)), dtype=np.float32)
        emb = np.empty((n, self.embedding_dim), dtype=np.float32)
        bm = self._batched
        use_batch = bm is not None and bm.emb is not None and (batched if batched is not None else n >= BATCH_THRESHOLD)
        m = bm if use_batch and bm is not None else self._single
        xq = m.quantize_input(self.normalize(a))
        for s in range(0, n, m.batch):
            chunk = xq[s : s + m.batch]
            k = chunk.shape[0]
            if k < m.batch:  # pad the last batch
                chunk = np.concatenate([chunk, np.repeat(chunk[:1], m.batch - k, axis=0)])
            probs[s : s + k] = m.dequantize_output(m.run(chunk))[:k]
            emb[s : s + k] = m.embedding()[:k]
        return probs, emb

    def predict_one(self, window: np.ndarray) -> np.ndarray:
        """Probabilities float32 (n_classes,) for one raw window float32 (window, 3) in g."""
        return self.predict_proba(np.asarray(window, dtype=np.float32)[None], batched=False)[0]

    def label_of(self, probs: np.ndarray) -> tuple[str, float]:
        """``(label, confidence)`` of one probability vector."""
        i = int(np.argmax(probs))
        return self.classes[i], float(probs[i])

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime_name,
            "threads": self.num_threads,
            "input_dtype": self.input_dtype,
            "batch_model": self.batch_size if self.has_batch_model else None,
        }

"""`har adapt --full` (workstation, TensorFlow): fine-tune the whole network on the calibration and
re-export it with the base bundle's quantisation.

Starts from the model directory the base bundle was deployed from (its weights are not in the
bundle), fine-tunes every layer for a few epochs at a small learning rate on the first part of each
activity, exports through :func:`har.training.convert.export_bundle` (verified as `har deploy`
verifies), and keeps the result only if it beats the base bundle on the held-out part of each
activity, exactly like the head-only adaptation (:mod:`har.runtime.adapt`)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from har.artifacts.bundle import write_manifest
from har.artifacts.layout import ADAPTED_HEAD_FILE, MANIFEST_FILE, REPORT_FILE
from har.artifacts.metadata import load_metadata, save_metadata
from har.errors import AdaptError

FULL_EPOCHS = 10
FULL_LEARNING_RATE = 3e-4


def finetune_bundle(
    bundle: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    recordings: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    person: str,
    epochs: int = FULL_EPOCHS,
    learning_rate: float = FULL_LEARNING_RATE,
    overwrite: bool = False,
    echo: Callable[[str], Any] = print,
) -> Any:
    """Fine-tune ``model_dir`` (the base of ``bundle``) on labelled ``recordings``; write ``out_dir``.
    Returns a :class:`har.runtime.adapt.AdaptResult`."""
    from har.artifacts.layout import DEPLOY_WINDOWS_FILE, WEIGHTS_FILE
    from har.config import ExportConfig
    from har.dataset import fingerprint
    from har.recording.format import utc_now_iso
    from har.runtime.adapt import (
        AdaptResult,
        _check_out,
        _recordings,
        base_bundle_of,
        beats,
        report_lines,
        scores,
        split_calibration,
    )
    from har.runtime.classifier import WindowClassifier
    from har.training._tf import import_tf
    from har.training.convert import export_bundle
    from har.training.model import build_model

    t0 = time.monotonic()
    src, mdir, out = Path(bundle), Path(model_dir), Path(out_dir)
    meta, base_sha = base_bundle_of(src)
    mmeta = load_metadata(mdir)
    if (mmeta.classes, mmeta.window, mmeta.normalization, mmeta.data_fingerprint) != (
        meta.classes, meta.window, meta.normalization, meta.data_fingerprint
    ):
        raise AdaptError(f"{mdir} is not the model {src} was deployed from (classes, window or training data differ)")
    if not (mdir / WEIGHTS_FILE).is_file() or not (mdir / DEPLOY_WINDOWS_FILE).is_file():
        raise AdaptError(f"{mdir}: no {WEIGHTS_FILE} / {DEPLOY_WINDOWS_FILE} (a model directory from `har train`)")
    _check_out(out, src, overwrite)
    split = split_calibration(_recordings(recordings), meta)
    tf, keras = import_tf()
    keras.utils.set_random_seed(0)
    cfg = mmeta.train_config.model
    k = len(meta.classes)
    model = build_model(cfg, meta.window.window_samples, meta.n_channels, k, rate_hz=meta.window.rate_hz)
    model.load_weights(str(mdir / WEIGHTS_FILE))
    mean = np.asarray(meta.normalization.mean, np.float32).reshape(1, 1, -1)
    std = np.asarray(meta.normalization.std, np.float32).reshape(1, 1, -1)
    counts = np.bincount(split.fit_y, minlength=k).astype(float)
    cw = {i: float(counts.sum() / (np.count_nonzero(counts) * c)) for i, c in enumerate(counts) if c > 0}
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    echo(f"  fine-tuning every layer: {split.fit_y.size} windows, {epochs} epochs, learning rate {learning_rate:g}")
    model.fit((split.fit_x - mean) / std, split.fit_y, epochs=epochs, batch_size=32, class_weight=cw, verbose=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".har-adapt-", dir=out.parent) as tmp:
        tuned = Path(tmp) / "model"
        tuned.mkdir()
        model.save_weights(str(tuned / WEIGHTS_FILE))
        shutil.copy2(mdir / DEPLOY_WINDOWS_FILE, tuned / DEPLOY_WINDOWS_FILE)
        save_metadata(tuned, dataclasses.replace(mmeta, created=utc_now_iso()))
        cand = Path(tmp) / "candidate"
        export_bundle(tuned, cand, meta.export or ExportConfig(), echo=echo, smoothing=dict(meta.smoothing))
        base_clf = WindowClassifier.from_bundle(src, verify=False)
        base_clf.set_head(None)
        new_clf = WindowClassifier.from_bundle(cand)
        # judged on the live models (`har run`'s), not the float batched replay models
        s_base = scores(base_clf.predict_proba(split.hold_x, batched=False), split.hold_y)
        s_new = scores(new_clf.predict_proba(split.hold_x, batched=False), split.hold_y)
        kept = beats(s_new, s_base)
        stage = Path(tmp) / "bundle"
        shutil.copytree(cand if kept else src, stage)
        for p in stage.iterdir():  # only the model files: no manifest, no personal head of src
            if p.name in (MANIFEST_FILE, ADAPTED_HEAD_FILE):
                p.unlink()
        adaptation = {
            "person": person,
            "created": utc_now_iso(),
            "kept": kept,
            "mode": "full",
            "method": f"every layer fine-tuned (TensorFlow, {epochs} epochs, Adam {learning_rate:g}), re-exported",
            "base_bundle": {"path": str(src.resolve()), "sha256": base_sha},
            "calibration": {
                "fingerprint": fingerprint(recordings),
                "files": [Path(p).name for p in recordings],
                "activities": split.activities,
                "skipped": [c for c in meta.classes if c not in split.activities],
                "seconds": split.seconds,
            },
            "holdout": {
                "windows": int(split.hold_y.size), "fit_windows": int(split.fit_y.size),
                "base_accuracy": s_base[0], "adapted_accuracy": s_new[0],
                "base_log_loss": s_base[1], "adapted_log_loss": s_new[1],
            },
        }
        save_metadata(stage, dataclasses.replace(load_metadata(stage), adaptation=adaptation))
        with open(stage / REPORT_FILE, "a", encoding="utf-8") as f:
            f.write("\n" + "\n".join(report_lines(adaptation)) + "\n")
        write_manifest(stage)
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    secs = time.monotonic() - t0
    return AdaptResult(
        out_dir=out, person=person, kept=kept, base_accuracy=s_base[0], adapted_accuracy=s_new[0],
        base_log_loss=s_base[1], adapted_log_loss=s_new[1], n_fit=int(split.fit_y.size),
        n_holdout=int(split.hold_y.size), activities=split.activities,
        skipped=[c for c in meta.classes if c not in split.activities], fit_seconds=secs, seconds=secs,
    )

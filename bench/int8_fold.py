"""int8 vs float of a training recipe on one CV fold of bench/select_defaults.py's training data.

The fold's test subjects (fold 1 of the same seeded 2-fold split that select_defaults.py scores)
are held out with ``test_subjects``; the rest trains and validates as in `har train`. The model
directory is exported with `har deploy`'s converter (int8, builtin ops, verified against Keras in
the TFLite runtime) and every test window is scored by Keras and by the int8 bundle. Prints
accuracy of both, the difference in points, argmax agreement, size, ms per window and seconds.

    nice -n 10 python bench/int8_fold.py --data watch --set label_smoothing=0.058
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import select_defaults as sd  # noqa: E402

from har.config import TrainConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="watch", choices=sorted(sd.LOADERS))
    ap.add_argument("--set", action="append", default=[], help="TrainConfig field=value (JSON value)")
    ap.add_argument("--fold", type=int, default=1)
    a = ap.parse_args()
    from har.artifacts.bundle import verify_bundle
    from har.config import ExportConfig
    from har.dataset import windows_for
    from har.recording.format import write_recording
    from har.runtime.classifier import WindowClassifier
    from har.training.convert import export_bundle
    from har.training.cv import make_folds
    from har.training.train import train

    ds = sd.LOADERS[a.data]()
    top = {k: json.loads(v) if v[:1] in "0123456789-[{\"tf" else v for k, v in (s.split("=", 1) for s in a.set)}
    cfg = dataclasses.replace(TrainConfig(), **top)
    key = (lambda r: r.meta.session_id) if ds.grouped_by == "recording" else (lambda r: r.subject)
    fold = make_folds(sorted({key(r) for r in ds.recordings}), 2, cfg.seed)[a.fold - 1]
    if ds.grouped_by == "recording":
        sys.exit("int8_fold.py: a set with subject ids (watch, sim, wisdm)")
    cfg = dataclasses.replace(
        cfg, window=dataclasses.replace(cfg.window, rate_hz=ds.rate_hz), test_subjects=tuple(fold)
    )
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for i, r in enumerate(ds.recordings):
            write_recording(d / "data" / f"r{i:04d}.har", r)
        t0 = time.monotonic()
        train([d / "data"], d / "model", cfg, progress=False, echo=lambda s: None)
        train_s = time.monotonic() - t0
        export_bundle(d / "model", d / "bundle", ExportConfig(quantize="int8"), echo=lambda s: None)
        v = verify_bundle(d / "bundle").verification
        from har.artifacts.metadata import load_metadata
        from har.training.fit import encode
        from har.training.model import build_model

        meta = load_metadata(d / "model")
        te = windows_for(ds.recordings, [i for i, r in enumerate(ds.recordings) if key(r) in fold], meta.window)
        te = te.select(np.isin(te.y, meta.classes))
        y = encode(te.y, meta.classes)
        model = build_model(meta.train_config.model, meta.window.window_samples, meta.n_channels, len(meta.classes))
        model.load_weights(str(d / "model" / "model.weights.h5"))
        norm = meta.normalization
        pk = np.asarray(model.predict(norm.apply(te.x), batch_size=256, verbose=0)).argmax(1)
        clf = WindowClassifier.from_bundle(d / "bundle")
        pq = clf.predict_proba(te.x).argmax(1)
    acc_k, acc_q = float(np.mean(pk == y)), float(np.mean(pq == y))
    print(
        f"{a.data} fold {a.fold} (test {', '.join(fold)}; {len(y)} windows) {top}: Keras {100 * acc_k:.2f} %  "
        f"int8 {100 * acc_q:.2f} %  int8 - float {100 * (acc_q - acc_k):+.2f} points  agreement "
        f"{100 * float(np.mean(pk == pq)):.1f} %  {v['size_kb']:.1f} KB  {v['latency_ms']:.2f} ms/window  "
        f"train {train_s:.0f} s"
    )


if __name__ == "__main__":
    main()

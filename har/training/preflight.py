"""Checks `har train` runs before the first epoch (numpy only: never imports TensorFlow).

* :func:`check_out_dir`: ``--out`` can be created and written (probed with a temporary file).
* :func:`check_data`: every recording passes the plausibility checks (:mod:`har.recording.checks`:
  units, timestamps, sidecar vs CSV, gravity per static activity across recordings) and the window
  fits in the recordings' contiguous stretches.
* :func:`check_classes`: every class has training and test windows (a class missing from one side
  is named).

Errors are :class:`~har.errors.TrainingError` / :class:`~har.errors.PlausibilityError` (one line);
``force`` turns the data checks into warnings.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from har.config import TrainConfig
from har.errors import TrainingError
from har.recording.checks import check_recording, enforce, gravity_consensus_findings, longest_stretch_s
from har.recording.format import Recording

Echo = Callable[[str], None]


def check_out_dir(out_dir: str | os.PathLike[str]) -> None:
    """``out_dir`` is (or can become) a directory this process can write files in. Directories made
    for the probe are removed again."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} exists and is not a directory")
    made: list[Path] = []
    try:
        missing = [q for q in [out, *out.parents] if not q.exists()]
        for q in reversed(missing):
            q.mkdir()
            made.append(q)
        fd, probe = tempfile.mkstemp(prefix=".har-write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise TrainingError(f"--out {out}: cannot write there ({e.strerror or e}); choose another --out") from None
    finally:
        for q in reversed(made):
            try:
                q.rmdir()
            except OSError:
                pass


def check_data(recordings: Sequence[Recording], config: TrainConfig, force: bool = False,
               echo: Echo | None = None) -> None:
    """Plausibility of every recording and of the window length against the recordings."""
    def warn(message: str) -> None:
        if echo is not None:
            echo(f"Warning: {message}")

    findings = [f for r in recordings for f in check_recording(r)]
    findings += gravity_consensus_findings(recordings)
    enforce(findings, force=force, warn=warn)
    window_s = config.window.window_s
    stretches = [(longest_stretch_s(r), r) for r in recordings]
    if not stretches:
        return
    longest, rec = max(stretches, key=lambda x: x[0])
    if longest < window_s:
        raise TrainingError(
            f"--window {window_s:g} s is longer than the longest stretch without a gap or break in any recording "
            f"({longest:.1f} s in {rec.path}): choose a --window of at most {longest:.1f} s"
        )
    short = [r for s, r in stretches if s < window_s]
    if short:
        warn(f"{len(short)} of {len(stretches)} recording(s) have no stretch of {window_s:g} s without a gap and give "
             f"no windows (e.g. {short[0].path})")


def check_classes(train_y: np.ndarray, test_y: np.ndarray, test_subjects: Sequence[str], force: bool = False,
                  echo: Echo | None = None) -> None:
    """Every class has training and test windows: a class with test windows but no training windows
    is always an error; one with training windows but no test windows is an error unless ``force``
    (its score would be missing from the test metrics)."""
    tr = Counter(np.asarray(train_y).tolist())
    te = Counter(np.asarray(test_y).tolist())
    if not tr or not te:
        return  # train() reports "no labelled ... windows" with its purity / gap explanation
    no_train = sorted(set(te) - set(tr))
    if no_train:
        raise TrainingError(
            f"class(es) {', '.join(f'{c} ({te[c]} test windows)' for c in no_train)} have no training windows "
            "(choose other --test-subjects or --seed, or add data)"
        )
    no_test = sorted(set(tr) - set(te))
    if no_test:
        subs = ", ".join(test_subjects) or "-"
        msg = (f"class(es) {', '.join(f'{c} ({tr[c]} training windows)' for c in no_test)} have no test windows "
               f"(test subjects: {subs}): their test score would be missing")
        if not force:
            raise TrainingError(msg + "; choose other --test-subjects or --seed, add data, or pass --force")
        if echo is not None:
            echo(f"Warning: {msg} (accepted: --force)")

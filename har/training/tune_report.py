"""What `har tune` writes for people: leaderboard (text + JSON, one entry per trial), one TrainConfig
JSON per trial (``configs/trial-NNNN.json``, for ``har train --config``) and the Pareto plot.
No TensorFlow; matplotlib only inside :func:`plot_pareto`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from har.atomic import write_json_atomic
from har.training.tune_space import DEFAULT_ATTR, NEIGHBOUR_ATTR, moved_text

LEADERBOARD_TXT = "leaderboard.txt"
LEADERBOARD_JSON = "leaderboard.json"
PARETO_PNG = "pareto.png"
CONFIGS_DIR = "configs"


def _state(t: Any) -> str:
    ua = t.user_attrs
    if "duplicate_of" in ua:
        return f"duplicate of #{ua['duplicate_of']}"
    s = t.state.name.lower()
    if s == "waiting":  # enqueued (har's default, its neighbours) and not started yet
        return "queued"
    if s == "fail":
        return "interrupted" if ua.get("note") == "interrupted" else "failed"
    return s


def build_leaderboard(study: Any, measured: dict[str, Any], opts: Any, winner: int | None) -> list[dict[str, Any]]:
    """One entry per trial (skipped over-budget asks left out), best CV accuracy first; trials without
    a CV score (pruned, failed, running) follow by trial number."""
    from har.training.tune_final import beats_default, default_of, fits, gain_over_default

    trials = study.get_trials(deepcopy=False)
    base = default_of([t for t in trials if _state(t) == "complete"])
    rows = []
    for t in trials:
        ua = t.user_attrs
        if "skipped" in ua:
            continue
        folds = list(ua.get("fold_accuracy", []))
        acc_m = ua.get("accuracy_mean")
        m = measured.get(str(t.number))
        default = ua.get(DEFAULT_ATTR) if "duplicate_of" not in ua else None
        vs = None
        if base is not None and t is not base and _state(t) == "complete" and acc_m is not None:
            gain, se = gain_over_default(t, base)
            vs = {"gain": round(gain, 4), "se": round(se, 4), "beats": beats_default(t, base)}
        dur = None
        if t.datetime_complete and t.datetime_start:
            dur = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append(
            {
                "trial": t.number,
                "state": _state(t),
                "accuracy_mean": acc_m,
                "accuracy_std": ua.get("accuracy_std"),
                "macro_f1_mean": ua.get("macro_f1_mean"),
                "macro_f1_std": ua.get("macro_f1_std"),
                "fold_accuracy": folds,
                "fold_macro_f1": list(ua.get("fold_macro_f1", [])),
                "size_kb": m.get("size_kb") if m else None,
                "latency_ms": m.get("latency_ms") if m else None,
                "export_error": m.get("error") if m else None,
                "meets_budget": fits(m, opts.max_kb, opts.max_ms) if m else None,
                "winner": t.number == winner,
                # `har train`'s default configuration (the study's first trial); default_moved: the
                # default values --space does not allow, {param: [default, used]}
                "har_default": default is not None,
                "default_moved": (default.get("moved") or {}) if default is not None else None,
                # a neighbour of the default: the one setting it moves ("window_features 128,64")
                "neighbour_of_default": (ua.get(NEIGHBOUR_ATTR) or {}).get("move"),
                # CV accuracy gain over the default trial on the same folds, its standard error, and
                # whether it beats the default by more than one standard error (ranks ahead of it)
                "vs_default": vs,
                # the MiniRocket head's beta chosen by the folds (har.training.rocket.choose_cv_beta)
                "rocket_beta_cv": _beta_entry(ua.get("rocket_beta_cv")),
                "seconds": round(dur, 1) if dur is not None else None,
                "summary": ua.get("summary", ""),
                "note": ua.get("note", ""),
                "params": dict(t.params),
                "config": ua.get("config"),
            }
        )
    scored = sorted((r for r in rows if r["accuracy_mean"] is not None and r["state"] == "complete"),
                    key=lambda r: (-r["accuracy_mean"], -(r["macro_f1_mean"] or 0.0), r["trial"]))
    rest = sorted((r for r in rows if r not in scored), key=lambda r: r["trial"])
    return scored + rest


def _beta_entry(c: dict[str, Any] | None) -> dict[str, Any] | None:
    if not c:
        return None
    keys = ("configured", "beta", "best", "gain", "se", "configured_accuracy_mean", "table")
    return {k: c[k] for k in keys if k in c}


def _beta_line(c: dict[str, Any] | None) -> str | None:
    if not c or c.get("beta") == c.get("configured"):
        return None
    at = c.get("configured_accuracy_mean")
    before = f"; at beta {c['configured']:g}: {at:.3f}" if at is not None else ""
    return (f"{'':8}MiniRocket head beta {c['beta']:g} instead of {c['configured']:g}, chosen by the folds "
            f"({100 * c['gain']:+.1f} +- {100 * c['se']:.1f} pts{before})")


def _pm(m: float | None, s: float | None) -> str:
    # another process's running trial may be read between its set_user_attr calls: mean set, std not yet
    if m is None:
        return "-"
    return f"{m:.3f} +- {s:.3f}" if s is not None else f"{m:.3f}"


def format_leaderboard(board: list[dict[str, Any]], opts: Any) -> str:
    budget = []
    if opts.max_kb is not None:
        budget.append(f"size <= {opts.max_kb:g} KB")
    if opts.max_ms is not None:
        budget.append(f"latency <= {opts.max_ms:g} ms/window")
    lines = [
        f"har tune leaderboard: study {opts.study!r}, {opts.folds}-fold cross-validation inside the data "
        f"(accuracy and macro-F1: mean +- sample std over folds)",
        f"budget: {', '.join(budget) or 'none'}; size and latency: int8 model.tflite measured on this machine "
        "(median, 1 thread) for finalists only",
        "",
        f"{'':1}{'trial':>5}  {'state':<12}  {'accuracy':>15}  {'macro-F1':>15}  {'KB':>7}  {'ms':>7}  "
        f"{'budget':<6}  config",
    ]
    for r in board:
        kb = f"{r['size_kb']:7.1f}" if r["size_kb"] is not None else f"{'-':>7}"
        ms = f"{r['latency_ms']:7.3f}" if r["latency_ms"] is not None else f"{'-':>7}"
        fit = {True: "ok", False: "over", None: "-"}[r["meets_budget"]]
        if r["export_error"]:
            fit = "export"
        acc = _pm(r["accuracy_mean"], r["accuracy_std"])
        if r["state"] != "complete" and r["fold_accuracy"]:
            acc = f"({sum(r['fold_accuracy']) / len(r['fold_accuracy']):.3f} partial)"
        mark = "*" if r["winner"] else " "
        tag = "[har default] " if r.get("har_default") else ""
        if r.get("neighbour_of_default"):
            tag = f"[default + {r['neighbour_of_default']}] "
        vs = r.get("vs_default")
        if vs is not None:
            tag += f"[{100 * vs['gain']:+.1f} +- {100 * vs['se']:.1f} pts vs default] "
        what = tag + (r["summary"] or r["note"])
        lines.append(
            f"{mark}{r['trial']:>5}  {r['state'][:12]:<12}  {acc:>15}  "
            f"{_pm(r['macro_f1_mean'], r['macro_f1_std']):>15}  {kb}  {ms}  {fit:<6}  {what}"
        )
        beta_line = _beta_line(r.get("rocket_beta_cv"))
        if beta_line:
            lines.append(beta_line)
        if r["export_error"]:
            lines.append(f"{'':8}export failed: {r['export_error']}")
        elif r["state"] == "failed" and r["note"]:
            lines.append(f"{'':8}{r['note']}")
    win = next((r for r in board if r["winner"]), None)
    lines.append("")
    default = default_line(board)
    if default:
        lines.append(default)
    if win:
        lines.append(
            f"* winner: trial {win['trial']} (best CV accuracy within the budget; a trial goes ahead of har's default "
            "only when its gain over the default exceeds one standard error of the paired fold differences), "
            "trained on all data: best/"
        )
    lines.append("train any entry yourself: har train DATA --config configs/trial-NNNN.json --out MODEL")
    return "\n".join(lines) + "\n"


def default_line(board: list[dict[str, Any]]) -> str:
    """Where `har train`'s default configuration ranks ("" when the study has no such trial: begun
    by an older har)."""
    ours = [r for r in board if r.get("har_default")]
    if not ours:
        return ""
    scored = [r for r in board if r["accuracy_mean"] is not None and r["state"] == "complete"]
    done = [r for r in ours if r in scored]
    r = done[0] if done else ours[-1]
    if done:
        head = (f"har default (har train's configuration): trial {r['trial']}, rank {scored.index(r) + 1} of "
                f"{len(scored)} scored, CV accuracy {_pm(r['accuracy_mean'], r['accuracy_std'])}")
    else:
        head = f"har default (har train's configuration): trial {r['trial']}, {r['state']}"
    moved = r.get("default_moved") or {}
    return head + (f"; within the search space: {moved_text(moved)}" if moved else "")


def write_leaderboard(board: list[dict[str, Any]], out: Path, opts: Any) -> tuple[Path, Path]:
    """``leaderboard.txt``, ``leaderboard.json`` and ``configs/trial-NNNN.json`` (atomic writes)."""
    cdir = out / CONFIGS_DIR
    cdir.mkdir(parents=True, exist_ok=True)
    for r in board:
        if r["config"] is not None:
            write_json_atomic(cdir / f"trial-{r['trial']:04d}.json", r["config"])
    txt = out / LEADERBOARD_TXT
    tmp = txt.with_name(txt.name + ".tmp")
    tmp.write_text(format_leaderboard(board, opts), encoding="utf-8")
    tmp.replace(txt)
    js = write_json_atomic(out / LEADERBOARD_JSON, board)
    return txt, js


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated in (lower latency, higher accuracy), by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plot_pareto(board: list[dict[str, Any]], path: Path, opts: Any) -> Path | None:
    """CV accuracy (with fold std) against measured int8 latency, marker area ~ model size;
    green = within the budget, red = over; the winner ringed; the Pareto front joined."""
    pts = [r for r in board if r["latency_ms"] is not None and r["accuracy_mean"] is not None]
    if not pts:
        return None
    from har.scoring.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    sizes = [max(r["size_kb"], 0.1) for r in pts]
    smax = max(sizes)
    for r, kb in zip(pts, sizes, strict=True):
        color = "tab:green" if r["meets_budget"] else "tab:red"
        ax.errorbar(r["latency_ms"], r["accuracy_mean"], yerr=r["accuracy_std"] or 0.0, fmt="none", ecolor="0.6",
                    capsize=3, zorder=1)
        ax.scatter(r["latency_ms"], r["accuracy_mean"], s=60 + 600 * kb / smax, color=color, alpha=0.6,
                   edgecolors="black" if r["winner"] else "none", linewidths=2.0, zorder=2)
        ax.annotate(f"#{r['trial']} {kb:.0f} KB", (r["latency_ms"], r["accuracy_mean"]), textcoords="offset points",
                    xytext=(6, 6), fontsize=8)
    front = pareto_front([(r["latency_ms"], r["accuracy_mean"]) for r in pts])
    if len(front) > 1:
        ax.plot([pts[i]["latency_ms"] for i in front], [pts[i]["accuracy_mean"] for i in front], "--", color="0.4",
                lw=1, zorder=0, label="Pareto front")
    if opts.max_ms is not None:
        ax.axvline(opts.max_ms, color="tab:red", lw=1, ls=":", label=f"--max-ms {opts.max_ms:g}")
    ax.set_xlabel("latency, ms per window (int8 model.tflite, 1 thread, this machine)")
    ax.set_ylabel(f"CV accuracy ({opts.folds} folds, mean +- std)")
    scored = sum(1 for r in board if r["accuracy_mean"] is not None and r["state"] == "complete")
    ax.set_title(f"har tune: {len(pts)} measured finalist(s) of {scored} scored trial(s); marker area ~ size (KB)",
                 fontsize=10)
    ax.scatter([], [], color="tab:green", alpha=0.6, label="within budget")
    ax.scatter([], [], color="tab:red", alpha=0.6, label="over budget / not exported")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

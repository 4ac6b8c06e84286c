"""The report's plots, drawn with matplotlib's Agg canvas into PNG files (no pyplot, no display).

Each plot function returns a figure, or None when the study has nothing to show for it
(no Pareto front in a single-objective study, no importances with too few trials, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner._imports import require

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tuner.insight.result import Result
    from tuner.records import TrialRecord

__all__ = ["make_plots", "PLOT_TITLES", "lr_range_figure"]

#: file stem -> caption, in report order
PLOT_TITLES: dict[str, str] = {
    "learning_curves": "Learning curves of the best trials (train dashed, validation solid)",
    "gap": "Generalization gap (validation loss - training loss) over epochs",
    "objective": "Objective over trials",
    "baselines": "Chosen configuration against the baselines",
    "importances": "Parameter importances (fANOVA)",
    "parallel": "Searched settings of every complete trial, coloured by the objective",
    "pareto": "Pareto front",
    "lr_range": "Learning-rate range test",
}
TOP = 3
_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")


def _figure(width: float = 8.0, height: float = 4.0) -> Figure:
    require("matplotlib")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _whole_numbers(ax: Any) -> None:
    """Epochs and trial numbers are whole: no 2.5 on those axes."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _primary(result: Result, r: TrialRecord) -> float:
    return r.values[0] if r.values else math.nan


def _best_records(result: Result) -> list[tuple[str, TrialRecord]]:
    complete = [r for r in result.records if r.state == "complete" and r.values and r.epochs]
    sign = 1.0 if result.objective.directions[0] == "minimize" else -1.0
    complete.sort(key=lambda r: sign * _primary(result, r))
    chosen = [r for r in complete if r.number == result.best_trial]
    others = [r for r in complete if r.number != result.best_trial]
    out = [(f"trial #{r.number}{' (chosen)' if r in chosen else ''}", r) for r in (chosen + others)[:TOP]]
    untuned = next((b for b in result.baselines if b.name == "untuned" and b.ok and b.record), None)
    if untuned is not None and untuned.record.epochs:
        out.append(("untuned model", untuned.record))
    return out


def _series(r: TrialRecord, key: str) -> tuple[np.ndarray, np.ndarray] | None:
    pts = [(i + 1, e[key]) for i, e in enumerate(r.epochs) if key in e and np.isfinite(e[key])]
    if not pts:
        return None
    x, y = zip(*pts)
    return np.asarray(x), np.asarray(y)


def _color(i: int, label: str) -> str:
    return "tab:gray" if label == "untuned model" else _COLORS[i % len(_COLORS)]


def learning_curves(result: Result) -> Figure | None:
    rows = _best_records(result)
    if not rows:
        return None
    metric = "accuracy" if result.task.is_classification else "r2"
    has_metric = any(f"val_{metric}" in e for _, r in rows for e in r.epochs)
    fig = _figure(11 if has_metric else 7, 4)
    axes = fig.subplots(1, 2 if has_metric else 1, squeeze=False)[0]
    for ax, key in zip(axes, ("loss", metric)):
        for i, (label, r) in enumerate(rows):
            for part, style in (("train", "--"), ("val", "-")):
                s = _series(r, f"{part}_{key}")
                if s is not None:
                    ax.plot(*s, style, color=_color(i, label), label=f"{label} {part}", linewidth=1.6)
            if (
                r.best_epoch is not None
                and r.best_epoch < len(r.epochs)
                and f"val_{key}" in r.epochs[r.best_epoch]
            ):
                ax.plot(r.best_epoch + 1, r.epochs[r.best_epoch][f"val_{key}"], "o", color=_color(i, label))
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        _whole_numbers(ax)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle("Learning curves (dots: best epoch)")
    return fig


def gap(result: Result) -> Figure | None:
    rows = [(lab, r) for lab, r in _best_records(result) if _series(r, "gap") is not None]
    if not rows:
        return None
    fig = _figure(7, 3.5)
    ax = fig.subplots()
    for i, (label, r) in enumerate(rows):
        ax.plot(*_series(r, "gap"), color=_color(i, label), label=label, linewidth=1.6)
    ax.axhline(0.0, color="black", linewidth=0.8)
    _whole_numbers(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss - training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def objective(result: Result) -> Figure | None:
    name, direction = result.objective.names[0], result.objective.directions[0]
    rows = []
    for r in result.records:
        if r.state == "complete" and r.values:
            rows.append((r.number, r.values[0], "complete"))
        elif r.state == "pruned" and r.epochs:
            try:
                rows.append((r.number, result.objective.values(r.epochs[-1])[0], "pruned"))
            except KeyError:
                continue
    if not rows:
        return None
    fig = _figure(7, 4)
    ax = fig.subplots()
    for state, marker, color in (("complete", "o", "tab:blue"), ("pruned", "x", "tab:gray")):
        pts = [(n, v) for n, v, s in rows if s == state and np.isfinite(v)]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, color=color, label=state, zorder=3)
    done = sorted((n, v) for n, v, s in rows if s == "complete" and np.isfinite(v))
    if done:
        acc = np.minimum.accumulate if direction == "minimize" else np.maximum.accumulate
        ax.step(
            [n for n, _ in done],
            acc([v for _, v in done]),
            where="post",
            color="tab:red",
            label="best so far",
        )
    failed = [r.number for r in result.records if r.state == "failed"]
    for n in failed:
        ax.axvline(n, color="tab:red", alpha=0.15)
    values = [v for _, v, _ in rows if np.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = 0.1 * (hi - lo) or 0.05 * abs(hi) or 0.05
    metric = name[4:] if name.startswith("val_") else None
    for i, b in enumerate(x for x in result.baselines if x.ok):
        if metric in b.validation:
            v = b.validation[metric]
            off = "" if lo - pad <= v <= hi + pad else f", off the scale at {v:.3g}"
            ax.axhline(v, linestyle=":", color=_COLORS[i % len(_COLORS)], label=f"{b.name} (val{off})")
    ax.set_ylim(lo - pad, hi + pad)  # scaled to the trials: a far-off baseline must not squash them
    _whole_numbers(ax)
    ax.set_xlabel("trial")
    ax.set_ylabel(name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def baselines(result: Result) -> Figure | None:
    metric = "accuracy" if result.task.is_classification else "r2"
    rows = [("tuned", result.validation_scores.get(metric), result.test_scores.get(metric))]
    rows += [(b.name, b.validation.get(metric), b.test.get(metric)) for b in result.baselines if b.ok]
    if len(rows) < 2 or all(v is None for _, v, _ in rows):
        return None
    fig = _figure(7, 3.8)
    ax = fig.subplots()
    x = np.arange(len(rows))
    val = [np.nan if v is None else v for _, v, _ in rows]
    test = [np.nan if t is None else t for _, _, t in rows]
    se = [result.test_se.get(metric, np.nan)] + [np.nan] * (len(rows) - 1)  # measured for the chosen one
    ax.bar(x - 0.2, val, 0.4, label="validation", color="tab:blue")
    ax.bar(x + 0.2, test, 0.4, yerr=se, capsize=4, label="test (± 1 standard error)", color="tab:orange")
    shown = [v for v in (*val, *test) if np.isfinite(v)]
    if shown:  # from near the lowest bar, not from 0: 0.94 against 0.97 must show
        lo, hi = min(shown), max(shown)
        ax.set_ylim(max(lo - 0.15 * (hi - lo or 0.1), min(lo, 0.0) if metric == "r2" else 0.0), hi + 0.05)
    ax.set_xticks(x, [n for n, _, _ in rows])
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return fig


def importances(result: Result) -> Figure | None:
    if not result.importances:
        return None
    items = sorted(result.importances.items(), key=lambda kv: kv[1])
    fig = _figure(6, max(2.5, 0.6 + 0.45 * len(items)))
    ax = fig.subplots()
    ax.barh([k for k, _ in items], [v for _, v in items], color="tab:green")
    ax.set_xlabel("importance (share of the objective's variance)")
    ax.set_xlim(0, 1)
    n = sum(1 for r in result.records if r.state == "complete")
    if n < 20:
        ax.set_title(f"over {n} complete trials: indicative only (fANOVA needs more)", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    return fig


def parallel(result: Result) -> Figure | None:
    """Each complete trial as a line across its searched settings (each axis scaled to the values
    tried, a log axis where a setting spans decades), coloured by the objective."""
    done = [r for r in result.records if r.state == "complete" and r.values and np.isfinite(r.values[0])]
    searched = dict.fromkeys(k for r in done for k in r.params)  # also when a baseline was returned
    names = [k for k in searched if len({repr(r.params.get(k)) for r in done}) > 1]
    if len(done) < 2 or not names:
        return None
    columns = []
    for k in names:
        raw = [r.params.get(k) for r in done]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
            v = np.asarray(raw, dtype=float)
            if v.min() > 0 and v.max() / v.min() > 50:
                v = np.log10(v)
        else:  # choices: their order of first appearance
            order = list(dict.fromkeys(map(repr, raw)))
            v = np.asarray([order.index(repr(x)) for x in raw], dtype=float)
        span = v.max() - v.min()
        columns.append((v - v.min()) / span if span else np.full(len(v), 0.5))
    import matplotlib

    values = np.asarray([r.values[0] for r in done])
    norm = matplotlib.colors.Normalize(values.min(), values.max())
    cmap = matplotlib.colormaps["viridis" if result.objective.directions[0] == "maximize" else "viridis_r"]
    fig = _figure(max(6, 1.6 * len(names)), 4)
    ax = fig.subplots()
    for i, r in enumerate(done):
        line = [c[i] for c in columns]
        if r.number == result.best_trial:
            label = "chosen" if result.chosen == "trial" else "best trial"
            ax.plot(range(len(names)), line, color="tab:red", linewidth=2.5, zorder=3, label=label)
        else:
            ax.plot(range(len(names)), line, color=cmap(norm(values[i])), linewidth=1.0, alpha=0.7)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_yticks([0, 1], ["lowest tried", "highest tried"])
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="upper right")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm, cmap), ax=ax, label=result.objective.names[0])
    return fig


def pareto(result: Result) -> Figure | None:
    if not result.objective.is_multi:
        return None
    pts = [(r.number, r.values) for r in result.records if r.state == "complete" and r.values]
    if not pts:
        return None
    n1, n2 = result.objective.names[:2]
    front = set() if result.pareto_front is None else set(result.pareto_front["number"])
    fig = _figure(6, 5)
    ax = fig.subplots()
    other = [v for n, v in pts if n not in front]
    if other:
        ax.scatter([v[0] for v in other], [v[1] for v in other], color="tab:gray", label="trials")
    members = sorted((v for n, v in pts if n in front), key=lambda v: v[0])
    if members:
        ax.plot(
            [v[0] for v in members], [v[1] for v in members], "o-", color="tab:blue", label="Pareto front"
        )
    chosen = next((v for n, v in pts if n == result.best_trial), None)
    if chosen is not None:
        ax.plot(
            chosen[0], chosen[1], "*", markersize=16, color="tab:red", label=f"chosen #{result.best_trial}"
        )
    ax.set_xlabel(n1)
    ax.set_ylabel(n2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def lr_range_figure(lr_test: Any) -> Figure | None:
    """The LR range test's loss over the learning rate, with the suggested bounds shaded."""
    if lr_test is None or not len(lr_test.lrs):
        return None
    fig = _figure(7, 4)
    ax = fig.subplots()
    ax.plot(lr_test.lrs, lr_test.losses, color="tab:gray", alpha=0.5, label="loss after each step")
    ax.plot(lr_test.lrs, lr_test.smoothed, color="tab:blue", label="smoothed")
    if lr_test.suggested is not None:
        lo, hi = lr_test.suggested
        ax.axvspan(lo, hi, color="tab:green", alpha=0.15, label=f"suggested {lo:.2g}-{hi:.2g}")
    ax.set_xscale("log")
    finite = np.asarray(lr_test.smoothed)[np.isfinite(lr_test.smoothed)]
    if finite.size:
        ax.set_ylim(finite.min() * 0.9, min(finite.max(), finite[0] * 2.5) * 1.05 + 1e-12)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


PLOTS: dict[str, Callable[[Result], Figure | None]] = {
    "learning_curves": learning_curves,
    "gap": gap,
    "objective": objective,
    "baselines": baselines,
    "importances": importances,
    "parallel": parallel,
    "pareto": pareto,
    "lr_range": lambda result: lr_range_figure(result.lr_range),
}


def make_plots(result: Result, folder: Path) -> dict[str, Path]:
    """Draw every plot that has something to show into ``folder``/<name>.png."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, draw in PLOTS.items():
        fig = draw(result)
        if fig is None:
            continue
        if not fig._suptitle:  # every plot says what it shows, also when viewed alone (MLflow UI)
            fig.suptitle(PLOT_TITLES.get(name, name), fontsize=10)
        path = folder / f"{name}.png"
        fig.savefig(path, format="png")
        out[name] = path
    return out

"""k-fold trials (``tune(cv=k)``): one training per fold, the objective is the mean over folds.

Folds run one after another (a fold is an ordinary single-split trial on its part of the
training data, with the trial's seed), so a trial holds one model at a time. Rules:

* **Objective**: the mean over folds of each fold's value at its own best epoch (each fold
  early-stops and restores its best weights like any trial). The per-fold values, their mean
  and standard deviation (``ddof=1``) are in ``record.user_attrs["cv"]``.
* **Pruning**: fold ``j`` reports at step ``j * max_epochs + epoch`` the running mean, over
  the folds done so far and this one, of the objective at that same epoch (a fold that stopped
  earlier counts with its last value). Steps therefore mean the same thing in every trial, and
  the pruner compares trials at matched folds and epochs.
* **Curves**: ``record.epochs`` holds, per epoch, the mean over the folds that trained that
  epoch; live, each fold's ``train_loss``/``val_loss`` go to the tracker as ``fold<j>_...``.
* **Refit rule**: the final model trains on all non-test data for ``refit_epochs = median over
  folds of (best epoch + 1)`` epochs (rounded half up), without early stopping, at the
  learning rate each epoch had in the folds (median over folds, so schedules and plateau
  reductions replay). ``record.best_epoch`` is ``refit_epochs - 1``.
"""

from __future__ import annotations

import gc
import math
import statistics
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from tuner.records import TrialRecord
from tuner.trial.runner import NullReporter, Reporter, TrialContext, TrialOutcome, run_single

__all__ = ["run_folds", "aggregate", "refit_epochs", "CV_KEY"]

#: key of the fold summary in ``TrialRecord.user_attrs``
CV_KEY = "cv"
_LIVE_KEYS = ("train_loss", "val_loss")


class _FoldReporter:
    """Reports fold ``j``'s epochs as the running mean over folds at matched epochs."""

    def __init__(self, outer: Reporter, fold: int, max_epochs: int, done: list[list[float]]) -> None:
        self.outer, self.fold, self.max_epochs, self.done = outer, fold, max_epochs, done

    def report(self, epoch: int, value: float) -> None:
        vals = [c[min(epoch, len(c) - 1)] for c in self.done if c] + [value]
        finite = [v for v in vals if math.isfinite(v)]
        mean = float(np.mean(finite)) if len(finite) == len(vals) else float("nan")
        self.outer.report(self.fold * self.max_epochs + epoch, mean)


def run_folds(
    ctx: TrialContext,
    number: int,
    params: Mapping[str, Any],
    *,
    reporter: Reporter | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> TrialOutcome:
    """Run trial ``number`` once per fold of ``ctx.folds`` and aggregate (rules in the module doc)."""
    X, y = ctx.train
    outer = reporter or NullReporter()
    records: list[TrialRecord] = []
    curves: list[list[float]] = []
    for j, (tr, va) in enumerate(ctx.folds):
        fold_ctx = TrialContext.create(
            ctx.build_model, (X[tr], y[tr]), (X[va], y[va]), ctx.objective, ctx.metrics, ctx.settings
        )
        live = None
        if on_epoch is not None:

            def live(epoch: int, m: dict[str, float], j: int = j) -> None:
                on_epoch(epoch, {f"fold{j}_{k}": m[k] for k in _LIVE_KEYS if k in m})

        out = run_single(
            fold_ctx,
            number,
            params,
            reporter=_FoldReporter(outer, j, ctx.settings.max_epochs, curves),
            on_epoch=live,
            keep_model=True,  # released here: one gc pass per trial, not per fold
        )
        if out.adapter is not None:
            out.adapter.release()
        rec = out.record
        records.append(rec)
        if rec.state != "complete":
            break
        curves.append([ctx.objective.values(e)[0] for e in rec.epochs])
    gc.collect()
    record = aggregate(records, len(ctx.folds))
    if on_epoch is not None:
        for epoch, metrics in enumerate(record.epochs):
            on_epoch(epoch, dict(metrics))
    return TrialOutcome(record)


def refit_epochs(best_epochs: list[int]) -> int:
    """Epochs of the refit on all non-test data: median over folds of (best epoch + 1), half up."""
    return max(1, int(math.floor(statistics.median(b + 1 for b in best_epochs) + 0.5)))


def _mean_curve(records: list[TrialRecord]) -> tuple[dict[str, float], ...]:
    out = []
    for e in range(max((len(r.epochs) for r in records), default=0)):
        rows = [r.epochs[e] for r in records if len(r.epochs) > e]
        keys = set.intersection(*(set(row) for row in rows))
        out.append({k: float(np.mean([row[k] for row in rows])) for k in sorted(keys)})
    return tuple(out)


def aggregate(records: list[TrialRecord], k: int) -> TrialRecord:
    """One trial record from the fold records (stops at the first fold that did not complete)."""
    first, last = records[0], records[-1]
    epochs = _mean_curve(records)
    common = dict(
        number=first.number,
        params=dict(first.params),
        epochs=epochs,
        injected=first.injected,
        duration=sum(r.duration for r in records),
        framework=first.framework,
    )
    j = len(records) - 1
    if last.state == "failed":
        return TrialRecord(
            **common, state="failed", error=f"fold {j + 1}/{k}: {last.error}", traceback=last.traceback
        )
    if last.state == "pruned":
        return TrialRecord(**common, state="pruned", error=None)
    n_obj = len(first.values or ())
    per_fold = [list(r.values or ()) for r in records]
    values = tuple(float(np.mean([v[i] for v in per_fold])) for i in range(n_obj))
    primary = [v[0] for v in per_fold]
    best_epochs = [int(r.best_epoch or 0) for r in records]
    n_refit = refit_epochs(best_epochs)
    fold_metrics = [dict(r.best_metrics) for r in records]
    keys = sorted(set.intersection(*(set(m) for m in fold_metrics)))
    lr_path = [
        float(np.median([r.epochs[e]["lr"] for r in records if len(r.epochs) > e and "lr" in r.epochs[e]]))
        for e in range(n_refit)
        if any(len(r.epochs) > e and "lr" in r.epochs[e] for r in records)
    ]
    std = float(np.std(primary, ddof=1)) if len(primary) > 1 else 0.0
    summary = {
        "k": k,
        "values": primary,
        "fold_values": per_fold,
        "mean": values[0],
        "std": std,
        "best_epochs": best_epochs,
        "refit_epochs": n_refit,
        "lr_path": lr_path,
        "metrics": {key: float(np.mean([m[key] for m in fold_metrics])) for key in keys},
        "metrics_std": {
            key: float(np.std([m[key] for m in fold_metrics], ddof=1)) if k > 1 else 0.0 for key in keys
        },
    }
    flat = {"cv_std": std, "refit_epochs": n_refit}
    flat.update({f"cv_fold_{i}": v for i, v in enumerate(primary)})
    return TrialRecord(
        **common,
        state="complete",
        values=values,
        best_epoch=min(n_refit, len(epochs)) - 1,
        user_attrs={CV_KEY: summary, "metrics": flat},
    )

"""Framework-neutral metrics computed from standard predictions.

Implemented in numpy (a few microseconds each) because they run twice per epoch of
every trial; ``tests/test_metrics.py`` checks each against scikit-learn's value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from tuner.errors import ConfigError
from tuner.records import TaskInfo

__all__ = ["available_metrics", "resolve_metrics", "compute", "standard_loss", "DIRECTIONS"]

_EPS = 1e-7

# direction of every metric name; "loss" is the task loss (log loss / MSE / user loss)
DIRECTIONS: dict[str, str] = {
    "loss": "minimize",
    "accuracy": "maximize",
    "log_loss": "minimize",
    "f1": "maximize",
    "roc_auc": "maximize",
    "mse": "minimize",
    "mae": "minimize",
    "r2": "maximize",
}


def available_metrics(task: TaskInfo) -> tuple[str, ...]:
    if task.kind == "binary":
        return ("accuracy", "log_loss", "f1", "roc_auc")
    if task.kind == "multiclass":
        return ("accuracy", "log_loss", "f1")
    return ("mse", "mae", "r2")


def resolve_metrics(task: TaskInfo, metrics: Iterable[str] | None) -> tuple[str, ...]:
    """Validate the user's ``metrics=`` against the task; None means all that apply."""
    allowed = available_metrics(task)
    if metrics is None:
        return allowed
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, Iterable) or isinstance(metrics, Mapping):
        raise ConfigError(
            f"metrics must be None or a list of names such as {list(allowed)}, got {metrics!r}."
        )
    names = []
    for m in metrics:
        if not isinstance(m, str):
            raise ConfigError(
                f"metrics must be names such as {list(allowed)}, got {m!r}. "
                "Keras metric objects are not needed: regtuner computes metrics from predictions."
            )
        if m not in allowed:
            raise ConfigError(
                f"metric {m!r} does not apply to a {task.kind} task; choose from {list(allowed)}."
            )
        names.append(m)
    return tuple(dict.fromkeys(names))


def _proba(task: TaskInfo, pred: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(pred, dtype=np.float64), _EPS, 1.0 - _EPS)
    return p / p.sum(axis=1, keepdims=True)


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    return float(-np.mean(np.log(proba[np.arange(len(y)), y])))


def macro_f1(y: np.ndarray, label: np.ndarray, k: int) -> float:
    tp = np.bincount(y[label == y], minlength=k).astype(np.float64)
    pred_count = np.bincount(label, minlength=k)
    true_count = np.bincount(y, minlength=k)
    denom = pred_count + true_count
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    present = (true_count + pred_count) > 0  # sklearn averages over labels seen in y or pred
    return float(f1[present].mean()) if present.any() else 0.0


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    # average ranks of ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _regression(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    pred = np.asarray(pred, dtype=np.float64).reshape(len(y), -1)
    return y, pred


def standard_loss(task: TaskInfo, y: np.ndarray, pred: np.ndarray, loss: str | None = None) -> float:
    """The task loss on predictions: log loss, or MSE / MAE / Huber for regression."""
    if task.is_classification:
        return log_loss(np.asarray(y), _proba(task, pred))
    y, pred = _regression(y, pred)
    err = pred - y
    name = (loss or "mse").lower()
    if name in ("mae", "mean_absolute_error", "l1", "l1loss"):
        return float(np.mean(np.abs(err)))
    if name in ("huber", "huberloss", "smooth_l1", "smoothl1loss"):
        a = np.abs(err)
        return float(np.mean(np.where(a <= 1.0, 0.5 * err**2, a - 0.5)))
    return float(np.mean(err**2))


def compute(task: TaskInfo, y: np.ndarray, pred: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """The named metrics of predictions ``pred`` against encoded targets ``y``."""
    out: dict[str, float] = {}
    if task.is_classification:
        y = np.asarray(y).astype(np.int64).ravel()
        proba = _proba(task, pred)
        label = proba.argmax(axis=1)
        for name in names:
            if name == "accuracy":
                out[name] = float(np.mean(label == y))
            elif name == "log_loss":
                out[name] = log_loss(y, proba)
            elif name == "f1":
                out[name] = macro_f1(y, label, proba.shape[1])
            elif name == "roc_auc":
                out[name] = roc_auc(y, proba[:, 1])
        return out
    y, pred = _regression(y, pred)
    err = pred - y
    for name in names:
        if name == "mse":
            out[name] = float(np.mean(err**2))
        elif name == "mae":
            out[name] = float(np.mean(np.abs(err)))
        elif name == "r2":
            ss_res = (err**2).sum(axis=0)
            ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
            r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), 0.0)
            out[name] = float(r2.mean())
    return out

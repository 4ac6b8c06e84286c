"""Small helpers the rules share."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tuner.records import TaskInfo, TrialRecord

BOUNDED = frozenset({"accuracy", "f1", "roc_auc", "r2"})
HIGHER_IS_BETTER = BOUNDED


def main_metric(task: TaskInfo) -> str:
    return "accuracy" if task.is_classification else "r2"


def loss_key(task: TaskInfo, scores: Mapping[str, float]) -> str:
    """The framework-neutral loss in ``scores``: log_loss or mse when measured, else the task loss."""
    name = "log_loss" if task.is_classification else "mse"
    return name if name in scores else "loss"


def curve(record: TrialRecord, key: str) -> np.ndarray | None:
    values = [e.get(key) for e in record.epochs]
    if not values or any(v is None for v in values):
        return None
    arr = np.asarray(values, dtype=np.float64)
    return arr if np.all(np.isfinite(arr)) else None


def rel(a: float, b: float) -> float:
    """(a - b) / |b|, safe for b near 0."""
    return float((a - b) / max(abs(b), 1e-12))


def fmt(v: float) -> float:
    """A number rounded for evidence (4 significant digits)."""
    return float(f"{v:.4g}")


def oriented(name: str, val: float, test: float) -> float:
    """How much better ``val`` looks than ``test`` (positive: validation is optimistic)."""
    return val - test if name in HIGHER_IS_BETTER else test - val


def prior_loss(task: TaskInfo, y_fit: np.ndarray, y_eval: np.ndarray) -> float:
    """Loss of predicting the class prior (log loss) or the mean (MSE) of ``y_fit`` on ``y_eval``."""
    if task.is_classification:
        counts = np.bincount(y_fit.astype(np.int64), minlength=task.n_classes).astype(np.float64)
        p = np.clip(counts / counts.sum(), 1e-7, 1.0)
        return float(-np.mean(np.log(p[y_eval.astype(np.int64)])))
    yf = y_fit.reshape(len(y_fit), -1).astype(np.float64)
    ye = y_eval.reshape(len(y_eval), -1).astype(np.float64)
    return float(np.mean((ye - yf.mean(axis=0)) ** 2))


def curve_sources(ev) -> list[tuple[str, TrialRecord]]:
    """Curves worth reading: the untuned model's full run, then the chosen trial's."""
    out = []
    untuned = ev.baseline("untuned")
    if untuned is not None and untuned.record is not None and untuned.record.epochs:
        out.append(("the untuned model", untuned.record))
    out.append((f"the chosen trial #{ev.chosen.number}", ev.chosen))
    return out

"""Arrays in and out of scikit-learn estimators for the scikit-learn adapter."""

from __future__ import annotations

from typing import Any

import numpy as np

from tuner._imports import require
from tuner.errors import TrialDiverged

__all__ = ["flat", "probabilities", "multi_output", "convergence_warning", "call_or_diverged"]


def flat(X: np.ndarray) -> np.ndarray:
    """Rows of features: inputs of more than two axes are flattened."""
    X = np.asarray(X)
    return X.reshape(len(X), -1) if X.ndim > 2 else X


def probabilities(est: Any, X: np.ndarray, k: int) -> np.ndarray:
    """Class probabilities ``(n, k)`` of a fitted classifier, columns in encoded-class order.

    ``predict_proba`` where the estimator has it; else a sigmoid (binary) or softmax of
    ``decision_function``; else one-hot predictions. Classes absent from training get 0.
    """
    classes = np.asarray(est.classes_).astype(np.int64)
    if hasattr(est, "predict_proba"):
        scores = np.asarray(est.predict_proba(X), dtype=np.float64)
    elif hasattr(est, "decision_function"):
        d = np.asarray(est.decision_function(X), dtype=np.float64)
        if d.ndim == 1:
            p = 0.5 * (1.0 + np.tanh(0.5 * d))
            scores = np.stack([1.0 - p, p], axis=1)
        else:
            e = np.exp(d - d.max(axis=1, keepdims=True))
            scores = e / e.sum(axis=1, keepdims=True)
    else:
        scores = (np.asarray(est.predict(X)).reshape(-1, 1) == classes[None, :]).astype(np.float64)
    out = np.zeros((len(X), k), dtype=np.float64)
    out[:, classes] = scores
    return out


def multi_output(est: Any) -> bool:
    """Whether ``est`` fits several regression targets at once (True when its tags do not say)."""
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(est).target_tags.multi_output)
    except (ImportError, AttributeError):
        return True  # unknown: let fit() tell


def convergence_warning() -> type[Warning]:
    return require("sklearn.exceptions").ConvergenceWarning


def call_or_diverged(fn: Any, *args: Any, **kwargs: Any) -> None:
    """Call ``fn``; scikit-learn's non-finite-weights and overflow errors become a diverged trial."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging fit overflows on its way
            fn(*args, **kwargs)
    except ValueError as exc:
        text = str(exc)
        if any(word in text.lower() for word in ("non-finite", "overflow", "infinity")):
            raise TrialDiverged(f"diverged: {text.splitlines()[0]}") from exc
        raise

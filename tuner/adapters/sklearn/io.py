"""Arrays in and out of scikit-learn estimators for the scikit-learn adapter."""

from __future__ import annotations

from typing import Any

import numpy as np

from tuner._imports import require
from tuner.data.tables import Table
from tuner.errors import ModelError, TrialDiverged

__all__ = ["flat", "probabilities", "multi_output", "convergence_warning", "call_or_diverged", "check_table"]


def flat(X: np.ndarray) -> np.ndarray:
    """Rows of features: inputs of more than two axes are flattened."""
    X = np.asarray(X)
    return X.reshape(len(X), -1) if X.ndim > 2 else X


def probabilities(est: Any, X: np.ndarray, labels: tuple[Any, ...]) -> np.ndarray:
    """Class probabilities ``(n, k)`` of a classifier fit on the user's ``labels``, columns in their
    (encoded-class) order.

    ``predict_proba`` where the estimator has it; else a sigmoid (binary) or softmax of
    ``decision_function``; else one-hot predictions. Classes absent from training get 0.
    """
    index = {label: i for i, label in enumerate(labels)}
    classes = np.array([index[c] for c in np.asarray(est.classes_).tolist()], dtype=np.int64)
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
        predicted = np.array([index[c] for c in np.asarray(est.predict(X)).tolist()], dtype=np.int64)
        scores = (predicted.reshape(-1, 1) == classes[None, :]).astype(np.float64)
    out = np.zeros((len(X), len(labels)), dtype=np.float64)
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


def check_table(final: Any, before: list[Any], rows: Any, y: np.ndarray, table: Table) -> None:
    """A raw table needs preprocessing steps before the final estimator (fit here on the batch
    ``rows`` to show they take it), or a final estimator that takes what the table holds."""
    import warnings

    from sklearn.base import clone
    from sklearn.utils import get_tags

    name = type(final).__name__
    if before:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for step in before:
                    rows = clone(step).fit_transform(rows, y)
        except Exception as exc:  # noqa: BLE001 - any sklearn error on the batch
            raise ModelError(
                f"the Pipeline's steps before {name} failed on a batch of X's raw table: "
                f"{type(exc).__name__}: {exc}. {table.problem}"
            ) from exc
        return
    tags = get_tags(final).input_tags
    dtypes = {str(c): str(d) for c, d in getattr(rows, "dtypes", {}).items()}
    categories = all(dtypes.get(c) == "category" for c in table.text)  # HistGradientBoosting's own
    takes_text = tags.string or (categories and "categorical_features" in final.get_params())
    if (table.text and not takes_text) or (table.missing and not tags.allow_nan):
        raise ModelError(f"{name} takes no raw table. {table.problem}")

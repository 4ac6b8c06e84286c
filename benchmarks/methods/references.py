"""Non-neural references on the same split: HistGradientBoosting and a regularized linear model.

Both see rows flattened to vectors. HistGradientBoosting uses its defaults with early stopping on
the validation part; the linear model (standardized LogisticRegression / Ridge) picks ``C`` /
``alpha`` from a log grid by validation loss, as ``tune()``'s baselines do. ``epochs_trained``
is 0 (no epochs); ``trials`` is the number of fits.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from benchmarks.methods import Budget, Row
from benchmarks.tasks import Split

__all__ = ["hist_gradient_boosting", "linear_model", "score"]

C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
ALPHA_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


def score(split: Split, est: Any, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(metric, loss) of a fitted estimator: accuracy and log loss, or R² and MSE."""
    from sklearn.metrics import accuracy_score, log_loss, mean_squared_error, r2_score

    if split.kind == "regression":
        pred = est.predict(_flat(X))
        return float(r2_score(y, pred)), float(mean_squared_error(y, pred))
    proba = est.predict_proba(_flat(X))
    labels = np.asarray(est.classes_)
    return (
        float(accuracy_score(y, labels[proba.argmax(1)])),
        float(log_loss(y, proba, labels=labels)),
    )


def _row(split: Split, name: str, seed: int, start: float, est: Any, fits: int, about: str) -> Row:
    val, _ = score(split, est, *split.validation)
    test, _ = score(split, est, *split.test)
    return Row(
        task=split.task,
        method=name,
        seed=seed,
        framework="sklearn",
        metric=split.metric,
        test_metric=test,
        reported_val=val,
        wall_s=time.perf_counter() - start,
        epochs_trained=0,
        trials=fits,
        extra={"model": about},
    )


def hist_gradient_boosting(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    start = time.perf_counter()
    cls = HistGradientBoostingRegressor if split.kind == "regression" else HistGradientBoostingClassifier
    est = cls(early_stopping=True, random_state=seed)
    (Xt, yt), (Xv, yv) = split.train, split.validation
    est.fit(_flat(Xt), yt, X_val=_flat(Xv), y_val=yv)
    return _row(split, "hgb", seed, start, est, 1, f"HistGradientBoosting, {est.n_iter_} iterations")


def linear_model(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    if split.kind == "regression":
        grid, make = ALPHA_GRID, lambda a: make_pipeline(StandardScaler(), Ridge(alpha=a))
    else:
        grid, make = C_GRID, lambda c: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    best = None
    for value in grid:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = make(value).fit(_flat(split.train[0]), split.train[1])
        loss = score(split, est, *split.validation)[1]
        if best is None or loss < best[0]:
            best = (loss, value, est)
    assert best is not None
    name = "Ridge(alpha" if split.kind == "regression" else "LogisticRegression(C"
    return _row(split, "linear", seed, start, best[2], len(grid), f"{name}={best[1]:g})")

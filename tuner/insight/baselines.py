"""Baselines on the same split as the trials: is tuning worth it, and is a neural net the right tool?

Every study (``tune(baselines=True)``, the default) also measures, on exactly the rows the trials
use, outside the trial budget:

==========  ===========================================================================
name        what
==========  ===========================================================================
dummy       ``DummyClassifier(strategy="prior")`` / ``DummyRegressor(strategy="mean")``
linear      standardized ``LogisticRegression`` / ``Ridge``; ``C`` (``alpha``) picked from a
            log grid by validation loss
boosting    ``HistGradientBoosting*`` with its defaults, early stopping on the validation part
untuned     ``build_model`` as given: no knob injected, the trial protocol otherwise
            (``max_epochs`` epochs, the best validation epoch kept)
textbook    the blog recipe: dropout 0.5 (0.3 for image and sequence inputs), L2 0.01,
            Adam at 1e-3, batch 32, early stopping with patience 10
==========  ===========================================================================

Scikit-learn models see rows flattened to vectors, and a raw table (text, missing values) encoded
as ``tune(preprocess=True)`` would. With ``cv=k`` every validation number is the
mean over the same folds as the trials; the final sklearn model is refit on all non-test rows
(boosting with the median of the folds' iteration counts), the neural ones by the cv refit rule.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.data.splits import Pair
from tuner.data.tables import Preprocessor
from tuner.insight.refit import evaluate
from tuner.records import TaskInfo, TrialRecord
from tuner.trial.metrics import compute, standard_loss
from tuner.trial.runner import TrialContext, takes_hp

if TYPE_CHECKING:
    from tuner.data.prepare import PreparedData
    from tuner.space.searchspace import SearchSpace

__all__ = ["Baseline", "run_baselines", "textbook_params", "NAMES", "BASELINE_NUMBERS"]

log = logging.getLogger("tuner")

NAMES: tuple[str, ...] = ("dummy", "linear", "boosting", "untuned", "textbook")
C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
ALPHA_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
SMALL = 2_000_000  # training values (rows x features) below which sklearn runs single-threaded
#: the trial numbers (so the seeds) of the neural baselines: a refit of one trains the same model
BASELINE_NUMBERS = {"untuned": 900_001, "textbook": 900_002}


@dataclass(frozen=True)
class Baseline:
    """One baseline's scores (``loss`` and the task metrics) on the study's validation and test parts."""

    name: str
    description: str
    validation: dict[str, float]
    test: dict[str, float]
    rows: dict[str, int]
    duration: float = 0.0
    error: str | None = None
    record: TrialRecord | None = field(default=None, repr=False, compare=False)
    params: dict[str, Any] = field(default_factory=dict)  # a neural baseline's settings (as a trial's)
    val_pred: np.ndarray | None = field(default=None, repr=False, compare=False)  # neural, no cv

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.validation)


def textbook_params(task: TaskInfo) -> dict[str, Any]:
    """The hand-tuned recipe the search has to beat."""
    return {
        "dropout": 0.5 if task.input_kind == "tabular" else 0.3,
        "l2": 0.01,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "lr_schedule": "constant",
        "batch_size": 32,
        "patience": 10,
    }


def run_baselines(
    ctx: TrialContext, prepared: PreparedData, space: SearchSpace, untuned_patience: int = 0
) -> list[Baseline]:
    """Fit every baseline on the study's split; a baseline that fails is recorded, never raised.

    ``untuned_patience`` > 0 (an open budget, ``max_epochs="auto"``) lets early stopping end the
    untuned model, which otherwise runs every epoch of the budget."""
    rows = {"train": len(prepared.train[0]), "test": len(prepared.test[0]) if prepared.test else 0}
    if ctx.folds:
        rows["folds"] = len(ctx.folds)
    elif ctx.validation is not None:
        rows["validation"] = len(ctx.validation[0])
    out = []
    ref_ctx, ref_prepared = _encoded(ctx, prepared)
    with _threads(ctx.train[0]):
        for name, fn in (("dummy", _dummy), ("linear", _linear), ("boosting", _boosting)):
            out.append(_guard(name, rows, lambda fn=fn: fn(ref_ctx, ref_prepared)))
    hps = _user_hyperparameters(space)
    nn = {
        "untuned": {
            **(hps if takes_hp(ctx.build_model) else {}),
            **({"patience": untuned_patience} if untuned_patience else {}),
        },
        "textbook": {**textbook_params(prepared.task), **hps},
    }
    preds: dict[str, np.ndarray] = {}
    for name, params in nn.items():
        run = _guard(name, rows, lambda name=name, params=params: _neural(ctx, prepared, name, params, preds))
        out.append(replace(run, params=dict(params), val_pred=preds.get(name)))
    return out


def _encoded(ctx: TrialContext, prepared: PreparedData) -> tuple[TrialContext, PreparedData]:
    """The parts as the reference models take them: a raw table encoded as ``preprocess=True`` would,
    fitted on the training part (with cv, on all of it: the folds' scores share its encoding)."""
    table = ctx.settings.table
    if table is None:
        return ctx, prepared
    pre = Preprocessor(table, scale_target=False).fit(*ctx.train)

    def enc(pair: Pair | None) -> Pair | None:
        return None if pair is None else (pre.transform(pair[0]), pair[1])

    parts = {"train": enc(prepared.train), "validation": enc(prepared.validation), "test": enc(prepared.test)}
    return replace(ctx, train=enc(ctx.train), validation=enc(ctx.validation)), replace(prepared, **parts)


def _guard(name: str, rows: dict[str, int], fn: Callable[[], tuple[str, dict, dict, Any]]) -> Baseline:
    start = time.perf_counter()
    try:
        description, val, test, record = fn()
        error = None if val else (record.error if record is not None and record.error else "no result")
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a baseline never stops the study
        log.warning("baseline %s failed: %s", name, exc)
        description, val, test, record, error = name, {}, {}, None, f"{type(exc).__name__}: {exc}"
    return Baseline(name, description, val, test, dict(rows), time.perf_counter() - start, error, record)


# ----------------------------------------------------------------------------- neural baselines


def _neural(
    ctx: TrialContext, prepared: PreparedData, name: str, params: dict[str, Any], preds: dict[str, np.ndarray]
) -> tuple:
    ev = evaluate(ctx, params, BASELINE_NUMBERS[name], prepared.test, keep_val_pred=True)
    if ev.val_pred is not None:
        preds[name] = ev.val_pred  # for the paired comparison with the chosen trial (selection.py)
    if name == "untuned":
        what = "build_model as given, nothing injected"
    else:
        shown = {
            k: params[k] for k in ("dropout", "l2", "optimizer", "learning_rate", "batch_size", "patience")
        }
        what = "textbook recipe " + ", ".join(f"{k}={v}" for k, v in shown.items())
    if ev.errors and not ev.validation:
        raise RuntimeError(ev.errors[0])
    return what, ev.validation, ev.tests[0] if ev.tests else {}, ev.record


def _user_hyperparameters(space: SearchSpace) -> dict[str, Any]:
    """Values for the builder's own hyperparameters: the first start point, else a middle value."""
    start = space.start_points[0] if space.start_points else {}
    fixed, dists = space.fixed, space.distributions
    out = {}
    for name in space.hyperparameter_names:
        if name in start:
            out[name] = start[name]
        elif name in fixed:
            out[name] = fixed[name]
        elif name in dists:
            out[name] = _middle(dists[name])
    return out


def _middle(dist: Any) -> Any:
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        return dist.choices[0]
    if isinstance(dist, od.IntDistribution):
        return dist.low
    return float(np.sqrt(dist.low * dist.high)) if dist.log else (dist.low + dist.high) / 2


# ----------------------------------------------------------------------------- scikit-learn baselines


def _threads(X: np.ndarray) -> Any:
    """One OpenMP/BLAS thread for small data: on a busy machine more threads make HGB 10-30x slower."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1) if X.size <= SMALL else contextlib.nullcontext()


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


def _predict(est: Any, X: np.ndarray, task: TaskInfo) -> np.ndarray:
    if not task.is_classification:
        return np.asarray(est.predict(_flat(X)), dtype=np.float64).reshape(len(X), -1)
    proba = est.predict_proba(_flat(X))
    out = np.zeros((len(X), task.n_classes))
    out[:, np.asarray(est.classes_, dtype=np.int64)] = proba
    return out


def _scores(ctx: TrialContext, est: Any, pair: Pair) -> dict[str, float]:
    task, (X, y) = ctx.settings.task, pair
    pred = _predict(est, X, task)
    loss = ctx.settings.loss if isinstance(ctx.settings.loss, str) else None
    return {"loss": standard_loss(task, y, pred, loss), **compute(task, y, pred, ctx.metrics)}


def _splits(ctx: TrialContext) -> list[tuple[Pair, Pair]]:
    """(fit part, validation part) pairs: the folds with cv, else train and validation."""
    X, y = ctx.train
    if ctx.folds:
        return [((X[a], y[a]), (X[b], y[b])) for a, b in ctx.folds]
    if ctx.validation is None:
        raise ValueError("baselines need a validation part or cv folds; prepare() makes one or the other")
    return [(ctx.train, ctx.validation)]


def _mean(scores: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}


def _fit(est: Any, pair: Pair, **kw: Any) -> Any:
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(_flat(pair[0]), pair[1], **kw)


def _select(
    ctx: TrialContext, prepared: PreparedData, make: Callable[[Any], Any], grid: tuple, fit_kw: Callable
) -> tuple[Any, dict[str, float], dict[str, float], Any]:
    """Pick the grid value with the lowest mean validation loss; refit on all non-test rows for cv."""
    best = None
    for value in grid:
        fits = [(_fit(make(value), a, **fit_kw(a, b)), b) for a, b in _splits(ctx)]
        val = _mean([_scores(ctx, est, b) for est, b in fits])
        if best is None or val["loss"] < best[1]["loss"]:
            best = (value, val, fits)
    assert best is not None
    value, val, fits = best
    est = fits[0][0] if not ctx.folds else _fit(make(value), ctx.train)
    test = _scores(ctx, est, prepared.test) if prepared.test is not None else {}
    return value, val, test, fits


def _dummy(ctx: TrialContext, prepared: PreparedData) -> tuple:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    task = ctx.settings.task
    make = (
        (lambda _: DummyClassifier(strategy="prior"))
        if task.is_classification
        else (lambda _: DummyRegressor(strategy="mean"))
    )
    _, val, test, _ = _select(ctx, prepared, make, (None,), lambda a, b: {})
    what = "majority class (class prior)" if task.is_classification else "mean of the training targets"
    return what, val, test, None


def _linear(ctx: TrialContext, prepared: PreparedData) -> tuple:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if ctx.settings.task.is_classification:
        value, val, test, _ = _select(
            ctx,
            prepared,
            lambda c: make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)),
            C_GRID,
            lambda a, b: {},
        )
        return f"LogisticRegression(C={value:g}), standardized", val, test, None
    value, val, test, _ = _select(
        ctx, prepared, lambda a: make_pipeline(StandardScaler(), Ridge(alpha=a)), ALPHA_GRID, lambda a, b: {}
    )
    return f"Ridge(alpha={value:g}), standardized", val, test, None


def _boosting(ctx: TrialContext, prepared: PreparedData) -> tuple:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.multioutput import MultiOutputRegressor

    task = ctx.settings.task
    seed = ctx.settings.seed

    def make(max_iter: Any) -> Any:
        kw: dict[str, Any] = {"random_state": seed}
        kw.update(
            {"early_stopping": True} if max_iter is None else {"early_stopping": False, "max_iter": max_iter}
        )
        if task.is_classification:
            return HistGradientBoostingClassifier(**kw)
        if task.n_outputs > 1:
            return MultiOutputRegressor(HistGradientBoostingRegressor(**kw))
        return HistGradientBoostingRegressor(**kw)

    def early_stop_on(a: Pair, b: Pair) -> dict[str, Any]:
        if not task.is_classification and task.n_outputs > 1:
            return {}  # MultiOutputRegressor cannot pass X_val: internal 10 % split
        if "X_val" not in inspect.signature(HistGradientBoostingRegressor.fit).parameters:
            return {}  # scikit-learn < 1.7 stops on an internal 10 % split
        return {"X_val": _flat(b[0]), "y_val": b[1]}

    scores, iters = [], []
    for a, b in _splits(ctx):
        est = _fit(make(None), a, **early_stop_on(a, b))
        scores.append(_scores(ctx, est, b))
        iters.append(int(getattr(est, "n_iter_", 100) or 100))
    val = _mean(scores)
    if ctx.folds:
        n_iter = max(1, int(np.median(iters)))
        est = _fit(make(n_iter), ctx.train)
        what = f"HistGradientBoosting, early stopping on each fold; refit with {n_iter} iterations"
    else:
        what = f"HistGradientBoosting defaults, early stopping on the validation part ({iters[0]} iterations)"
    test = _scores(ctx, est, prepared.test) if prepared.test is not None else {}
    return what, val, test, None

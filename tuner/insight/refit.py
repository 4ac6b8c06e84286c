"""Train one configuration for the final numbers: validation estimate, refit, test scores, repeats.

Used for the chosen configuration and for the neural baselines, so both are measured the same
way. Without ``cv`` the refit is the trial itself (train part, early stopping on the validation
part, best epoch kept), with the trial's seed, so repeat 0 reproduces the chosen trial. With
``cv`` the refit trains on all non-test data for the epoch count learned from the folds
(:mod:`tuner.trial.folds`). Repeat ``i > 0`` changes the seed (initialization, shuffling, dropout masks)
and nothing else.
"""

from __future__ import annotations

import logging
import math
import time
import traceback as tb
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tuner.adapters.base import Adapter
from tuner.adapters.wrap import make_adapter
from tuner.errors import TrialDiverged
from tuner.insight.result import scores_from
from tuner.records import TrialRecord
from tuner.space.hp import HyperParameters
from tuner.trial.dispatch import run_trial
from tuner.trial.folds import CV_KEY
from tuner.trial.metrics import compute, standard_loss
from tuner.trial.runner import TrialContext, build, seed_everything, trial_seed

__all__ = ["Evaluated", "evaluate", "validation_scores", "score", "scorer", "bootstrap_se", "fit_fixed"]

log = logging.getLogger("tuner")

REPEAT_STRIDE = 104_729  # seed offset between repeats
BOOTSTRAP_REPS = 200


@dataclass
class Evaluated:
    """One configuration measured: its validation estimate and one test score per repeat."""

    record: TrialRecord | None
    validation: dict[str, float]
    tests: list[dict[str, float]] = field(default_factory=list)
    model: Any = None
    adapter: Adapter | None = None  # keep_model: the adapter of ``model``, for Result.predict
    test_pred: np.ndarray | None = None  # repeat 0's test predictions
    val_pred: np.ndarray | None = None  # keep_val_pred: repeat 0's validation predictions (no cv)
    errors: list[str] = field(default_factory=list)
    adapter_loss: bool = False  # the loss came from the adapter (a custom loss), not the standard one


def validation_scores(record: TrialRecord) -> dict[str, float]:
    """The validation estimate of a trial: the mean over folds with cv, else its best epoch."""
    cv = record.user_attrs.get(CV_KEY) if record.user_attrs else None
    metrics = cv["metrics"] if cv else record.best_metrics
    return scores_from(metrics, "val_")


def score(adapter: Adapter, ctx: TrialContext, X: np.ndarray, y: np.ndarray) -> tuple[dict[str, float], Any]:
    """Loss and metrics of ``adapter`` on ``(X, y)``, and the predictions."""
    pred = adapter.predict(X)
    loss = adapter.loss_value(y, pred)
    if loss is None:
        loss = standard_loss(ctx.settings.task, y, pred, _loss_name(ctx))
    return {"loss": float(loss), **compute(ctx.settings.task, y, pred, ctx.metrics)}, pred


def scorer(ctx: TrialContext, adapter: Adapter, name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """``score(y, pred)`` for one metric name; ``"loss"`` is the adapter's loss when it has its own."""
    task = ctx.settings.task
    if name != "loss":
        return lambda y, pred: compute(task, y, pred, (name,)).get(name, math.nan)

    def loss(y: np.ndarray, pred: np.ndarray) -> float:
        value = adapter.loss_value(y, pred)
        return standard_loss(task, y, pred, _loss_name(ctx)) if value is None else float(value)

    return loss


def bootstrap_se(
    ctx: TrialContext, y: np.ndarray, pred: np.ndarray, *, with_loss: bool, reps: int = BOOTSTRAP_REPS
) -> dict[str, float]:
    """Standard error of each test score from resampling the test rows (seeded)."""
    rng = np.random.default_rng(12345)
    task, n = ctx.settings.task, len(y)
    draws: dict[str, list[float]] = {}
    for _ in range(reps):
        idx = rng.integers(0, n, n)
        values = compute(task, y[idx], pred[idx], ctx.metrics)
        if with_loss:
            values["loss"] = standard_loss(task, y[idx], pred[idx], _loss_name(ctx))
        for k, v in values.items():
            draws.setdefault(k, []).append(v)
    return {k: float(np.nanstd(v, ddof=1)) for k, v in draws.items() if np.isfinite(v).sum() > 1}


def _loss_name(ctx: TrialContext) -> str | None:
    return ctx.settings.loss if isinstance(ctx.settings.loss, str) else None


class _FixedEpochs:
    """Hooks for a refit of exactly ``n`` epochs at a replayed learning-rate path (no validation)."""

    def __init__(self, ctx: TrialContext, adapter: Adapter, n: int, lrs: list[float], base_lr: float) -> None:
        self.ctx, self.adapter, self.max_epochs = ctx, adapter, n
        self.lrs = lrs or [base_lr]
        X, y = ctx.train
        idx = ctx.train_eval_idx if len(ctx.train_eval_idx) else np.arange(len(X))
        self._eval = (X[idx], y[idx])
        self.history: list[dict[str, float]] = []
        self._lr = self.lrs[0]

    def learning_rate(self, epoch: int) -> float:
        self._lr = float(self.lrs[min(epoch, len(self.lrs) - 1)])
        return self._lr

    def batch_loss(self, value: float) -> None:
        if not math.isfinite(value):
            raise TrialDiverged(f"diverged: the training loss became {value} during the refit")

    def epoch_end(self, epoch: int) -> bool:
        X, y = self._eval
        pred = self.adapter.predict(X)
        loss = self.adapter.loss_value(y, pred)
        if loss is None:
            loss = standard_loss(self.ctx.settings.task, y, pred, _loss_name(self.ctx))
        if not math.isfinite(loss):
            raise TrialDiverged(f"diverged: the training loss became {loss} at refit epoch {epoch}")
        metrics = {"train_loss": float(loss), "lr": self._lr}
        metrics.update(
            {f"train_{k}": v for k, v in compute(self.ctx.settings.task, y, pred, self.ctx.metrics).items()}
        )
        self.history.append(metrics)
        return epoch + 1 >= self.max_epochs


def fit_fixed(
    ctx: TrialContext, params: Mapping[str, Any], epochs: int, lrs: list[float], seed: int, number: int
) -> tuple[Adapter | None, TrialRecord]:
    """Train on all of ``ctx.train`` for exactly ``epochs`` epochs (the cv refit); never raises."""
    start = time.perf_counter()
    adapter: Adapter | None = None
    hooks: _FixedEpochs | None = None
    injected: list[Any] = []
    error = trace = None
    try:
        seed_everything(seed)
        hp = HyperParameters(params)
        model = build(ctx.build_model, hp)
        adapter = make_adapter(model, replace(ctx.settings, seed=seed))
        injected = list(adapter.regularize(params, hp.read))
        X, y = ctx.train
        adapter.check_output(X[:8], y[:8])
        base = float(params.get("learning_rate") or getattr(adapter, "base_lr", None) or 1e-3)
        hooks = _FixedEpochs(ctx, adapter, epochs, list(lrs), base)
        adapter.fit(X, y, {**params, "patience": 0}, hooks)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the refit fails, the study's result stays
        error, trace = f"{type(exc).__name__}: {exc}", tb.format_exc()
        if adapter is not None:
            adapter.release()
        adapter = None
    history = tuple(hooks.history) if hooks else ()
    record = TrialRecord(
        number=number,
        params=dict(params),
        state="failed" if error else "complete",
        epochs=history,
        best_epoch=len(history) - 1 if history else None,
        injected=tuple(injected),
        error=error,
        traceback=trace,
        duration=time.perf_counter() - start,
        framework=adapter.framework if adapter is not None else None,
    )
    return adapter, record


def evaluate(
    ctx: TrialContext,
    params: Mapping[str, Any],
    number: int,
    test: tuple[np.ndarray, np.ndarray] | None,
    *,
    repeats: int = 1,
    keep_model: bool = False,
    record: TrialRecord | None = None,
    keep_val_pred: bool = False,
) -> Evaluated:
    """Validation estimate and test scores of one configuration (rules in the module doc).

    ``record`` is the study's record of this configuration: its validation estimate is used as
    is (the number the search selected on). Without it, a validation run is made first.
    ``keep_val_pred`` keeps repeat 0's predictions on the validation part (none with cv).
    """
    out = Evaluated(record=record, validation=validation_scores(record) if record else {})
    if ctx.folds and record is None:
        record = out.record = run_trial(ctx, number, params).record
        if record.state != "complete":
            out.errors.append(record.error or record.state)
            return out
        out.validation = validation_scores(record)
    cv = record.user_attrs.get(CV_KEY) if record is not None and record.user_attrs else None
    for i in range(repeats):
        seed = ctx.settings.seed + REPEAT_STRIDE * i
        rctx = ctx if i == 0 else replace(ctx, settings=replace(ctx.settings, seed=seed))
        if ctx.folds:
            if cv is None:
                out.errors.append("the cv record has no fold summary")
                break
            refit_ctx = replace(rctx, folds=())
            adapter, rec = fit_fixed(
                refit_ctx,
                params,
                int(cv["refit_epochs"]),
                cv.get("lr_path") or [],
                trial_seed(seed, number),
                number,
            )
        else:
            outcome = run_trial(rctx, number, params, keep_model=True)
            adapter, rec = outcome.adapter, outcome.record
            if out.record is None:
                out.record, out.validation = rec, validation_scores(rec) if rec.state == "complete" else {}
        if adapter is None:
            out.errors.append(rec.error or rec.state)
            log.warning("refit %d of configuration #%d failed: %s", i, number, rec.error or rec.state)
            continue
        if test is not None:
            scores, pred = score(adapter, ctx, *test)
            out.tests.append(scores)
            if out.test_pred is None:
                out.test_pred = pred
                out.adapter_loss = adapter.loss_value(test[1][:2], pred[:2]) is not None
        if i == 0 and keep_val_pred and not ctx.folds and ctx.validation is not None:
            out.val_pred = np.asarray(adapter.predict(ctx.validation[0]))
        if i == 0 and keep_model:
            out.model, out.adapter = adapter.for_user(), adapter
        else:
            adapter.release()
    return out

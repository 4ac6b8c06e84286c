"""Run one trial in whatever process holds it: build, regularize, train, evaluate, record.

The runner owns the epoch semantics every adapter shares (see :class:`EpochMonitor`):
train metrics in inference mode on a fixed capped sample, validation metrics, the gap,
the learning-rate schedule, early stopping with best-weight restore, divergence and
pruning. It imports no ML framework; the adapter does.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import math
import random
import sys
import time
import traceback as tb
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from tuner.adapters.base import Adapter, FitSettings
from tuner.adapters.schedules import make_schedule
from tuner.adapters.wrap import make_adapter
from tuner.errors import ConfigError, StudyAborted, TrialDiverged, TrialFailed, TrialPruned
from tuner.records import Injection, TrialRecord
from tuner.space.hp import HyperParameters
from tuner.trial.metrics import compute, standard_loss
from tuner.trial.objectives import Objective
from tuner.trial.timeouts import TrialTimeout, current, trial_deadline

__all__ = [
    "TrialContext",
    "Reporter",
    "NullReporter",
    "EpochMonitor",
    "FailurePolicy",
    "run_single",
    "build",
    "trial_seed",
    "seed_everything",
]

#: rows of the training data evaluated in inference mode each epoch (fixed sample)
TRAIN_EVAL_CAP = 2048


class Reporter(Protocol):
    """Where per-epoch objective values go: an Optuna trial, Ray Tune, or nowhere."""

    def report(self, epoch: int, value: float) -> None:
        """Record ``value`` at ``epoch``; raise :class:`TrialPruned` to stop the trial."""


class NullReporter:
    def report(self, epoch: int, value: float) -> None:
        return None


@dataclass(frozen=True)
class TrialContext:
    """Everything a trial needs, picklable so a Ray worker can run it too."""

    build_model: Callable[..., Any]
    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray] | None  # None with folds
    objective: Objective
    metrics: tuple[str, ...]
    settings: FitSettings
    train_eval_idx: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    folds: tuple[tuple[np.ndarray, np.ndarray], ...] = ()  # cv=k: (train_idx, val_idx) into train

    @classmethod
    def create(cls, build_model, train, validation, objective, metrics, settings, folds=()) -> TrialContext:
        n = len(train[0])
        rng = np.random.default_rng(settings.seed)
        idx = np.sort(rng.choice(n, size=min(n, TRAIN_EVAL_CAP), replace=False))
        return cls(build_model, train, validation, objective, tuple(metrics), settings, idx, tuple(folds))


def trial_seed(seed: int, number: int) -> int:
    return (seed * 1_000_003 + number * 7919) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and every framework already imported (so the builder's init is seeded)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def takes_hp(build_model: Callable[..., Any]) -> bool:
    """True when the builder takes ``hp``: one required positional argument, a first defaulted one
    named ``hp``, or ``*args``. A ConfigError when it cannot be called either way."""
    if not callable(build_model):
        raise ConfigError(
            f"build_model must be a function that returns a model, got {type(build_model).__name__}."
        )
    try:
        sig = inspect.signature(build_model)
    except (TypeError, ValueError):
        return False
    positional = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in positional if p.default is p.empty]
    if len(required) > 1:
        names = ", ".join(p.name for p in required)
        raise ConfigError(
            f"build_model takes {len(required)} required arguments ({names}); it must take none "
            "(build_model()) or one (build_model(hp)). Bind the others with functools.partial."
        )
    if required:
        return True
    if positional:  # all defaulted, as in a model class's __init__(self, hidden=64): hp only by name
        return positional[0].name == "hp"
    return any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values())


def build(build_model: Callable[..., Any], hp: HyperParameters) -> Any:
    model = build_model(hp) if takes_hp(build_model) else build_model()
    if model is None:
        raise TrialFailed("build_model returned None; it must return the model it built.")
    return model


class EpochMonitor:
    """The tuner's side of :class:`tuner.adapters.base.EpochHooks` for one trial."""

    def __init__(
        self,
        ctx: TrialContext,
        adapter: Adapter,
        params: Mapping[str, Any],
        reporter: Reporter,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        self.ctx, self.adapter, self.reporter, self.on_epoch = ctx, adapter, reporter, on_epoch
        self.max_epochs = ctx.settings.max_epochs
        self.patience = int(params.get("patience", 0) or 0)
        self.min_delta = float(params.get("min_delta", 0.0) or 0.0)
        base_lr = params.get("learning_rate") or getattr(adapter, "base_lr", None) or 1e-3
        self.schedule = make_schedule(
            params.get("lr_schedule", "constant"),
            float(base_lr),
            self.max_epochs,
            warmup_fraction=float(params.get("warmup_fraction", 0.0) or 0.0),
        )
        Xt, yt = ctx.train
        idx = ctx.train_eval_idx if len(ctx.train_eval_idx) else np.arange(len(Xt))
        self._train_eval = (Xt[idx], yt[idx])
        self.history: list[dict[str, float]] = []
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_state: Any = None
        self._wait = 0
        self._lr = float(base_lr)
        self.deadline = current()  # tune(trial_timeout=): checked at every hook

    def learning_rate(self, epoch: int) -> float:
        if self.deadline is not None:
            self.deadline.at_epoch(epoch, len(self.history))
        self._lr = float(self.schedule.lr(epoch))
        return self._lr

    def batch_loss(self, value: float) -> None:
        if self.deadline is not None:
            self.deadline.check()
        if not math.isfinite(value):
            raise TrialDiverged(
                f"diverged: the training loss became {value} during epoch {len(self.history)}"
            )

    def _evaluate(self, part: str, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
        pred = self.adapter.predict(X)
        loss = self.adapter.loss_value(y, pred)
        if loss is None:
            loss = standard_loss(self.ctx.settings.task, y, pred, _loss_name(self.ctx.settings.loss))
        out = {f"{part}_loss": float(loss)}
        if np.all(np.isfinite(pred)):
            for k, v in compute(self.ctx.settings.task, y, pred, self.ctx.metrics).items():
                out[f"{part}_{k}"] = v
        return out

    def epoch_end(self, epoch: int) -> bool:
        if self.deadline is not None:
            self.deadline.check()
        metrics = self._evaluate("train", *self._train_eval)
        metrics.update(self._evaluate("val", *self.ctx.validation))
        metrics["gap"] = metrics["val_loss"] - metrics["train_loss"]
        metrics["lr"] = self._lr
        self.history.append(metrics)
        if self.on_epoch is not None:
            with self._shielded():
                self.on_epoch(epoch, metrics)
        for key in ("train_loss", "val_loss"):
            if not math.isfinite(metrics[key]):
                raise TrialDiverged(f"diverged: {key} became {metrics[key]} at epoch {epoch}")
        value = self.ctx.objective.values(metrics)[0]
        improved = self.ctx.objective.improves(value, self.best, self.min_delta)
        if improved:
            self.best, self.best_epoch, self._wait = value, epoch, 0
            self.best_state = self.adapter.get_state()
        else:
            self._wait += 1
        self.schedule.observe(value, improved)
        with self._shielded():  # the Optuna report writes to the study storage: never cut it halfway
            self.reporter.report(epoch, value)
        return self.patience > 0 and self._wait >= self.patience

    def _shielded(self) -> contextlib.AbstractContextManager[None]:
        return self.deadline.shield() if self.deadline is not None else contextlib.nullcontext()


def _loss_name(loss: Any) -> str | None:
    return loss if isinstance(loss, str) else None


@dataclass
class TrialOutcome:
    record: TrialRecord
    adapter: Adapter | None = None  # kept only when asked (the final refit)


def run_single(
    ctx: TrialContext,
    number: int,
    params: Mapping[str, Any],
    *,
    reporter: Reporter | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    keep_model: bool = False,
    trial_timeout: float | None = None,
    on_injected: Callable[[list[Injection]], None] | None = None,
) -> TrialOutcome:
    """Train one model on ``ctx.train``, validated on ``ctx.validation``, to a :class:`TrialRecord`.

    Trial errors are recorded, never raised; only what must stop the study is raised
    (``KeyboardInterrupt``, :class:`StudyAborted`). ``trial_timeout``: see :mod:`tuner.trial.timeouts`.
    ``on_injected`` hears what the adapter did to the model before the first epoch (a Ray worker
    sends it on, since a trial ASHA stops cannot return its record). Callers use
    :func:`tuner.trial.dispatch.run_trial`, which also runs k-fold trials.
    """
    start = time.perf_counter()
    seed = trial_seed(ctx.settings.seed, number)
    adapter: Adapter | None = None
    monitor: EpochMonitor | None = None
    injected: list[Injection] = []
    state, error, trace = "complete", None, None
    try:
        with trial_deadline(trial_timeout):  # disarmed before any except clause runs
            seed_everything(seed)
            hp = HyperParameters(params)
            model = _built(ctx.build_model, hp)
            adapter = make_adapter(model, replace(ctx.settings, seed=seed))
            injected = list(adapter.regularize(params, hp.read))
            if on_injected is not None:
                on_injected(injected)
            X, y = ctx.train
            adapter.check_output(X[:8], y[:8])
            monitor = EpochMonitor(ctx, adapter, params, reporter or NullReporter(), on_epoch)
            adapter.fit(X, y, params, monitor)
            if monitor.best_state is None:
                raise TrialFailed("training finished without a single evaluated epoch")
            adapter.set_state(monitor.best_state)
    except TrialPruned:
        state = "pruned"
    except TrialFailed as exc:
        state, error, trace = "failed", str(exc), exc.traceback or tb.format_exc()
    except TrialTimeout as exc:
        state, error, trace = "failed", str(exc), tb.format_exc()
    except (KeyboardInterrupt, StudyAborted):
        raise
    except BaseException as exc:  # noqa: BLE001 - MemoryError, framework errors: the trial fails, not the study
        state, error, trace = "failed", f"{type(exc).__name__}: {exc}", tb.format_exc()
    history = tuple(monitor.history) if monitor else ()
    best_epoch = monitor.best_epoch if monitor else None
    values = None
    if state == "complete" and best_epoch is not None:
        values = ctx.objective.values(history[best_epoch])
    record = TrialRecord(
        number=number,
        params=dict(params),
        state=state,  # type: ignore[arg-type]
        values=values,
        epochs=history,
        best_epoch=best_epoch,
        injected=tuple(injected),
        error=error,
        traceback=trace,
        duration=time.perf_counter() - start,
        framework=adapter.framework if adapter else None,
    )
    if keep_model and state == "complete":
        return TrialOutcome(record, adapter)
    if adapter is not None:
        adapter.release()
    del adapter, monitor
    gc.collect()
    return TrialOutcome(record)


def _built(build_model: Callable[..., Any], hp: HyperParameters) -> Any:
    """The builder's model; what the builder raises fails the trial (with its traceback)."""
    try:
        return build(build_model, hp)
    except (TrialFailed, ConfigError):
        raise
    except Exception as exc:
        raise TrialFailed(
            f"build_model raised {type(exc).__name__}: {exc}", traceback=tb.format_exc()
        ) from exc


class FailurePolicy:
    """Stop a hopeless study: ``limit`` trials in a row failing with the same error.

    Diverged trials do not count (a too-high learning rate is a legitimate outcome); trials stopped
    by ``trial_timeout`` do (their errors all start "trial_timeout:": the limit is too tight).
    """

    def __init__(self, limit: int = 3) -> None:
        if limit < 1:
            raise ConfigError(f"max_consecutive_failures must be >= 1, got {limit}.")
        self.limit = limit
        self._streak: list[TrialRecord] = []

    def observe(self, record: TrialRecord) -> None:
        if record.state != "failed" or (record.error or "").startswith("diverged"):
            self._streak.clear()
            return
        key = _error_key(record.error)
        if self._streak and _error_key(self._streak[0].error) != key:
            self._streak.clear()
        self._streak.append(record)
        if len(self._streak) >= self.limit:
            first = self._streak[0]
            raise StudyAborted(
                f"{self.limit} trials in a row failed with the same error, so the study stopped: "
                f"{first.error}. Fix the cause (see the traceback) and run again with resume=True.",
                first_traceback=first.traceback,
            )


def _error_key(error: str | None) -> str:
    return (error or "").split(":", 1)[0]

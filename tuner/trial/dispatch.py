"""One entry point for a trial: a single split, or one training per fold (``tune(cv=k)``)."""

from __future__ import annotations

import traceback as tb
from collections.abc import Callable, Mapping
from typing import Any

from tuner.records import Injection, TrialRecord
from tuner.trial.folds import run_folds
from tuner.trial.runner import Reporter, TrialContext, TrialOutcome, run_single
from tuner.trial.timeouts import TrialTimeout, trial_deadline

__all__ = ["run_trial"]


def run_trial(
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
    """Run trial ``number`` with ``params`` to a :class:`TrialRecord`; errors are recorded, never raised.

    With ``ctx.folds`` the trial trains one model per fold (:mod:`tuner.trial.folds`), all under one
    deadline of ``trial_timeout`` seconds; otherwise :func:`tuner.trial.runner.run_single` sets it.
    """
    if not ctx.folds:
        return run_single(
            ctx,
            number,
            params,
            reporter=reporter,
            on_epoch=on_epoch,
            keep_model=keep_model,
            trial_timeout=trial_timeout,
            on_injected=on_injected,
        )
    try:  # a fold that times out fails the trial
        with trial_deadline(trial_timeout):
            return run_folds(ctx, number, params, reporter=reporter, on_epoch=on_epoch)
    except TrialTimeout as exc:  # the alarm rang between two folds
        record = TrialRecord(number, dict(params), "failed", error=str(exc), traceback=tb.format_exc())
        return TrialOutcome(record)

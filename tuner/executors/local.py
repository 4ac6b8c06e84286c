"""The local executor: an Optuna study driven in this process, trials in sequence."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from tuner.errors import TrialFailed, TrialPruned
from tuner.executors.base import Executor, StudyJob
from tuner.study.faults import storage_failure
from tuner.study.search import make_pruner, make_sampler
from tuner.study.storage import ATTR, finished_count, open_study, record_attrs
from tuner.trial.dispatch import run_trial

if TYPE_CHECKING:
    import optuna

__all__ = ["LocalExecutor"]

log = logging.getLogger("tuner")


class _OptunaReporter:
    def __init__(self, trial: optuna.Trial, prune: bool) -> None:
        self.trial, self.prune = trial, prune

    def report(self, epoch: int, value: float) -> None:
        if not self.prune or not math.isfinite(value):
            return
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise TrialPruned(f"pruned at epoch {epoch}")


class LocalExecutor(Executor):
    """Trials one after another in this process; SQLite storage makes a study resumable."""

    name = "local"

    def run(self, job: StudyJob) -> optuna.Study:
        import optuna

        directions = job.ctx.objective.directions
        study = open_study(
            job.study_name,
            job.storage,
            directions,
            resume=job.resume,
            explicit_name=job.explicit_name,
            sampler=None,
            pruner=make_pruner(job.ctx.settings.max_epochs, job.ctx.objective.is_multi, job.n_trials),
            attrs=job.study_attrs,
        )
        done = finished_count(study)
        study.sampler = make_sampler(job.seed, job.n_trials, offset=len(study.trials))
        if not study.trials:
            for point in job.space.start_points:
                study.enqueue_trial(point, skip_if_exists=True)
        remaining = job.n_trials - done
        if remaining <= 0:
            return study
        # each report is a storage write per epoch; only a pruner reads them
        prune = not job.ctx.objective.is_multi and not isinstance(study.pruner, optuna.pruners.NopPruner)

        def objective(trial: optuna.Trial) -> float | tuple[float, ...]:
            params = job.space.sample(trial)
            job.tracker.trial_started(trial.number, params)
            outcome = run_trial(
                job.ctx,
                trial.number,
                params,
                reporter=_OptunaReporter(trial, prune=prune),
                on_epoch=lambda epoch, m: _epoch_done(job, trial.number, epoch, m),
                trial_timeout=job.trial_timeout,  # a hard stop here: trials run in the main thread
            )
            record = outcome.record
            trial.set_user_attr(ATTR, record_attrs(record))
            job.tracker.trial_finished(record)
            if job.on_trial is not None:
                job.on_trial(record)
            job.policy.observe(record)
            if record.state == "pruned":
                raise optuna.TrialPruned()
            if record.state == "failed":
                log.warning("trial %d failed: %s", trial.number, record.error)
                raise TrialFailed(record.error or "failed")
            values = record.values or ()
            return values[0] if len(values) == 1 else values

        try:
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=job.timeout,
                catch=(TrialFailed,),
                gc_after_trial=False,
            )
        except Exception as exc:  # a storage write failed (disk full...): say so, not Optuna's commit error
            failure = storage_failure(exc, job.storage)
            if failure is None:
                raise
            raise failure from exc
        return study


def _epoch_done(job: StudyJob, number: int, epoch: int, metrics: dict[str, float]) -> None:
    job.tracker.epoch_logged(number, epoch, metrics)
    if job.on_epoch is not None:
        job.on_epoch(number, epoch)

"""The executor contract: run a study's trials somewhere and leave them in the Optuna storage."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from tuner.records import TrialRecord
from tuner.trial.runner import FailurePolicy, TrialContext

if TYPE_CHECKING:
    import optuna

    from tuner.space.searchspace import SearchSpace
    from tuner.tracking.base import Tracker

__all__ = ["Executor", "StudyJob"]


@dataclass
class StudyJob:
    """One study to run: what to train, the space, the budget, and who observes it."""

    ctx: TrialContext
    space: SearchSpace
    n_trials: int
    timeout: float | None
    study_name: str
    storage: str
    resume: bool
    explicit_name: bool
    seed: int
    tracker: Tracker
    policy: FailurePolicy
    study_attrs: dict[str, Any]
    on_trial: Callable[[TrialRecord], None] | None = None  # progress display
    on_epoch: Callable[[int, int], None] | None = None  # (trial number, epoch), for the progress display
    trial_timeout: float | None = None  # seconds one trial may run (tuner.trial.timeouts)


class Executor(abc.ABC):
    """Runs the trials of a :class:`StudyJob`; the study's storage holds every record."""

    name: ClassVar[str]

    @abc.abstractmethod
    def run(self, job: StudyJob) -> optuna.Study:
        """Run until ``job.n_trials`` trials have finished or ``job.timeout`` passed."""

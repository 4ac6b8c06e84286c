"""The executor contract: run a study's trials somewhere and leave them in the Optuna storage."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from tuner.errors import ConfigError
from tuner.records import TrialRecord
from tuner.runner import FailurePolicy, TrialContext

if TYPE_CHECKING:
    import optuna

    from tuner.space import SearchSpace
    from tuner.tracking import Tracker

__all__ = ["Executor", "StudyJob", "get_executor"]


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
    trial_timeout: float | None = None  # seconds one trial may run (tuner.timeouts)


class Executor(abc.ABC):
    """Runs the trials of a :class:`StudyJob`; the study's storage holds every record."""

    name: ClassVar[str]

    @abc.abstractmethod
    def run(self, job: StudyJob) -> optuna.Study:
        """Run until ``job.n_trials`` trials have finished or ``job.timeout`` passed."""


def get_executor(executor: str | Executor, **options: Any) -> Executor:
    if isinstance(executor, Executor):
        if options:
            raise ConfigError(f"executor options {sorted(options)} apply to named executors only.")
        return executor
    if executor == "local":
        from tuner.executors.local import LocalExecutor

        return LocalExecutor(**options)
    if executor == "ray":
        try:
            from tuner.executors.ray import RayExecutor
        except ModuleNotFoundError as exc:
            if exc.name == "tuner.executors.ray":
                raise ConfigError("executor='ray' is not available in this version.") from None
            raise
        return RayExecutor(**options)
    raise ConfigError(f"executor must be 'local', 'ray' or an Executor instance, got {executor!r}.")

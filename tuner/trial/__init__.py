"""One trial: its context, a single run or k folds, the deadline, objectives, metrics."""

from tuner.trial.dispatch import run_trial
from tuner.trial.runner import TrialContext

__all__ = ["TrialContext", "run_trial"]

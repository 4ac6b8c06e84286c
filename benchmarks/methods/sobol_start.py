"""Experiment: start-up trials from a scrambled Sobol design instead of TPE's random draws.

TPE samples its start-up trials at random. With the handful of trials a small study runs,
random draws often leave a band of a knob unseen: 3 draws miss the top fifth of a log
learning-rate range with probability 0.8**3 = 0.51. The first 2**k points of a scrambled
Sobol sequence put one point in each 1/2**k of every knob's range (categorical knobs too:
Optuna's QMC sampler gives each one coordinate). ``regtuner_sobol_start`` runs ``tune()``
with that design until TPE's own start-up count of trials has finished, then regtuner's TPE.
Measured in benchmarks/README.md ("Start-up points and design"): no gain, so the product keeps TPE's.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.samplers import BaseSampler, QMCSampler, TPESampler
from optuna.trial import TrialState

from benchmarks.methods import Budget, Row
from benchmarks.tasks import Split

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study
    from optuna.trial import FrozenTrial

__all__ = ["SobolStartTPE", "regtuner_sobol_start"]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class SobolStartTPE(BaseSampler):
    """Scrambled Sobol points until ``n_startup_trials`` trials have finished, then ``tpe``."""

    def __init__(self, tpe: TPESampler, n_startup_trials: int, seed: int) -> None:
        self._tpe = tpe
        self._n_startup = n_startup_trials
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._design = QMCSampler(
                qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False
            )
        self._phase: dict[int, BaseSampler] = {}

    def _sampler(self, trial: FrozenTrial) -> BaseSampler:
        return self._phase.get(trial.number, self._tpe)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        finished = len(study._get_trials(deepcopy=False, states=_FINISHED, use_cache=False))
        self._phase[trial.number] = self._design if finished < self._n_startup else self._tpe
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._sampler(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scipy: Sobol balance needs 2**k points
            return self._sampler(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._sampler(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._phase.pop(trial.number, None)
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()
        self._design.reseed_rng()


def regtuner_sobol_start(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """The ``regtuner`` study with :class:`SobolStartTPE` around regtuner's own TPE."""
    from benchmarks.methods.ours import _variant
    from tuner.study.search import make_sampler

    def sampler(seed: int, n_trials: int, offset: int = 0) -> BaseSampler:
        tpe = make_sampler(seed, n_trials, offset)
        return SobolStartTPE(tpe, tpe._n_startup_trials, seed + offset)

    return _variant(split, budget, seed, framework, "regtuner_sobol_start", make_sampler=sampler)

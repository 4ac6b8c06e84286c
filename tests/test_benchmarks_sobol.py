"""The start-up design experiment's sampler: Sobol points that span every knob's range, then TPE."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import FloatDistribution

from benchmarks.methods.sobol_start import SobolStartTPE
from tuner.space.searchspace import resolve
from tuner.study.search import make_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _unit(value: float, low: float, high: float, log: bool) -> float:
    if log:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_start_up_trials_put_one_point_in_each_quarter_of_every_range(seed: int) -> None:
    # The study's shape in tune(): the textbook start point first, then the design.
    space = resolve("small_data")
    study = optuna.create_study(sampler=SobolStartTPE(make_sampler(seed, 40), 5, seed))
    for point in space.start_points:
        study.enqueue_trial(point)
    drawn = []
    for value in range(5):
        trial = study.ask()
        drawn.append(space.sample(trial))
        study.tell(trial, float(value))
    design = drawn[1:]  # four Sobol points after the enqueued one
    floats = {k: d for k, d in space.distributions.items() if isinstance(d, FloatDistribution)}
    assert {"dropout", "l2", "learning_rate"} <= set(floats)
    for name, d in floats.items():
        quarters = sorted(min(3, int(4 * _unit(x[name], d.low, d.high, d.log))) for x in design)
        assert quarters == [0, 1, 2, 3], f"{name}: {[x[name] for x in design]}"


def test_after_the_start_up_tpe_follows_the_results() -> None:
    # Minimize x on [0, 1]: a design would keep spreading its points (median near 0.5); TPE
    # concentrates where the results are good.
    study = optuna.create_study(sampler=SobolStartTPE(make_sampler(0, 40), 10, 0))
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=40)
    later = sorted(t.params["x"] for t in study.trials[10:])
    assert later[len(later) // 2] < 0.25


def test_pruned_trials_count_toward_the_start_up() -> None:
    sampler = SobolStartTPE(make_sampler(0, 40), 3, 0)
    study = optuna.create_study(sampler=sampler)
    for _ in range(3):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    trial = study.ask()
    assert sampler._sampler(trial) is sampler._tpe

"""Slow learners and the epoch budget (issue 18): a planted slow-converging task, in seconds."""

from __future__ import annotations

import pytest

from tests.fakes import NumpyModel, blobs
from tuner import tune
from tuner.config import check_settings
from tuner.errors import ConfigError
from tuner.space.searchspace import resolve

pytestmark = pytest.mark.usefixtures("numpy_adapter")  # conftest.py

#: learning rates far too small for 30 epochs: every trial still improves at its last epoch
SLOW = {
    "knobs": {
        "l2": {"low": 1e-6, "high": 1e-3, "log": True},
        "learning_rate": {"low": 1e-4, "high": 3e-3, "log": True},
        "batch_size": [32, 64],
    }
}
QUIET = {"tracking": False, "progress": False, "baselines": False}


def slow_study(**kw):
    X, y = blobs(n=400)
    return tune(lambda: NumpyModel(X.shape[1], 3), (X, y), space=SLOW, **QUIET, **kw)


def test_the_under_trained_finding_fires_when_max_epochs_is_too_small():
    result = slow_study(n_trials=12, max_epochs=30)
    budget = next(f for f in result.diagnosis if f.kind == "epoch_budget")
    assert "max_epochs=30" in budget.summary and "max_epochs='auto'" in budget.suggestion
    chosen = next(r for r in result.records if r.number == result.best_trial)
    assert chosen.epochs_run == 30 and chosen.best_epoch >= 27


def test_max_epochs_auto_trains_until_early_stopping_ends_each_trial():
    result = slow_study(n_trials=4, max_epochs="auto")
    runs = [r.epochs_run for r in result.records]
    assert max(runs) > 30  # past the budget that cut the same task short above
    assert all(r.state == "complete" for r in result.records)
    assert set(result.study.trials[0].params) >= {"learning_rate"}
    assert not any(f.kind == "epoch_budget" for f in result.diagnosis) or max(runs) == 200


def test_an_open_budget_lets_early_stopping_end_the_untuned_baseline_too():
    X, y = blobs(n=400)
    args = {**QUIET, "baselines": True}
    model = lambda: NumpyModel(X.shape[1], 3)  # noqa: E731
    result = tune(model, (X, y), space=SLOW, n_trials=2, max_epochs="auto", **args)
    untuned = next(b for b in result.baselines if b.name == "untuned")
    assert untuned.params == {"patience": 10} and untuned.ok


def test_an_open_budget_keeps_early_stopping_and_schedules_without_a_last_epoch():
    space = resolve("default").for_open_budget(10)
    assert list(space.distributions["lr_schedule"].choices) == ["constant", "plateau"]
    assert space.fixed["patience"] == 10
    assert any("max_epochs='auto'" in note for note in space.notes)
    off = resolve({"extends": "default", "knobs": {"patience": 0, "lr_schedule": "cosine"}})
    opened = off.for_open_budget(7)
    assert opened.fixed["patience"] == 7 and opened.fixed["lr_schedule"] == "constant"


@pytest.mark.parametrize("value", ["auto", 1, 30])
def test_max_epochs_takes_a_number_or_auto(value):
    check_settings({"max_epochs": value})


@pytest.mark.parametrize("value", ["forever", 0, -3, 2.5, True])
def test_max_epochs_refuses_anything_else_and_names_auto(value):
    with pytest.raises(ConfigError, match="positive int or 'auto'"):
        check_settings({"max_epochs": value})


def test_a_slow_learner_study_is_not_mostly_pruned_and_never_within_the_warm_up():
    from tuner.study.search import warmup_epochs

    result = slow_study(n_trials=20, max_epochs=30)
    pruned = [r for r in result.records if r.state == "pruned"]
    assert len(pruned) < len(result.records) / 2, [(r.number, r.epochs_run) for r in pruned]
    assert all(r.epochs_run > warmup_epochs(30) for r in pruned)

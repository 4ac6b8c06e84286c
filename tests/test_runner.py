"""Orchestration of one trial: epoch records, early stopping, divergence, failures (numpy fake)."""

import pytest

from tests.fakes import NumpyModel, blobs
from tuner.adapters.base import FitSettings
from tuner.errors import ConfigError, StudyAborted, TrialPruned
from tuner.records import TaskInfo, TrialRecord
from tuner.trial.dispatch import run_trial
from tuner.trial.objectives import parse_objective
from tuner.trial.runner import FailurePolicy, TrialContext, takes_hp

TASK = TaskInfo("multiclass", 3, (0, 1, 2))


pytestmark = pytest.mark.usefixtures("numpy_adapter")  # conftest.py


def make_ctx(builder, max_epochs=8, objective="val_loss"):
    X, y = blobs()
    return TrialContext.create(
        builder,
        (X[:200], y[:200]),
        (X[200:], y[200:]),
        parse_objective(objective, TASK),
        ("accuracy", "log_loss", "f1"),
        FitSettings(task=TASK, max_epochs=max_epochs, seed=1),
    )


PARAMS = {"learning_rate": 0.05, "batch_size": 32, "patience": 0, "lr_schedule": "constant", "l2": 1e-3}


def test_epoch_records_have_the_shared_names():
    out = run_trial(make_ctx(lambda: NumpyModel(5, 3)), 0, PARAMS)
    r = out.record
    assert r.state == "complete" and r.epochs_run == 8
    assert {"train_loss", "val_loss", "gap", "lr", "train_accuracy", "val_accuracy", "val_f1"} <= set(
        r.epochs[0]
    )
    e = r.epochs[3]
    assert e["gap"] == pytest.approx(e["val_loss"] - e["train_loss"])
    assert r.values == (r.epochs[r.best_epoch]["val_loss"],)
    assert [i.knob for i in r.injected] == ["l2"]


def test_hp_builder_reading_l2_is_not_injected_again():
    def builder(hp):
        m = NumpyModel(5, 3)
        m.l2 = hp.l2
        return m

    r = run_trial(make_ctx(builder), 0, PARAMS).record
    assert r.state == "complete" and r.injected == ()


def test_early_stopping_restores_best_epoch():
    params = {**PARAMS, "learning_rate": 3.0, "patience": 2}  # too high a rate: val loss wobbles
    out = run_trial(make_ctx(lambda: NumpyModel(5, 3), max_epochs=30), 0, params, keep_model=True)
    r = out.record
    assert r.epochs_run == r.best_epoch + 3 or r.epochs_run == 30
    # restored weights reproduce the best epoch's validation loss
    from tuner.trial.metrics import standard_loss

    X, y = blobs()
    pred = out.adapter.predict(X[200:])
    assert standard_loss(TASK, y[200:], pred) == pytest.approx(r.epochs[r.best_epoch]["val_loss"], rel=1e-6)


def test_nan_loss_fails_as_diverged_at_once():
    r = run_trial(make_ctx(lambda: NumpyModel(5, 3, nan_at=2)), 0, PARAMS).record
    assert r.state == "failed" and r.error.startswith("diverged") and r.epochs_run == 3


def test_training_error_is_recorded_with_traceback():
    r = run_trial(make_ctx(lambda: NumpyModel(5, 3, fail_at=3)), 0, PARAMS).record
    assert r.state == "failed" and "shape error at epoch 3" in r.error and "ValueError" in r.traceback
    assert r.epochs_run == 3


def test_builder_error_and_non_model_are_failures():
    def broken():
        raise RuntimeError("boom")

    assert "build_model raised RuntimeError: boom" in run_trial(make_ctx(broken), 0, PARAMS).record.error
    r = run_trial(make_ctx(lambda: object()), 0, PARAMS).record
    assert r.state == "failed" and "not a model" in r.error


def test_memory_error_is_a_failed_trial():
    def oom():
        raise MemoryError("out of memory")

    r = run_trial(make_ctx(oom), 0, PARAMS).record
    assert r.state == "failed" and "MemoryError" in r.error


def test_pruning_reporter_stops_the_trial():
    class Prune:
        def report(self, epoch, value):
            if epoch == 1:
                raise TrialPruned("pruned")

    r = run_trial(make_ctx(lambda: NumpyModel(5, 3)), 0, PARAMS, reporter=Prune()).record
    assert r.state == "pruned" and r.epochs_run == 2


def test_same_seed_same_values():
    a = run_trial(make_ctx(lambda: NumpyModel(5, 3)), 4, PARAMS).record
    b = run_trial(make_ctx(lambda: NumpyModel(5, 3)), 4, PARAMS).record
    assert a.values == b.values


def test_builder_signature_rules():
    assert takes_hp(lambda hp: 0) and not takes_hp(lambda: 0) and takes_hp(lambda hp=None: 0)
    assert takes_hp(lambda *args: 0) and not takes_hp(lambda units=64: 0)

    class Net:  # a model class whose __init__ has only defaults is its own zero-argument builder
        def __init__(self, d=4, width=8):
            self.d = d

    assert not takes_hp(Net)
    with pytest.raises(ConfigError, match="two|2 required"):
        takes_hp(lambda a, b: 0)
    with pytest.raises(ConfigError, match="function"):
        takes_hp(42)


def _failed(n, err="ValueError: x"):
    return TrialRecord(number=n, params={}, state="failed", error=err, traceback="tb")


def test_failure_policy_stops_after_same_error_in_a_row():
    policy = FailurePolicy(3)
    policy.observe(_failed(0))
    policy.observe(_failed(1, "diverged: nan"))  # does not count, resets
    policy.observe(_failed(2))
    policy.observe(_failed(3, "KeyError: y"))  # other error: new streak
    policy.observe(_failed(4, "KeyError: z"))
    with pytest.raises(StudyAborted, match="KeyError") as info:
        policy.observe(_failed(5, "KeyError: w"))
    assert "Traceback of the first failed trial" in str(info.value)

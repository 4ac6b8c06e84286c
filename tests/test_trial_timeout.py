"""tune(trial_timeout=...): a trial that hangs is stopped, recorded as failed, and the study goes on."""

import signal
import threading
import time

import pytest

from tests.fakes import NumpyAdapter, NumpyModel, blobs
from tuner import tune
from tuner.adapters import base
from tuner.cli.spec import parse_spec
from tuner.errors import ConfigError, StudyAborted
from tuner.trial.dispatch import run_trial
from tuner.trial.runner import TrialContext

SPACE = {
    "knobs": {
        "learning_rate": {"type": "float", "low": 1e-2, "high": 0.1, "log": True},
        "batch_size": [32],
        "patience": 0,
    }
}


class StubbornModel(NumpyModel):
    """A model whose training code swallows every exception once, even BaseException."""


class StubbornAdapter(NumpyAdapter):
    @classmethod
    def accepts(cls, model):
        return isinstance(model, StubbornModel)

    def fit(self, X, y, params, hooks):
        try:  # like a framework or user callback that catches everything
            time.sleep(60)
        except BaseException:
            pass
        super().fit(X, y, params, hooks)


@pytest.fixture(autouse=True)
def stubborn_adapter(numpy_adapter, monkeypatch):  # numpy_adapter: conftest.py
    monkeypatch.setattr(base, "ADAPTERS", ["tests.test_trial_timeout:StubbornAdapter", *base.ADAPTERS])


def run(builder, **kw):
    args = dict(space=SPACE, n_trials=4, max_epochs=5, tracking=False, progress=False, baselines=False)
    args.update(kw)
    return tune(builder, blobs(n=300), **args)


def hangs_on(calls_that_hang, **model_kw):
    """A builder whose Nth call (1 is the preflight check, 2 is trial 0...) returns a hanging model."""
    calls = {"n": 0}

    def build_model():
        calls["n"] += 1
        if calls["n"] in calls_that_hang:
            return NumpyModel(5, 3, **model_kw)
        return NumpyModel(5, 3)

    return build_model


def assert_alarm_cleared():
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL


@pytest.mark.slow
def test_trial_hanging_inside_an_epoch_is_stopped_and_the_study_goes_on():
    # trial 1 hangs in epoch 3; 6 s leaves room for its first epochs on a loaded machine
    r = run(hangs_on({3}, hang_at=3), trial_timeout=6)
    states = dict(zip(r.trials["number"], r.trials["state"], strict=True))
    assert states == {0: "complete", 1: "failed", 2: "complete", 3: "complete"}
    failed = next(rec for rec in r.records if rec.number == 1)
    assert failed.error.startswith("trial_timeout: trial exceeded trial_timeout=6s (stopped during epoch 3")
    assert "3 finished epochs kept" in failed.error
    assert failed.epochs_run == 3  # the epochs before the hang are kept in the record
    # stopped by the alarm inside the sleeping fit, not after the 60 s sleep ended
    assert "_on_alarm" in failed.traceback and "time.sleep(HANG)" in failed.traceback
    assert r.best_trial != 1
    assert_alarm_cleared()


def test_builder_that_hangs_is_stopped():
    calls = {"n": 0}

    def build_model():
        calls["n"] += 1
        if calls["n"] == 2:  # trial 0
            time.sleep(60)
        return NumpyModel(5, 3)

    r = run(build_model, n_trials=3, trial_timeout=1.5)
    failed = r.records[0]
    assert failed.state == "failed" and failed.epochs_run == 0
    assert "trial_timeout=1.5s (stopped while building the model)" in failed.error
    assert [rec.state for rec in r.records[1:]] == ["complete", "complete"]
    assert_alarm_cleared()


def test_timeout_swallowed_by_user_code_still_stops_the_trial():
    calls = {"n": 0}

    def build_model():
        calls["n"] += 1
        return StubbornModel(5, 3) if calls["n"] == 2 else NumpyModel(5, 3)

    r = run(build_model, n_trials=2, trial_timeout=1)
    assert r.records[0].state == "failed"
    assert "stopped during epoch 0" in r.records[0].error  # caught again at the first epoch hook
    assert r.records[1].state == "complete"


@pytest.mark.slow
def test_timeouts_count_as_failures_for_the_abort_rule():
    with pytest.raises(StudyAborted, match="trial_timeout=1s"):
        run(hangs_on({2, 3, 4, 5}, hang_at=0), n_trials=6, trial_timeout=1)
    assert_alarm_cleared()


def test_no_trial_timeout_means_no_alarm(monkeypatch):
    armed = []
    monkeypatch.setattr(signal, "setitimer", lambda *a: armed.append(a))
    r = run(lambda: NumpyModel(5, 3), n_trials=2)
    assert armed == [] and set(r.trials["state"]) == {"complete"}


def _ctx(builder, max_epochs=6, cv=None):
    from tuner.adapters.base import FitSettings
    from tuner.data.prepare import prepare
    from tuner.trial.metrics import resolve_metrics
    from tuner.trial.objectives import parse_objective

    p = prepare(blobs(n=200), test=None, cv=cv, seed=0)
    obj = parse_objective("val_loss", p.task)
    settings = FitSettings(task=p.task, max_epochs=max_epochs)
    names = resolve_metrics(p.task, None)
    return TrialContext.create(builder, p.train, p.validation, obj, names, settings, folds=p.folds)


PARAMS = {"learning_rate": 0.05, "batch_size": 32, "patience": 0}


def test_outside_the_main_thread_the_epoch_hooks_stop_the_trial():
    # Ray runs trials in a thread: no SIGALRM there, the deadline is checked at each epoch and batch
    ctx = _ctx(lambda: NumpyModel(5, 3, sleep=0.4), max_epochs=20)
    out = {}
    worker = threading.Thread(
        target=lambda: out.update(rec=run_trial(ctx, 0, PARAMS, trial_timeout=1).record)
    )
    worker.start()
    worker.join(30)
    rec = out["rec"]
    assert rec.state == "failed" and "trial exceeded trial_timeout=1s" in rec.error
    assert 0 < rec.epochs_run < 20 and "_on_alarm" not in rec.traceback
    assert_alarm_cleared()


def test_a_program_that_uses_sigalrm_keeps_its_handler():
    fired = []

    def own(signum, frame):
        fired.append(signum)

    previous = signal.signal(signal.SIGALRM, own)
    try:
        ctx = _ctx(lambda: NumpyModel(5, 3, sleep=0.3), max_epochs=20)
        rec = run_trial(ctx, 0, PARAMS, trial_timeout=1).record
        assert rec.state == "failed" and "trial_timeout=1s" in rec.error  # cooperative stop
        assert signal.getsignal(signal.SIGALRM) is own and fired == []
    finally:
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.slow
def test_cv_folds_share_one_deadline():
    ctx = _ctx(lambda: NumpyModel(5, 3, sleep=0.3), max_epochs=4, cv=3)
    rec = run_trial(ctx, 0, PARAMS, trial_timeout=2).record
    assert rec.state == "failed" and "trial exceeded trial_timeout=2s" in rec.error
    assert rec.error.startswith("fold 1/3") or rec.error.startswith("fold 2/3")
    assert_alarm_cleared()


@pytest.mark.parametrize("bad", [0, -1, "5", True, float("nan"), float("inf")])
def test_bad_trial_timeout_is_refused_up_front(bad):
    with pytest.raises(ConfigError, match="trial_timeout must be None"):
        run(lambda: NumpyModel(5, 3), trial_timeout=bad)


def test_job_spec_budget_takes_trial_timeout():
    spec = parse_spec("builder: m:f\ndata: m:g\nbudget: {n_trials: 3, trial_timeout: 30}\n")
    assert spec.tune_args["trial_timeout"] == 30
    with pytest.raises(ConfigError, match="budget.trial_timeout"):
        parse_spec("builder: m:f\ndata: m:g\nbudget: {trial_timeout: -2}\n")


@pytest.mark.slow
def test_keras_trial_hanging_in_its_first_epoch_is_stopped_and_keras_keeps_working():
    keras = pytest.importorskip("keras")

    class Stuck(keras.layers.Layer):
        """Hangs while Keras traces the training step (Python in the main thread, inside fit)."""

        def call(self, x, training=None):
            if training:
                time.sleep(60)
            return x

    calls = {"n": 0}

    def build_model():
        calls["n"] += 1
        layers = [keras.Input((5,)), keras.layers.Dense(8, activation="relu")]
        if calls["n"] == 3:  # trial 1
            layers.append(Stuck())
        model = keras.Sequential([*layers, keras.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    r = tune(
        build_model,
        blobs(n=300),
        space={"knobs": {"learning_rate": 1e-2, "batch_size": [32], "patience": 0}},
        n_trials=3,
        max_epochs=2,
        trial_timeout=10,
        tracking=False,
        progress=False,
        baselines=False,
        test=None,
    )
    by_number = {rec.number: rec for rec in r.records}
    stuck = by_number[1]
    assert stuck.state == "failed"
    assert "trial exceeded trial_timeout=10s (stopped during epoch 0" in stuck.error
    assert "_on_alarm" in stuck.traceback
    assert by_number[0].state == "complete" and by_number[2].state == "complete"
    assert r.best_model is not None and r.best_trial in (0, 2)
    assert_alarm_cleared()

"""The Ray executor: option checks and worker helpers (no Ray), then studies on a real local Ray.

The local Ray runtime (2 CPUs) is ``ray_session`` of conftest.py, started once for the whole test run.
Builders live at module level so Ray workers import them from ``tests.test_ray_executor``; they register
the numpy fake adapter in the worker.
"""

from __future__ import annotations

import functools
import os
import pickle
import signal
import threading

import numpy as np
import pytest

from tests.fakes import NumpyModel, blobs
from tuner import RayExecutor, tune
from tuner.adapters import base
from tuner.errors import ConfigError, StudyAborted, TrialPruned
from tuner.executors import get_executor
from tuner.executors.ray.cluster import is_local_uri, parse_resources
from tuner.executors.ray.worker import (
    EPOCH_KEY,
    NUMBER_KEY,
    RECORD_KEY,
    RayReporter,
    capped_builder,
    final_result,
    limit_gpu_memory,
    memory_fraction,
    worker_env,
)
from tuner.records import TrialRecord
from tuner.trial.objectives import Objective

QUIET = {"tracking": False, "progress": False, "baselines": False}
FIFO = {"scheduler": "fifo"}  # no ASHA: a trial's fate depends only on what the test does to it
FAKE = "tests.fakes:NumpyAdapter"


# -- without Ray --------------------------------------------------------------------------------------


def test_an_unknown_executor_names_the_choices(numpy_adapter):
    with pytest.raises(ConfigError, match="'local', 'ray' or an Executor such as RayExecutor"):
        tune(numpy_model, blobs(), space=NUMPY_SPACE, executor="dask", **QUIET)


def test_ray_settings_live_on_the_executor_object():
    ray = RayExecutor(resources_per_trial={"cpu": 1, "gpu": 0.25}, max_concurrent_trials=2, address=" auto ")
    assert (ray.resources["gpu"], ray.max_concurrent_trials, ray.address) == (0.25, 2, "auto")
    assert get_executor(ray) is ray and isinstance(get_executor("ray"), RayExecutor)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"resources_per_trial": {"gpu": 1.5}}, "share of one GPU"),
        ({"resources_per_trial": {"cpu": -1}}, ">= 0"),
        ({"resources_per_trial": {"cpu": 0, "gpu": 0}}, "no CPU and no GPU"),
        ({"resources_per_trial": [1, 2]}, "mapping"),
        ({"max_concurrent_trials": 0}, "max_concurrent_trials"),
        ({"max_failures": -1}, "max_failures"),
        ({"address": "http://head:8265"}, "dashboard"),
        ({"scheduler": "pbt"}, "scheduler"),
    ],
)
def test_ray_executor_checks_its_settings(options, message):
    with pytest.raises(ConfigError, match=message):
        RayExecutor(**options)


def test_auto_scheduler_stops_trials_early_only_where_the_local_pruner_would():
    from tuner.executors.ray.executor import uses_asha
    from tuner.study.search import MIN_TRIALS_TO_PRUNE as N

    assert [uses_asha("auto", n, False) for n in (N - 1, N, 100)] == [False, True, True]
    assert not uses_asha("auto", 100, True) and not uses_asha("asha", 100, True)  # Pareto: never
    assert uses_asha("asha", 2, False) and not uses_asha("fifo", 100, False)  # the user's choice


def test_resources_defaults_and_aliases():
    assert parse_resources(None) == {"cpu": 1.0, "gpu": 0.0}
    assert parse_resources({"CPUs": 2, "GPU": 0.25, "accel": 1}) == {"cpu": 2.0, "gpu": 0.25, "accel": 1.0}


def test_worker_env_gives_frameworks_the_trials_share():
    env = worker_env(cpus=2, gpus=0.5)
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"  # never the whole card
    assert env["TF_NUM_INTRAOP_THREADS"] == env["OMP_NUM_THREADS"] == "2"
    assert "CUDA_VISIBLE_DEVICES" not in env  # Ray's assignment stands
    assert worker_env(cpus=0.5, gpus=0)["CUDA_VISIBLE_DEVICES"] == ""  # no GPU asked, none seen
    assert worker_env(cpus=0.5, gpus=0)["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize("gpus, fraction", [(0, None), (0.25, 0.25), (0.5, 0.5), (1, None), (2, None)])
def test_memory_fraction_is_the_gpu_share(gpus, fraction):
    assert memory_fraction(gpus) == fraction


def test_capped_builder_keeps_the_signature_and_caps_nothing_without_a_gpu():
    from tuner.trial.runner import takes_hp

    def with_hp(hp):
        return ("model", hp)

    def without():
        return "model"

    assert takes_hp(capped_builder(with_hp, 0.5)) and not takes_hp(capped_builder(without, 0.5))
    assert capped_builder(with_hp, 0.5)({"a": 1}) == ("model", {"a": 1})
    assert limit_gpu_memory(0.5) == []  # CPU machine: torch sees no CUDA device, TF no GPU


def test_reporter_sends_epochs_and_turns_a_stop_into_pruning():
    sent = []
    objective = Objective(("val_loss",), ("minimize",))
    reporter = RayReporter(objective, 7, sent.append)
    reporter.epoch_metrics(0, {"val_loss": 0.5, "train_loss": 0.4})
    reporter.report(0, 0.5)
    assert sent == [
        {
            "objective": 0.5,
            "epochs_done": 1,
            NUMBER_KEY: 7,
            EPOCH_KEY: {"epoch": 0, "val_loss": 0.5, "train_loss": 0.4},
        }
    ]

    def stop(payload):
        raise SystemExit(0)  # what ray.tune.report does when ASHA stopped the trial

    stopping = RayReporter(objective, 7, stop)
    stopping.epoch_metrics(1, {"val_loss": 0.6})
    with pytest.raises(TrialPruned):
        stopping.report(1, 0.6)
    assert stopping.stopped


def test_final_result_carries_the_record_and_the_metrics_tune_requires():
    record = TrialRecord(number=3, params={"l2": np.float64(0.1)}, state="failed", error="boom")
    out = final_result(record, ["objective_0", "objective_1"])
    assert out["objective_0"] == 0.0 and out[NUMBER_KEY] == 3 and '"boom"' in out[RECORD_KEY]


class _Calls:
    """A tracker double that notes the calls the driver makes."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        return lambda *args: self.calls.append((name, *args))


def test_the_driver_alone_tracks_what_workers_report():
    from tuner.executors.ray.search import TrialSink

    tracker = _Calls()
    sink = TrialSink(None, tracker)  # type: ignore[arg-type]
    sink.epoch_done(4, 0, {"val_loss": 1.0}, {"dropout": 0.1})
    sink.epoch_done(4, 1, {"val_loss": 0.5}, {"dropout": 0.1})
    record = TrialRecord(number=4, params={"dropout": 0.1}, state="failed", error="worker died")
    sink.deliver(record)
    names = [c[0] for c in tracker.calls]
    assert names == ["trial_started", "epoch_logged", "epoch_logged", "trial_finished"]
    assert tracker.calls[0][1:] == (4, {"dropout": 0.1}) and tracker.calls[-1][1] is record
    again = pickle.loads(pickle.dumps(TrialSink(None, None)))
    again.deliver(record)  # a pickled sink without a tracker: nothing to write, nothing raised


def test_local_file_stores_are_local():
    assert is_local_uri(None) and is_local_uri("sqlite:///x.db") and is_local_uri("file:///m")
    assert not is_local_uri("http://mlflow:5000") and not is_local_uri("postgresql://u@db/m")


# -- on a real local Ray ------------------------------------------------------------------------------


def _register_fake() -> None:
    if FAKE not in base.ADAPTERS:  # in a Ray worker: the test's monkeypatch is not there
        base.ADAPTERS.insert(0, FAKE)


def numpy_model(hp):
    _register_fake()
    return NumpyModel(5, 3, sleep=0.02)


def uneven_model(hp):
    """Bad from the start when dropout is high, so ASHA has trials to stop."""
    _register_fake()
    model = NumpyModel(5, 3, sleep=0.02)
    if hp["dropout"] > 0.25:
        model.W[:] = np.random.default_rng(0).normal(0, 3.0, model.W.shape)
    return model


def killed_once(hp, marker: str, driver: int):
    """Kills its own worker process mid-training, the first time any worker builds."""
    _register_fake()
    if os.getpid() != driver:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            threading.Timer(0.15, os.kill, (os.getpid(), signal.SIGKILL)).start()
        except FileExistsError:
            pass
    return NumpyModel(5, 3, sleep=0.05)


def broken_model(hp, driver: int):
    _register_fake()
    if os.getpid() != driver:
        raise ValueError("the builder is broken")
    return NumpyModel(5, 3)


NUMPY_SPACE = {
    "knobs": {
        "dropout": {"low": 0.0, "high": 0.5},
        "learning_rate": {"low": 1e-3, "high": 0.3, "log": True},
        "batch_size": [16, 32],
        "patience": 3,
    }
}


_RAY_SETTINGS = ("resources_per_trial", "max_concurrent_trials", "max_failures", "scheduler")


def ray_tune(builder, data=None, **kw):
    """A study on the shared Ray runtime; the keys of ``_RAY_SETTINGS`` configure its RayExecutor."""
    executor = RayExecutor(**{k: kw.pop(k) for k in _RAY_SETTINGS if k in kw})
    args = {"space": NUMPY_SPACE, "n_trials": 4, "max_epochs": 4, "executor": executor, **QUIET, **kw}
    return tune(builder, blobs(n=300) if data is None else data, **args)


def test_keras_study_on_ray_matches_the_local_executor(ray_session):
    keras = pytest.importorskip("keras")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    data = ((X[:400] / 16).astype(np.float32), y[:400])
    args = {"space": "quick", "n_trials": 2, "max_epochs": 3, **QUIET}
    local = tune(keras_mlp, data, study_name="local", **args)
    remote = tune(keras_mlp, data, study_name="ray", executor=RayExecutor(max_concurrent_trials=1), **args)
    assert list(remote.trials.columns) == list(local.trials.columns)
    assert len(remote.trials) == 2 and set(remote.trials["framework"]) == {"keras"}
    assert set(remote.best_params) == set(local.best_params)
    assert set(remote.test_scores) == set(local.test_scores) and set(remote.validation_scores)
    assert isinstance(remote.best_model, keras.Model)
    assert sorted(r.number for r in remote.records) == [0, 1]
    first = remote.records[0]
    assert first.params["dropout"] == 0.5 and first.injected  # the start point, regularized by injection


def keras_mlp():
    import keras

    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def torch_mlp():
    from torch import nn

    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))


def sklearn_mlp():
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(16,), random_state=0)


@pytest.mark.parametrize("builder, framework", [(torch_mlp, "torch"), (sklearn_mlp, "sklearn")])
def test_torch_and_sklearn_studies_on_ray(ray_session, builder, framework):
    pytest.importorskip(framework)
    result = tune(
        builder,
        blobs(n=300),
        space="quick",
        n_trials=2,
        max_epochs=3,
        executor=RayExecutor(max_concurrent_trials=1),
        **QUIET,
    )
    assert len(result.trials) == 2 and "complete" in set(result.trials["state"])
    assert set(result.trials["state"]) <= {"complete", "pruned"}  # ASHA may stop the second one
    assert set(result.trials["framework"]) == {framework}
    assert result.test_scores and result.best_model is not None


@pytest.mark.mlflow  # a real SQLite store
def test_trials_nest_under_the_study_run_and_asha_prunes(ray_session, numpy_adapter, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # one at a time: the sampler and ASHA see the same order every run
    space = {"knobs": {**NUMPY_SPACE["knobs"], "l2": 1e-6}}  # injected into every trial's model
    asha = {"scheduler": "asha"}  # "auto" would not stop trials in a study of 7
    result = ray_tune(uneven_model, n_trials=7, max_epochs=6, max_concurrent_trials=1, tracking=uri,
                      experiment="ray-nesting", space=space, **asha)  # fmt: skip
    states = {r.number: r.state for r in result.records}
    assert len(states) == 7 and "pruned" in states.values() and "complete" in states.values()
    pruned = [r for r in result.records if r.state == "pruned"]
    assert all(r.epochs and r.best_epoch is not None and r.values is None for r in pruned)
    # a trial ASHA stopped cannot return its record: what was injected came with its first epoch
    injected = {r.number: [i.knob for i in r.injected] for r in result.records}
    assert all("l2" in knobs for knobs in injected.values()), (states, injected)
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("ray-nesting")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`regtuner.role` = 'trial'")
    assert len(runs) == 7
    for run in runs:  # written by the driver alone, from what the workers reported
        assert run.data.tags["mlflow.parentRunId"] == result.mlflow_run_id
        assert run.info.status == "FINISHED"
        assert run.data.tags["state"] == states[int(run.data.tags["regtuner.trial"])]
    completed = [r for r in runs if r.data.tags["state"] == "complete"]
    assert all("objective" in r.data.metrics for r in completed)


@pytest.mark.mlflow  # a real SQLite store
def test_a_killed_worker_is_retried_per_max_failures(ray_session, numpy_adapter, tmp_path):
    marker = str(tmp_path / "killed")
    builder = functools.partial(killed_once, marker=marker, driver=os.getpid())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = ray_tune(builder, n_trials=2, max_failures=1, max_concurrent_trials=2, **FIFO,
                      tracking=uri, experiment="ray-retried")  # fmt: skip
    assert os.path.exists(marker)  # one worker did die mid-trial
    assert len(result.records) == 2 and {r.state for r in result.records} <= {"complete", "pruned"}
    # the retry's run replaces the one the dead attempt left RUNNING: one run per trial, with its epochs
    runs = one_run_per_trial(uri, "ray-retried", result)
    for record in result.records:
        assert runs[record.number].info.status == "FINISHED"


@pytest.mark.mlflow  # a real SQLite store
def test_a_killed_worker_fails_its_trial_not_the_study(ray_session, numpy_adapter, tmp_path):
    marker = str(tmp_path / "killed")
    builder = functools.partial(killed_once, marker=marker, driver=os.getpid())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = ray_tune(builder, n_trials=2, max_failures=0, max_concurrent_trials=2, **FIFO,
                      tracking=uri, experiment="ray-dead-worker")  # fmt: skip
    failed = [r for r in result.records if r.state == "failed"]
    assert len(result.records) == 2 and len(failed) == 1
    assert "worker running this trial died" in failed[0].error
    assert result.best_trial != failed[0].number
    # the driver finishes the run the dead worker began (RUNNING) instead of writing a second one
    runs = one_run_per_trial(uri, "ray-dead-worker", result)
    dead = runs[failed[0].number]
    assert dead.info.status == "FAILED" and "worker running this trial died" in dead.data.tags["error"]


def one_run_per_trial(uri: str, experiment: str, result) -> dict:
    """Each trial has exactly one run under the study run, none RUNNING, its state and epochs right."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], filter_string="tags.`regtuner.role` = 'trial'")
    numbers = sorted(int(r.data.tags["regtuner.trial"]) for r in runs)
    assert numbers == sorted(r.number for r in result.records), numbers
    by_number = {int(r.data.tags["regtuner.trial"]): r for r in runs}
    for record in result.records:
        run = by_number[record.number]
        assert run.info.status != "RUNNING" and run.data.tags["state"] == record.state
        assert run.data.tags["mlflow.parentRunId"] == result.mlflow_run_id
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
        assert sorted(steps) == list(range(record.epochs_run)), (record.number, steps)
    return by_number


def test_resume_continues_a_killed_study_on_ray(ray_session, numpy_adapter):
    import optuna

    # the same Optuna storage serves both executors: a study begun here goes on on Ray
    first = ray_tune(numpy_model, n_trials=2, study_name="resumable", executor="local")
    storage = optuna.storages.RDBStorage(f"sqlite:///{os.path.abspath('.regtuner/studies.db')}")
    optuna.load_study(study_name="resumable", storage=storage).ask()  # a trial its dead driver left running
    again = ray_tune(numpy_model, n_trials=4, study_name="resumable", resume=True)
    by_number = {r.number: r for r in again.records}
    assert [by_number[r.number].values for r in first.records] == [r.values for r in first.records]
    assert by_number[2].state == "failed" and "interrupted" in by_number[2].error
    counted = [r for r in again.records if r.number != 2]
    assert len(counted) == 4 and {r.state for r in counted} <= {"complete", "pruned"}


def test_failure_policy_aborts_a_hopeless_ray_study(ray_session, numpy_adapter):
    builder = functools.partial(broken_model, driver=os.getpid())
    with pytest.raises(StudyAborted, match="the builder is broken"):
        ray_tune(builder, n_trials=6, max_concurrent_trials=1)


def test_pareto_search_on_ray(ray_session, numpy_adapter):
    result = ray_tune(numpy_model, objective=["val_loss", "val_accuracy"], n_trials=3)
    assert result.pareto_front is not None and len(result.trials) == 3
    assert {"value_val_loss", "value_val_accuracy"} <= set(result.trials.columns)


def test_a_trial_no_node_can_hold_is_refused_before_any_trial(ray_session, numpy_adapter):
    with pytest.raises(ConfigError, match="fits on no node"):
        ray_tune(numpy_model, resources_per_trial={"cpu": 1, "gpu": 1})


def slow_numpy_model(hp):
    _register_fake()
    return NumpyModel(5, 3, sleep=0.05)


def test_the_time_budget_leaves_no_trial_running(ray_session, numpy_adapter):
    import optuna

    try:
        ray_tune(slow_numpy_model, n_trials=100, max_epochs=40, timeout=8, study_name="budget",
                 **FIFO)  # fmt: skip
    except StudyAborted:  # a slow machine: the budget ended before any trial did
        pass
    storage = f"sqlite:///{os.path.abspath('.regtuner/studies.db')}"
    trials = optuna.load_study(study_name="budget", storage=storage).trials
    assert trials and all(t.state.is_finished() for t in trials)  # cut short: pruned, or not started
    assert len(trials) < 100


def numpy_model_slow_or_not(hp):
    _register_fake()
    return NumpyModel(5, 3, sleep=0.5 if hp.slow else 0.0)


def test_trial_timeout_stops_a_ray_trial_at_its_epoch_hooks(ray_session, numpy_adapter):
    # Tune runs trials in a thread of the actor: no SIGALRM there, the epoch and batch hooks stop it
    space = {
        **NUMPY_SPACE,
        "hyperparameters": {"slow": [True, False]},
        "start": [{"slow": True}, {"slow": False}],
    }
    r = ray_tune(numpy_model_slow_or_not, space=space, n_trials=2, max_epochs=30, trial_timeout=3,
                 **FIFO)  # fmt: skip
    slow, fast = sorted(r.records, key=lambda rec: not rec.params["slow"])
    assert slow.state == "failed" and fast.state == "complete"
    assert slow.error.startswith("trial_timeout: trial exceeded trial_timeout=3s (stopped during epoch")
    assert 0 < slow.epochs_run < 30 and "_on_alarm" not in slow.traceback

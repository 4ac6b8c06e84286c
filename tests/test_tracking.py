"""MLflow tracking against a real ``mlflow server`` (queried over REST) and real SQLite stores."""

from __future__ import annotations

import os
import pickle
import re
import threading
import warnings

import pytest

import tuner.tracking.mlflow_tracker as tracking_mlflow
from tests.mlflow_server import (
    artifacts,
    find_runs,
    free_port,
    metric_history,
    metrics_of,
    params_of,
    rest,
    tags_of,
)
from tuner.errors import ConfigError
from tuner.records import Injection, TrialRecord
from tuner.tracking import (
    MlflowTracker,
    NullTracker,
    StudyInfo,
    StudySummary,
    TrackingWarning,
    make_tracker,
    validate_tracking_uri,
)
from tuner.tracking.spool import read_spool

EPOCHS = 5
SPACE_YAML = "name: quick\ndropout: {low: 0.0, high: 0.5}\n"


def epoch_metrics(trial: int, epoch: int) -> dict[str, float]:
    val = 1.0 + trial - 0.1 * epoch
    return {"train_loss": val - 0.2, "val_loss": val, "gap": 0.2}


def study_info(name: str, experiment: str) -> StudyInfo:
    return StudyInfo(
        study_name=name,
        experiment=experiment,
        executor="local",
        objective=("val_loss",),
        directions=("minimize",),
        task="binary",
        fingerprint="abc123",
        space_name="quick",
        space_yaml=SPACE_YAML,
        settings={"n_trials": 3, "max_epochs": EPOCHS, "timeout": None, "seed": 0, "cv": {"folds": 3}},
        framework=None,
        version="0.1.0",
    )


def records() -> list[TrialRecord]:
    states = ("complete", "pruned", "failed")
    out = []
    for number, state in enumerate(states):
        epochs = tuple(epoch_metrics(number, e) for e in range(EPOCHS))
        out.append(
            TrialRecord(
                number=number,
                params={"dropout": 0.1 * (number + 1), "l2": 1e-4, "schedule": {"kind": "cosine"}},
                state=state,
                values=None if state == "failed" else (epochs[-1]["val_loss"],),
                epochs=epochs,
                best_epoch=EPOCHS - 1,
                injected=(
                    Injection("dropout", True, "rate 0.1 on 2 layers"),
                    Injection("l2", False, "no kernels"),
                ),
                error="ValueError: boom" if state == "failed" else None,
                traceback="Traceback (most recent call last):\n  ValueError: boom"
                if state == "failed"
                else None,
                duration=1.5,
                framework="numpy",
            )
        )
    return out


SUMMARY = StudySummary(
    best_params={"dropout": 0.1, "l2": 1e-4},
    best_values=(0.6,),
    best_trial=0,
    test_scores={"accuracy": 0.8, "test_loss": 0.7},
    counts={"complete": 1, "pruned": 1, "failed": 1},
    report="best trial 0: val_loss 0.6\n",
    extra_metrics={"optimism": 0.05},
)


def drive_study(tracker, name: str, experiment: str, *, end: bool = True) -> None:
    """Trial 0 reports every epoch live, trial 1 only its first three, trial 2 none (the record has them)."""
    tracker.start_study(study_info(name, experiment))
    for record in records():
        tracker.trial_started(record.number, record.params)
        live = {0: EPOCHS, 1: 3, 2: 0}[record.number]
        for epoch in range(live):
            tracker.epoch_logged(record.number, epoch, record.epochs[epoch])
        tracker.trial_finished(record)
    if end:
        tracker.end_study(SUMMARY)


def test_study_lands_in_mlflow_server_as_parent_and_nested_trials(mlflow_server):
    tracker = make_tracker(mlflow_server, "exp-server")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        drive_study(tracker, "study-a", "exp-server")
    assert tracker.failures == 0

    runs = find_runs(mlflow_server, "exp-server")
    parents = [r for r in runs if tags_of(r).get("regtuner.role") == "study"]
    children = sorted(
        (r for r in runs if tags_of(r).get("regtuner.role") == "trial"), key=lambda r: r["info"]["run_name"]
    )
    assert len(parents) == 1 and len(children) == 3 and len(runs) == 4
    parent = parents[0]
    assert parent["info"]["run_id"] == tracker.run_id
    run_page = f"{mlflow_server}/#/experiments/{tracker.experiment_id}/runs/{tracker.run_id}"
    assert tracker.run_url == f"{run_page}?workflowType=machine_learning"
    assert parent["info"]["run_name"] == "study-a"
    assert parent["info"]["status"] == "FINISHED"
    ptags = tags_of(parent)
    assert ptags["regtuner.study"] == "study-a"
    assert ptags["regtuner.objective"] == "val_loss" and ptags["regtuner.direction"] == "minimize"
    assert ptags["regtuner.fingerprint"] == "abc123" and ptags["regtuner.task"] == "binary"
    assert ptags["regtuner.framework"] == "numpy"  # unknown at start, taken from the first record
    assert ptags["regtuner.best_trial"] == "0" and ptags["regtuner.chosen"] == "trial"
    pparams = params_of(parent)
    assert pparams["n_trials"] == "3" and pparams["space"] == "quick" and pparams["cv.folds"] == "3"
    assert ptags["best.dropout"] == "0.1" and "best.dropout" not in pparams  # a tag: resume may change it
    pmetrics = metrics_of(parent)
    assert pmetrics["best_objective"] == pytest.approx(0.6)
    assert pmetrics["test_accuracy"] == pytest.approx(0.8) and pmetrics["test_loss"] == pytest.approx(0.7)
    assert (pmetrics["trials_complete"], pmetrics["trials_pruned"], pmetrics["trials_failed"]) == (1, 1, 1)
    assert pmetrics["optimism"] == pytest.approx(0.05)
    assert set(artifacts(mlflow_server, tracker.run_id)) >= {"space.yaml", "report.txt"}

    expected = [("complete", "FINISHED"), ("pruned", "FINISHED"), ("failed", "FAILED")]
    for number, (child, (state, status)) in enumerate(zip(children, expected, strict=True)):
        tags = tags_of(child)
        assert child["info"]["run_name"] == f"trial-{number:04d}"
        assert tags["mlflow.parentRunId"] == tracker.run_id
        assert tags["regtuner.trial"] == str(number)
        assert tags["state"] == state and child["info"]["status"] == status
        assert tags["injected"] == "dropout: rate 0.1 on 2 layers\nl2: no kernels (not applied)"
        params = params_of(child)
        assert params["dropout"] == str(0.1 * (number + 1)) and params["schedule"] == "{'kind': 'cosine'}"
        history = metric_history(mlflow_server, child["info"]["run_id"], "val_loss")
        assert [m["step"] for m in history] == list(range(EPOCHS))  # live, partly live and replayed alike
        assert [m["value"] for m in history] == pytest.approx(
            [epoch_metrics(number, e)["val_loss"] for e in range(EPOCHS)]
        )
        metrics = metrics_of(child)
        assert (metrics["epochs_run"], metrics["best_epoch"], metrics["duration_s"]) == (
            EPOCHS,
            EPOCHS - 1,
            1.5,
        )
        assert ("objective" in metrics) == (state != "failed")
    assert tags_of(children[2])["error"] == "ValueError: boom"
    assert "traceback.txt" in artifacts(mlflow_server, children[2]["info"]["run_id"])


@pytest.mark.slow
def test_metrics_are_flushed_mid_trial_and_large_batches_are_split(mlflow_server, monkeypatch):
    monkeypatch.setattr(tracking_mlflow, "FLUSH_METRICS", 6)  # two epochs of three metrics
    tracker = MlflowTracker(mlflow_server, "exp-batches")
    tracker.start_study(study_info("study-b", "exp-batches"))
    params = {f"p{i}": i for i in range(150)}  # over the 100 params of one log_batch call
    tracker.trial_started(0, params)
    for epoch in range(3):
        tracker.epoch_logged(0, epoch, epoch_metrics(0, epoch))
    assert tracker.flush(60)
    run_id = tracker.trial_runs[0]
    assert [m["step"] for m in metric_history(mlflow_server, run_id, "val_loss")] == [0, 1]  # flushed at 6
    assert [row[3] for row in tracker._study.trials[0].rows] == [2, 2, 2]  # sent rows are not kept

    wide = {f"m{i}": float(i) for i in range(1100)}  # over the 1000 metrics of one log_batch call
    record = TrialRecord(0, params, "complete", (0.5,), (*(epoch_metrics(0, e) for e in range(3)), wide))
    tracker.trial_finished(record)
    tracker.end_study(SUMMARY)
    assert tracker.failures == 0
    run = rest(mlflow_server, "/api/2.0/mlflow/runs/get", {"run_id": run_id})["run"]
    assert len(params_of(run)) == 150
    assert {f"m{i}" for i in range(1100)} <= set(metrics_of(run))
    assert [m["step"] for m in metric_history(mlflow_server, run_id, "val_loss")] == [0, 1, 2]
    assert metric_history(mlflow_server, run_id, "m1099")[0]["step"] == 3


@pytest.mark.slow
@pytest.mark.mlflow  # a real SQLite store
def test_default_store_from_env_and_a_pickled_tracker(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    db = tmp_path / "env" / "mlflow.db"
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracker = make_tracker(None, "exp-env")
    assert isinstance(tracker, MlflowTracker)
    tracker.start_study(study_info("study-c", "exp-env"))
    assert tracker.tracking_uri == uri and tracker.flush(60) and db.exists()

    # a pickled tracker (Tune's driver on a Ray Client's head gets one) carries the URI and parent run id
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the worker must not need the environment
    worker = pickle.loads(pickle.dumps(tracker))
    record = records()[1]
    worker.trial_started(1, record.params)
    worker.trial_finished(record)
    assert worker.run_id == tracker.run_id and worker.failures == 0

    tracker.trial_started(7, {"dropout": 0.3})  # never finished: the study is killed
    tracker.epoch_logged(7, 0, epoch_metrics(7, 0))
    tracker.end_study(StudySummary({}, None, None, {}, {}), status="KILLED")
    assert tracker.failures == 0

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("exp-env")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"study-c", "trial-0001", "trial-0007"}
    assert runs["study-c"].info.status == "KILLED"
    assert runs["trial-0001"].data.tags["mlflow.parentRunId"] == tracker.run_id
    assert runs["trial-0001"].data.tags["state"] == "pruned"
    assert len(client.get_metric_history(runs["trial-0001"].info.run_id, "val_loss")) == EPOCHS
    killed = runs["trial-0007"]
    assert killed.info.status == "KILLED" and killed.data.tags["state"] == "killed"
    assert [m.step for m in client.get_metric_history(killed.info.run_id, "val_loss")] == [0]


def test_null_tracker_records_nothing(tmp_path):
    tracker = make_tracker(False, "ignored")
    assert isinstance(tracker, NullTracker)
    drive_study(tracker, "study-null", "ignored")
    assert tracker.run_id is None and tracker.failures == 0
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no mlruns in the working folder


def test_unreachable_server_warns_once_the_study_goes_on_and_everything_is_spooled(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")  # the user's setting wins over ours
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    uri = f"http://127.0.0.1:{free_port()}"
    tracker = make_tracker(uri, "exp-down")
    caught: list[warnings.WarningMessage] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                drive_study(tracker, "study-down", "exp-down")
            caught.extend(seen)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(120)  # MLflow's own retry defaults would stall for many minutes here
    assert not thread.is_alive(), "tracking an unreachable server blocked the study"
    assert errors == []
    ours = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(ours) == 1
    assert uri in str(ours[0].message) and "Connection refused" in str(ours[0].message)
    assert "regtuner sync" in str(ours[0].message)
    assert tracker.failures >= 1 and tracker.run_id is None
    contents = read_spool(tracker.status["spool"])
    study = contents.study
    assert contents.header["uri"] == uri and not study.opened and study.status == "FINISHED"
    assert sorted(study.trials) == [0, 1, 2]  # the study run and three trials, nothing of them sent
    for number, trial in study.trials.items():
        assert trial.run_id is None and trial.sent == 0 and trial.epochs == EPOCHS, number
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # ours were set only during our calls


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("localhost:5000", "http://localhost:5000"),
        ("127.0.0.1:5000/", "http://127.0.0.1:5000/"),
        ("mlruns", "sqlite:///mlruns/mlflow.db"),
        ("ftp://host/x", "no tracking store"),
        ("http://", "names no host"),
        ("http://host:port", "invalid port"),
        ("sqlite://mlflow.db", "sqlite:////absolute"),
        ("file:///tmp/mlruns", "MLFLOW_ALLOW_FILE_STORE"),
        ("   ", "empty"),
    ],
)
def test_malformed_tracking_uri_is_a_config_error(value, hint):
    with pytest.raises(ConfigError, match=re.escape(hint)):
        make_tracker(value, "exp")


def test_valid_uris_and_bad_types():
    for uri in ("http://127.0.0.1:5000", "https://mlflow.example.com", "sqlite:///mlflow.db", "databricks"):
        assert validate_tracking_uri(uri) == uri
    assert validate_tracking_uri("postgresql+psycopg2://u:p@db/mlflow").startswith("postgresql")
    with pytest.raises(ConfigError, match="tracking must be"):
        make_tracker(5000, "exp")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="experiment"):
        make_tracker(None, "")
    with pytest.raises(ConfigError, match="status"):
        MlflowTracker(None, "exp").end_study(SUMMARY, status="DONE")


@pytest.mark.parametrize("auth, query", [("user:secret@", ""), ("", "?token=secret-token-1")])
def test_unreachable_message_hides_credentials(auth, query):
    tracker = MlflowTracker(f"http://{auth}127.0.0.1:{free_port()}/{query}", "exp")
    with pytest.warns(TrackingWarning) as seen:
        tracker.start_study(study_info("s", "exp"))
        tracker.flush(60)
    tracker.close(0)
    assert "secret" not in read_spool(tracker.status["spool"]).header["uri"]
    assert "secret" not in str(seen[0].message) and "127.0.0.1" in str(seen[0].message)
    assert ("***@127.0.0.1" if auth else "?***") in str(seen[0].message)

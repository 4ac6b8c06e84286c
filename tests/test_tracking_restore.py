"""Runs a dead process left behind, put right (real MLflow server, REST queries): a resumed study's trials
rebuilt from their records, a dead Ray worker's trial finished by the driver, a retried trial's run."""

from __future__ import annotations

import dataclasses

import pytest

from tests.mlflow_server import metric_history, rest, tags_of
from tests.test_tracking import EPOCHS, SUMMARY, records, study_info
from tuner.records import INTERRUPTED, TrialRecord
from tuner.tracking import MlflowTracker, make_tracker
from tuner.tracking import mlflow_tracker as tracking_mlflow


@pytest.fixture(autouse=True)
def every_epoch_sent(thread_worker, monkeypatch):  # thread_worker: conftest.py
    monkeypatch.setattr(tracking_mlflow, "FLUSH_METRICS", 1)  # every epoch is sent as it comes


def trial_runs(url: str, experiment: str, deleted: bool = False) -> list[dict]:
    found = rest(url, "/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": experiment})
    view = "ALL" if deleted else "ACTIVE_ONLY"
    payload = {"experiment_ids": [found["experiment"]["experiment_id"]], "max_results": 1000,
               "filter": "tags.`regtuner.role` = 'trial'", "run_view_type": view}  # fmt: skip
    return rest(url, "/api/2.0/mlflow/runs/search", payload).get("runs", [])


def one_per_number(url: str, experiment: str) -> dict[int, dict]:
    runs = trial_runs(url, experiment)
    numbers = sorted(int(tags_of(r)["regtuner.trial"]) for r in runs)
    assert numbers == sorted(set(numbers)), numbers  # no trial twice
    return {int(tags_of(r)["regtuner.trial"]): r for r in runs}


def steps(url: str, run: dict, key: str = "val_loss") -> list[int]:
    return sorted(m["step"] for m in metric_history(url, run["info"]["run_id"], key))


def run_ids(runs: dict[int, dict]) -> dict[int, str]:
    return {number: run["info"]["run_id"] for number, run in runs.items()}


def renumber(record: TrialRecord, number: int) -> TrialRecord:
    return dataclasses.replace(record, number=number)


def test_resume_rebuilds_trial_runs_from_their_records(mlflow_server):
    complete, pruned, _ = records()
    lost_end, done, missing = renumber(complete, 0), renumber(pruned, 1), renumber(complete, 2)
    interrupted = TrialRecord(3, complete.params, "failed", error=INTERRUPTED)
    dead = MlflowTracker(mlflow_server, "exp-restore")
    dead.start_study(study_info("study-restore", "exp-restore"))
    dead.trial_started(0, lost_end.params)  # two epochs reach the store, the end does not
    for epoch in range(2):
        dead.epoch_logged(0, epoch, lost_end.epochs[epoch])
    dead.trial_started(1, done.params)
    dead.trial_finished(done)
    dead.trial_started(3, interrupted.params)  # the trial the kill interrupts
    dead.epoch_logged(3, 0, complete.epochs[0])
    assert dead.flush(60)
    dead.close()  # trial 2 never reached the store
    before = one_per_number(mlflow_server, "exp-restore")
    assert sorted(before) == [0, 1, 3] and before[0]["info"]["status"] == "RUNNING"

    tracker = make_tracker(mlflow_server, "exp-restore", study_uid=dead.study_uid)
    tracker.start_study(study_info("study-restore", "exp-restore"))
    tracker.restore_trials([lost_end, done, missing, interrupted])
    assert tracker.flush(60) and tracker.failures == 0
    runs = one_per_number(mlflow_server, "exp-restore")
    assert sorted(runs) == [0, 1, 2, 3]
    for number in (0, 1, 3):  # the runs that existed are the ones finished, no second run
        assert runs[number]["info"]["run_id"] == before[number]["info"]["run_id"]
    for number, record in ((0, lost_end), (1, done), (2, missing)):
        run, tags = runs[number], tags_of(runs[number])
        assert run["info"]["status"] == "FINISHED" and tags["state"] == record.state, number
        assert "error" not in tags and tags["mlflow.parentRunId"] == tracker.run_id
        assert steps(mlflow_server, run) == list(range(EPOCHS)), number  # each epoch once
        assert {p["key"] for p in run["data"]["params"]} >= {"dropout", "l2"}
    assert steps(mlflow_server, runs[0], "objective") == [EPOCHS - 1]
    killed = runs[3]
    assert killed["info"]["status"] == "KILLED" and tags_of(killed)["error"].startswith("interrupted")
    assert tracker.trial_runs[2] == runs[2]["info"]["run_id"]
    tracker.close()  # killed again

    again = make_tracker(mlflow_server, "exp-restore", study_uid=dead.study_uid)  # a second resume
    again.start_study(study_info("study-restore", "exp-restore"))
    again.restore_trials([lost_end, done, missing, interrupted])
    again.end_study(SUMMARY)
    after = one_per_number(mlflow_server, "exp-restore")
    assert run_ids(after) == run_ids(runs)
    assert steps(mlflow_server, after[0]) == list(range(EPOCHS))  # nothing sent twice

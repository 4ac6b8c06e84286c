"""The tracker's state and the worker's replica: what the tracker ships (as JSON, the way the worker
process gets it) leaves the replica holding what the tracker reported, and leaves the tracker holding
only what it has not shipped."""

from __future__ import annotations

import json

import pytest

from tests.test_tracking import EPOCHS, SUMMARY, records, study_info
from tuner.tracking.projection import Projector
from tuner.tracking.state import StudyRun, TrialRun, merge, take_changes


def _pair() -> tuple[StudyRun, StudyRun]:
    study = StudyRun("u1", "exp")
    study.start(study_info("s", "exp"), resume=False)
    return study, StudyRun.from_json(json.loads(json.dumps(study.skeleton())))


def _ship(study: StudyRun, replica: StudyRun, numbers=(), fresh=(), head=False) -> None:
    change = take_changes(study, set(numbers), set(fresh), head)
    merge(replica, json.loads(json.dumps(change)))


def test_a_replica_gets_released_rows_once_and_the_tracker_keeps_only_the_rest():
    study, replica = _pair()
    assert replica.trials == {} and replica.name == "s"  # the skeleton: the head, no trials yet
    study.tags["regtuner.framework"] = "numpy"
    _ship(study, replica, head=True)
    assert replica.tags == study.tags and replica.params == study.params
    trial = study.trial(0)
    trial.params = {"dropout": "0.1"}
    trial.add_epoch({"val_loss": 1.0, "gap": 0.1}, 0)
    trial.released = len(trial.rows)
    trial.add_epoch({"val_loss": 0.9, "gap": 0.1}, 1)  # not released: it stays with the tracker
    _ship(study, replica, [0])
    assert [(r[0], r[3]) for r in replica.trials[0].rows] == [("val_loss", 0), ("gap", 0)]
    assert replica.trials[0].released == 2 and replica.trials[0].params == {"dropout": "0.1"}
    assert [r[3] for r in study.trials[0].rows] == [1, 1] and study.trials[0].released == 0
    replica.trials[0].run_id, replica.trials[0].rows, replica.trials[0].released = "r0", [], 0  # sent

    record = records()[0]
    study.trials[0].finish(record)
    study.extra_tags["regtuner.framework"] = "numpy"
    _ship(study, replica, [0])
    sent = replica.trials[0]
    assert sent.run_id == "r0" and sent.status == "FINISHED" and sent.outcome["state"] == "complete"
    assert sorted({r[3] for r in sent.rows if r[0] == "val_loss"}) == list(range(1, EPOCHS))
    assert replica.extra_tags == {"regtuner.framework": "numpy"} and study.extra_tags == {}
    assert study.trials[0].rows == [] and study.trials[0].status == "FINISHED"  # its head stays


def test_a_restored_trial_replaces_the_replicas_copy_and_the_summary_moves_once():
    study, replica = _pair()
    first = records()[0]
    study.trial(0).finish(first)
    _ship(study, replica, [0], head=True)
    replica.trials[0].run_id = "r0"
    study.trials.pop(0)
    study.trial(0).finish(first, lookup=True)  # restored from the Optuna storage
    _ship(study, replica, [0], fresh=[0])
    again = replica.trials[0]
    assert again.run_id is None and again.lookup  # looked up by its UID, not taken on trust
    assert sorted({r[3] for r in again.rows if r[0] == "val_loss"}) == list(range(EPOCHS))

    study.end(SUMMARY, "FINISHED")
    _ship(study, replica, head=True)
    assert replica.status == "FINISHED" and replica.summary is not None and study.summary is None
    _ship(study, replica, head=True)  # shipped once: a second change does not bring it back
    assert replica.summary is not None


def test_a_trial_replayed_while_it_ran_sends_every_epoch_of_its_record():
    record = records()[0]
    # its worker died after epochs 0 and 1 were shipped: the tracker starts the trial over, looked up
    trial = TrialRun(0, {"regtuner.role": "trial"}, {"dropout": "0.1"}, lookup=True)
    trial.add_epoch(record.epochs[2], 2)  # reported after the replacement, kept until the trial ends
    trial.finish(record)
    steps = [r[3] for r in trial.rows if r[0] == "val_loss"]
    assert sorted(steps) == list(range(EPOCHS))  # epochs 0 and 1 too: the lost worker may not have sent them
    assert trial.released == len(trial.rows)


@pytest.mark.mlflow
def test_a_trial_that_comes_during_a_pass_is_sent_before_the_study_run_closes(tmp_path):
    study, _ = _pair()
    first, second, _third = records()
    study.trial(0).finish(first)

    class Busy(Projector):
        def _trial(self, run: StudyRun, trial: TrialRun) -> None:
            super()._trial(run, trial)
            if trial.number == 0:  # meanwhile the tracker merges a trial more, then the study's end
                run.trial(1).finish(second)
                run.end(SUMMARY, "FINISHED")

    projector = Busy(f"sqlite:///{tmp_path}/mlflow.db")
    projector.project(study)
    assert study.trials[0].done and study.trials[1].pending and not study.done  # the run stays open
    projector.project(study)  # the next pass
    assert study.trials[1].done and study.done
    client = projector.client
    runs = client.search_runs([study.experiment_id])
    assert sorted(r.data.tags.get("regtuner.trial", "study") for r in runs) == ["0", "1", "study"]
    assert {r.info.status for r in runs if "regtuner.trial" in r.data.tags} == {"FINISHED"}

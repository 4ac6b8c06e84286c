"""Tracking that loses nothing: the MLflow server dies mid-study, comes back, and every trial and every
epoch metric arrives exactly once (by the tracker's own retry, at the study's end, or by ``regtuner sync``).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest

from tests.fakes import SPACE, NumpyModel, blobs
from tests.mlflow_server import (
    MlflowServer,
    TcpProxy,
    find_runs,
    free_port,
    metric_history,
    metrics_of,
    rest,
    tags_of,
)
from tests.test_tracking import EPOCHS, SUMMARY, drive_study, epoch_metrics, records, study_info
from tuner import tune
from tuner.cli.main import main
from tuner.tracking import MlflowTracker, TrackingWarning
from tuner.tracking.spool import SpoolFile, read_spool, spool_files
from tuner.tracking.state import StudyRun


def split(runs: list[dict]) -> tuple[list[dict], dict[int, dict]]:
    parents = [r for r in runs if tags_of(r).get("regtuner.role") == "study"]
    children = {
        int(tags_of(r)["regtuner.trial"]): r for r in runs if tags_of(r).get("regtuner.role") == "trial"
    }
    assert len(children) == len([r for r in runs if tags_of(r).get("regtuner.role") == "trial"])  # no twins
    return parents, children


def steps(url: str, run: dict, key: str) -> list[int]:
    return [m["step"] for m in metric_history(url, run["info"]["run_id"], key)]


def runs_or_none(url: str, experiment: str) -> list[dict]:
    try:
        return find_runs(url, experiment)
    except AssertionError:  # no such experiment yet
        return []


def grep_tree(root: Path, secret: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


@pytest.mark.slow
@pytest.mark.mlflow  # a server of its own
def test_server_killed_mid_study_restarted_and_synced_exactly_once(
    numpy_adapter, tmp_path, monkeypatch, capfd
):
    secret = "tok-" + tmp_path.name.replace("_", "") + "-9f3b27c1"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", secret)  # MLflow's own credential variable
    monkeypatch.setenv("REGTUNER_TRACKING_RETRY_SECONDS", "3600")  # no recovery before the sync
    server = MlflowServer(tmp_path / "server", port=free_port())
    server.start()
    built = []

    def build_model():
        built.append(1)
        if len(built) == 5:  # the preflight build, trials 0-2; kill once the server has some of them
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(runs_or_none(server.url, "killed")) < 3:
                time.sleep(0.2)
            server.stop()
        return NumpyModel(5, 3)

    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            result = tune(build_model, blobs(n=300), space=SPACE, n_trials=8, max_epochs=6,
                          tracking=server.url, experiment="killed", progress=False)  # fmt: skip
        ours = [w for w in seen if issubclass(w.category, TrackingWarning)]
        assert len(ours) == 1 and "regtuner sync" in str(ours[0].message)
        pending = spool_files()
        assert len(pending) == 1 and read_spool(pending[0]).study.pending

        server.start()  # the same SQLite store, the same port
        assert main(["sync"]) == 0
        assert spool_files() == [] and not any((Path(".regtuner/spool/staged")).glob("*/*"))
        assert main(["sync"]) == 0  # nothing left: a second sync sends nothing twice

        runs = find_runs(server.url, "killed")
        parents, children = split(runs)
        assert len(parents) == 1 and parents[0]["info"]["run_id"] == result.mlflow_run_id
        assert parents[0]["info"]["status"] == "FINISHED"
        assert metrics_of(parents[0])["trials_complete"] == result.counts["complete"]
        assert sorted(children) == [r.number for r in result.records] == list(range(8))
        for record in result.records:
            child = children[record.number]
            assert tags_of(child)["mlflow.parentRunId"] == result.mlflow_run_id
            assert tags_of(child)["state"] == record.state
            for key in ("val_loss", "train_loss", "gap", "val_accuracy"):
                assert steps(server.url, child, key) == list(range(record.epochs_run)), (record.number, key)
    finally:
        server.stop()
    out, err = capfd.readouterr()
    token = secret.encode()
    assert grep_tree(server.root, token) == []  # database, artifacts, server log
    assert grep_tree(Path(".regtuner"), token) == []  # the spool, the study storage
    assert secret not in out + err and all(secret not in str(w.message) for w in seen)


@pytest.mark.slow
def test_server_gone_mid_study_and_back_the_tracker_catches_up(mlflow_server, monkeypatch):
    monkeypatch.setenv("REGTUNER_TRACKING_RETRY_SECONDS", "0.3")
    proxy = TcpProxy(mlflow_server).start()
    first, second, third = records()
    try:
        tracker = MlflowTracker(proxy.url, "exp-flaky")
        tracker.start_study(study_info("study-flaky", "exp-flaky"))
        tracker.trial_started(0, first.params)
        tracker.epoch_logged(0, 0, first.epochs[0])
        assert tracker.flush(60) and tracker.run_id
        proxy.stop()  # the server is gone: connections drop, new ones are refused
        tracker.epoch_logged(0, 1, first.epochs[1])
        tracker.trial_started(1, second.params)
        tracker.trial_finished(second)
        with pytest.warns(TrackingWarning, match="spooled to"):
            tracker.flush(60)
        assert tracker.status["spooled"] > 0
        proxy.start()  # back at the same address: the worker replays its spool and goes live again
        for epoch in range(2, EPOCHS):
            tracker.epoch_logged(0, epoch, first.epochs[epoch])
        tracker.trial_finished(first)
        tracker.trial_started(2, third.params)
        tracker.trial_finished(third)
        tracker.end_study(SUMMARY)
    finally:
        proxy.stop()
    assert tracker.status["spooled"] == 0 and spool_files() == []
    parents, children = split(find_runs(mlflow_server, "exp-flaky"))
    assert len(parents) == 1 and parents[0]["info"]["status"] == "FINISHED"
    assert sorted(children) == [0, 1, 2]
    for number, child in children.items():
        assert tags_of(child)["mlflow.parentRunId"] == tracker.run_id
        assert steps(mlflow_server, child, "val_loss") == list(range(EPOCHS))
        values = [m["value"] for m in metric_history(mlflow_server, child["info"]["run_id"], "val_loss")]
        assert values == pytest.approx([epoch_metrics(number, e)["val_loss"] for e in range(EPOCHS)])


@pytest.mark.slow
def test_study_with_no_server_is_synced_later_to_another_uri(mlflow_server):
    dead = f"http://127.0.0.1:{free_port()}"
    tracker = MlflowTracker(dead, "exp-later")
    with pytest.warns(TrackingWarning):
        drive_study(tracker, "study-later", "exp-later", end=False)
        tracker.flush(60)
    [path] = spool_files()
    assert main(["sync"]) == 0  # the owner still holds the file: skipped, not sent twice
    assert spool_files() == [path]
    tracker.end_study(SUMMARY)  # one more try at the dead address; the file stays
    assert read_spool(path).header["uri"] == dead
    assert main(["sync"]) == 1  # still dead
    assert main(["sync", "--tracking-uri", mlflow_server]) == 0
    assert spool_files() == []
    parents, children = split(find_runs(mlflow_server, "exp-later"))
    assert len(parents) == 1 and parents[0]["info"]["run_name"] == "study-later"
    assert parents[0]["info"]["status"] == "FINISHED"
    assert metrics_of(parents[0])["best_objective"] == pytest.approx(0.6)
    assert sorted(children) == [0, 1, 2]
    for child in children.values():
        assert tags_of(child)["mlflow.parentRunId"] == parents[0]["info"]["run_id"]
        assert steps(mlflow_server, child, "val_loss") == list(range(EPOCHS))


def test_a_spool_file_keeps_no_secret_and_only_its_owner_holds_it(tmp_path):
    spool = SpoolFile.create(tmp_path, "http://user:pw@host:5000/?token=x", "u1")
    study = StudyRun("u1", "exp", name="s", run_id="r1", opened=True)
    study.trial(0).add_epoch({"val_loss": 0.5}, 0)
    spool.write(study)
    contents = read_spool(spool.path)
    assert contents.header["uri"] == "http://host:5000/"  # no password, no query on disk
    assert contents.study.run_id == "r1" and contents.study.trials[0].rows[0][:2] == ["val_loss", 0.5]
    assert SpoolFile.open_existing(spool.path) is None  # `regtuner sync` skips it while its study runs
    spool.close()
    reopened = SpoolFile.open_existing(spool.path)
    assert reopened is not None and reopened.uri == "http://host:5000/"
    reopened.close()


def test_a_run_deleted_mid_study_costs_that_trial_only(mlflow_server):
    first, second, third = records()
    tracker = MlflowTracker(mlflow_server, "exp-deleted")
    tracker.start_study(study_info("study-deleted", "exp-deleted"))
    tracker.trial_started(0, first.params)
    assert tracker.flush(60)
    rest(mlflow_server, "/api/2.0/mlflow/runs/delete", {"run_id": tracker.trial_runs[0]})
    with pytest.warns(TrackingWarning, match="log a trial run"):
        tracker.trial_finished(first)
        tracker.flush(60)
    tracker.trial_started(1, second.params)
    tracker.trial_finished(second)
    tracker.trial_started(2, third.params)
    tracker.trial_finished(third)
    tracker.end_study(SUMMARY)
    assert tracker.status["dropped"] == 1 and tracker.status["spool"] is None
    parents, children = split(find_runs(mlflow_server, "exp-deleted"))
    assert len(parents) == 1 and parents[0]["info"]["status"] == "FINISHED"
    assert sorted(children) == [1, 2]
    for child in children.values():
        assert steps(mlflow_server, child, "val_loss") == list(range(EPOCHS))


def test_a_tracking_worker_that_dies_mid_trial_is_replaced_and_nothing_is_lost(mlflow_server, monkeypatch):
    from tuner.tracking import mlflow_tracker

    monkeypatch.setattr(mlflow_tracker, "FLUSH_METRICS", 1)  # each epoch is shipped as it comes
    first, second, third = records()
    tracker = MlflowTracker(mlflow_server, "exp-died")
    tracker.start_study(study_info("study-died", "exp-died"))
    tracker.trial_started(0, first.params)
    tracker.trial_finished(first)
    tracker.trial_started(1, second.params)
    for epoch in range(2):
        tracker.epoch_logged(1, epoch, epoch_metrics(1, epoch))
    assert tracker.flush(60)
    half_way = metric_history(mlflow_server, tracker.trial_runs[1], "val_loss")
    assert [m["step"] for m in half_way] == [0, 1]  # trial 1 has its run, with two epochs
    tracker._channel._worker.process.kill()  # the worker process is killed (OOM killer, a stray kill -9)
    with pytest.warns(TrackingWarning, match="tracking worker exited"):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not tracker._warnings and not tracker._warned:
            time.sleep(0.1)
        tracker.epoch_logged(1, 2, epoch_metrics(1, 2))
    tracker.trial_finished(second)
    tracker.trial_started(2, third.params)
    tracker.trial_finished(third)
    tracker.end_study(SUMMARY)
    assert tracker.failures >= 1
    parents, children = split(find_runs(mlflow_server, "exp-died"))
    assert len(parents) == 1 and parents[0]["info"]["status"] == "FINISHED"
    seen = (tracker.status, tracker._channel.runs, [tags_of(r) for r in find_runs(mlflow_server, "exp-died")])
    assert sorted(children) == [0, 1, 2], seen  # trial 1 kept its run: found again, given what it lacked
    for child in children.values():
        assert steps(mlflow_server, child, "val_loss") == list(range(EPOCHS))


def test_sync_names_an_older_operation_log_instead_of_skipping_it_quietly(tmp_path, capsys):
    (tmp_path / "20261120-abc.jsonl").write_text('{"spool": 1, "uri": "http://host:5000"}\n')
    assert main(["sync", "--spool-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "20261120-abc.jsonl was written by an older regtuner" in out and "resume=True" in out

"""A study process killed with SIGKILL mid-trial resumes without losing finished trials, in Optuna and in
MLflow: every trial ends as exactly one run under the one study run, none is left RUNNING."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest

pytestmark = pytest.mark.slow  # a study killed in a subprocess, then resumed

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from tests.fakes import NumpyModel, blobs
    from tuner.adapters import base
    from tuner import tune
    base.ADAPTERS.insert(0, "tests.fakes:NumpyAdapter")
    space = {{"knobs": {{"learning_rate": {{"type": "float", "low": 0.01, "high": 0.1, "log": True}},
                         "patience": 0}}}}
    tune(lambda: NumpyModel(5, 3, sleep={sleep}), blobs(n=300), space=space, n_trials=6, max_epochs=5,
         tracking={tracking!r}, progress=False, study_name="killme", storage="studies.db", baselines=False)
    """
)
SPACE = {"knobs": {"learning_rate": {"type": "float", "low": 0.01, "high": 0.1, "log": True}, "patience": 0}}


_STORAGES: dict[str, optuna.storages.RDBStorage] = {}


def _mid_trial(storage: str) -> bool:
    """At least 2 trials finished and one is running (one connection pool per storage, however often
    this polls: a PostgreSQL server refuses clients beyond its max_connections)."""
    try:
        if storage not in _STORAGES:
            _STORAGES[storage] = optuna.storages.RDBStorage(storage)
        study = optuna.load_study(study_name="killme", storage=_STORAGES[storage])
    except Exception:
        return False
    states = [t.state for t in study.trials]
    return states.count(optuna.trial.TrialState.COMPLETE) >= 2 and optuna.trial.TrialState.RUNNING in states


def _kill_mid_trial(proc: subprocess.Popen, storage: str, within: float) -> None:
    """SIGKILL the study process once 2 trials are finished and a third is inside its epochs."""
    deadline = time.monotonic() + within
    while not _mid_trial(storage) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(0.3)  # inside the running trial (5 epochs x 0.3 s)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize(
    "tracking, worker",
    [
        (False, None),
        # the tracking worker process outlives the killed study: it spools what it had not sent and exits
        pytest.param("sqlite:///mlflow.db", "process", marks=pytest.mark.mlflow),
        # the worker thread dies with the study: whatever it had not sent is rebuilt from the Optuna storage
        pytest.param("sqlite:///mlflow.db", "thread", marks=pytest.mark.mlflow),
    ],
)
def test_sigkill_mid_trial_then_resume(tmp_path, monkeypatch, tracking, worker):
    if worker:
        monkeypatch.setenv("REGTUNER_TRACKING_WORKER", worker)
    if tracking:  # the store exists: a kill while MLflow creates its tables would corrupt it (MLflow's issue)
        from mlflow.tracking import MlflowClient

        MlflowClient(_absolute(tracking, tmp_path)).search_experiments()
    script = tmp_path / "study.py"
    script.write_text(SCRIPT.format(root=str(ROOT), sleep=0.3, tracking=tracking))
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    _kill_mid_trial(proc, storage, within=240)
    before = optuna.load_study(study_name="killme", storage=storage)
    finished = {t.number: t.value for t in before.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(finished) >= 2
    assert any(t.state == optuna.trial.TrialState.RUNNING for t in before.trials)

    from tests.fakes import NumpyModel, blobs
    from tuner import tune
    from tuner.adapters import base

    base.ADAPTERS.insert(0, "tests.fakes:NumpyAdapter")
    try:
        r = tune(lambda: NumpyModel(5, 3), blobs(n=300), space=SPACE, n_trials=6, max_epochs=5,
                 tracking=tracking, progress=False, study_name="killme", storage="studies.db", resume=True,
                 baselines=False)  # fmt: skip
    finally:
        base.ADAPTERS.remove("tests.fakes:NumpyAdapter")
    rows = r.trials.set_index("number")
    for number, value in finished.items():  # finished trials kept, values unchanged
        assert rows.loc[number, "state"] == "complete" and rows.loc[number, "value"] == pytest.approx(value)
    interrupted = rows[rows["error"].fillna("").str.contains("interrupted")]
    assert len(interrupted) == 1 and interrupted.iloc[0]["state"] == "failed"
    assert rows["state"].isin(["complete", "pruned"]).sum() == 6  # the budget is reached
    after = optuna.load_study(study_name="killme", storage=storage)
    assert not any(t.state == optuna.trial.TrialState.RUNNING for t in after.trials)
    if tracking:
        _check_mlflow(_absolute(tracking, tmp_path), r, interrupted.index[0])


def _absolute(uri: str, folder: Path) -> str:
    # MLflow caches stores by URI: a relative one would reach an earlier test's file
    return uri.replace("sqlite:///", f"sqlite:///{folder}/")


def _check_mlflow(uri: str, result, interrupted: int) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("killme").experiment_id], max_results=100)
    assert not [x.info.run_name for x in runs if x.info.status == "RUNNING"], "runs left RUNNING in MLflow"
    parents = [x for x in runs if x.data.tags.get("regtuner.role") == "study"]
    assert len(parents) == 1  # the resumed study reattached to its study run
    parent = parents[0]
    assert parent.info.run_id == result.mlflow_run_id and parent.info.status == "FINISHED"
    assert parent.data.params["n_trials"] == "6"
    children = [x for x in runs if x.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1
    numbers = sorted(int(x.data.tags["regtuner.trial"]) for x in children)
    assert numbers == sorted(r.number for r in result.records)  # one run per trial, none twice
    by_number = {int(x.data.tags["regtuner.trial"]): x for x in children}
    for record in result.records:
        run = by_number[record.number]
        assert run.data.tags["state"] == record.state and run.info.run_name == f"trial-{record.number:04d}"
        if record.number == interrupted:
            assert run.info.status == "KILLED" and run.data.tags["error"].startswith("interrupted")
            continue
        assert run.info.status == "FINISHED" and "error" not in run.data.tags
        assert float(run.data.params["learning_rate"]) == pytest.approx(record.params["learning_rate"])
        if record.state == "complete":  # a pruned trial has no objective value
            assert run.data.metrics["objective"] == pytest.approx(record.values[0])
        else:
            assert record.state == "pruned" and "objective" not in run.data.metrics
        for key in ("train_loss", "val_loss", "gap"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(record.epochs_run)), (record.number, key, steps)

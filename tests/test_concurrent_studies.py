"""Studies run by several processes at once against one Optuna storage and one MLflow experiment.

Two processes with different study names share the SQLite study file, the working folder (spool and
locks) and an experiment on a real MLflow server: every trial lands in its own study, under its own
study run, exactly once. A second process on the *same* study is refused while the first one runs
(it would fail the first one's running trial), and resuming works again once the first has ended.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.fakes import NumpyModel, blobs
from tests.mlflow_server import find_runs, metric_history, params_of, tags_of
from tuner import tune
from tuner.errors import ConfigError

pytestmark = pytest.mark.slow  # studies in subprocesses

ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "knobs": {
        "learning_rate": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
        "batch_size": [16, 32],
        "patience": 0,
    }
}

SCRIPT = f"""
import json, sys
from tests.fakes import NumpyModel, blobs
from tuner import tune
from tuner.adapters import base

base.ADAPTERS.insert(0, "tests.fakes:NumpyAdapter")
name, n_trials, sleep, tracking, experiment = sys.argv[1:6]
r = tune(lambda: NumpyModel(5, 3, sleep=float(sleep)), blobs(n=300), space={SPACE!r}, n_trials=int(n_trials),
         max_epochs=4, study_name=name, storage="studies.db", tracking=tracking if tracking != "-" else False,
         experiment=experiment, progress=False, baselines=False, resume=True)
print(json.dumps({{"run_id": r.mlflow_run_id, "trials": [
    {{"number": t.number, "state": t.state, "params": dict(t.params), "values": t.values,
      "val_loss": [e["val_loss"] for e in t.epochs]}} for t in r.records]}}))
"""


def start(cwd: Path, name: str, n_trials: int, sleep: float, tracking: str = "-", experiment: str = "x"):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, name, str(n_trials), str(sleep), tracking, experiment],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result_of(proc) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_two_studies_at_once_share_storage_and_experiment_without_mixing(tmp_path, mlflow_server):
    experiment = f"shared-{tmp_path.name}"
    names, n = ("study-a", "study-b"), 8
    procs = {name: start(tmp_path, name, n, 0.05, mlflow_server, experiment) for name in names}
    results = {name: result_of(proc) for name, proc in procs.items()}

    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    assert {s.study_name for s in optuna.get_all_study_summaries(storage)} == set(names)
    for name in names:
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert [t.number for t in trials] == list(range(n))
        assert all(t.state.is_finished() and not t.user_attrs.get("interrupted") for t in trials)
        mine = results[name]["trials"]
        assert [t["params"] for t in mine] == [{**t.user_attrs["regtuner"]["params"]} for t in trials]

    runs = find_runs(mlflow_server, experiment)
    parents = {tags_of(r)["regtuner.study"]: r for r in runs if tags_of(r).get("regtuner.role") == "study"}
    assert set(parents) == set(names) and len(runs) == 2 + 2 * n
    for name in names:
        parent = parents[name]
        assert parent["info"]["run_id"] == results[name]["run_id"]
        assert parent["info"]["status"] == "FINISHED"
        children = {
            int(tags_of(r)["regtuner.trial"]): r
            for r in runs
            if tags_of(r).get("mlflow.parentRunId") == parent["info"]["run_id"]
        }
        assert sorted(children) == list(range(n))  # each trial once, under its own study's run
        for trial in results[name]["trials"]:
            child = children[trial["number"]]
            assert child["info"]["status"] == "FINISHED" and tags_of(child)["state"] == trial["state"]
            lr = float(params_of(child)["learning_rate"])
            assert lr == pytest.approx(trial["params"]["learning_rate"], rel=1e-12)
            history = metric_history(mlflow_server, child["info"]["run_id"], "val_loss")
            assert [m["step"] for m in history] == list(range(len(trial["val_loss"])))
            assert [m["value"] for m in history] == pytest.approx(trial["val_loss"], rel=1e-12)


def _running(storage: str, name: str) -> bool:
    try:
        trials = optuna.load_study(study_name=name, storage=storage).trials
    except KeyError:
        return False
    return any(t.state == optuna.trial.TrialState.RUNNING for t in trials)


def test_a_second_process_on_the_same_study_is_refused_while_the_first_runs(tmp_path, numpy_adapter):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    first = start(tmp_path, "one", 12, 0.1)
    deadline = time.monotonic() + 120
    while not _running(storage, "one") and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.1)
    assert first.poll() is None, first.communicate()[1][-2000:]

    kwargs = dict(space=SPACE, max_epochs=4, study_name="one", storage="studies.db", tracking=False,
                  progress=False, baselines=False, resume=True)  # fmt: skip
    with pytest.raises(ConfigError, match=rf"being run right now by another process \(pid {first.pid} "):
        tune(lambda: NumpyModel(5, 3), blobs(n=300), n_trials=12, **kwargs)

    done = result_of(first)  # undisturbed: its running trial was not failed under it
    assert len(done["trials"]) == 12 and all(t["state"] != "failed" for t in done["trials"])
    # the first process has ended: resuming (for 2 more trials) is allowed again
    r = tune(lambda: NumpyModel(5, 3), blobs(n=300), n_trials=14, **kwargs)
    assert len(r.records) == 14 and [t.number for t in r.records] == list(range(14))

"""A study process killed with SIGKILL mid-trial resumes without losing finished trials."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest

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


def _mid_trial(storage: str) -> bool:
    """At least 2 trials finished and one is running."""
    try:
        study = optuna.load_study(study_name="killme", storage=storage)
    except Exception:
        return False
    states = [t.state for t in study.trials]
    return states.count(optuna.trial.TrialState.COMPLETE) >= 2 and optuna.trial.TrialState.RUNNING in states


@pytest.mark.parametrize(
    "tracking",
    [
        False,
        pytest.param(
            "sqlite:///mlflow.db",
            marks=pytest.mark.xfail(
                strict=False,
                reason="known gap: MLflow child runs still queued in the asynchronous tracker when the "
                "process is SIGKILLed are lost; resume does not yet replay them from the study storage",
            ),
        ),
    ],
)
def test_sigkill_mid_trial_then_resume(tmp_path, tracking):
    script = tmp_path / "study.py"
    script.write_text(SCRIPT.format(root=str(ROOT), sleep=0.3, tracking=tracking))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    deadline = time.monotonic() + 240
    while not _mid_trial(storage) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(0.3)  # inside the running trial (5 epochs x 0.3 s)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = optuna.load_study(study_name="killme", storage=storage)
    finished = {t.number: t.value for t in before.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(finished) >= 2
    assert any(t.state == optuna.trial.TrialState.RUNNING for t in before.trials)

    from tests.fakes import NumpyModel, blobs
    from tuner import tune
    from tuner.adapters import base

    base.ADAPTERS.insert(0, "tests.fakes:NumpyAdapter")
    try:
        space = {"knobs": {"learning_rate": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
                           "patience": 0}}
        r = tune(lambda: NumpyModel(5, 3), blobs(n=300), space=space, n_trials=6, max_epochs=5,
                 tracking=tracking, progress=False, study_name="killme", storage="studies.db", resume=True,
                 baselines=False)
    finally:
        base.ADAPTERS.remove("tests.fakes:NumpyAdapter")
    rows = r.trials.set_index("number")
    for number, value in finished.items():  # finished trials kept, values unchanged
        assert rows.loc[number, "state"] == "complete" and rows.loc[number, "value"] == pytest.approx(value)
    interrupted = rows[rows["error"].fillna("").str.contains("interrupted")]
    assert len(interrupted) == 1 and interrupted.iloc[0]["state"] == "failed"
    assert (rows["state"] == "complete").sum() == 6  # the budget is reached
    after = optuna.load_study(study_name="killme", storage=storage)
    assert not any(t.state == optuna.trial.TrialState.RUNNING for t in after.trials)
    if tracking:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking)
        exp = client.get_experiment_by_name("killme")
        runs = client.search_runs([exp.experiment_id], max_results=100)
        assert not [x for x in runs if x.info.status == "RUNNING"], "orphaned RUNNING runs in MLflow"
        parents = [x for x in runs if x.data.tags.get("regtuner.role") == "study"]
        assert len(parents) == 1  # the resumed study reattached to its parent run
        children = [x for x in runs if x.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
        assert sum(x.data.tags.get("state") == "complete" for x in children) == 6

"""``regtuner submit | status | logs | jobs | stop`` against a real Ray head (``ray start --head``).

The head runs with token authentication (a token in its ``~/.ray/auth_token``, as Ray 2.60 does once a
token exists); the client shares that HOME, like a user who copied the token. The job is the example
spec (Keras on digits, budget cut down) tracking to a real MLflow server.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.mlflow_server import find_runs, tags_of  # the mlflow_server fixture comes from conftest.py
from tests.ray_head import RayHead
from tuner.cli.main import main
from tuner.executors.ray.cluster import _token_mode

pytest.importorskip("ray.job_submission")
pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# the head, its jobs and the CLI processes import this tree's regtuner, whatever else is installed
PYTHONPATH = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
AUTH_VARS = (
    "RAY_AUTH_MODE",
    "RAY_AUTH_TOKEN",
    "RAY_AUTH_TOKEN_PATH",
    "RAY_ADDRESS",
    "RAY_API_SERVER_ADDRESS",
)


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    home = tmp_path_factory.mktemp("head-home")
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(24))
    with RayHead(home, env={"PYTHONPATH": PYTHONPATH}) as running:
        yield running


@pytest.fixture
def client(head, monkeypatch):
    """This machine as a user's: the head's token in ~/.ray/auth_token, no RAY_AUTH_MODE set."""
    monkeypatch.setenv("HOME", str(head.home))
    saved = {name: os.environ.pop(name) for name in AUTH_VARS if name in os.environ}
    yield head
    # connecting sets RAY_AUTH_MODE=token and Ray caches the token of this HOME: later tests start
    # their own clusters without authentication
    for name in AUTH_VARS:
        os.environ.pop(name, None)
    os.environ.update(saved)
    monkeypatch.undo()
    _token_mode()


def job_folder(root: Path, mlflow_url: str, experiment: str) -> Path:
    """The example job, its budget cut to seconds, tracking to ``mlflow_url``."""
    folder = root / "job"
    folder.mkdir()
    shutil.copy(EXAMPLES / "digits_job.py", folder)
    spec = yaml.safe_load((EXAMPLES / "digits_ray.yaml").read_text())
    spec["budget"] = {"n_trials": 2, "max_epochs": 2}
    spec["data_args"] = {"n_train": 200}
    spec["executor"].update(max_concurrent_trials=1, max_failures=0)
    spec["tracking"] = {"uri": mlflow_url, "experiment": experiment}
    spec["study_name"] = experiment
    spec["baselines"] = False
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return folder


def regtuner(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "tuner", *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_submit_a_spec_follow_it_and_find_its_runs_in_mlflow(client, mlflow_server, tmp_path, capsys):
    folder = job_folder(tmp_path, mlflow_server, "cli-jobs-digits")
    token = (client.home / ".ray" / "auth_token").read_text()
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARS}
    env["PYTHONPATH"] = PYTHONPATH
    done = regtuner("submit", str(folder / "spec.yaml"), "--address", client.dashboard,
                    "--working-dir", str(folder), env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip().splitlines()[-1]
    assert job_id.startswith("regtuner-cli-jobs-digits-")
    assert token not in done.stdout + done.stderr

    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        assert main(["status", job_id, "--address", client.dashboard]) == 0
        status = capsys.readouterr().out
        if any(s in status for s in ("SUCCEEDED", "FAILED", "STOPPED")):
            break
        time.sleep(2)
    assert main(["logs", job_id, "--address", client.dashboard]) == 0
    logs = capsys.readouterr().out
    assert f"{job_id}: SUCCEEDED" in status, logs[-3000:]
    assert "regtuner run spec.yaml: executor ray" in logs and "MLflow study run:" in logs

    runs = find_runs(mlflow_server, "cli-jobs-digits")
    studies = [r for r in runs if tags_of(r).get("regtuner.role") == "study"]
    trials = [r for r in runs if tags_of(r).get("regtuner.role") == "trial"]
    assert len(studies) == 1 and len(trials) == 2
    parent = studies[0]["info"]["run_id"]
    assert all(tags_of(t)["mlflow.parentRunId"] == parent for t in trials)
    assert all(r["info"]["status"] == "FINISHED" for r in runs)
    assert parent in logs

    assert main(["jobs", "--address", client.dashboard]) == 0
    assert job_id in capsys.readouterr().out
    assert main(["stop", job_id, "--address", client.dashboard]) == 0
    assert "already finished" in capsys.readouterr().out
    assert main(["logs", job_id, "--follow", "--address", client.dashboard]) == 0  # ended: 0 = succeeded
    assert "MLflow study run:" in capsys.readouterr().out


def test_without_the_token_submission_stops_with_a_fix(client, tmp_path, monkeypatch, capsys):
    folder = job_folder(tmp_path, "http://127.0.0.1:9", "no-token")
    monkeypatch.setenv("HOME", str(tmp_path))  # a machine that never got the head's token
    code = main(
        ["submit", str(folder / "spec.yaml"), "--address", client.dashboard, "--working-dir", str(folder)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "requires its authentication token" in err and "ray get-auth-token" in err


def test_unknown_jobs_and_unreachable_heads_exit_2(client, tmp_path, capsys):
    assert main(["status", "no-such-job", "--address", client.dashboard]) == 2
    assert "no job 'no-such-job'" in capsys.readouterr().err
    folder = job_folder(tmp_path, "http://127.0.0.1:9", "unreachable")
    from tests.mlflow_server import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    assert main(["submit", str(folder / "spec.yaml"), "--address", dead, "--working-dir", str(folder)]) == 2
    assert "cannot reach the Ray dashboard" in capsys.readouterr().err


def test_ray_client_with_a_local_study_storage_is_refused(client, no_ray, numpy_adapter):
    """Through ray:// Tune's driver runs on the head, which cannot write this machine's SQLite file."""
    from tests.fakes import blobs
    from tests.test_ray_executor import NUMPY_SPACE, QUIET, numpy_model
    from tuner import RayExecutor, tune
    from tuner.errors import ConfigError

    for attempt in range(2):  # Ray's client server sometimes fails to start a session under load
        with pytest.raises(ConfigError) as refused:
            tune(numpy_model, blobs(n=200), space=NUMPY_SPACE, n_trials=2, max_epochs=2,
                 executor=RayExecutor(address=client.client_address), **QUIET)  # fmt: skip
        if "could not connect" not in str(refused.value) or attempt == 1:
            break
    assert "ray:// address the Tune driver runs on the cluster's head" in str(refused.value)
    import ray

    assert not ray.is_initialized()  # the executor let go of the connection it made


NUMPY_JOB = """
from tests.fakes import NumpyModel, blobs
from tuner.adapters import base


def build(hp):
    if "tests.fakes:NumpyAdapter" not in base.ADAPTERS:
        base.ADAPTERS.insert(0, "tests.fakes:NumpyAdapter")
    return NumpyModel(5, 3)


def data():
    return blobs(n=200)
"""


def _finish(job_id: str, address: str, capsys) -> str:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert main(["status", job_id, "--address", address]) == 0
        status = capsys.readouterr().out
        if any(s in status for s in ("SUCCEEDED", "FAILED", "STOPPED")):
            return status
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not end")


def test_a_job_submitted_twice_keeps_one_durable_study_and_resumes_it(client, tmp_path, capsys):
    import optuna

    folder = tmp_path / "numpy-job"
    folder.mkdir()
    (folder / "numpy_job.py").write_text(NUMPY_JOB)
    spec = {"builder": "numpy_job:build", "data": "numpy_job:data", "study_name": "durable-study",
            "resume": True, "baselines": False, "budget": {"n_trials": 2, "max_epochs": 2}}  # fmt: skip
    studies = client.home / ".regtuner" / "studies.db"  # the head's HOME: where its jobs keep studies
    for n_trials in (2, 3):  # the second submission asks for one trial more: it resumes the same study
        spec["budget"]["n_trials"] = n_trials
        (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
        code = main(["submit", str(folder / "spec.yaml"), "--address", client.dashboard, "--working-dir",
                     str(folder), "--job-id", f"durable-{n_trials}"])  # fmt: skip
        out = capsys.readouterr()
        assert code == 0 and "study storage: ~/.regtuner/studies.db on the head" in out.err
        assert f"--address {client.dashboard}" in out.err  # the hints carry the address
        status = _finish(f"durable-{n_trials}", client.dashboard, capsys)
        assert "SUCCEEDED" in status, main(["logs", f"durable-{n_trials}", "--address", client.dashboard])
        study = optuna.load_study(study_name="durable-study", storage=f"sqlite:///{studies}")
        assert len(study.trials) == n_trials
    assert (client.home / ".regtuner" / "mlflow.db").exists()  # MLflow's store is durable too

"""Job spec files and ``regtuner run`` (no Ray: the local executor, the numpy fake adapter)."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest
import yaml

from tuner.cli.main import main
from tuner.cli.spec import load_spec, parse_spec, resolve_ref
from tuner.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

JOB_MODULE = """
from tests.fakes import NumpyModel, blobs
from tuner.adapters import base

def build(hp):
    if "tests.fakes:NumpyAdapter" not in base.ADAPTERS:
        base.ADAPTERS.insert(0, "tests.fakes:NumpyAdapter")
    return NumpyModel(5, 3)

def data(n=300):
    return blobs(n=n)

not_a_function = 3
"""


@pytest.fixture
def job(tmp_path):
    """A job folder (the test's working directory) with a module of a unique name."""
    name = f"job_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(JOB_MODULE)
    return name


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_full_spec_becomes_tune_arguments(tmp_path, job):
    (tmp_path / "spaces").mkdir()
    spec = load_spec(
        write(
            tmp_path,
            f"""
        builder: {job}:build
        data: {job}:data
        data_args: {{n: 200}}
        space: spaces/mine.yaml
        objective: [val_loss, val_accuracy]
        budget: {{n_trials: 5, max_epochs: 7, timeout: 60}}
        seed: 3
        study_name: s1
        storage: db/studies.db
        executor: {{type: ray, address: auto, resources_per_trial: {{cpu: 2, gpu: 0.5}}, max_failures: 1}}
        tracking: {{uri: "http://mlflow:5000", experiment: exp}}
    """,
        )
    )
    assert spec.tune_args == {
        "objective": ["val_loss", "val_accuracy"],
        "seed": 3,
        "study_name": "s1",
        "space": str(tmp_path / "spaces" / "mine.yaml"),  # relative to the spec's folder
        "storage": str(tmp_path / "db" / "studies.db"),
        "n_trials": 5,
        "max_epochs": 7,
        "timeout": 60,
        "tracking": "http://mlflow:5000",
        "experiment": "exp",
    }
    assert spec.executor == "ray"
    assert spec.executor_args == {
        "address": "auto",
        "resources_per_trial": {"cpu": 2, "gpu": 0.5},
        "max_failures": 1,
    }
    ray = spec.executor_object()
    assert (ray.address, ray.resources["gpu"], ray.max_failures) == ("auto", 0.5, 1)
    assert spec.data_args == {"n": 200}
    build, data = spec.resolve()
    assert build.__name__ == "build" and len(data(n=50)[0]) == 50


@pytest.mark.parametrize(
    "text, message",
    [
        ("builder: m:f\ndata: m:g\nbudjet: {}\n", "unknown key 'budjet' \\(did you mean 'budget'\\?\\)"),
        ("builder: m:f\ndata: m:g\nbudget: {trials: 3}\n", "unknown key budget.'trials'"),
        ("builder: m:f\ndata: m:g\nexecutor: {type: ray, adress: auto}\n", "executor.'adress'.*'address'"),
        ("builder: m:f\ndata: m:g\ntracking: {url: x}\n", "tracking.'url'"),
        ("builder: m:f\n", "'data' is missing"),
        ("builder: m.f\ndata: m:g\n", "'m.f' is not a reference; write it as 'module:function'"),
        ("builder: m:f\ndata: m:g\nbudget: {n_trials: 0}\n", "budget.n_trials must be a positive int"),
        ("builder: m:f\ndata: m:g\nexecutor: {type: dask}\n", "executor.type must be 'local' or 'ray'"),
        ("builder: m:f\ndata: m:g\nexecutor: {max_failures: 2}\n", "apply to 'type: ray' only"),
        ("- a list\n", "a job spec is a YAML mapping"),
        ("builder: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_specs_name_the_problem(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_spec(text, source="spec.yaml")


def test_references_resolve_or_say_what_is_missing(job, tmp_path):
    from tuner.cli.spec import import_paths

    with import_paths(tmp_path):
        assert resolve_ref(f"{job}:build", "builder").__name__ == "build"
        with pytest.raises(ConfigError, match="module 'no_such_module' not found"):
            resolve_ref("no_such_module:build", "builder")
        with pytest.raises(ConfigError, match="has no 'buld' \\(did you mean 'build'\\?\\)"):
            resolve_ref(f"{job}:buld", "builder")
        with pytest.raises(ConfigError, match="is a int, not a function"):
            resolve_ref(f"{job}:not_a_function", "data")
    (tmp_path / "needs_dep.py").write_text("import a_package_nobody_installed\n")
    with import_paths(tmp_path), pytest.raises(ConfigError, match="imports 'a_package_nobody_installed'"):
        resolve_ref("needs_dep:build", "builder")


def test_regtuner_run_runs_the_study_here(tmp_path, job, capsys):
    spec = write(
        tmp_path,
        f"""
        builder: {job}:build
        data: {job}:data
        space: {{knobs: {{learning_rate: {{low: 0.01, high: 0.3, log: true}}, batch_size: 32}}}}
        budget: {{n_trials: 3, max_epochs: 3}}
        study_name: from-a-spec
        tracking: false
    """,
    )
    assert main(["run", str(spec), "--check"]) == 0
    assert "ok (builder" in capsys.readouterr().out
    assert main(["run", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "regtuner run" in out and "learning_rate" in out
    assert main(["run", str(spec), "--resume"]) == 0  # the budget is spent: nothing more runs
    assert "learning_rate" in capsys.readouterr().out


def test_regtuner_run_overrides_the_budget_and_refuses_an_existing_study_before_loading_data(
    tmp_path, job, capsys
):
    loads = tmp_path / "loads.txt"
    (tmp_path / f"{job}_counted.py").write_text(
        f"from {job} import build, data as _data\n"
        f"def data():\n    open({str(loads)!r}, 'a').write('x')\n    return _data()\n"
    )
    spec = write(
        tmp_path,
        f"""
        builder: {job}:build
        data: {job}_counted:data
        space: {{knobs: {{learning_rate: {{low: 0.01, high: 0.3, log: true}}, batch_size: 32}}}}
        budget: {{n_trials: 5, max_epochs: 5}}
        study_name: overridden
        tracking: false
    """,
    )
    assert main(["run", str(spec), "--n-trials", "0"]) == 2
    assert "--n-trials must be a positive int" in capsys.readouterr().err
    assert main(["run", str(spec), "--tracking-uri", "localhost:5000"]) == 2
    assert "http://localhost:5000" in capsys.readouterr().err
    assert main(["run", str(spec), "--max-epochs", "soon"]) == 2
    assert "--max-epochs must be a positive int or 'auto'" in capsys.readouterr().err
    assert main(["run", str(spec), "--n-trials", "2", "--max-epochs", "2"]) == 0
    assert loads.read_text() == "x"
    import optuna

    study = optuna.load_study(
        study_name="overridden", storage=f"sqlite:///{tmp_path / '.regtuner' / 'studies.db'}"
    )
    assert len(study.trials) == 2
    from tuner.study.storage import record_from_trial

    assert max(record_from_trial(t).epochs_run for t in study.trials) <= 2
    capsys.readouterr()
    assert main(["run", str(spec)]) == 2  # the study exists: refused before the data loads again
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err and "resume: true" in err
    assert loads.read_text() == "x"


def test_regtuner_run_exits_2_on_a_bad_spec_before_running(tmp_path, job, capsys):
    spec = write(tmp_path, f"builder: {job}:nope\ndata: {job}:data\n")
    assert main(["run", str(spec)]) == 2
    assert "has no 'nope'" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the job spec" in capsys.readouterr().err


def test_regtuner_run_reads_a_spec_from_the_environment(tmp_path, job, monkeypatch, capsys):
    monkeypatch.setenv("REGTUNER_SPEC", f"builder: {job}:build\ndata: {job}:data\n")
    assert main(["run", "--spec-env", "REGTUNER_SPEC", "--check"]) == 0
    assert "$REGTUNER_SPEC: ok" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["digits_ray.yaml"])
def test_the_example_specs_are_valid(name, monkeypatch):
    monkeypatch.chdir(EXAMPLES)
    pytest.importorskip("keras")
    spec = load_spec(EXAMPLES / name)
    spec.check()
    assert spec.executor == "ray" and yaml.safe_load((EXAMPLES / name).read_text())["builder"] == spec.builder


def test_job_request_ships_the_spec_with_the_working_dir_or_as_text(tmp_path):
    from tuner.executors.ray.jobs import SPEC_ENV, job_request

    spec = write(tmp_path, "builder: m:f\ndata: m:g\n")
    entrypoint, env = job_request(spec, tmp_path, ["scikit-learn"])
    assert entrypoint == "regtuner run spec.yaml"
    assert (
        env["working_dir"] == str(tmp_path)
        and ".regtuner" in env["excludes"]
        and env["pip"] == ["scikit-learn"]
    )
    elsewhere = tmp_path / "code"
    elsewhere.mkdir()
    entrypoint, env = job_request(spec, elsewhere)
    assert entrypoint == f"regtuner run --spec-env {SPEC_ENV}" and "builder: m:f" in env["env_vars"][SPEC_ENV]


@pytest.mark.parametrize(
    "name", ["my spec.yaml", "x; echo INJECTED.yaml", "$(touch PWNED).yaml", "it's.yaml"]
)
def test_a_spec_name_with_spaces_or_shell_metacharacters_is_one_argument(tmp_path, name):
    import os
    import subprocess

    from tuner.executors.ray.jobs import job_request

    spec = tmp_path / name
    spec.write_text("builder: m:f\ndata: m:g\n")
    entrypoint, _ = job_request(spec, tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "regtuner"  # stands in for the CLI: prints the arguments the shell gave it
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "<%s>\\n" "$a"; done\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["/bin/sh", "-c", entrypoint], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.stdout.splitlines() == ["<run>", f"<{name}>"]
    assert "INJECTED" not in done.stdout.replace(f"<{name}>", "") and not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("reply", [b"\x00\x00\x12\x04\x00\x00\x00\x00\x00", b"-ERR unknown command\r\n", b""])
def test_an_address_on_a_port_that_is_not_the_dashboard_exits_2_in_one_line(capsys, reply):
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def answer():  # what Ray's GCS (gRPC) or a Redis-like port sends back to an HTTP request
        try:
            while True:
                conn, _ = server.accept()
                conn.recv(1024)
                conn.sendall(reply)
                conn.close()
        except OSError:  # the server closed: the test is over
            pass

    threading.Thread(target=answer, daemon=True).start()
    try:
        assert main(["status", "some-job", "--address", f"http://127.0.0.1:{port}"]) == 2
    finally:
        server.close()
    err = capsys.readouterr().err.strip()
    assert "not the Ray dashboard" in err and "http://HEAD:8265" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_submit_checks_what_the_cluster_will_import_not_what_this_folder_has(tmp_path, job, capsys):
    spec = write(tmp_path, f"builder: {job}:build\ndata: {job}:data\n")
    dead = "http://127.0.0.1:9"
    assert main(["submit", str(spec), "--address", dead]) == 2  # the module sits here, uploaded by nothing
    err = capsys.readouterr().err
    assert f"module {job!r} would not be found on the cluster" in err and "--working-dir" in err
    assert main(["submit", str(spec), "--address", dead, "--working-dir", str(tmp_path)]) == 2
    assert "cannot reach the Ray dashboard" in capsys.readouterr().err  # the check passed: on to the head
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert main(["submit", str(spec), "--address", dead, "--working-dir", str(other)]) == 2
    assert f"not in --working-dir {other}" in capsys.readouterr().err


def test_cluster_commands_are_grouped_as_ray_groups_them_and_the_flat_ones_still_work(capsys):
    for argv in (
        ["job", "status", "j-1"],
        ["status", "j-1"],
        ["job", "list"],
        ["jobs"],
        ["job", "stop", "j"],
    ):
        assert main([*argv, "--address", "ftp://head"]) == 2, argv
        assert "is not the Ray dashboard's URL" in capsys.readouterr().err
    assert main(["job"]) == 2  # an action is required
    assert "ACTION" in capsys.readouterr().err
    assert main(["job", "submit", "missing.yaml", "--address", "http://127.0.0.1:9"]) == 2
    assert "cannot read the job spec" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.mlflow
@pytest.mark.parametrize("executor, entry", [("local", "cli"), ("ray", "cli"), ("ray", "script")])
def test_sigterm_stops_regtuner_run_with_the_running_trial_killed_in_mlflow(tmp_path, executor, entry):
    """SIGTERM (what ``regtuner stop`` and Ray's job stop send the driver) ends the study run and the
    running trial as KILLED, the finished trials FINISHED: under ``regtuner run``, and in a user's own
    script calling ``tune(executor="ray")``, where ``ray.init`` had set SIGTERM to ``sys.exit``."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import optuna
    from mlflow.tracking import MlflowClient

    root = EXAMPLES.parent
    (tmp_path / "slow_job.py").write_text(
        textwrap.dedent(
            """
            from tests.fakes import NumpyModel, blobs
            from tuner.adapters import base

            def build():
                if "tests.fakes:NumpyAdapter" not in base.ADAPTERS:
                    base.ADAPTERS.insert(0, "tests.fakes:NumpyAdapter")
                return NumpyModel(5, 3, sleep=0.4)

            def data():
                return blobs(n=200)

            if __name__ == "__main__":
                import sys

                from tuner import tune
                from tuner.cli.spec import load_spec

                spec = load_spec(sys.argv[1])
                tune(build, data(), executor="ray", **spec.tune_args)
            """
        )
    )
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = write(
        tmp_path,
        f"""
        builder: slow_job:build
        data: slow_job:data
        study_name: stopped
        baselines: false
        budget: {{n_trials: 20, max_epochs: 6}}
        tracking: {{uri: "{store}", experiment: stopped}}
        executor: {{type: {executor}}}
    """,
    )
    path = os.pathsep.join([str(root), str(tmp_path)])  # Ray's workers import slow_job too
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(
        [sys.executable, *(["-m", "tuner", "run"] if entry == "cli" else ["slow_job.py"]), str(spec)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    storage = f"sqlite:///{tmp_path / '.regtuner' / 'studies.db'}"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # stop it while a trial trains, after one has finished
            try:
                trials = optuna.load_study(study_name="stopped", storage=storage).trials
            except Exception:  # the study is not created yet
                trials = []
            running = [t for t in trials if t.state.name == "RUNNING" and t.intermediate_values]
            if running and any(t.state.name == "COMPLETE" for t in trials):
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    if entry == "cli":
        assert proc.returncode == 130 and "stopped; the running trial" in err, err[-2000:]
    else:
        assert proc.returncode == -signal.SIGINT and "KeyboardInterrupt" in err, err[-2000:]  # as Ctrl-C
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("stopped").experiment_id], max_results=100)
    study = [r for r in runs if r.data.tags.get("regtuner.role") == "study"]
    trials = [r for r in runs if r.data.tags.get("regtuner.role") == "trial"]
    assert [r.info.status for r in study] == ["KILLED"]
    assert "KILLED" in {r.info.status for r in trials} and "FINISHED" in {r.info.status for r in trials}
    assert "RUNNING" not in {r.info.status for r in runs}

"""``regtuner ui``: the MLflow UI on the store studies use, on loopback, with its URL printed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.mlflow_server import find_runs, free_port
from tests.test_tracking import drive_study
from tuner.cli.main import main
from tuner.tracking import make_tracker


@pytest.mark.slow
@pytest.mark.mlflow  # MLflow's default store, and the UI on it
def test_ui_serves_the_default_store_on_loopback(tmp_path):
    tracker = make_tracker(None, "exp-ui")  # MLflow's default store: ./mlflow.db in this test's folder
    drive_study(tracker, "study-ui", "exp-ui")
    assert tracker.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tuner", "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,
    )
    try:
        header = _until_url(process)
        assert header[0].startswith(f"MLflow UI for sqlite:///{tmp_path / 'mlflow.db'}")
        url = f"http://127.0.0.1:{port}"
        # the links open the model-training views (MLflow 3 opens on GenAI otherwise), one per study
        assert header[1].strip() == f"{url}/#/experiments?workflowType=machine_learning"
        name, link = header[2].strip().split(": ", 1)
        assert (
            name == "exp-ui"
            and link.startswith(f"{url}/#/experiments/")
            and link.endswith("/runs?workflowType=machine_learning")
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        runs = {r["info"]["run_name"] for r in find_runs(url, "exp-ui")}
        assert runs == {"study-ui", "trial-0000", "trial-0001", "trial-0002"}
        outside = _outside_address()
        if outside != "127.0.0.1":  # bound to loopback only: not reachable on the network address
            with socket.socket() as probe:
                assert probe.connect_ex((outside, port)) != 0
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        process.stdout.close()


def _until_url(process: subprocess.Popen) -> list[str]:
    """The "MLflow UI for ..." line and the URLs after it (the server's own log lines come first)."""
    for raw in iter(process.stdout.readline, b""):
        line = raw.decode()
        if line.startswith("MLflow UI for"):
            out = [line]
            while not out[-1].startswith("(Ctrl-C"):
                out.append(process.stdout.readline().decode())
            return out
    raise AssertionError("regtuner ui ended without printing its URL")


def _ui_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tuner", "ui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,
    )


def _servers_on(port: int) -> list:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "mlflow" in " ".join(cmd) and str(port) in cmd:
            found.append(proc)
    return found


@pytest.mark.slow
@pytest.mark.mlflow
def test_sigterm_stops_the_ui_and_every_process_it_started(tmp_path):
    port = free_port()
    process = _ui_process("--port", str(port), "--tracking-uri", f"sqlite:///{tmp_path / 'ui.db'}")
    try:
        header = _until_url(process)
        assert header[1].startswith(f"  http://127.0.0.1:{port}/#/")  # printed once the server answers
        servers = _servers_on(port)
        assert servers and all(
            "ui.db" not in " ".join(p.cmdline()) for p in servers
        )  # not on the command line
        process.send_signal(signal.SIGTERM)  # to regtuner alone, as systemd, docker or CI would
        assert process.wait(60) == 0
        deadline = time.monotonic() + 30
        while _servers_on(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _servers_on(port)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0  # the port is free again
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.stdout.close()


@pytest.mark.slow
def test_a_server_that_cannot_start_is_reported_without_the_store_password():
    port, dead = free_port(), free_port()
    uri = f"postgresql://mlflow:S3cretPw0rd@127.0.0.1:{dead}/mlflow"
    process = _ui_process("--port", str(port), "--tracking-uri", uri)
    try:
        out = process.communicate(timeout=300)[0].decode()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 1 and "stopped before it served" in out
    assert "S3cretPw0rd" not in out and "MLflow UI for" not in out
    assert f"postgresql://***@127.0.0.1:{dead}/mlflow" in out


def _outside_address() -> str:
    """This machine's address on its network (not loopback), or 127.0.0.1 when it has none."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))  # no packet is sent; this picks the outgoing interface
            return sock.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def test_ui_refuses_a_busy_port_and_points_at_a_server(capsys, mlflow_server):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--port", str(port), "--tracking-uri", "sqlite:///x.db"]) == 2
    assert "pass another --port" in capsys.readouterr().err
    assert main(["ui", "--tracking-uri", mlflow_server]) == 0  # a server already serves its own UI
    assert f"tracking server {mlflow_server}" in capsys.readouterr().out
    assert main(["ui", "--tracking-uri", "localhost:5000"]) == 2  # no scheme: the URI check's hint
    assert "http://localhost:5000" in capsys.readouterr().err


def test_ui_command_carries_allowed_hosts_and_never_the_store():
    from tuner.cli.tracking import ui_command
    from tuner.redact import mask_secrets, uri_secrets

    cmd = ui_command("0.0.0.0", 5000, "mlflow.example.org,10.0.0.5:5000")
    assert cmd[-2:] == ["--allowed-hosts", "mlflow.example.org,10.0.0.5:5000"]
    assert "--backend-store-uri" not in cmd and "--allowed-hosts" not in ui_command("127.0.0.1", 5000)
    assert {"p@ss", "p%40ss", "abcd1234"} <= set(uri_secrets("postgresql://u:p%40ss@h/db?token=abcd1234"))
    assert mask_secrets("token=abcd1234 for p@ss", "http://h/?token=abcd1234") == "token=*** for p@ss"

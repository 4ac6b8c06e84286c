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
        header = [process.stdout.readline().decode() for _ in range(2)]
        assert header[0].startswith(f"MLflow UI for sqlite:///{tmp_path / 'mlflow.db'}")
        url = header[1].strip()
        assert url == f"http://127.0.0.1:{port}"
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

"""A real ``mlflow server`` for tests, and a urllib helper to query its REST API.

``tests/conftest.py`` provides the session fixture: a test takes ``mlflow_server`` (the base URL) as an
argument and uses experiments of its own. Do not import ``mlflow_server_fixture`` into a test module:
pytest then registers a fixture of that module, with a server of its own. To take the server away
mid-study without restarting it (a restart costs seconds), point the tracker at a :class:`TcpProxy` in
front of it and stop/start the proxy; a test that needs a server of its own uses
``with MlflowServer(tmp_path) as server: ...``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "MlflowServer",
    "mlflow_server_fixture",
    "rest",
    "free_port",
    "TcpProxy",
    "find_runs",
    "metric_history",
    "artifacts",
    "tags_of",
    "params_of",
    "metrics_of",
]

_POST_SUFFIXES = ("/search", "/create", "/update", "/delete", "/restore", "/log-batch", "/set-tag")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with its SQLite store and artifacts under ``root``."""

    def __init__(self, root: Path, port: int | None = None, startup_timeout: float = 60.0) -> None:
        self.root = Path(root)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.log_path = self.root / "mlflow-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true")
        env.pop("MLFLOW_TRACKING_URI", None)
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            # proxied artifacts: clients upload over HTTP, the server writes under root/artifacts
            "--artifacts-destination", str(self.root / "artifacts"),
        ]  # fmt: skip
        with open(self.log_path, "wb") as log:
            # own session: the uvicorn worker it spawns is stopped with it, by process group id
            self.process = subprocess.Popen(
                command, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"mlflow server exited with code {self.process.returncode}")
            if self.healthy():
                return self.url
            time.sleep(0.25)
        self._fail(f"mlflow server did not answer GET /health within {self.startup_timeout:.0f} s")
        raise AssertionError("unreachable")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """Terminate the server's process group, then kill it if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _fail(self, why: str) -> None:
        self.stop()
        pytest.fail(f"{why}. Server log ({self.log_path}):\n{self.log()[-5000:]}", pytrace=False)

    def __enter__(self) -> MlflowServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class TcpProxy:
    """A TCP forwarder to ``target_url``'s host and port, to take a server away and bring it back.

    ``stop()`` closes the listening socket and every open connection (clients then get "connection
    refused"); ``start()`` listens again on the same port. ``url`` is the proxy's http:// address.
    """

    def __init__(self, target_url: str, port: int | None = None) -> None:
        parts = urllib.parse.urlsplit(target_url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: socketserver.ThreadingTCPServer | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    upstream = socket.create_connection(proxy.target, timeout=30)
                except OSError:
                    return
                with proxy._lock:
                    proxy._sockets.update((self.request, upstream))
                pump = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
                pump.start()
                _pump(self.request, upstream)
                pump.join(timeout=5)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.fixture(scope="session", name="mlflow_server")
def mlflow_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Base URL of a real MLflow tracking server shared by the session's tests."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def rest(url: str, path: str, payload: dict[str, Any] | None = None, method: str | None = None) -> Any:
    """Call the REST API at ``url + path``: GET with ``payload`` as the query, or POST it as JSON
    (search, create, update, delete... endpoints). Returns the decoded JSON; an HTTP error raises
    with the server's answer."""
    payload = payload or {}
    method = method or ("POST" if path.rstrip("/").endswith(_POST_SUFFIXES) else "GET")
    target = url.rstrip("/") + path
    if method == "GET":
        query = urllib.parse.urlencode(payload, doseq=True)
        request = urllib.request.Request(target + (f"?{query}" if query else ""), method="GET")
    else:
        body = json.dumps(payload).encode()
        request = urllib.request.Request(
            target, data=body, method=method, headers={"Content-Type": "application/json"}
        )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        raise AssertionError(
            f"{method} {path} -> HTTP {exc.code}: {exc.read().decode(errors='replace')}"
        ) from None
    return json.loads(text) if text else {}


def find_runs(url: str, experiment_name: str) -> list[dict[str, Any]]:
    """All runs of an experiment (active ones), as the REST API returns them."""
    experiment = rest(url, "/api/2.0/mlflow/experiments/get-by-name", {"experiment_name": experiment_name})
    found = rest(
        url,
        "/api/2.0/mlflow/runs/search",
        {"experiment_ids": [experiment["experiment"]["experiment_id"]], "max_results": 1000},
    )
    return found.get("runs", [])


def metric_history(url: str, run_id: str, key: str) -> list[dict[str, Any]]:
    """Every logged value of one metric of one run, sorted by step."""
    found = rest(url, "/api/2.0/mlflow/metrics/get-history", {"run_id": run_id, "metric_key": key})
    return sorted(found.get("metrics", []), key=lambda m: (m["step"], m["timestamp"]))


def artifacts(url: str, run_id: str, path: str = "") -> list[str]:
    """Paths of the artifacts of one run directly under ``path``."""
    found = rest(url, "/api/2.0/mlflow/artifacts/list", {"run_id": run_id, "path": path})
    return [entry["path"] for entry in found.get("files", [])]


def tags_of(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def params_of(run: dict[str, Any]) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run["data"].get("params", [])}


def metrics_of(run: dict[str, Any]) -> dict[str, float]:
    """The latest value of each metric of a run (what the runs table shows)."""
    return {m["key"]: m["value"] for m in run["data"].get("metrics", [])}

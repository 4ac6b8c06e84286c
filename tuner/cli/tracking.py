"""``regtuner ui`` (the MLflow UI on the store studies use) and ``regtuner sync`` (send the spool)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import IO, Any

from tuner.errors import ConfigError
from tuner.signals import sigterm_as_interrupt

__all__ = ["register", "ui_command", "default_store"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def register(subparsers: Any) -> dict[str, Any]:
    ui = subparsers.add_parser(
        "ui",
        help="open the MLflow UI on the tracking store your studies use",
        description="Start the MLflow UI on the store the studies use (MLflow's default store, or "
        "--tracking-uri) and print its URL once it answers. Binds to 127.0.0.1 unless --host says "
        "otherwise. Ctrl-C or SIGTERM stops it and everything it started.",
    )
    ui.add_argument("--port", type=int, default=5000, help="port to serve on (default 5000)")
    ui.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    ui.add_argument(
        "--tracking-uri", default=None, help="tracking store (default: $MLFLOW_TRACKING_URI or MLflow's)"
    )
    ui.add_argument(
        "--allowed-hosts",
        default=None,
        help="Host headers the UI answers besides localhost and private IPs (MLflow's DNS-rebinding "
        "guard), e.g. mlflow.example.org,10.0.0.5:5000",
    )
    sync = subparsers.add_parser(
        "sync",
        help="send tracking data spooled while the MLflow server was unreachable",
        description="Send the spool (./.regtuner/spool, or $REGTUNER_SPOOL_DIR): what a study could not "
        "send to MLflow is sent once; runs made before are found by their tag. Exit code 1 while some "
        "remain.",
    )
    sync.add_argument("--tracking-uri", default=None, help="send there instead of the store each file names")
    sync.add_argument("--spool-dir", default=None, help="spool folder (default ./.regtuner/spool)")
    return {"ui": _ui, "sync": _sync}


def default_store(tracking_uri: str | None = None) -> str:
    """The tracking URI studies log to: ``tracking_uri``, ``$MLFLOW_TRACKING_URI``, or MLflow's default."""
    from tuner.tracking.base import absolute_sqlite, validate_tracking_uri

    if tracking_uri:
        return absolute_sqlite(validate_tracking_uri(tracking_uri))
    import mlflow

    return absolute_sqlite(mlflow.get_tracking_uri())


def ui_command(host: str, port: int, allowed_hosts: str | None = None) -> list[str]:
    """The ``mlflow server`` command that serves the UI: one worker. The store's URI travels in the
    environment (``MLFLOW_BACKEND_STORE_URI``), never on a command line that ``ps`` shows."""
    extra = [] if not allowed_hosts else ["--allowed-hosts", allowed_hosts]
    return [
        sys.executable, "-m", "mlflow", "server",
        "--host", host, "--port", str(port), "--workers", "1", *extra,
    ]  # fmt: skip


def _check_address(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} is not an address of this machine ({exc}).") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve on {host}:{port} ({exc.strerror}); pass another --port, or stop what uses it."
            ) from None


def _url(host: str, port: int) -> str:
    shown = host
    if host in ("0.0.0.0", "::"):
        shown = socket.gethostname()
    else:
        try:
            if ipaddress.ip_address(host).version == 6:
                shown = f"[{host}]"
        except ValueError:
            pass
    return f"http://{shown}:{port}"


def _ui(args: argparse.Namespace) -> int:
    from tuner.redact import redact_uri
    from tuner.tracking.base import ui_url

    uri = default_store(args.tracking_uri)
    if uri.startswith(("http://", "https://")):
        print(f"regtuner ui: the studies log to the tracking server {redact_uri(uri)}; open it in a browser.")
        return 0
    _check_address(args.host, args.port)
    if args.host not in _LOOPBACK:
        hint = "" if args.allowed_hosts else (
            " It answers only requests addressed to localhost or a private IP; name the others with "
            "--allowed-hosts (e.g. --allowed-hosts mlflow.example.org)."
        )  # fmt: skip
        print(
            f"regtuner ui: warning: binding {args.host} serves the UI, with no login, to other "
            f"machines.{hint}",
            file=sys.stderr,
        )
    env = dict(os.environ, MLFLOW_BACKEND_STORE_URI=uri)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no background job runner for a UI
    process = subprocess.Popen(
        ui_command(args.host, args.port, args.allowed_hosts),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopping it stops the workers it starts
    )
    relay = threading.Thread(target=_relay, args=(process.stdout, uri), daemon=True)
    relay.start()
    with sigterm_as_interrupt():
        try:
            if not _wait_until_up(process, args.host, args.port):
                print(
                    f"regtuner ui: the MLflow server for {redact_uri(uri)} stopped before it served "
                    f"(exit code {process.returncode}); its output is above.",
                    file=sys.stderr,
                )
                return 1
            shown = _url(args.host, args.port)
            lines = [f"MLflow UI for {redact_uri(uri)}", f"  {ui_url(shown)}"]
            lines += [f"  {name}: {ui_url(shown, eid)}" for name, eid in _studies(args.host, args.port)]
            print("\n".join([*lines, "(Ctrl-C to stop)"]), flush=True)
            return process.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            _stop(process)
            relay.join(timeout=5)


def _relay(stream: IO[bytes], uri: str) -> None:
    """The server's output, line by line, to stderr, with the store's secrets masked."""
    from tuner.redact import mask_secrets

    for raw in iter(stream.readline, b""):
        sys.stderr.write(mask_secrets(raw.decode(errors="replace"), uri))
        sys.stderr.flush()
    stream.close()


def _wait_until_up(process: subprocess.Popen[bytes], host: str, port: int, timeout: float = 180.0) -> bool:
    """True once the server answers ``/health``; False when it exits first (or never answers)."""
    near = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"{_url(near, port)}/health"
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def _studies(host: str, port: int, limit: int = 10) -> list[tuple[str, str]]:
    """(name, id) of the latest experiments regtuner wrote (tagged as model development), newest first;
    [] when the server does not say."""
    near = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    query = {
        "max_results": limit,
        "filter": "tags.`mlflow.experimentKind` = 'custom_model_development'",
        "order_by": ["last_update_time DESC"],
    }
    request = urllib.request.Request(
        f"{_url(near, port)}/api/2.0/mlflow/experiments/search",
        data=json.dumps(query).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            found = json.load(answer).get("experiments", [])
    except (OSError, ValueError):
        return []
    return [(e["name"], e["experiment_id"]) for e in found if "name" in e and "experiment_id" in e]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group: SIGINT, SIGKILL after 15 s, then any worker left."""
    _signal_group(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    _signal_group(process.pid, signal.SIGKILL)  # workers that outlived the server


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _sync(args: argparse.Namespace) -> int:
    from tuner.tracking.spool import spool_dir
    from tuner.tracking.sync import sync

    outcomes = sync(args.spool_dir, args.tracking_uri)
    older = sorted(spool_dir(args.spool_dir).glob("*.jsonl"))
    for path in older:  # an operation log of regtuner before the spool held study states
        print(f"regtuner sync: {path.name} was written by an older regtuner (an operation log); send it with "
              "that version's `regtuner sync`, or delete it: the study's trials are also in its Optuna "
              "storage, and resuming the study (resume=True) writes them to MLflow again.")  # fmt: skip
    if older and not outcomes:
        return 1
    if not outcomes:
        print(f"regtuner sync: nothing to send ({spool_dir(args.spool_dir)} holds no spool files).")
        return 0
    for outcome in outcomes:
        print(f"regtuner sync: {outcome.describe()}")
    return 0 if all(o.done or o.in_use for o in outcomes) else 1

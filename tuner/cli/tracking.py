"""``regtuner ui`` (the MLflow UI on the store studies use) and ``regtuner sync`` (replay the spool)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import subprocess
import sys
from typing import Any

from tuner.errors import ConfigError

__all__ = ["register", "ui_command", "default_store"]

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def register(subparsers: Any) -> dict[str, Any]:
    ui = subparsers.add_parser(
        "ui",
        help="open the MLflow UI on the tracking store your studies use",
        description="Start the MLflow UI on the store the studies use (MLflow's default store, or "
        "--tracking-uri) and print its URL. Binds to 127.0.0.1 unless --host says otherwise. "
        "Ctrl-C stops it.",
    )
    ui.add_argument("--port", type=int, default=5000, help="port to serve on (default 5000)")
    ui.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    ui.add_argument(
        "--tracking-uri", default=None, help="tracking store (default: $MLFLOW_TRACKING_URI or MLflow's)"
    )
    sync = subparsers.add_parser(
        "sync",
        help="send tracking data spooled while the MLflow server was unreachable",
        description="Replay the spool (./.regtuner/spool, or $REGTUNER_SPOOL_DIR): every operation a study "
        "could not send is sent once, in order. Exit code 1 while some remain.",
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


def ui_command(uri: str, host: str, port: int) -> list[str]:
    """The ``mlflow server`` command that serves the UI for ``uri``: one worker, no job runner."""
    return [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1",
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
    uri = default_store(args.tracking_uri)
    if uri.startswith(("http://", "https://")):
        from tuner.tracking.base import redact_uri

        print(f"regtuner ui: the studies log to the tracking server {redact_uri(uri)}; open it in a browser.")
        return 0
    _check_address(args.host, args.port)
    if args.host not in _LOOPBACK:
        print(
            f"regtuner ui: warning: binding {args.host} serves the UI, with no login, to other machines.",
            file=sys.stderr,
        )
    env = dict(os.environ)
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # no background job runner for a UI
    process = subprocess.Popen(ui_command(uri, args.host, args.port), env=env)
    print(f"MLflow UI for {uri}\n  {_url(args.host, args.port)}\n(Ctrl-C to stop)", flush=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        return 0


def _sync(args: argparse.Namespace) -> int:
    from tuner.tracking.spool import spool_dir
    from tuner.tracking.sync import sync

    outcomes = sync(args.spool_dir, args.tracking_uri)
    if not outcomes:
        print(f"regtuner sync: nothing to send ({spool_dir(args.spool_dir)} holds no spool files).")
        return 0
    for outcome in outcomes:
        print(f"regtuner sync: {outcome.describe()}")
    return 0 if all(o.done or o.in_use for o in outcomes) else 1

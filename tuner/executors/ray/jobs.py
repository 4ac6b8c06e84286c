"""Ray Jobs API: send a job spec to a cluster as ``regtuner run``, and follow, list or stop jobs.

Authentication: a Ray 2.60 head runs with token authentication once its machine has a token. First
we ask the head (``GET /api/authentication_mode``, a public endpoint); when it wants a token we send the
one Ray's own CLI would use (``$RAY_AUTH_TOKEN``, the file ``$RAY_AUTH_TOKEN_PATH``, or
``~/.ray/auth_token``) as a bearer header, so submitting to a default head just works. The token is
never printed, logged, or put in the job's environment.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tuner._imports import require
from tuner.errors import ConfigError
from tuner.executors.ray.cluster import auth_token

__all__ = [
    "DEFAULT_ADDRESS",
    "SPEC_ENV",
    "default_address",
    "auth_token",
    "JobsClient",
    "job_request",
    "durable_stores",
]

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
#: where a job's study and MLflow store go on the head when its spec names none: a job's own folder is
#: Ray's temporary copy of the working dir, deleted or replaced with every submission
DURABLE_STORAGE = "~/.regtuner/studies.db"
DURABLE_TRACKING = "sqlite:///~/.regtuner/mlflow.db"
SPEC_ENV = "REGTUNER_SPEC"  # the spec's text, for a spec that is not inside the working dir
#: never uploaded with the working dir: local study storage, MLflow stores, caches
EXCLUDES = [".git", ".regtuner", "mlruns", "mlflow.db", "mlartifacts", "__pycache__", "*.pyc", ".venv"]
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def default_address() -> str:
    """``$RAY_API_SERVER_ADDRESS``, an http ``$RAY_ADDRESS``, else the dashboard on this machine."""
    for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        value = os.environ.get(name, "")
        if value.startswith(("http://", "https://")):
            return value
    return DEFAULT_ADDRESS


def _check_address(address: str) -> str:
    value = address.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ConfigError(
            f"--address {address!r} is not the Ray dashboard's URL; write it as http://HEAD:8265 "
            "(the Jobs API is served by the dashboard, port 8265 by default)."
        )
    return value


def _auth_mode(address: str) -> str:
    """'token' or 'disabled'; ConfigError when nothing answers at ``address``."""
    try:
        with urllib.request.urlopen(f"{address}/api/authentication_mode", timeout=10) as response:
            return str(json.loads(response.read().decode() or "{}").get("authentication_mode", "disabled"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # a Ray without token authentication
            return "disabled"
        raise ConfigError(
            f"the Ray dashboard at {address} answered HTTP {exc.code}; is this the dashboard's address "
            "(http://HEAD:8265)?"
        ) from None
    except http.client.HTTPException:  # an answer that is not HTTP: another of Ray's ports
        raise ConfigError(
            f"what answers at {address} is not the Ray dashboard (it does not speak HTTP: 6379 is Ray's "
            "GCS port, 10001 its client server). Use the dashboard's address, http://HEAD:8265."
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigError(
            f"cannot reach the Ray dashboard at {address} ({reason}). Check the address "
            "(http://HEAD:8265), that the head is running with the dashboard (pip install 'ray[default]'), "
            "and that the port is open from here."
        ) from None


class JobsClient:
    """Ray's ``JobSubmissionClient`` for ``address``, with the token header when the head wants one."""

    def __init__(self, address: str | None = None) -> None:
        self.address = _check_address(address or default_address())
        headers: dict[str, str] = {}
        if _auth_mode(self.address) == "token":
            token = auth_token()
            if token is None:
                raise ConfigError(
                    f"the Ray cluster at {self.address} requires its authentication token, and none is "
                    "set here. Copy it from the head (run `ray get-auth-token` there) into "
                    "~/.ray/auth_token, or set RAY_AUTH_TOKEN."
                )
            headers["Authorization"] = f"Bearer {token}"

        require("ray.job_submission", "ray")
        from ray.job_submission import JobSubmissionClient

        try:
            self._client = JobSubmissionClient(self.address, headers=headers or None)
        except Exception as exc:  # connection refused after the probe, a wrong token...
            raise ConfigError(
                f"the Ray Jobs API at {self.address} refused the connection: {_clean(exc)}"
            ) from None

    def submit(self, entrypoint: str, runtime_env: dict[str, Any], submission_id: str | None) -> str:
        try:
            return str(
                self._client.submit_job(
                    entrypoint=entrypoint,
                    runtime_env=runtime_env,
                    submission_id=submission_id,
                    metadata={"submitted_by": "regtuner"},
                )
            )
        except Exception as exc:
            raise ConfigError(f"the Ray cluster at {self.address} refused the job: {_clean(exc)}") from None

    def info(self, job_id: str) -> Any:
        return self._call(self._client.get_job_info, job_id)

    def status(self, job_id: str) -> str:
        return str(self._call(self._client.get_job_status, job_id))

    def logs(self, job_id: str) -> str:
        return str(self._call(self._client.get_job_logs, job_id))

    def stop(self, job_id: str) -> bool:
        return bool(self._call(self._client.stop_job, job_id))

    def jobs(self) -> list[Any]:
        return list(self._call(self._client.list_jobs))

    def follow(self, job_id: str) -> Iterator[str]:
        """Log text as the job writes it, until the job ends."""
        import asyncio

        self.info(job_id)  # a clear error for an unknown job before streaming
        loop = asyncio.new_event_loop()
        stream = self._client.tail_job_logs(job_id)
        try:
            while True:
                with warnings.catch_warnings():  # Ray's websocket call passes aiohttp a deprecated ssl=None
                    warnings.simplefilter("ignore", DeprecationWarning)
                    try:
                        chunk = loop.run_until_complete(stream.__anext__())
                    except StopAsyncIteration:
                        return
                yield chunk
        finally:
            loop.run_until_complete(stream.aclose())
            loop.close()

    def wait(self, job_id: str, timeout: float, poll: float = 1.0) -> str:
        """Poll until the job ends or ``timeout`` seconds pass; the last status."""
        deadline = time.monotonic() + timeout
        status = self.status(job_id)
        while status not in TERMINAL and time.monotonic() < deadline:
            time.sleep(poll)
            status = self.status(job_id)
        return status

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            text = _clean(exc)
            if "404" in text or "does not exist" in text:
                raise ConfigError(f"no job {args[0]!r} on the Ray cluster at {self.address}.") from None
            raise ConfigError(f"the Ray Jobs API at {self.address} failed: {text}") from None


def _clean(exc: BaseException) -> str:
    """An exception's message on one line, with any bearer token masked."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return re.sub(r"(?i)bearer\s+\S+", "Bearer ***", text)[:800]


def durable_stores(tune_args: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Environment that keeps a job's results where later jobs and ``--resume`` find them, and what
    to tell the user about it: the spec's own storage and tracking stand; unset ones go under the
    head's ``~/.regtuner`` instead of the job's temporary folder."""
    env: dict[str, str] = {}
    said: list[str] = []
    if not tune_args.get("storage"):
        env["REGTUNER_STORAGE"] = DURABLE_STORAGE
        said.append(f"study storage: {DURABLE_STORAGE} on the head (the spec sets no storage:)")
    if tune_args.get("tracking", None) is None:
        env["MLFLOW_TRACKING_URI"] = DURABLE_TRACKING
        said.append(f"MLflow: {DURABLE_TRACKING} on the head (the spec sets no tracking:)")
    return env, said


def job_request(
    spec_path: str | os.PathLike[str],
    working_dir: str | os.PathLike[str] | None,
    pip: Sequence[str] = (),
) -> tuple[str, dict[str, Any]]:
    """The entrypoint and runtime_env that run ``spec_path`` on the cluster.

    A spec inside ``working_dir`` runs by its relative path (it travels with the folder); any other
    spec travels as text in the job's environment (``regtuner run --spec-env``).
    """
    spec = Path(spec_path).resolve()
    runtime_env: dict[str, Any] = {}
    entrypoint = ""
    if working_dir is not None:
        folder = Path(working_dir).resolve()
        if not folder.is_dir():
            raise ConfigError(f"--working-dir {str(working_dir)!r} is not a folder.")
        runtime_env["working_dir"] = str(folder)
        runtime_env["excludes"] = list(EXCLUDES)
        if spec.is_relative_to(folder):
            # Ray runs the entrypoint through a shell: quoted, a file name is only ever a file name
            entrypoint = shlex.join(["regtuner", "run", spec.relative_to(folder).as_posix()])
    if not entrypoint:
        runtime_env["env_vars"] = {SPEC_ENV: spec.read_text(encoding="utf-8")}
        entrypoint = f"regtuner run --spec-env {SPEC_ENV}"
    if pip:
        runtime_env["pip"] = list(pip)
    return entrypoint, runtime_env

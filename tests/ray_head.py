"""A real Ray head node for tests: ``ray start --head --block`` on 127.0.0.1, its own ports and temp dir.

The head runs in its own session (process group) with the environment it is given, so a test chooses
``HOME`` (where Ray 2.60 keeps the token it generates: ``~/.ray/auth_token``) and whether token auth is
on. :meth:`RayHead.stop` ends exactly that process group: never ``ray stop``, which would end every Ray
on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.mlflow_server import free_port

__all__ = ["RayHead"]


class RayHead:
    """``ray start --head`` with every port chosen here; ``dashboard`` is the Jobs API's URL."""

    def __init__(self, home: Path, num_cpus: int = 2, env: dict[str, str] | None = None) -> None:
        self.home = Path(home)
        self.num_cpus = num_cpus
        self.extra_env = dict(env or {})
        # Unix socket paths under the temp dir must stay short (about 100 characters)
        self.temp_dir = tempfile.mkdtemp(prefix="rh-", dir="/tmp")
        self.port = free_port()
        self.dashboard_port = free_port()
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.address = f"127.0.0.1:{self.port}"
        self.client_port = free_port()
        self.client_address = f"ray://127.0.0.1:{self.client_port}"
        self.log_path = Path(self.temp_dir) / "ray-start.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> RayHead:
        ports = {
            "--port": self.port,
            "--dashboard-port": self.dashboard_port,
            "--ray-client-server-port": self.client_port,
            "--node-manager-port": free_port(),
            "--object-manager-port": free_port(),
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--runtime-env-agent-port": free_port(),
            "--metrics-export-port": free_port(),
        }  # workers take Ray's default range (10002-19999), below these ephemeral ports
        command = ["ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                   "--dashboard-host", "127.0.0.1", "--include-dashboard", "true", "--disable-usage-stats",
                   "--num-cpus", str(self.num_cpus), "--temp-dir", self.temp_dir]  # fmt: skip
        for flag, value in ports.items():
            command += [flag, str(value)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
        env.update(HOME=str(self.home), **self.extra_env)
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"ray start exited with code {self.process.returncode}")
            if self._jobs_ready():
                return self
            time.sleep(0.5)
        self._fail(f"the Ray dashboard did not answer within {timeout:.0f} s")
        raise AssertionError("unreachable")

    def _jobs_ready(self) -> bool:
        try:  # public endpoint; the Jobs API answers 401 without the token, which still means up
            with urllib.request.urlopen(f"{self.dashboard}/api/authentication_mode", timeout=2):
                pass
            urllib.request.urlopen(f"{self.dashboard}/api/jobs/", timeout=2).close()
            return True
        except urllib.error.HTTPError as exc:
            return exc.code in (401, 403)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """End the head: SIGTERM to ``ray start`` (its reaper then ends the group), then SIGKILL to
        whatever of the group is left; remove the temp dir."""
        process, self.process = self.process, None
        if process is not None:
            group = process.pid
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                deadline = time.monotonic() + 15
                while _group(group) and time.monotonic() < deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(group, sig)
                    time.sleep(0.5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _fail(self, why: str) -> None:
        text = self.log()[-4000:]
        self.stop()
        pytest.fail(f"{why}. ray start log:\n{text}", pytrace=False)

    def __enter__(self) -> RayHead:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found

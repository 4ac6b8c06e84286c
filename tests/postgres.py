"""A real PostgreSQL server for tests: Debian's ``postgresql`` package, its own data dir and port on
127.0.0.1, trust authentication, stopped by the PID in its ``postmaster.pid``.

PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` user (``runuser``), in
a data dir that user owns. ``.ci/run`` installs the package; without it the fixture skips, saying so.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.mlflow_server import free_port

__all__ = ["PostgresServer", "postgres_fixture"]


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """``initdb`` + ``pg_ctl start``; :meth:`url` names a database (created on first use)."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)")
        pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed (the dev extra has it)")
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="regtuner-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else os.environ.get("USER", "postgres")
        self._databases: set[str] = set()

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)

    def start(self) -> PostgresServer:
        if self.as_root:
            shutil.chown(self.root, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "log"), "-w", "start")
        return self

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        if database not in self._databases:
            import psycopg2

            con = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{database}"')
            con.close()
            self._databases.add(database)
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGQUIT)  # immediate shutdown of the postmaster and its children
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and pid_file.exists():
                    time.sleep(0.1)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session", name="postgres")
def postgres_fixture():
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()

"""Which process runs a study: one process per study at a time.

A study's Optuna storage remembers the process that opened it last (study user attribute
``owner``: host, pid, process start time). ``resume=True`` while that process still runs on this
machine is refused: the resuming process would mark the other one's running trial "interrupted"
(the other process then dies on Optuna's "Cannot tell a FAIL trial") and close its MLflow trial runs
as KILLED. Parallel trials are the Ray executor's job.

Liveness is known only for processes on this machine, and only where ``/proc`` gives a process's
start time (Linux; the start time tells a reused pid apart). Elsewhere, or for an owner on another
host sharing the same database, nothing is refused.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from tuner.errors import ConfigError

__all__ = ["OWNER_ATTR", "owner_record", "check_owner"]

#: study user-attr key of the process that opened the study last
OWNER_ATTR = "owner"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (None: no such live process, or no ``/proc``)."""
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # fields from the 3rd on (the name may hold spaces)
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # a zombie or dead process is gone
        return None
    return fields[19]


def owner_record() -> dict[str, Any]:
    """This process, as stored in a study it opens."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _start_time(pid)}


def _runs_elsewhere(owner: Any) -> bool:
    if not isinstance(owner, Mapping) or owner.get("host") != socket.gethostname():
        return False  # another machine's process: its liveness cannot be checked from here
    pid, started = owner.get("pid"), owner.get("started")
    if not isinstance(pid, int) or started is None or pid == os.getpid():
        return False
    return _start_time(pid) == started


def check_owner(name: str, attrs: Mapping[str, Any]) -> None:
    """A ConfigError when study ``name`` (user attrs ``attrs``) is being run by another live process here."""
    owner = attrs.get(OWNER_ATTR)
    if _runs_elsewhere(owner):
        raise ConfigError(
            f"study {name!r} is being run right now by another process (pid {owner['pid']} on this "
            "machine); two processes cannot run one study, the second would fail the first one's "
            "running trial. Wait for it to finish or stop it, then resume; to run trials in parallel "
            "use executor='ray'."
        )

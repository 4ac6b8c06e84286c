"""Which process runs a study: one process per study at a time.

A study's Optuna storage remembers the process that opened it last (study user attribute
``owner``: host, pid, process start time). ``resume=True`` while that process still runs on this
machine is refused: the resuming process would mark the other one's running trial "interrupted"
(the other process then dies on Optuna's "Cannot tell a FAIL trial") and close its MLflow trial runs
as KILLED. Parallel trials are the Ray executor's job.

Liveness is known only for processes on this machine, through psutil: a process that has ended (or
is a zombie) is not alive, and the start time tells a reused pid apart. The start time is stored as
it always was, in clock ticks since boot (field 22 of Linux's ``/proc/<pid>/stat``, as a string), so
records written by earlier versions compare like with like. For an owner on another host sharing the
same database, or where psutil cannot tell, nothing is refused.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

import psutil

from tuner.errors import ConfigError

__all__ = ["OWNER_ATTR", "owner_record", "check_owner", "is_alive"]

#: study user-attr key of the process that opened the study last
OWNER_ATTR = "owner"

#: the unit of the stored start time: the kernel's clock ticks (USER_HZ, 100 on Linux)
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (None: no such live process here).

    psutil's ``create_time()`` is that count divided by the tick rate plus the boot time; taking the
    boot time back off gives the kernel's own number, which (unlike the sum) no clock adjustment moves.
    """
    try:
        pid = int(pid)
        if pid <= 0:
            return None
        process = psutil.Process(pid)
        with process.oneshot():
            if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return None  # a zombie or dead process is gone
            since_boot = process.create_time() - psutil.boot_time()
    except (psutil.Error, OSError, ValueError, TypeError, OverflowError):
        return None
    return str(round(since_boot * _TICKS))


def is_alive(pid: Any, started: Any) -> bool:
    """Whether process ``pid`` of this machine, started at ``started`` (:func:`_start_time`), still runs."""
    if not isinstance(pid, int) or started is None:
        return False
    return _start_time(pid) == str(started)  # None for a pid that is not (or no longer) a live process


def owner_record() -> dict[str, Any]:
    """This process, as stored in a study it opens."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _start_time(pid)}


def _runs_elsewhere(owner: Any) -> bool:
    if not isinstance(owner, Mapping) or owner.get("host") != socket.gethostname():
        return False  # another machine's process: its liveness cannot be checked from here
    pid = owner.get("pid")
    if pid == os.getpid():
        return False
    return is_alive(pid, owner.get("started"))


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

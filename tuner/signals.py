"""SIGTERM, the stop signal of systemd, docker, CI and ``ray job stop``, handled as Ctrl-C is: the
study ends its running trial as KILLED and its MLflow run, the UI stops its server. Used by the CLI
for its whole command, and by the Ray executor for its study (``ray.init`` sets a ``sys.exit``)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["sigterm_as_interrupt", "stop_requested"]

_STOP = threading.Event()


@contextmanager
def sigterm_as_interrupt(*, keep_own: bool = False) -> Iterator[None]:
    """Inside the block, SIGTERM raises KeyboardInterrupt, as Ctrl-C does, and :func:`stop_requested`
    turns True (for loops that may swallow the interrupt: Ray's). ``keep_own``: a handler the program
    set itself is left in place (only Python's default and Ray's bare ``sys.exit`` are replaced)."""

    def interrupt(signum: int, frame: Any) -> None:
        _STOP.set()
        raise KeyboardInterrupt

    current = signal.getsignal(signal.SIGTERM)
    replaceable = current in (signal.SIG_DFL, None) or getattr(current, "__module__", "").startswith("ray")
    if keep_own and not replaceable:
        yield
        return
    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    _STOP.clear()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_requested() -> bool:
    """Whether a SIGTERM arrived inside :func:`sigterm_as_interrupt` (since the outermost such block
    began): a loop that may have swallowed the KeyboardInterrupt (Ray Tune's) checks it."""
    return _STOP.is_set()

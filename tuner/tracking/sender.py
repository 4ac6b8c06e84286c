"""The sender thread of the tracking worker: brings the MLflow store up to a study's state as it changes.

The worker (:func:`~tuner.tracking.worker.serve`) merges the tracker's changes into its replica
:class:`~tuner.tracking.state.StudyRun` under ``cond`` and calls :meth:`Sender.wake`; the thread runs
one :meth:`~tuner.tracking.projection.Projector.project` pass per wake-up. When the store does not
answer, the state is kept in a spool file (rewritten as it changes) and the pass is tried again every
``REGTUNER_TRACKING_RETRY_SECONDS`` (20 s), and once more on close.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from tuner.tracking.projection import Offline, Projector
from tuner.tracking.spool import SpoolFile
from tuner.tracking.state import StudyRun

__all__ = ["Sender"]

log = logging.getLogger("tuner")

SAVE_SECONDS = 5.0  # while the store is away, the spool is rewritten at most this often (and on close)

Warn = Callable[[str, str, "str | None", bool], None]  # (what failed, message, spool file, local)


class Sender:
    """Sends ``study`` to the store at ``uri`` from a daemon thread, started on the first wake-up."""

    def __init__(
        self, study: StudyRun, cond: threading.Condition, uri: str | None, spool_dir: str, warn: Warn,
        on_pass: Callable[[], None] = lambda: None,
    ) -> None:  # fmt: skip
        self.study, self.cond, self.spool_dir, self.warn, self.on_pass = study, cond, spool_dir, warn, on_pass
        self.projector = Projector(uri, cond, self._note)
        self.uri = uri
        self.failures = 0
        self.ready = self.offline = False  # ready: the URI is resolved (or the store failed)
        self.spool: SpoolFile | None = None
        self._version = self._done = 0
        self._thread: threading.Thread | None = None
        self._closing = self._final = False
        self._retry_at = self._saved_at = 0.0

    @property
    def running(self) -> bool:
        return self._thread is not None

    def wake(self) -> None:
        """The state changed (called with ``cond`` held)."""
        self._version += 1
        if self._thread is None and not self._closing:
            self._thread = threading.Thread(target=_loop, args=(self,), daemon=True, name="regtuner-tracking")
            self._thread.start()
        self.cond.notify_all()

    def flush(self, timeout: float | None) -> bool:
        """Wait until a pass after this call is through (sent, or spooled); False on timeout."""
        with self.cond:
            if self._thread is None:
                return True
            self.wake()
            target = self._version
            return self.cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float, send: bool = True) -> bool:
        """A last pass (even while the store is away; none with ``send=False``), then stop; the spool keeps
        what is left. False when the thread was still sending after ``timeout`` seconds."""
        with self.cond:
            thread, self._closing, self._final = self._thread, True, self._final or not send
            self.cond.notify_all()
        if thread is None:
            return True
        thread.join(timeout)
        finished = not thread.is_alive()
        with self.cond:
            self._thread = None
            if not finished or (not send and self.study.pending):
                self._save()  # what the thread has not marked sent is kept
            if self.spool is not None:
                self.spool.close(remove=not self.study.pending)
        return finished

    def status(self) -> dict[str, Any]:
        """Parts sent and dropped, and what waits in the spool (``spool``: its file)."""
        with self.cond:
            study, spool = self.study, self.spool
            pending = sum(t.pending for t in study.trials.values()) + (
                study.name is not None and study.pending
            )
            return {
                "failures": self.failures,
                "sent": self.projector.sent,
                "dropped": self.projector.dropped,
                "spooled": int(pending) if spool else 0,
                "spool": str(spool.path) if spool else None,
            }

    # -- the thread -----------------------------------------------------------------------------------

    def _next(self) -> tuple[int, bool] | None:
        """Wait for work: (the version to reach, whether to send now); None once closed."""
        with self.cond:
            while True:
                if self._closing:  # one last pass, even while the store is away
                    if self._final:
                        return None
                    self._final = True
                    return self._version, True
                wait = None
                if self.offline:
                    wait = self._retry_at - time.monotonic()
                    if wait <= 0:
                        return self._version, True
                if self._done < self._version:
                    return self._version, not self.offline
                self.cond.wait(wait)

    def _pass(self, target: int, send: bool) -> None:
        error = None
        if send:
            try:
                self.projector.project(self.study)
            except Offline as exc:
                error = str(exc)
        with self.cond:
            self.ready = True
            self.uri = self.uri or self.projector.uri
            if error is not None:
                self.failures += 1
                self.offline = True
                self._retry_at = time.monotonic() + float(
                    os.environ.get("REGTUNER_TRACKING_RETRY_SECONDS", "20")
                )
            elif send:
                self.offline = False
            if self.offline and (send or self._closing or time.monotonic() >= self._saved_at + SAVE_SECONDS):
                self._save()
            elif self.spool is not None and not self.study.pending:
                self.spool.close(remove=True)
                self.spool = None
            if error is not None:
                self.warn("send", error, str(self.spool.path) if self.spool else None, False)
            self._done = max(self._done, target)
            self.on_pass()
            self.cond.notify_all()

    def _save(self) -> None:
        """Keep the unsent state in the spool (``cond`` held)."""
        self._saved_at = time.monotonic()
        try:
            if self.spool is None:
                self.spool = SpoolFile.create(self.spool_dir, self.uri, self.study.uid)
            self.spool.write(self.study)
        except OSError as exc:  # no spool (disk full, read-only): say so once
            self.warn("spool", f"{type(exc).__name__}: {exc}", None, True)

    def _note(self, kind: str, what: str, message: str) -> None:
        if kind == "note":
            log.info("MLflow tracking: %s", message)
            return
        with self.cond:
            self.warn(what, message, None, True)


def _loop(sender: Sender) -> None:
    while (work := sender._next()) is not None:
        try:
            sender._pass(*work)
        except Exception as exc:  # a bug here must not end the thread (and with it every later send)
            with sender.cond:
                sender.failures += 1
                sender.warn("send", f"{type(exc).__name__}: {exc}", None, True)
                sender._done = max(sender._done, work[0])
                sender.cond.notify_all()

"""Per-trial time limits (``tune(trial_timeout=...)``): a deadline that ends a trial that hangs.

Two mechanisms, one deadline:

* **Hard stop** (the local executor on POSIX: trials run in the main thread): a one-shot
  ``SIGALRM`` timer (``signal.setitimer(ITIMER_REAL)``) raises :class:`TrialTimeout` wherever the
  trial is, in the builder, inside an epoch, in ``time.sleep``. Python runs signal handlers between
  bytecodes, so one long C call (a single huge TensorFlow op) ends first, then the trial stops.
* **Cooperative checks**, everywhere: the runner's epoch hooks call :meth:`Deadline.check` at each
  epoch start, each batch loss and each epoch end. This is the only mechanism when the trial does
  not run in the main thread (Ray Tune runs trials in a thread of the actor), on platforms without
  ``setitimer``, or when the program already uses ``SIGALRM``; a hang that never reaches a hook
  (inside the builder, or a blocked call) is then not interrupted.

:class:`TrialTimeout` derives from ``BaseException`` so that ``except Exception`` in user code or
framework callbacks cannot swallow it; were it swallowed anyway, the deadline stays expired and the
next hook raises it again. Sections that must not be cut in the middle (the Optuna report, which
writes to the study storage, and the tracking hook) run under :meth:`Deadline.shield`: an alarm
there only marks the deadline expired and the trial stops right after.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

__all__ = ["TrialTimeout", "Deadline", "trial_deadline", "current"]

#: first word of a timed-out trial's error; the failure policy groups errors by it
ERROR_PREFIX = "trial_timeout"

_local = threading.local()


class TrialTimeout(BaseException):
    """The trial ran past ``trial_timeout``; the runner records it as a failed trial."""


class Deadline:
    """The end time of one trial, and where the trial was when it passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.where = "while building the model"
        self.epochs_done = 0
        self.expired = False
        self.hard = False  # a SIGALRM timer is armed for it
        self._shield = 0

    def at_epoch(self, epoch: int, done: int) -> None:
        """Note that ``epoch`` (0-based) is starting with ``done`` epochs finished, then check."""
        self.where, self.epochs_done = f"during epoch {epoch}", done
        self.check()

    def error(self) -> TrialTimeout:
        kept = f", {self.epochs_done} finished epochs kept" if self.epochs_done else ""
        return TrialTimeout(
            f"{ERROR_PREFIX}: trial exceeded trial_timeout={self.seconds:g}s (stopped {self.where}{kept}). "
            "Raise trial_timeout, or lower max_epochs or the model's size."
        )

    def check(self) -> None:
        """Raise :class:`TrialTimeout` once the deadline has passed (cheap: one clock read)."""
        if not self.expired and time.monotonic() < self.end:
            return
        self.expired = True
        if not self._shield:
            raise self.error()

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        """Run a section the alarm must not cut; a deadline passed meanwhile raises right after it."""
        self._shield += 1
        try:
            yield
        finally:
            self._shield -= 1
        self.check()

    def _on_alarm(self, signum: int, frame: object) -> None:
        self.expired = True
        if not self._shield:
            raise self.error()


def current() -> Deadline | None:
    """The deadline of the trial running in this thread, if it has one."""
    return getattr(_local, "deadline", None)


def _can_alarm() -> bool:
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return False
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        return False  # the program runs its own timer: do not take it over
    return signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)


@contextlib.contextmanager
def trial_deadline(seconds: float | None) -> Iterator[Deadline | None]:
    """Give the trial run inside a deadline of ``seconds`` (None: none); nested calls share the outer one.

    The alarm (when one can be used) is always disarmed and the previous ``SIGALRM`` handler put
    back on the way out, whatever happened inside.
    """
    outer = current()
    if seconds is None or outer is not None:
        yield outer
        return
    deadline = Deadline(seconds)
    _local.deadline = deadline
    previous = None
    try:
        if _can_alarm():
            previous = signal.signal(signal.SIGALRM, deadline._on_alarm)
            deadline.hard = True
            signal.setitimer(signal.ITIMER_REAL, seconds)
        yield deadline
    finally:
        try:
            if deadline.hard:
                signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            if deadline.hard:
                signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
            _local.deadline = None

"""The tracking worker: brings MLflow up to the study's state in a child process, away from the study.

The tracker keeps what MLflow should hold (:class:`~tuner.tracking.state.StudyRun`) and ships what
changed as JSON lines (:func:`~tuner.tracking.state.take_changes`) to ``python -m tuner.tracking.worker``.
The child keeps a replica and projects it with a :class:`~tuner.tracking.sender.Sender`: MLflow's import,
its SQLAlchemy or HTTP work and every retry run there, on another core, not in the study's process (where
they competed with training for the GIL). It answers with events: run ids, failures, flushes. It runs in
its own session, so Ctrl-C in a terminal does not kill it. A ``close`` line makes it send what is left;
its stdin closing without one (the study's process died) makes it spool what is unsent and exit at once,
so a resumed study never races it (``regtuner sync`` sends that spool).

``REGTUNER_TRACKING_WORKER=thread`` runs the same loop in a thread of the study's process; so does a
worker whose child process cannot be started.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tuner.tracking.sender import Sender
from tuner.tracking.state import StudyRun, merge

__all__ = ["Channel", "serve"]

OnEvent = Callable[[dict[str, Any]], None]
CLOSE_SECONDS = float(os.environ.get("REGTUNER_TRACKING_CLOSE_SECONDS", "120"))
ABANDON_SECONDS = 10.0  # the study died: the pass in flight gets this long before the state is spooled


def _dumps(item: Any) -> str:
    return json.dumps(item, separators=(",", ":"), default=str)


def serve(config: dict[str, Any], lines: Iterator[str | None], emit: OnEvent) -> None:
    """The worker loop: a replica of the study from ``config``, changes from ``lines`` (None: the study's
    process is gone), events to ``emit``."""
    study = StudyRun.from_json(config["study"])
    cond = threading.Condition(threading.RLock())
    reported: dict[int, str] = {}

    def warn(what: str, message: str, spool: str | None, local: bool) -> None:
        emit({"event": "warn", "what": what, "message": message, "spool": spool, "local": local})

    def on_pass() -> None:  # cond held
        runs = {n: t.run_id for n, t in study.trials.items() if t.run_id and reported.get(n) != t.run_id}
        reported.update(runs)
        emit({"event": "pass", "uri": sender.uri, "run_id": study.run_id, "offline": sender.offline,
              "experiment_id": study.experiment_id, "runs": runs, **sender.status()})  # fmt: skip

    sender = Sender(study, cond, config.get("uri"), config["spool_dir"], warn, on_pass)
    for line in lines:
        item = json.loads(line) if line is not None else {"close": ABANDON_SECONDS, "send": False}
        if "close" in item:
            sender.close(float(item["close"]), item.get("send", True))
            emit({"event": "done", **sender.status()})
            return
        if "flush" in item:
            sender.flush(None)
            emit({"event": "flushed", "id": item["flush"], **sender.status()})
            continue
        try:
            with cond:
                merge(study, item)
                sender.wake()
        except Exception as exc:  # noqa: BLE001 - a change that does not fit costs itself, not the worker
            warn("send", f"{type(exc).__name__}: {exc}", None, True)


class _Thread:
    """The worker loop in a daemon thread of this process."""

    def __init__(self, config: dict[str, Any], on_event: OnEvent) -> None:
        self._items: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(
            target=serve, args=(config, iter(self._items.get, None), on_event), name="regtuner-tracking",
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    def put(self, line: str | None) -> None:
        self._items.put(line)


class _Process:
    """The worker loop in a child process, fed through its stdin (None closes it)."""

    def __init__(self, config: dict[str, Any], on_event: OnEvent) -> None:
        self._on_event = on_event
        self._items: queue.Queue[str | None] = queue.Queue()
        self._done = False
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        root = str(Path(__file__).resolve().parents[2])  # the folder that holds the tuner package
        if Path(root).name not in ("site-packages", "dist-packages"):  # a source checkout: import this one
            env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tuner.tracking.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # Ctrl-C on the terminal must not kill the sends in flight
        )
        # the configuration goes through the pipe: a URI with a password must not show in `ps`
        self._items.put(_dumps(config))
        for target, name in ((self._write, "writer"), (self._read, "reader"), (self._read_stderr, "stderr")):
            threading.Thread(target=target, name=f"regtuner-tracking-{name}", daemon=True).start()

    def put(self, line: str | None) -> None:
        self._items.put(line)

    def _write(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            while (line := self._items.get()) is not None:
                lines = [line]
                with contextlib.suppress(queue.Empty):
                    while len(lines) < 1000 and (line := self._items.get_nowait()) is not None:
                        lines.append(line)
                stdin.write(("\n".join(lines) + "\n").encode())
                stdin.flush()
                if line is None:
                    break
        except (OSError, ValueError):
            pass  # the child is gone: the reader reports it
        with contextlib.suppress(OSError, ValueError):
            stdin.close()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for raw in stdout:
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(raw)
                self._done = self._done or event.get("event") == "done"
                self._on_event(event)
        stdout.close()
        code = self.process.wait()
        if not self._done:
            tail = " | ".join(self.stderr_tail)[-1500:]
            self._on_event({"event": "died", "message": f"tracking worker exited with code {code}: {tail}"})

    def _read_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        for raw in stderr:
            self.stderr_tail.append(raw.decode(errors="replace").rstrip())
        stderr.close()


class Channel:
    """The tracker's end: ships changes to a worker (started on the first one), keeps what it reported.

    Events update this object under ``cond`` (the tracker's lock) and notify it. A worker process that
    dies is replaced by a thread, and ``lost`` is called for the tracker to ship its whole state again."""

    def __init__(
        self, cond: threading.Condition, uri: str | None, spool_dir: str, warn: OnEvent,
        lost: Callable[[], None],
    ) -> None:  # fmt: skip
        self.cond, self.uri, self.spool_dir, self._warn, self._lost = cond, uri, spool_dir, warn, lost
        self.ready = self.offline = self.done = False  # ready: the URI is resolved (or the store failed)
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.runs: dict[int, str] = {}
        self.report: dict[str, Any] = {"failures": 0, "sent": 0, "dropped": 0, "spooled": 0, "spool": None}
        self._worker: _Thread | _Process | None = None
        self._asked = self._flushed = self._deaths = 0
        self._closing = self._fallback = False

    @property
    def running(self) -> bool:
        return self._worker is not None and not self.done

    def ship(self, study: StudyRun, change: dict[str, Any]) -> None:
        """Send ``change`` (``cond`` held); the first one starts the worker with ``study``'s skeleton."""
        if self._closing:
            return
        if self._worker is None:
            config = {"uri": self.uri, "spool_dir": self.spool_dir, "study": study.skeleton()}
            if self._fallback:
                self._worker = _Thread(config, self._on_event)
            else:
                self._worker = _start(config, self._on_event)
                atexit.register(_close_at_exit, weakref.ref(self))
        self._worker.put(_dumps(change))

    def flush(self, timeout: float | None) -> bool:
        """Wait until the worker has sent (or spooled) everything shipped so far; False on timeout."""
        with self.cond:
            if not self.running or self._closing:
                return True
            self._asked += 1
            ident = self._asked
            assert self._worker is not None
            self._worker.put(_dumps({"flush": ident}))
            return self.cond.wait_for(lambda: self._flushed >= ident or self.done, timeout)

    def close(self, timeout: float | None) -> bool:
        """Ask for a last pass and the end; True when the worker finished within ``timeout`` seconds (if
        not, it goes on alone, and spools what it cannot send)."""
        with self.cond:
            if self._worker is None:
                return True
            if not self._closing:
                self._closing = True
                self._worker.put(_dumps({"close": CLOSE_SECONDS}))
                self._worker.put(None)
            return self.cond.wait_for(lambda: self.done, timeout)

    def _on_event(self, event: dict[str, Any]) -> None:
        with self.cond:
            kind = event.pop("event", None)
            if kind == "warn":
                self._warn(event)
            elif kind == "died":  # what it had not sent goes to a thread, shipped again whole
                self.report["failures"] += 1
                self._deaths += 1
                self._warn({"what": "send", "message": event["message"], "spool": None, "local": True})
                self._worker, self._fallback, self._flushed = None, True, self._asked
                if self._closing:
                    self.done = self.ready = True
                else:
                    self._lost()
            else:
                for key in self.report:
                    self.report[key] = event.get(key, self.report[key])
                self.report["failures"] += self._deaths  # a replacement counts from 0
                if kind == "pass":
                    self.ready, self.offline = True, bool(event["offline"])
                    self.uri = event["uri"] or self.uri
                    self.run_id = event["run_id"] or self.run_id
                    self.experiment_id = event["experiment_id"] or self.experiment_id
                    self.runs.update({int(n): run for n, run in event["runs"].items()})
                elif kind == "flushed":
                    self._flushed = max(self._flushed, int(event["id"]))
                elif kind == "done":
                    self.done = True
            self.cond.notify_all()


def _close_at_exit(ref: weakref.ref[Channel]) -> None:
    channel = ref()
    if channel is not None:
        with contextlib.suppress(Exception):
            channel.close(CLOSE_SECONDS)


def _start(config: dict[str, Any], on_event: OnEvent) -> _Thread | _Process:
    if os.environ.get("REGTUNER_TRACKING_WORKER", "process").lower() != "thread":
        with contextlib.suppress(OSError):  # no way to start a process here (sandbox): a thread will do
            return _Process(config, on_event)
    return _Thread(config, on_event)


def main() -> int:
    """The child process: the configuration on the first stdin line, changes after it."""
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # whatever MLflow prints must not mix with the events
    sys.stdout = sys.stderr
    lock = threading.Lock()

    def emit(event: dict[str, Any]) -> None:
        nonlocal events
        with lock:
            try:
                events.write(_dumps(event) + "\n")
            except (OSError, ValueError):
                # The study's process died: nobody reads our pipes any more; what we print goes nowhere.
                events = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
                os.dup2(events.fileno(), 1)
                os.dup2(events.fileno(), 2)

    config = json.loads(sys.stdin.readline() or "{}")

    def lines() -> Iterator[str | None]:
        yield from (line for line in sys.stdin if line.strip())
        yield None  # stdin closed without a close line: the study's process died

    serve(config, lines(), emit)
    return 0


if __name__ == "__main__":
    sys.exit(main())

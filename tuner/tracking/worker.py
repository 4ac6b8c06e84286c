"""The tracking worker: sends a tracker's operations to MLflow away from the study's thread.

By default the worker is a child process (``python -m tuner.tracking.worker``): MLflow's import, its
SQLAlchemy or HTTP work and every retry run there, on another core, and the study's process never
imports MLflow for tracking. The tracker writes operations as JSON lines to the child's stdin (from a
writer thread, so a study never blocks on a pipe); the child answers with events on its stdout (a run
was created, the store failed, a flush is done). The child runs in its own session, so Ctrl-C in a
terminal does not kill it, and it drains what it has, spooling what it cannot send, when its stdin closes
(the study ended, or its process died).

``REGTUNER_TRACKING_WORKER=thread`` runs the same loop in a thread of the study's process instead; a
child that cannot be started or dies falls back to a thread too.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.tracking.sender import Sender

__all__ = [
    "Transport",
    "ProcessTransport",
    "ThreadTransport",
    "EventHandler",
    "start_transport",
    "close_with",
    "run_loop",
]

OnEvent = Callable[[dict[str, Any]], None]
_BATCH = 2000  # operations taken from the queue at once


def run_loop(items: queue.Queue[Any], sender: Sender) -> None:
    """Take operations from ``items`` until a ``close`` (or None); send them in batches."""
    while True:
        try:
            first = items.get(timeout=sender.idle_timeout())
        except queue.Empty:
            _safely(sender, ())  # time to retry the spool
            continue
        batch = [first]
        while len(batch) < _BATCH:
            try:
                batch.append(items.get_nowait())
            except queue.Empty:
                break
        ops: list[dict[str, Any]] = []
        for item in batch:
            kind = None if item is None else item.get("op")
            if kind in (None, "close", "flush", "connect"):
                _safely(sender, ops)
                ops = []
                if kind == "flush":
                    sender.emit({"event": "flushed", "id": item["id"], **sender.status()})
                elif kind == "connect":
                    _connect(sender)
                else:
                    _close(sender)
                    return
            else:
                ops.append(item)
        _safely(sender, ops)


def _safely(sender: Sender, ops: list[dict[str, Any]] | tuple[()]) -> None:
    """``sender.handle``; a bug there must not end the loop (and with it every later operation)."""
    try:
        sender.handle(ops)
    except Exception as exc:  # noqa: BLE001 - reported as an event, the loop goes on
        sender.dropped += len(ops)
        sender.emit({"event": "dropped", "what": "send", "message": f"{type(exc).__name__}: {exc}"})


def _connect(sender: Sender) -> None:
    try:
        uri = sender.connect()
    except Exception as exc:  # the store is unreachable or misconfigured; operations will spool
        sender.emit({"event": "ready", "uri": sender.uri, "error": f"{type(exc).__name__}: {exc}"})
        return
    sender.emit({"event": "ready", "uri": uri})


def _close(sender: Sender) -> None:
    if sender.offline:
        sender.recover()  # the end of the study: one more try
    status = sender.status()
    if sender.spool is not None:
        sender.spool.close()
    sender.locks.release()  # before "done": a resumed study may be waiting for this study's lock
    sender.emit({"event": "done", **status})


class Transport:
    """How a tracker reaches its worker."""

    def put(self, item: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self, timeout: float | None) -> bool:
        """Ask the worker to finish; True when it did within ``timeout`` seconds."""
        raise NotImplementedError


class ThreadTransport(Transport):
    """The worker loop in a daemon thread of this process."""

    def __init__(self, config: dict[str, Any], on_event: OnEvent) -> None:
        self._items: queue.Queue[Any] = queue.Queue()
        sender = Sender(config.get("uri"), config.get("experiment"), config.get("spool_dir"), on_event)
        self._thread = threading.Thread(
            target=run_loop, args=(self._items, sender), name="regtuner-tracking", daemon=True
        )
        self._thread.start()

    def put(self, item: dict[str, Any]) -> None:
        self._items.put(item)

    def close(self, timeout: float | None) -> bool:
        self._items.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()


class ProcessTransport(Transport):
    """The worker loop in a child process, fed through its stdin."""

    def __init__(self, config: dict[str, Any], on_event: OnEvent) -> None:
        self._on_event = on_event
        self._items: queue.Queue[Any] = queue.Queue()
        self._done = threading.Event()
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
        self._items.put(config)
        for target, name in ((self._write, "writer"), (self._read, "reader"), (self._read_stderr, "stderr")):
            threading.Thread(target=target, name=f"regtuner-tracking-{name}", daemon=True).start()

    def put(self, item: dict[str, Any]) -> None:
        self._items.put(item)

    def close(self, timeout: float | None) -> bool:
        self._items.put(None)
        return self._done.wait(timeout)

    def leftovers(self) -> list[dict[str, Any]]:
        """Operations not yet written to a child that died (for the worker that takes over)."""
        out = []
        while True:
            try:
                item = self._items.get_nowait()
            except queue.Empty:
                return out
            if item is not None:
                out.append(item)

    def _write(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            while True:
                item = self._items.get()
                lines = []
                while True:
                    if item is None:
                        break
                    lines.append(json.dumps(item, separators=(",", ":"), default=str))
                    try:
                        item = self._items.get_nowait()
                    except queue.Empty:
                        item = False
                        break
                if lines:
                    stdin.write(("\n".join(lines) + "\n").encode())
                    stdin.flush()
                if item is None:
                    stdin.close()
                    return
        except (OSError, ValueError):
            with contextlib.suppress(OSError, ValueError):
                stdin.close()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for raw in stdout:
            try:
                event = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if event.get("event") == "done":
                self._done.set()
            self._on_event(event)
        stdout.close()
        code = self.process.wait()
        if not self._done.is_set():
            tail = " | ".join(self.stderr_tail)[-1500:]
            self._on_event({"event": "died", "message": f"tracking worker exited with code {code}: {tail}"})
            self._done.set()

    def _read_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        for raw in stderr:
            self.stderr_tail.append(raw.decode(errors="replace").rstrip())
        stderr.close()


class EventHandler:
    """Forwards worker events to the tracker without keeping it alive."""

    def __init__(self, ref: weakref.ref[Any]) -> None:
        self._ref = ref

    def __call__(self, event: dict[str, Any]) -> None:
        tracker = self._ref()
        if tracker is not None:
            tracker._on_event(event)


_exiting = False
_exit_watched = False


def _watch_exit() -> None:
    """Note when the interpreter exits (registered after weakref's own hook, so it runs before it)."""
    global _exit_watched
    if not _exit_watched:
        _exit_watched = True

        def mark() -> None:
            global _exiting
            _exiting = True

        atexit.register(mark)


def close_with(owner: object, transport: Transport, seconds: float) -> None:
    """Close ``transport`` when ``owner`` is garbage: at once (its worker drains on its own) or, at exit,
    waiting up to ``seconds``; a child process still busy then goes on alone (its input closes with us)."""
    weakref.finalize(owner, _close_quietly, transport, seconds)
    _watch_exit()


def _close_quietly(transport: Transport, seconds: float) -> None:
    with contextlib.suppress(Exception):
        transport.close(seconds if _exiting else 0)


def start_transport(config: dict[str, Any], on_event: OnEvent) -> Transport:
    """The worker for one tracker: a child process unless ``REGTUNER_TRACKING_WORKER=thread``."""
    if os.environ.get("REGTUNER_TRACKING_WORKER", "process").lower() != "thread":
        try:
            return ProcessTransport(config, on_event)
        except OSError:
            pass  # no way to start a process here (sandbox, odd interpreter): a thread will do
    return ThreadTransport(config, on_event)


def main() -> int:
    """The child process: configuration on the first stdin line, operations after it."""
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # whatever MLflow prints must not mix with the events
    sys.stdout = sys.stderr
    lock = threading.Lock()

    def emit(event: dict[str, Any]) -> None:
        nonlocal events
        with lock:
            try:
                events.write(json.dumps(event, separators=(",", ":"), default=str) + "\n")
            except (OSError, ValueError):
                # The study's process died (SIGKILL): nobody reads our pipes any more. Writing to them
                # would fail every send, so events and MLflow's output go nowhere; the draining goes on.
                events = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
                os.dup2(events.fileno(), 1)
                os.dup2(events.fileno(), 2)

    config = json.loads(sys.stdin.readline() or "{}")
    items: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        for line in sys.stdin:
            with contextlib.suppress(json.JSONDecodeError):
                items.put(json.loads(line))
        items.put(None)  # stdin closed: the study ended or its process died

    threading.Thread(target=read, daemon=True).start()
    with contextlib.suppress(Exception):  # warm up while the study prepares; errors show at the first send
        import mlflow.tracking  # noqa: F401
    sender = Sender(config.get("uri"), config.get("experiment"), config.get("spool_dir"), emit)
    run_loop(items, sender)
    return 0


if __name__ == "__main__":
    sys.exit(main())

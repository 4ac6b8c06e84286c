"""The tracking spool: MLflow operations that could not be sent, kept in a local JSON-lines file.

A spool file is append-only. Its first line is a header (``{"spool": 1, "uri": ..., "experiment": ...}``);
then come, in any mix and in the order they happened:

- operations (``{"op": "create" | "reopen" | "ensure" | "log" | "text" | "artifact" | "model" | "end",
  ...}``), in the order they must be sent;
- binds (``{"bind": UID, "run_id": ..., "experiment_id": ...}``): a run our operations name by UID exists
  in MLflow under that id;
- marks (``{"mark": N}``): the first N operations have been sent.

Nothing is ever rewritten, so a crash while replaying loses no line, and a replay that stops part-way goes
on from the last mark. A process that owns a spool file ``<name>.jsonl`` holds an exclusive OS lock
(:func:`os_lock`: ``flock`` on POSIX) on its sibling ``<name>.jsonl.lock``, so ``regtuner sync`` skips
files a running study is still writing; the lock dies with its process, even one killed with SIGKILL.
The lock file is removed with the spool file once everything was sent. The URI in the header has no user
name, password or query: credentials come from MLflow's environment variables, never from a file.
Staged files (artifacts, models) that operations point to live in ``<spool dir>/staged/``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import inspect
import json
import os
import shutil
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock

__all__ = [
    "SPOOL_VERSION",
    "SpoolFile",
    "os_lock",
    "SpoolContents",
    "spool_dir",
    "spool_files",
    "read_spool",
    "clean_uri",
]

SPOOL_VERSION = 1
DEFAULT_DIR = ".regtuner/spool"


def spool_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The spool folder: ``path``, else ``$REGTUNER_SPOOL_DIR``, else ``./.regtuner/spool`` (absolute)."""
    chosen = path or os.environ.get("REGTUNER_SPOOL_DIR") or DEFAULT_DIR
    return Path(chosen).expanduser().resolve()


def clean_uri(uri: str | None) -> str | None:
    """``uri`` without user info and query, which may hold secrets: what a spool file may keep."""
    if not uri:
        return uri
    parts = urllib.parse.urlsplit(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", parts.fragment))


#: newer filelock releases fall back to a marker file where ``flock`` is missing; a marker outlives a
#: killed process, which would keep its spool file "in use" for ever: no fallback, fail as flock would
_NO_SOFT_FALLBACK = (
    {"fallback_to_soft": False}
    if "fallback_to_soft" in inspect.signature(filelock.FileLock.__init__).parameters
    else {}
)

#: what flock fails with where a file system has no locks
_NO_LOCKS = frozenset({errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP})


def os_lock(path: str | os.PathLike[str]) -> filelock.BaseFileLock:
    """An exclusive lock on file ``path`` that the OS releases when its process ends, however it ends.

    ``filelock.FileLock``: ``flock`` on POSIX, ``msvcrt.locking`` on Windows; never a soft (marker)
    lock. ``path`` is a file of its own (``<file>.lock``), never the data it guards: filelock may open it
    truncating. Each lock object holds its own descriptor, so two of them on one path exclude each other
    even in one process (``is_singleton`` stays off); ``thread_local=False`` lets any thread release it.
    Acquiring: ``acquire(timeout=...)`` (``timeout=0``: one try), ``filelock.Timeout`` when it is held.
    """
    return filelock.FileLock(path, thread_local=False, **_NO_SOFT_FALLBACK)


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of spool file ``path``: ``<path>.lock`` beside it (not a ``*.jsonl`` name)."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def spool_files(directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Spool files in ``directory`` (see :func:`spool_dir`), oldest first."""
    folder = spool_dir(directory)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name))


@dataclass
class SpoolContents:
    """What a spool file holds: its header, every operation, the binds, and how many were sent."""

    header: dict[str, Any]
    ops: list[dict[str, Any]] = field(default_factory=list)
    binds: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    sent: int = 0

    @property
    def pending(self) -> list[dict[str, Any]]:
        return self.ops[self.sent :]


def read_spool(path: str | os.PathLike[str]) -> SpoolContents:
    """Parse a spool file; a torn last line (the writer died mid-write) is ignored."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    contents = SpoolContents(header={})
    for number, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) - 1:
                break
            raise ValueError(
                f"spool file {path} line {number + 1} is not JSON; move the file away."
            ) from None
        if number == 0:
            if entry.get("spool") != SPOOL_VERSION:
                raise ValueError(f"{path} is not a regtuner spool file (version {SPOOL_VERSION}).")
            contents.header = entry
        elif "op" in entry:
            contents.ops.append(entry)
        elif "bind" in entry:
            contents.binds[entry["bind"]] = (entry["run_id"], entry.get("experiment_id"))
        elif "mark" in entry:
            contents.sent = max(contents.sent, int(entry["mark"]))
    return contents


class SpoolFile:
    """An open spool file that this process owns (locked) and appends to."""

    def __init__(self, path: Path, handle: Any, lock: filelock.BaseFileLock | None = None) -> None:
        self.path = path
        self._handle = handle
        self._lock_file = lock if lock is not None else os_lock(lock_path(path))
        self.ops = 0  # operations in the file
        self.sent = 0  # ...of which this many were sent (the last mark)

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str] | None,
        uri: str | None,
        experiment: str | None,
        binds: Mapping[str, tuple[str, str | None]] = {},  # noqa: B006 - read only
    ) -> SpoolFile:
        """A new spool file in ``directory`` with its header and the binds known so far."""
        folder = spool_dir(directory)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = folder / f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        lock = os_lock(lock_path(path))
        _take(lock, block=True)  # a new name: no one else holds it (where locks work at all)
        try:
            handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open while the spool lives
        except OSError:
            _drop(lock, remove=True)
            raise
        spool = cls(path, handle, lock)
        header = {"spool": SPOOL_VERSION, "uri": clean_uri(uri), "experiment": experiment, "pid": os.getpid()}
        spool._write([header])
        spool.bind(binds)
        return spool

    @classmethod
    def open_existing(cls, path: str | os.PathLike[str]) -> SpoolFile | None:
        """Open ``path`` to replay it, or None when another process holds it (a running study).

        None too when the file is gone once the lock is had: its owner sent it all and removed it."""
        lock = os_lock(lock_path(path))
        if not _take(lock, block=False):
            return None
        if not os.path.isfile(path):
            _drop(lock, remove=True)
            return None
        try:
            handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open while the spool lives
        except OSError:
            _drop(lock)
            raise
        spool = cls(Path(path), handle, lock)
        contents = read_spool(path)
        spool.ops, spool.sent = len(contents.ops), contents.sent
        return spool

    def append(self, ops: Iterable[Mapping[str, Any]]) -> None:
        """Add operations to send later."""
        ops = list(ops)
        self._write(ops)
        self.ops += len(ops)

    def bind(self, binds: Mapping[str, tuple[str, str | None]]) -> None:
        """Record that runs exist: ``{uid: (run_id, experiment_id)}``."""
        self._write([{"bind": uid, "run_id": rid, "experiment_id": eid} for uid, (rid, eid) in binds.items()])

    def mark(self, sent: int) -> None:
        """Record that the first ``sent`` operations have been sent."""
        self.sent = sent
        self._write([{"mark": sent}])

    @property
    def pending(self) -> int:
        return self.ops - self.sent

    def close(self, *, remove: bool = False) -> None:
        """Release the file; ``remove`` deletes it and its lock file (everything was sent)."""
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink()
        if not self._handle.closed:
            self._handle.close()
        _drop(self._lock_file, remove=remove)  # after the data is gone: a waiter finds no file

    def _write(self, entries: Iterable[Mapping[str, Any]]) -> None:
        text = "".join(json.dumps(e, separators=(",", ":"), default=str) + "\n" for e in entries)
        if text:
            self._handle.write(text)
            self._handle.flush()
            os.fsync(self._handle.fileno())


def _take(lock: filelock.BaseFileLock, *, block: bool) -> bool:
    """Acquire ``lock`` (waiting for it when ``block``); False when another holds it, or where the file
    system has no locks (as ``flock`` failing was). An OSError when the lock file cannot be opened."""
    try:
        lock.acquire(timeout=-1 if block else 0)
    except filelock.Timeout:
        return False
    except NotImplementedError:  # older filelock releases where flock is missing
        return False
    except OSError as exc:
        if exc.errno in _NO_LOCKS:
            return False
        raise
    return True


def _drop(lock: filelock.BaseFileLock, *, remove: bool = False) -> None:
    """Release ``lock``; ``remove`` deletes its file first, while it is still held."""
    if not lock.is_locked:
        return
    if remove:
        with contextlib.suppress(OSError):
            Path(lock.lock_file).unlink()
    lock.release(force=True)


def stage(source: str | os.PathLike[str], directory: str | os.PathLike[str] | None) -> Path:
    """Copy a file or folder into the spool's staging area, so the caller may delete the original."""
    src = Path(source)
    target = spool_dir(directory) / "staged" / uuid.uuid4().hex / src.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, target)
    else:
        shutil.copy2(src, target)
    return target


def staged_dir(directory: str | os.PathLike[str] | None) -> Path:
    """A fresh empty folder in the staging area (for a model to be saved into)."""
    target = spool_dir(directory) / "staged" / uuid.uuid4().hex
    target.mkdir(parents=True)
    return target


def unstage(path: str | os.PathLike[str], directory: str | os.PathLike[str] | None) -> None:
    """Delete a staged copy once it was sent (only paths inside the staging area)."""
    staged = spool_dir(directory) / "staged"
    target = Path(path).resolve()
    if staged in target.parents:
        top = staged / target.relative_to(staged).parts[0]
        shutil.rmtree(top, ignore_errors=True)

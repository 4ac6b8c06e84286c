"""The tracking spool: the part of a study MLflow has not taken yet, kept in a local JSON file.

While the store does not answer, the tracker keeps the study's :class:`~tuner.tracking.state.StudyRun`
(what MLflow should hold, with how much of it was sent) in ``<spool dir>/<study uid>-<id>.json``,
rewritten whole (a temporary file renamed over it, so never torn) as the study goes on; the file goes once
everything is sent. The trials' own records are also in the Optuna storage, which a resumed study
projects again (``restore_trials``). A process that owns a spool file holds an exclusive OS lock
(:func:`os_lock`: ``flock`` on POSIX) on its sibling ``<name>.lock``, so ``regtuner sync`` skips files a
running study still writes; the lock dies with its process, even one killed with SIGKILL. The URI in the
header has no user name, password or query: credentials come from MLflow's environment variables, never
from a file. Staged files (artifacts, models) wait in ``<spool dir>/staged/``.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import json
import os
import shutil
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from tuner.tracking.state import StudyRun

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

SPOOL_VERSION = 2
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
    """The lock file of spool file ``path``: ``<path>.lock`` beside it (not a ``*.json`` name)."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def spool_files(directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Spool files in ``directory`` (see :func:`spool_dir`), oldest first."""
    folder = spool_dir(directory)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.json"), key=lambda p: (p.stat().st_mtime, p.name))


@dataclass
class SpoolContents:
    """What a spool file holds: its header (format, tracking URI) and the study's state."""

    header: dict[str, Any]
    study: StudyRun


def read_spool(path: str | os.PathLike[str]) -> SpoolContents:
    """Parse a spool file (written whole, then renamed into place: never torn)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        header = data["header"]
        if header.get("spool") != SPOOL_VERSION:
            raise ValueError(f"version {header.get('spool')!r}")
        return SpoolContents(header, StudyRun.from_json(data["study"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{path} is not a regtuner spool file (format {SPOOL_VERSION}): {exc}; move the file away."
        ) from None


class SpoolFile:
    """A spool file this process owns (locked): the unsent state of one study, rewritten as it changes."""

    def __init__(self, path: Path, lock: filelock.BaseFileLock, uri: str | None = None) -> None:
        self.path, self._lock, self.uri = path, lock, clean_uri(uri)

    @classmethod
    def create(cls, directory: str | os.PathLike[str] | None, uri: str | None, uid: str) -> SpoolFile:
        """A new spool file for study ``uid`` (an OSError when the folder cannot be written)."""
        folder = spool_dir(directory)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uid}-{uuid.uuid4().hex[:8]}.json"
        lock = os_lock(lock_path(path))
        _take(lock, block=True)
        return cls(path, lock, uri)

    @classmethod
    def open_existing(cls, path: str | os.PathLike[str]) -> SpoolFile | None:
        """Own an existing spool file to send it; None when a live process owns it (or it is gone)."""
        path = Path(path)
        lock = os_lock(lock_path(path))
        try:
            if not _take(lock, block=False):
                return None
        except OSError:
            return None
        if not path.exists():  # sent and removed by its owner while we waited
            _drop(lock, remove=True)
            return None
        return cls(path, lock, read_spool(path).header.get("uri"))

    def write(self, study: StudyRun) -> None:
        """Replace the file's contents with ``study`` (a temporary file renamed over it)."""
        text = json.dumps(
            {"header": {"spool": SPOOL_VERSION, "uri": self.uri}, "study": study.to_json()},
            separators=(",", ":"),
            default=str,
        )
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def close(self, *, remove: bool = False) -> None:
        """Release the file; ``remove`` deletes it (everything was sent)."""
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink()
        _drop(self._lock, remove=remove)  # after the data is gone: a waiter finds no file


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

"""The study storage when several processes share it, and when it cannot be written.

:func:`create_tables`: Optuna builds its schema on first use with check-then-create steps (tables,
the version row, the alembic stamp), so two processes opening a new SQLite file at once (two studies
started together) fail with "table ... already exists". The first initialization is serialized with
an exclusive OS lock on ``<file>.lock`` (``filelock.FileLock``: ``flock`` on POSIX; the retries below
cover another process that takes no lock); a file already initialized is left alone, unlocked.

:func:`storage_failure`: a write that fails mid-study (disk full, file made read-only, database
gone) stops the study with a :class:`~tuner.errors.StudyAborted` that says so, instead of Optuna's
"exception raised during the commit". SQLite writes are transactions: what was committed, the
finished trials, stays; the trial being recorded loses its record (resume shows it failed).
"""

from __future__ import annotations

import contextlib
import inspect
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock

from tuner.errors import StudyAborted

__all__ = ["create_tables", "storage_failure"]

_ATTEMPTS = 5
#: an OS lock only (see tuner.tracking.spool.os_lock): newer filelock releases would otherwise fall back to
#: a marker file where flock is missing, which a killed process leaves behind
_NO_SOFT_FALLBACK = (
    {"fallback_to_soft": False}
    if "fallback_to_soft" in inspect.signature(filelock.FileLock.__init__).parameters
    else {}
)


def _initialized(path: Path) -> bool:
    try:
        con = sqlite3.connect(path, timeout=30)
        try:
            return con.execute("SELECT count(*) FROM alembic_version").fetchone()[0] > 0
        finally:
            con.close()
    except sqlite3.Error:
        return False


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # each call its own lock object (own descriptor), so threads of one process exclude each other too
    with filelock.FileLock(lock_path, thread_local=False, **_NO_SOFT_FALLBACK):
        yield


def create_tables(path: Path) -> None:
    """Make ``path`` a ready Optuna storage (a no-op when it is one already)."""
    if _initialized(path):
        return
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    with _locked(path.with_name(path.name + ".lock")):
        for attempt in range(_ATTEMPTS):
            if _initialized(path):
                return
            try:
                storage = optuna.storages.RDBStorage(
                    f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 30}}
                )
                storage.engine.dispose()
                return
            except SQLAlchemyError as exc:  # another process (without the lock) was creating them too
                if attempt == _ATTEMPTS - 1:
                    orig = getattr(exc, "orig", None)  # the sqlite3 error (disk full, read-only...)
                    raise (orig if isinstance(orig, sqlite3.Error) else exc) from None
                time.sleep(0.2 * (attempt + 1))


def _root_cause(exc: BaseException) -> BaseException:
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError: the driver's own error
        nxt = orig if isinstance(orig, BaseException) else exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def _display(storage: str) -> str:
    """A SQLite URL as its file path; another database URL without its password."""
    if storage.startswith("sqlite:///"):
        return storage[len("sqlite:///") :]
    from sqlalchemy.engine import make_url

    try:
        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for the message
        return storage.split("://", 1)[0] + "://..."


def storage_failure(exc: BaseException, storage: str) -> StudyAborted | None:
    """The error to raise when ``exc`` is a failed write to the study storage (None: it is not)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    if not isinstance(exc, (optuna.exceptions.StorageInternalError, SQLAlchemyError)):
        return None
    cause: Any = _root_cause(exc)
    where = _display(storage)
    return StudyAborted(
        f"the study storage {where} could not be written ({type(cause).__name__}: {cause}), so the "
        "study stopped. The trials finished before are kept in it; the trial being recorded lost its "
        "record. Free disk space (or make the storage writable), then run again with resume=True."
    )

"""Replay spooled tracking operations into MLflow: what ``regtuner sync`` does."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.redact import redact_uri
from tuner.tracking.base import validate_tracking_uri
from tuner.tracking.sender import Sender
from tuner.tracking.spool import SpoolFile, read_spool, spool_dir, spool_files

__all__ = ["SyncOutcome", "sync"]


@dataclass(frozen=True)
class SyncOutcome:
    """What became of one spool file."""

    path: Path
    uri: str | None
    sent: int  # operations sent now
    remaining: int  # operations still spooled (the file is kept)
    dropped: int = 0  # operations MLflow refused for good (a deleted run, a changed param)
    in_use: bool = False  # a running study owns the file; it was left alone
    error: str | None = None  # why sending stopped

    @property
    def done(self) -> bool:
        return not self.in_use and self.remaining == 0

    def describe(self) -> str:
        where = redact_uri(self.uri)
        if self.in_use:
            return f"{self.path.name}: in use by a running study, skipped"
        if self.done:
            extra = f" ({self.dropped} refused by MLflow)" if self.dropped else ""
            return f"{self.path.name}: sent {self.sent} operations to {where}{extra}"
        head = f"{self.path.name}: sent {self.sent}, {self.remaining} still spooled"
        return f"{head}; {where} failed: {self.error}"


def sync(
    spool_directory: str | os.PathLike[str] | None = None, tracking_uri: str | None = None
) -> list[SyncOutcome]:
    """Send every spool file in ``spool_directory`` to its tracking store (or to ``tracking_uri``).

    Files are replayed oldest first, those that create a study run before those that only add trials
    to one (a Ray worker's), so parents exist before their children. Sent files are deleted."""
    uri = validate_tracking_uri(tracking_uri) if tracking_uri else None
    folder = spool_dir(spool_directory)
    paths = spool_files(folder)
    paths.sort(key=lambda p: not _creates_study(p))  # stable: keeps oldest-first within each group
    return [_sync_file(path, folder, uri) for path in paths]


def _creates_study(path: Path) -> bool:
    try:
        ops = read_spool(path).ops
    except (OSError, ValueError):
        return False
    return any(op["op"] == "create" and not op.get("parent") for op in ops)


def _sync_file(path: Path, folder: Path, uri: str | None) -> SyncOutcome:
    spool = SpoolFile.open_existing(path)
    if spool is None:
        return SyncOutcome(path, uri, 0, 0, in_use=True)
    header = read_spool(path).header
    target = uri or header.get("uri")
    errors: list[str] = []

    def collect(event: dict[str, Any]) -> None:
        if event.get("event") in ("offline", "dropped") and event.get("message"):
            errors.append(event["message"])

    before = spool.sent
    sender = Sender(target, header.get("experiment"), folder, collect)
    try:
        done = sender.replay(spool)
    except Exception as exc:  # the client could not even be made (bad URI, MLflow missing)
        done = False
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        sender.locks.release()  # a study run this replay created or reopened
    if not done and sender.last_error:
        errors.append(sender.last_error)
    if not done and not errors:
        errors.append("the store did not answer")
    spool.close(remove=done)
    remaining = 0 if done else spool.pending
    error = None if done else errors[-1]
    return SyncOutcome(
        path, target, spool.sent - before - sender.dropped, remaining, sender.dropped, error=error
    )

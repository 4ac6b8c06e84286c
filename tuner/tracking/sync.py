"""Send spooled study states to MLflow: what ``regtuner sync`` does."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tuner.redact import redact_uri
from tuner.tracking.base import validate_tracking_uri
from tuner.tracking.projection import Offline, Projector
from tuner.tracking.spool import SpoolFile, read_spool, spool_dir, spool_files

__all__ = ["SyncOutcome", "sync"]


@dataclass(frozen=True)
class SyncOutcome:
    """What became of one spool file."""

    path: Path
    uri: str | None
    sent: int  # parts sent now (a study run, a trial run, the results, a file)
    remaining: bool  # something is still unsent (the file is kept)
    dropped: int = 0  # parts MLflow refused for good (a deleted run, a changed param)
    in_use: bool = False  # a running study owns the file; it was left alone
    error: str | None = None  # why sending stopped

    @property
    def done(self) -> bool:
        return not self.in_use and not self.remaining

    def describe(self) -> str:
        where = redact_uri(self.uri)
        if self.in_use:
            return f"{self.path.name}: in use by a running study, skipped"
        if self.done:
            extra = f" ({self.dropped} refused by MLflow)" if self.dropped else ""
            return f"{self.path.name}: sent {self.sent} parts to {where}{extra}"
        head = f"{self.path.name}: sent {self.sent} parts, the rest is still spooled"
        return f"{head}; {where} failed: {self.error}"


def sync(
    spool_directory: str | os.PathLike[str] | None = None, tracking_uri: str | None = None
) -> list[SyncOutcome]:
    """Send every spool file in ``spool_directory`` to its tracking store (or to ``tracking_uri``),
    oldest first; sent files are deleted."""
    uri = validate_tracking_uri(tracking_uri) if tracking_uri else None
    return [_sync_file(path, uri) for path in spool_files(spool_dir(spool_directory))]


def _sync_file(path: Path, uri: str | None) -> SyncOutcome:
    spool = SpoolFile.open_existing(path)
    if spool is None:
        return SyncOutcome(path, uri, 0, True, in_use=True)
    target = uri or spool.uri
    study = read_spool(path).study
    study.lookup = True  # a create whose answer got lost may have made the run: look first
    for trial in study.trials.values():
        trial.lookup = trial.lookup or trial.run_id is None
        trial.released = len(trial.rows)
    if uri and uri != spool.uri:  # another store: nothing of it is there yet
        study.run_id, study.experiment_id, study.opened = None, None, study.name is None
        for trial in study.trials.values():
            trial.run_id, trial.sent, trial.params_sent = None, 0, False
    projector = Projector(target, once=True)
    error = None
    try:
        projector.project(study)
    except Offline as exc:
        error = str(exc)
    remaining = error is not None or study.pending
    if remaining:
        spool.write(study)
    spool.close(remove=not remaining)
    error = error or ("a part could not be sent" if remaining else None)
    return SyncOutcome(path, target, projector.sent, remaining, projector.dropped, error=error)

"""Put a study's MLflow runs right after a process died: what ``resume=True`` needs.

Two operations (see :mod:`tuner.tracking.spool`) are applied here, by the
:class:`~tuner.tracking.sender.Sender`:

- ``reopen`` (a resumed study): waits until the dead process's tracking worker has finished draining
  (it holds the study's lock file), marks the study run RUNNING again, lists its trial runs, and closes
  those still RUNNING as KILLED (tag ``state`` failed, ``error`` "interrupted").
- ``ensure`` (a trial whose process died, rebuilt from the Optuna storage): the
  trial ends as exactly one run holding its record. A missing run is created; one that is not finished
  gets the epochs it lacks (each metric after the last step it has), its params, tags and end status; one
  that already holds the outcome is left alone.

The lock: the tracking worker that creates or reopens a study run holds an exclusive OS lock
(:func:`~tuner.tracking.spool.os_lock`: ``flock`` on POSIX) on ``<spool dir>/locks/<study uid>.lock``
until it ends; the lock dies with the worker's process. A study process killed with SIGKILL leaves its
worker sending what it had; the resumed study's ``reopen`` waits for that (at most
``REGTUNER_TRACKING_LOCK_SECONDS``, 60 s) so both never write the same runs at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import filelock

from tuner.records import INTERRUPTED
from tuner.tracking.ops import PermanentError
from tuner.tracking.spool import os_lock, spool_dir

__all__ = ["KnownRun", "StudyLocks", "Reconciler", "LOCK_SECONDS"]

LOCK_SECONDS = float(os.environ.get("REGTUNER_TRACKING_LOCK_SECONDS", "60"))
_PAGE = 500
_SAFE_UID = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


@dataclass
class KnownRun:
    """What a trial run in the store already holds."""

    run_id: str
    status: str
    tags: dict[str, str]
    params: set[str]
    steps: dict[str, int]  # metric key -> last step logged

    @classmethod
    def of(cls, run: Any) -> KnownRun:
        steps = {m.key: int(m.step) for m in run.data.to_proto().metrics}
        return cls(run.info.run_id, run.info.status, dict(run.data.tags), set(run.data.params), steps)


class StudyLocks:
    """The study lock files this sender holds (see the module doc)."""

    def __init__(self) -> None:
        self._held: dict[str, filelock.BaseFileLock] = {}

    def hold(self, directory: str | os.PathLike[str] | None, uid: str, wait: float) -> bool:
        """Take the lock of study ``uid``, waiting up to ``wait`` seconds; False when another held it."""
        if uid in self._held or not _SAFE_UID.match(uid):
            return True
        try:
            folder = spool_dir(directory) / "locks"
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return True  # no place for a lock: go on unlocked
        lock = os_lock(folder / f"{uid}.lock")
        try:  # one try at least; a negative or NaN wait is no wait
            lock.acquire(timeout=wait if wait > 0 else 0, poll_interval=0.2)
        except filelock.Timeout:
            return False
        except (OSError, NotImplementedError):
            return True  # no lock to be had here (the file cannot be made, no flock): go on unlocked
        self._held[uid] = lock
        return True

    def release(self) -> None:
        for lock in self._held.values():
            lock.release(force=True)
        self._held.clear()


class Reconciler:
    """The ``reopen`` and ``ensure`` operations; mixed into :class:`~tuner.tracking.sender.Sender`,
    whose client, run ids and helpers they use."""

    client: Any
    ids: dict[str, tuple[str, str | None]]
    experiment: str | None
    spool_directory: str | os.PathLike[str] | None
    emit: Callable[[dict[str, Any]], None]
    locks: StudyLocks
    children: dict[str, dict[str, KnownRun]]  # study uid -> {trial uid: run}, listed by reopen

    # provided by the Sender
    def _run_id(self, uid: str, experiment_id: str | None = None) -> str: ...
    def _experiment_id(self, name: str) -> str: ...
    def _find(self, uid: str, experiment_id: str) -> Any: ...
    def _create(self, op: dict[str, Any], *, replay: bool) -> None: ...
    def _bind(self, uid: str, run_id: str, experiment_id: str | None) -> None: ...
    def _log_batch(
        self, run_id: str, metrics: Iterable[Any], params: Mapping[str, str], tags: Mapping[str, str]
    ) -> None: ...

    def _reopen(self, op: dict[str, Any], *, replay: bool) -> None:
        """Mark the study run RUNNING again and close the trial runs a dead process left RUNNING.

        A study run that never reached the store (its process died offline) is created from ``op["create"]``.
        """
        uid = op["run"]
        if not self.locks.hold(self.spool_directory, uid, LOCK_SECONDS):
            message = f"another tracking worker still writes study run {uid};"
            message += f" went on after {LOCK_SECONDS:g} s"
            self.emit({"event": "note", "message": message})
        client = self.client
        name = op.get("experiment") or self.experiment
        try:
            run_id = self._run_id(uid, self._experiment_id(name) if name else None)
        except PermanentError:
            if not op.get("create"):
                raise
            self._create(op["create"], replay=replay)
            self.children[uid] = {}  # a study run made just now has no trial runs
            self._log_batch(self.ids[uid][0], (), op.get("params", {}), {})
            if op.get("space"):
                client.log_text(self.ids[uid][0], op["space"], "space.yaml")
            return
        client.update_run(run_id, status="RUNNING")
        if op.get("tags"):
            self._log_batch(run_id, (), {}, op["tags"])
        experiment_id = self.ids[uid][1] or client.get_run(run_id).info.experiment_id
        children: dict[str, KnownRun] = {}
        for run in self._search(experiment_id, f"tags.mlflow.parentRunId = '{run_id}'"):
            known = KnownRun.of(run)
            if known.status == "RUNNING":  # its process died mid-trial
                tags = {"state": "failed", "error": INTERRUPTED}
                self._log_batch(known.run_id, (), {}, tags)
                client.set_terminated(known.run_id, "KILLED")
                known.status = "KILLED"
                known.tags.update(tags)
            if "regtuner.uid" in known.tags:
                children[known.tags["regtuner.uid"]] = known
        self.children[uid] = children

    def _ensure(self, op: dict[str, Any], *, replay: bool) -> None:
        """Trial ``op["run"]`` ends as one run with the record the operation carries."""
        uid, status = op["run"], op["status"]
        experiment_id = self._experiment_id(op.get("experiment") or self.experiment or "Default")
        known = self._known(uid, op.get("parent"), experiment_id)
        tags: dict[str, str] = dict(op.get("tags", {}))
        client = self.client
        if known is None:
            self.ids.pop(uid, None)  # a deleted run: make a new one
            self._create({**op, "op": "create"}, replay=False)
            run_id = self.ids[uid][0]
            self._log_batch(run_id, op.get("metrics", ()), op.get("params", {}), {})
            known = KnownRun(run_id, "RUNNING", tags, set(op.get("params", {})), {})
        else:
            if known.status != "RUNNING" and known.status == status:
                if status == "KILLED" or known.tags.get("state") == tags.get("state"):
                    self._bind_known(uid, known, experiment_id)
                    return  # the run holds the outcome already
            metrics = [row for row in op.get("metrics", ()) if int(row[3]) > known.steps.get(row[0], -1)]
            params = {k: v for k, v in op.get("params", {}).items() if k not in known.params}
            self._log_batch(known.run_id, metrics, params, tags)
            if "error" in known.tags and "error" not in tags:  # set when the run was closed as interrupted
                _delete_tag(client, known.run_id, "error")
        if op.get("text"):
            client.log_text(known.run_id, op["text"], "traceback.txt")
        client.set_terminated(known.run_id, status, end_time=op.get("time"))
        known.status, known.tags = status, tags
        for row in op.get("metrics", ()):
            known.steps[row[0]] = max(known.steps.get(row[0], -1), int(row[3]))
        self._bind_known(uid, known, experiment_id)

    def _known(self, uid: str, parent: str | None, experiment_id: str) -> KnownRun | None:
        listed = self.children.get(parent) if parent else None
        if listed is not None and uid in listed:
            return listed[uid]
        if uid in self.ids:
            run = self.client.get_run(self.ids[uid][0])
            return KnownRun.of(run) if run.info.lifecycle_stage == "active" else None
        if listed is not None:
            return None  # the study run's trial runs were listed: this one is missing
        run = self._find(uid, experiment_id)
        return KnownRun.of(run) if run is not None else None

    def _bind_known(self, uid: str, known: KnownRun, experiment_id: str) -> None:
        parent = uid.rsplit(".", 1)[0]
        if parent in self.children:
            self.children[parent][uid] = known
        if self.ids.get(uid, (None,))[0] != known.run_id:
            self._bind(uid, known.run_id, experiment_id)

    def _search(self, experiment_id: str, query: str) -> Iterator[Any]:
        token = None
        while True:
            page = self.client.search_runs(
                [experiment_id], filter_string=query, max_results=_PAGE, page_token=token
            )
            yield from page
            token = page.token
            if not token:
                return


def _delete_tag(client: Any, run_id: str, key: str) -> None:
    try:
        client.delete_tag(run_id, key)
    except Exception as exc:
        if getattr(exc, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":  # gone already: what we wanted
            raise

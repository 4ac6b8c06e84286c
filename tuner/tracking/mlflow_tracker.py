"""MLflow tracker: one experiment per study, a parent run per study, a child run per trial.

The study's driver is the only writer: trials that run elsewhere (Ray workers) report their epochs and
records to it. The tracker keeps what MLflow should hold (:class:`~tuner.tracking.state.StudyRun`) and
ships its changes to the tracking worker, a child process that brings the store up to it
(:mod:`tuner.tracking.worker`, :class:`~tuner.tracking.projection.Projector`). Public calls only change
that state: they never wait for MLflow and never raise because the store failed. The first
failure warns (:class:`~tuner.tracking.base.TrackingWarning`), later ones are counted in
``tracker.failures``; while the store is away the state is kept in the spool
(:mod:`tuner.tracking.spool`) and sent when the store is back, at the end of the study, or by
``regtuner sync``. A trial's records are in the Optuna storage as well: a resumed study projects them
again (:meth:`restore_trials`), so a killed process loses no run.

Per-epoch metrics are sent every ``FLUSH_METRICS`` values or ``FLUSH_SECONDS``, and at the trial's end,
so a short trial costs three requests: create the run, one batch, close it. Runs nest by the explicit
parent run id (``mlflow.parentRunId``), never through MLflow's fluent active-run stack, and are named by a
UID (tag ``regtuner.uid``), so a resumed study finds its runs. A pickled tracker (Ray Client, whose Tune
driver runs on the cluster's head) carries the resolved URI and the study run's id and UID.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tuner.errors import ConfigError
from tuner.records import TrialRecord
from tuner.redact import redact_uri
from tuner.tracking.base import (
    StudyInfo,
    StudySummary,
    Tracker,
    TrackingWarning,
    absolute_sqlite,
    failure_warning,
    log_unsent,
    params_to_strings,
    ui_url,
)
from tuner.tracking.model_logging import FLAVORS, save_model, warm_up
from tuner.tracking.spool import spool_dir, stage, staged_dir
from tuner.tracking.state import StudyRun, TrialRun, take_changes
from tuner.tracking.worker import Channel

__all__ = ["MlflowTracker"]

log = logging.getLogger("tuner")

FLUSH_METRICS = 500  # epoch metric values that trigger a send
FLUSH_SECONDS = 10.0  # or time since the trial's last send
WAIT_SECONDS = 60.0  # longest wait for the study run's id or the resolved URI
REMOTE_FLUSH_SECONDS = 60.0  # a pickled tracker (Ray Client's head) sends each trial before the next
CLOSE_SECONDS = float(os.environ.get("REGTUNER_TRACKING_CLOSE_SECONDS", "120"))
_STATUSES = ("FINISHED", "FAILED", "KILLED")


class MlflowTracker(Tracker):
    """Writes a study to MLflow. ``tracking_uri=None`` is MLflow's default store.

    ``parent_run_id`` or ``study_uid`` (its ``regtuner.uid`` tag) attach to an existing study run (a
    resumed study): trials nest under it, ``start_study`` reopens it and closes the trial runs a dead
    process left RUNNING. ``spool_directory`` is where unsent state waits (default
    ``$REGTUNER_SPOOL_DIR`` or ``./.regtuner/spool``).
    """

    def __init__(
        self,
        tracking_uri: str | None,
        experiment: str,
        *,
        parent_run_id: str | None = None,
        study_uid: str | None = None,
        spool_directory: str | os.PathLike[str] | None = None,
    ) -> None:
        env_uri = os.environ.get("MLFLOW_TRACKING_URI")
        # absolute: workers in other folders find the same file, and MLflow's store cache (by URI) cannot
        # hand this process the store of a folder it was in before
        self._uri = absolute_sqlite(tracking_uri or env_uri) if (tracking_uri or env_uri) else None
        self.experiment = experiment
        self._study = StudyRun(study_uid or uuid.uuid4().hex, experiment, run_id=parent_run_id)
        self._resuming = study_uid is not None or parent_run_id is not None
        self._spool_dir = str(spool_dir(spool_directory))
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        relay = _Relay(weakref.ref(self))
        self._channel = Channel(self._changed, self._uri, self._spool_dir, relay.warn, relay.lost)
        weakref.finalize(self, _close_quietly, self._channel)
        self._dirty: set[int] = set()
        self._fresh: set[int] = set()
        self._last_send: dict[int, float] = {}
        self._records: dict[int, TrialRecord] = {}  # ended trials, to ship again to a replaced worker
        self._warned, self._local_failures = False, 0
        self._warnings: list[str] = []

    @property
    def failures(self) -> int:  # type: ignore[override]
        """Tracking calls and sends that failed (the first one also warned)."""
        return self._local_failures + int(self._channel.report["failures"])

    # -- public state -------------------------------------------------------------------------------

    @property
    def run_id(self) -> str | None:
        """The study run's id; waits (at most a minute) for the worker to create it."""
        with self._changed:
            channel = self._channel
            if self._study.run_id is None and self._study.name is not None and channel.running:
                self._changed.wait_for(
                    lambda: channel.run_id or channel.offline or channel.done, WAIT_SECONDS
                )
            return self._study.run_id or self._channel.run_id

    @property
    def study_uid(self) -> str:
        """The study run's ``regtuner.uid`` tag: known at once, and enough to find the run on resume."""
        return self._study.uid

    @property
    def experiment_id(self) -> str | None:
        """The study's MLflow experiment id, once known."""
        return self._study.experiment_id or self._channel.experiment_id

    @property
    def tracking_uri(self) -> str | None:
        """The URI in use; None until the worker has resolved MLflow's default (sqlite made absolute)."""
        with self._changed:
            if self._channel.uri is None and self._channel.running:
                self._changed.wait_for(lambda: self._channel.ready, WAIT_SECONDS)
            return self._channel.uri

    @property
    def run_url(self) -> str | None:
        """Link to the study run in the MLflow UI, for HTTP tracking servers."""
        uri, run_id = self.tracking_uri or "", self.run_id
        if not uri.startswith(("http://", "https://")) or not (run_id and self.experiment_id):
            return None
        return ui_url(redact_uri(uri), self.experiment_id, run_id)

    @property
    def trial_runs(self) -> dict[int, str]:
        """Run ids of the trial runs created so far, by trial number."""
        with self._lock:
            return dict(self._channel.runs)

    @property
    def status(self) -> dict[str, Any]:
        """What the worker did: parts sent and dropped, and what waits in the spool (``spool``: its file)."""
        with self._lock:
            return dict(self._channel.report)

    def __getstate__(self) -> dict[str, Any]:
        # Ship the resolved URI and run ids to Ray; the worker, locks and trials stay here.
        return {
            "uri": self.tracking_uri,
            "experiment": self.experiment,
            "parent": self.run_id,
            "uid": self._study.uid,
            "experiment_id": self.experiment_id,
            "tags": self._study.tags,
            "spool_dir": self._spool_dir,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["uri"],
            state["experiment"],
            parent_run_id=state["parent"],
            spool_directory=state["spool_dir"],
        )
        self._study.uid, self._study.experiment_id = state["uid"], state["experiment_id"]
        self._study.tags, self._study.opened, self._resuming = state["tags"], True, False

    # -- the Tracker API ----------------------------------------------------------------------------

    def start_study(self, info: StudyInfo) -> None:
        with self._guard("start the study run"):
            self._study.start(info, resume=self._resuming)
            self._study.lookup = self._resuming
            self._wake(head=True)
            if info.framework:
                warm_up(info.framework)  # the best model is saved here at the end: import MLflow meanwhile

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        with self._guard("start a trial run"):
            self._study.trial(number).params = params_to_strings(params)
            self._last_send[number] = time.monotonic()
            self._wake(number)

    def epoch_logged(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        with self._guard("log an epoch"):
            trial = self._study.trial(number)
            trial.add_epoch(metrics, epoch)
            if trial.lookup:  # replayed: its record brings every epoch when it ends
                return
            due = time.monotonic() - self._last_send.get(number, 0.0) >= FLUSH_SECONDS
            if len(trial.rows) - trial.released >= FLUSH_METRICS or due:
                trial.released = len(trial.rows)
                self._last_send[number] = time.monotonic()
                self._wake(number)

    def trial_finished(self, record: TrialRecord) -> None:
        with self._guard("finish a trial run"):
            self._study.trial(record.number).finish(record)
            self._records[record.number] = record
            self._last_send.pop(record.number, None)
            head = bool(record.framework and "regtuner.framework" not in self._study.tags)
            if head:
                self._study.tags["regtuner.framework"] = record.framework
                self._study.extra_tags["regtuner.framework"] = record.framework
            self._wake(record.number, head=head)
        if self._study.name is None:  # a remote copy: nobody calls end_study, send each trial before the next
            self.flush(REMOTE_FLUSH_SECONDS)

    def restore_trials(self, records: Iterable[TrialRecord]) -> None:
        """Trials whose process died (a resumed study's, a dead Ray worker's): each ends as exactly one run,
        created if it is missing, completed if it is unfinished, left alone if it holds the outcome."""
        with self._guard("restore trial runs"):
            for record in records:
                self._restore(record)
            self._wake()

    def log_model(self, model: Any, framework: str, input_example: Any = None) -> None:
        """Log the study's best model with its framework's MLflow flavour, signature and input example."""
        if str(framework).lower() not in FLAVORS:
            log.info("no MLflow flavour for framework %r: the model is not logged", framework)
            return
        with self._guard("log the model"):
            folder = staged_dir(self._spool_dir) / "model"
            saved = save_model(model, framework, folder, input_example)
            tags = {"regtuner.framework": saved.framework, "regtuner.flavor": saved.flavor}
            self._study.files.append(
                {"kind": "model", "path": str(folder), "uid": uuid.uuid4().hex, "tags": tags}
            )
            self._wake()

    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a file or folder into the study run's artifacts (under ``artifact_path``)."""
        with self._guard("log an artifact"):
            staged = stage(local_path, self._spool_dir)  # a copy: the caller may delete its files at once
            self._study.files.append({"kind": "artifact", "path": str(staged), "dest": artifact_path})
            self._wake()

    def end_study(self, summary: StudySummary, status: str = "FINISHED") -> None:
        status = str(status).upper()
        if status not in _STATUSES:
            raise ConfigError(f"end_study status must be one of {_STATUSES}, got {status!r}.")
        with self._guard("end the study run"):
            for trial in self._study.trials.values():
                if trial.status is None:  # trials the study never finished
                    trial.kill()
                    self._dirty.add(trial.number)
            if self._study.name is None and self._study.run_id is None:
                return  # no study run to write to
            for artifact_path, local in summary.artifacts.items():
                name = os.path.basename(artifact_path.rstrip("/"))
                staged = stage(local, self._spool_dir)
                if staged.name != name:
                    staged = staged.rename(staged.with_name(name))
                dest = os.path.dirname(artifact_path.rstrip("/")) or None
                self._study.files.append({"kind": "artifact", "path": str(staged), "dest": dest})
            self._study.end(summary, status)
            self._wake(head=True)
        self.close()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the worker has sent (or spooled) everything reported so far; False on timeout."""
        done = self._channel.flush(timeout)
        with self._lock:
            self._warn_pending()
        return done

    def close(self, timeout: float | None = None) -> bool:
        """Make a last try (even while the store is away), stop the worker; False on timeout.

        What is still unsent then stays in the spool, for ``regtuner sync``."""
        running = self._channel.running
        finished = self._channel.close(CLOSE_SECONDS if timeout is None else timeout)
        with self._lock:
            self._warn_pending()
            report = dict(self._channel.report)
        if running:
            log_unsent(finished, bool(report["spooled"]), self.tracking_uri, report["spool"])
        return finished

    def _wake(self, *numbers: int, head: bool = False) -> None:
        """Ship the trials ``numbers`` (and those marked dirty), the study's head with ``head``."""
        self._dirty.update(numbers)
        change = take_changes(self._study, self._dirty, self._fresh, head)
        self._dirty.clear()
        self._fresh.clear()
        self._channel.ship(self._study, change)

    # -- internals ----------------------------------------------------------------------------------

    def _restore(self, record: TrialRecord) -> None:
        self._study.trials.pop(record.number, None)
        self._study.trial(record.number).finish(record, lookup=True)
        self._records[record.number] = record
        self._dirty.add(record.number)
        self._fresh.add(record.number)

    def _ship_again(self) -> None:
        """The worker died with what it had not sent: its replacement gets everything (lock held). Runs
        are looked up first, and get only what they lack."""
        study, opened = self._study, self._channel.run_id
        study.lookup = True
        if opened:  # the study run is open: no reopening (it would close the running trials' runs)
            study.run_id, study.reopen = opened, False
        for number, trial in list(study.trials.items()):
            if number in self._records:
                self._restore(self._records[number])
            else:  # still running: the epochs it reported live come again with its record
                study.trials[number] = TrialRun(number, trial.tags, trial.params, lookup=True)
                self._dirty.add(number)
                self._fresh.add(number)
        self._wake(head=True)

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Serialize the public calls; anything they raise is a tracking failure, not the study's."""
        with self._lock:
            self._warn_pending()
            try:
                yield
            except Exception as exc:
                self._local_failures += 1
                self._queue_warning(what, " ".join(f"{type(exc).__name__}: {exc}".split()), None, True)
                self._warn_pending()

    def _queue_warning(self, what: str, message: str, spool: str | None, local: bool) -> None:
        if self._warned:
            return
        self._warned = True
        self._warnings.append(failure_warning(self._uri, what, message, spool, self._spool_dir, local))

    def _warn_pending(self) -> None:
        while self._warnings:
            warnings.warn(self._warnings.pop(0), TrackingWarning, stacklevel=4)


class _Relay:
    """The worker's news for the tracker (held weakly: a dropped tracker closes its worker)."""

    def __init__(self, ref: weakref.ref[MlflowTracker]) -> None:
        self._ref = ref

    def warn(self, event: dict[str, Any]) -> None:
        tracker = self._ref()
        if tracker is not None:
            what, message = event["what"], event["message"]
            tracker._queue_warning(what, message, event.get("spool"), event.get("local", False))

    def lost(self) -> None:
        tracker = self._ref()
        if tracker is not None:
            try:
                tracker._ship_again()
            except Exception as exc:  # noqa: BLE001 - a tracking failure, not the study's
                tracker._local_failures += 1
                message = f"{type(exc).__name__}: {exc}"
                tracker._queue_warning("ship the study to a new worker", message, None, True)


def _close_quietly(channel: Channel) -> None:
    with contextlib.suppress(Exception):
        channel.close(0)

"""MLflow tracker: one experiment per study, a parent run per study, a child run per trial.

The tracker turns what the study reports into operations (see :mod:`tuner.tracking.spool`) and hands them to a
tracking worker (:mod:`tuner.tracking.worker`: a child process by default), which batches them, sends them
and spools what the store does not take. Public calls only queue work: they never wait for MLflow and
never raise because the store failed. The first failure warns (:class:`~tuner.tracking.base.TrackingWarning`),
later ones are counted in ``tracker.failures``; what could not be sent is replayed when the store is back,
at the end of the study, or by ``regtuner sync``.

Per-epoch metrics are buffered per trial and sent every ``FLUSH_METRICS`` values or ``FLUSH_SECONDS``, and
at the trial's end, so a short trial costs three requests: create the run, one batch, close it.

The study's driver is the only writer: trials that run elsewhere (Ray workers) report their epochs and
records to it. Runs nest by the explicit parent run id (``mlflow.parentRunId``), never through MLflow's
fluent active-run stack, and are named by a UID (tag ``regtuner.uid``), so a resumed study finds its runs.
A pickled tracker (Ray Client, whose Tune driver runs on the cluster's head) carries the resolved URI,
the study run's id and UID, nothing else.
"""

from __future__ import annotations

import contextlib
import itertools
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
from tuner.tracking.ops import (
    TrialBuffer,
    now,
    restore_op,
    study_ops,
    summary_ops,
    trial_create_op,
    trial_outcome,
)
from tuner.tracking.spool import spool_dir, stage, staged_dir
from tuner.tracking.worker import EventHandler, ThreadTransport, Transport, close_with, start_transport

__all__ = ["MlflowTracker"]

log = logging.getLogger("tuner")

FLUSH_METRICS = 500  # buffered epoch metrics that trigger a send
FLUSH_SECONDS = 10.0  # or time since the last send
WAIT_SECONDS = 60.0  # longest wait for the study run's id or the resolved URI
REMOTE_FLUSH_SECONDS = 60.0  # a pickled tracker (Ray Client's head) sends each trial before the next
CLOSE_SECONDS = float(os.environ.get("REGTUNER_TRACKING_CLOSE_SECONDS", "120"))
_STATUSES = ("FINISHED", "FAILED", "KILLED")


class MlflowTracker(Tracker):
    """Writes a study to MLflow. ``tracking_uri=None`` is MLflow's default store.

    ``parent_run_id`` or ``study_uid`` (its ``regtuner.uid`` tag) attach to an existing study run (a
    resumed study): trials nest under it, ``start_study`` reopens it and closes the trial runs a dead
    process left RUNNING.
    ``spool_directory`` is where unsent operations wait (default ``$REGTUNER_SPOOL_DIR`` or
    ``./.regtuner/spool``).
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
        self._uid = study_uid or uuid.uuid4().hex
        self._remote = False  # a copy unpickled in another process (Tune's driver on a Ray Client's head)
        self._resuming = study_uid is not None or parent_run_id is not None
        self._parent_id = parent_run_id
        self._experiment_id: str | None = None
        self._info: StudyInfo | None = None
        self._framework_tagged = False
        self._spool_dir = str(spool_dir(spool_directory))
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._trials: dict[int, TrialBuffer] = {}
        self._runs: dict[str, str] = {}  # uid -> run id, as the worker reports them
        self._transport: Transport | None = None
        self._flush_ids = itertools.count(1)
        self._flushed = self._flush_issued = 0
        self._done = False
        self._ready = False
        self._offline = False
        self._warned = False
        self._warnings: list[str] = []
        self.failures = 0
        self.status: dict[str, Any] = {}  # the worker's last report: sent, spooled, spool, dropped
        if parent_run_id is not None:
            self._runs[self._uid] = parent_run_id

    # -- public state -------------------------------------------------------------------------------

    @property
    def run_id(self) -> str | None:
        """The study run's id; waits (at most a minute) for the worker to create it."""
        with self._changed:
            if self._parent_id is None and self._info is not None and self._transport is not None:
                self._changed.wait_for(lambda: self._parent_id is not None or self._offline, WAIT_SECONDS)
            return self._parent_id

    @property
    def study_uid(self) -> str:
        """The study run's ``regtuner.uid`` tag: known at once, and enough to find the run on resume."""
        return self._uid

    @property
    def experiment_id(self) -> str | None:
        """The study's MLflow experiment id, once known."""
        return self._experiment_id

    @property
    def tracking_uri(self) -> str | None:
        """The URI in use; None until the worker has resolved MLflow's default (sqlite made absolute)."""
        with self._changed:
            if self._uri is None and self._transport is not None:
                self._changed.wait_for(lambda: self._ready, WAIT_SECONDS)
            return self._uri

    @property
    def run_url(self) -> str | None:
        """Link to the study run in the MLflow UI, for HTTP tracking servers."""
        uri, run_id = self.tracking_uri or "", self.run_id
        if not uri.startswith(("http://", "https://")) or not (run_id and self._experiment_id):
            return None
        return ui_url(redact_uri(uri), self._experiment_id, run_id)

    @property
    def trial_runs(self) -> dict[int, str]:
        """Run ids of the trial runs created so far, by trial number."""
        prefix = f"{self._uid}."
        return {int(k[len(prefix) :]): v for k, v in self._runs.items() if k.startswith(prefix)}

    def __getstate__(self) -> dict[str, Any]:
        # Ship the resolved URI and run ids to workers; the transport, locks and buffers stay here.
        return {
            "uri": self.tracking_uri,
            "experiment": self.experiment,
            "parent": self.run_id,
            "uid": self._uid,
            "experiment_id": self._experiment_id,
            "info": self._info,
            "spool_dir": self._spool_dir,
            "framework_tagged": self._framework_tagged,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["uri"],
            state["experiment"],
            parent_run_id=state["parent"],
            spool_directory=state["spool_dir"],
        )
        self._uid, self._resuming, self._remote = state["uid"], False, True
        self._runs = {self._uid: state["parent"]} if state["parent"] else {}
        self._experiment_id = state["experiment_id"]
        self._info = state["info"]
        self._framework_tagged = state["framework_tagged"]

    # -- the Tracker API ----------------------------------------------------------------------------

    def start_study(self, info: StudyInfo) -> None:
        with self._guard("start the study run"):
            self._info = info
            self._framework_tagged = self._framework_tagged or bool(info.framework)
            for op in study_ops(self._uid, info, self.experiment, resume=self._resuming):
                self._put(op)
            if info.framework:
                warm_up(info.framework)  # the best model is saved here at the end: import MLflow meanwhile

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        with self._guard("start a trial run"):
            trial = self._trial(number)
            trial.params = params_to_strings(params)

    def epoch_logged(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        with self._guard("log an epoch"):
            trial = self._trial(number)
            trial.add(metrics, epoch)
            trial.epochs_sent = max(trial.epochs_sent, epoch + 1)
            due = time.monotonic() - trial.last_flush >= FLUSH_SECONDS
            if len(trial.rows) >= FLUSH_METRICS or due:
                self._send_trial(number, trial)

    def trial_finished(self, record: TrialRecord) -> None:
        with self._guard("finish a trial run"):
            trial = self._trial(record.number)
            if not trial.params:
                trial.params = params_to_strings(record.params)
            for step in range(trial.epochs_sent, len(record.epochs)):  # epochs not reported live
                trial.add(record.epochs[step], step)
            trial.epochs_sent = len(record.epochs)
            finals, tags = trial_outcome(record)
            trial.add(finals, max(len(record.epochs) - 1, 0))
            uid = self._send_trial(record.number, trial, tags)
            self._trials.pop(record.number, None)
            if record.traceback:
                self._put({"op": "text", "run": uid, "text": record.traceback, "path": "traceback.txt"})
            status = "FAILED" if record.state == "failed" else "FINISHED"
            self._put({"op": "end", "run": uid, "status": status, "time": now()})
            if record.framework and not self._framework_tagged:
                self._framework_tagged = True
                self._put({"op": "log", "run": self._uid, "tags": {"regtuner.framework": record.framework}})
        if self._remote:  # nobody calls end_study on this copy: each trial is sent before the next
            self.flush(REMOTE_FLUSH_SECONDS)

    def restore_trials(self, records: Iterable[TrialRecord]) -> None:
        """Trials whose process died (a resumed study's, a dead Ray worker's): each ends as exactly one run,
        created if it is missing, completed if it is unfinished, left alone if it holds the outcome."""
        with self._guard("restore trial runs"):
            study_name = self._info.study_name if self._info is not None else None
            for record in records:
                self._trials.pop(record.number, None)
                self._put(restore_op(self._uid, record, self._experiment_name(), study_name))

    def log_model(self, model: Any, framework: str, input_example: Any = None) -> None:
        """Log the study's best model with its framework's MLflow flavour, signature and input example."""

        if str(framework).lower() not in FLAVORS:
            log.info("no MLflow flavour for framework %r: the model is not logged", framework)
            return
        with self._guard("log the model"):
            folder = staged_dir(self._spool_dir) / "model"
            saved = save_model(model, framework, folder, input_example)
            tags = {"regtuner.framework": saved.framework, "regtuner.flavor": saved.flavor}
            self._put({"op": "model", "run": self._uid, "path": str(folder), "name": "model",
                       "uid": uuid.uuid4().hex, "tags": tags})  # fmt: skip

    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a file or folder into the study run's artifacts (under ``artifact_path``)."""
        with self._guard("log an artifact"):
            staged = stage(local_path, self._spool_dir)
            self._put({"op": "artifact", "run": self._uid, "path": str(staged), "dest": artifact_path})

    def end_study(self, summary: StudySummary, status: str = "FINISHED") -> None:
        status = str(status).upper()
        if status not in _STATUSES:
            raise ConfigError(f"end_study status must be one of {_STATUSES}, got {status!r}.")
        with self._guard("end the study run"):
            for number, trial in sorted(self._trials.items()):  # trials the study never finished
                uid = self._send_trial(number, trial, {"state": "killed"})
                self._put({"op": "end", "run": uid, "status": "KILLED", "time": now()})
            self._trials.clear()
            if self._info is None and self._parent_id is None:
                return  # no study run to write to
            for op in summary_ops(self._uid, summary, self._spool_dir):
                self._put(op)
            self._put({"op": "end", "run": self._uid, "status": status, "time": now()})
        self.close()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the worker has sent or spooled everything queued so far; False on timeout."""
        with self._changed:
            if self._transport is None:
                self._warn_pending()
                return True
            number = self._flush_issued = next(self._flush_ids)
            self._transport.put({"op": "flush", "id": number})
            ok = self._changed.wait_for(lambda: self._flushed >= number or self._done, timeout)
            self._warn_pending()
            return ok

    def close(self, timeout: float | None = None) -> bool:
        """Finish sending (a last try for anything spooled) and stop the worker; False on timeout.

        What is still unsent then stays in the spool, for ``regtuner sync``."""
        with self._changed:
            transport, self._transport = self._transport, None
        if transport is None:
            return True
        finished = transport.close(CLOSE_SECONDS if timeout is None else timeout)
        with self._changed:
            self._warn_pending()
            spooled, path = self.status.get("spooled", 0), self.status.get("spool")
        log_unsent(finished, spooled, self._uri, path)
        return finished

    # -- internals ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Serialize the public calls; anything they raise is a tracking failure, not the study's."""
        with self._lock:
            self._warn_pending()
            try:
                yield
            except Exception as exc:
                self.failures += 1
                self._queue_warning(what, " ".join(f"{type(exc).__name__}: {exc}".split()), local=True)
                self._warn_pending()

    def _trial(self, number: int) -> TrialBuffer:
        trial = self._trials.get(number)
        if trial is None:
            trial = self._trials[number] = TrialBuffer()
            study_name = self._info.study_name if self._info is not None else None
            self._put(trial_create_op(self._uid, number, self._experiment_name(), study_name))
        return trial

    def _experiment_name(self) -> str:
        return (self._info.experiment if self._info is not None else None) or self.experiment

    def _send_trial(self, number: int, trial: TrialBuffer, tags: Mapping[str, str] | None = None) -> str:
        uid = f"{self._uid}.{number}"
        op = trial.take(uid, tags)
        if op is not None:
            self._put(op)
        return uid

    def _put(self, op: dict[str, Any]) -> None:
        with self._lock:
            if self._transport is None:
                self._start_transport()
            assert self._transport is not None
            self._transport.put(op)

    def _start_transport(self, thread: bool = False) -> None:
        config = {"uri": self._uri, "experiment": self.experiment, "spool_dir": self._spool_dir}
        handler = EventHandler(weakref.ref(self))
        self._done = self._offline = False
        self._transport = ThreadTransport(config, handler) if thread else start_transport(config, handler)
        self._transport.put({"op": "connect"})
        for uid, run_id in self._runs.items():
            self._transport.put(
                {"op": "bind", "run": uid, "run_id": run_id, "experiment_id": self._experiment_id}
            )
        close_with(self, self._transport, CLOSE_SECONDS)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        with self._changed:
            if "failures" in event:
                self.failures = max(self.failures, int(event["failures"]))
            if kind == "run":
                self._runs[event["run"]] = event["run_id"]
                if event["run"] == self._uid:
                    self._parent_id, self._experiment_id = event["run_id"], event.get("experiment_id")
            elif kind == "ready":
                self._ready = True
                self._uri = self._uri or event.get("uri")
            elif kind in ("offline", "dropped", "died"):
                self._offline = self._offline or kind != "dropped"
                self._queue_warning(event.get("what", "send"), event.get("message", ""), event.get("spool"))
                if kind == "died" and self._transport is not None:
                    dead = self._transport
                    self._flushed = self._flush_issued  # flushes sent to the dead worker will not answer
                    self._start_transport(thread=True)  # carry on in this process
                    for item in getattr(dead, "leftovers", list)():
                        if item.get("op") not in ("connect", "flush", "bind") and "spool_dir" not in item:
                            self._transport.put(item)
            elif kind == "online":
                self._offline = False
            elif kind == "flushed":
                self._flushed = max(self._flushed, int(event["id"]))
                self.status = event
            elif kind == "done":
                self._done, self.status = True, event
            elif kind == "note":
                log.info("MLflow tracking: %s", event.get("message"))
            self._changed.notify_all()

    def _queue_warning(self, what: str, message: str, spool: str | None = None, local: bool = False) -> None:
        if self._warned:
            return
        self._warned = True
        self._warnings.append(failure_warning(self._uri, what, message, spool, self._spool_dir, local))

    def _warn_pending(self) -> None:
        while self._warnings:
            warnings.warn(self._warnings.pop(0), TrackingWarning, stacklevel=4)

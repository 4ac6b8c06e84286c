"""The sending side of MLflow tracking: applies tracking operations to a store, spools what fails.

A :class:`Sender` runs in the tracking worker (a child process, or a thread; see
:mod:`tuner.tracking.worker`) and in ``regtuner sync``. Operations are the dicts described in
:mod:`tuner.tracking.spool`; runs are named by a UID chosen by the tracker (tag ``regtuner.uid``), so an
operation can be spooled before its run exists and replayed in another process.

Exactly once: a run is created only after a search for its UID finds nothing (when a create is retried);
metrics keep the timestamp they were made with, and MLflow's SQL stores ignore a metric logged twice with
the same key, step, timestamp and value; params, tags, texts and artifacts are idempotent.

When the store fails, the first failure goes out as an event; that operation and every later one go to
the spool; every ``retry_seconds`` the sender replays the spool and, once it is through, sends live again.
Errors MLflow reports as the request's own fault (a bad value, a run deleted meanwhile) drop that
operation only: sending it again could never work.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from tuner.tracking.base import absolute_sqlite
from tuner.tracking.http import HTTP, HTTP_ONCE, PERMANENT, error_code, http_settings, short_message
from tuner.tracking.model_logging import upload_model
from tuner.tracking.ops import PermanentError, coalesce, describe
from tuner.tracking.restore import KnownRun, Reconciler, StudyLocks
from tuner.tracking.spool import SpoolFile, read_spool, unstage

__all__ = ["Sender", "RETRY_SECONDS"]

RETRY_SECONDS = float(os.environ.get("REGTUNER_TRACKING_RETRY_SECONDS", "20"))
_MAX_METRICS, _MAX_PARAMS_TAGS, _MAX_ENTITIES = 1000, 100, 1000  # MLflow's log_batch limits
Emit = Callable[[dict[str, Any]], None]


_Permanent = PermanentError

#: the experiment's kind in the MLflow UI: model training (runs, charts), not GenAI (traces)
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


class Sender(Reconciler):
    """Sends operations to the MLflow store at ``uri`` (None: MLflow's default store).

    ``reopen`` and ``ensure`` (runs a dead process left behind) are applied by
    :class:`~tuner.tracking.restore.Reconciler`."""

    def __init__(
        self,
        uri: str | None,
        experiment: str | None,
        spool_directory: str | os.PathLike[str] | None,
        emit: Emit | None = None,
        retry_seconds: float | None = None,
    ) -> None:
        self.uri = uri
        self.experiment = experiment
        self.spool_directory = spool_directory
        self.emit: Emit = emit or (lambda event: None)
        self.retry_seconds = RETRY_SECONDS if retry_seconds is None else retry_seconds
        self.client: Any = None
        self.ids: dict[str, tuple[str, str | None]] = {}  # uid -> (run id, experiment id)
        self._experiments: dict[str, str] = {}  # name -> id
        self.spool: SpoolFile | None = None  # set while offline
        self.next_retry = 0.0
        self.failures = 0  # failed attempts
        self.dropped = 0  # operations given up (permanent errors)
        self.sent = 0
        self.last_error: str | None = None
        self.locks = StudyLocks()  # study runs this sender writes (see tuner.tracking.restore)
        self.children: dict[str, dict[str, KnownRun]] = {}

    # -- connection ---------------------------------------------------------------------------------

    def connect(self) -> str:
        """Create the client (imports MLflow); returns the resolved tracking URI."""
        if self.client is None:
            from mlflow.tracking import MlflowClient

            self.client = MlflowClient(tracking_uri=self.uri)
            self.uri = absolute_sqlite(str(self.client.tracking_uri))
        return str(self.uri)

    @property
    def offline(self) -> bool:
        return self.spool is not None

    # -- the loop's entry points ----------------------------------------------------------------------

    def handle(self, ops: Iterable[dict[str, Any]]) -> None:
        """Send ``ops`` in order (or spool them while offline); never raises."""
        later: list[dict[str, Any]] = []  # spooled in one write
        for op in coalesce(ops):
            if op["op"] == "bind":
                self.ids[op["run"]] = (op["run_id"], op.get("experiment_id"))
                if self.spool is not None:
                    self.spool.bind({op["run"]: self.ids[op["run"]]})
            elif self.spool is not None:
                later.append(op)
            else:
                try:
                    self._apply_guarded(op)
                except _Offline as exc:
                    self._go_offline(op, exc.__cause__ or exc)
        if later and self.spool is not None:
            self._spool_append(later)
        if self.spool is not None and time.monotonic() >= self.next_retry:
            self.recover()

    def idle_timeout(self) -> float | None:
        """How long the loop may wait for operations before :meth:`recover` is due."""
        if self.spool is None:
            return None
        return max(0.05, self.next_retry - time.monotonic())

    def recover(self) -> bool:
        """Replay this sender's spool; True when everything was sent and the sender is live again."""
        spool = self.spool
        if spool is None:
            return True
        done = self.replay(spool)
        if done:
            spool.close(remove=True)
            self.spool = None
            self.emit({"event": "online"})
        else:
            self.next_retry = time.monotonic() + self.retry_seconds
        return done

    def replay(self, spool: SpoolFile) -> bool:
        """Send the spooled operations after the last mark; stop at the first that fails."""
        contents = read_spool(spool.path)
        for uid, bound in contents.binds.items():
            self.ids.setdefault(uid, bound)
        position = contents.sent
        for op in contents.pending:
            try:
                self._apply_guarded(op, replay=True)
            except _Offline as exc:
                self.last_error = short_message(exc.__cause__ or exc)
                if position > contents.sent:
                    spool.mark(position)
                return False
            position += 1
            if position % 50 == 0:
                spool.mark(position)
        spool.mark(position)
        return True

    def status(self) -> dict[str, Any]:
        return {
            "failures": self.failures,
            "dropped": self.dropped,
            "sent": self.sent,
            "spooled": self.spool.pending if self.spool else 0,
            "spool": str(self.spool.path) if self.spool else None,
        }

    # -- sending --------------------------------------------------------------------------------------

    def _apply_guarded(self, op: dict[str, Any], *, replay: bool = False) -> None:
        """Apply ``op``; permanent errors drop it (counted), others raise :class:`_Offline`."""
        once = replay or op["op"] == "create"
        try:
            with http_settings(HTTP_ONCE if once else HTTP):
                self.connect()
                self._apply(op, replay=replay)
            self.sent += 1
        except _Permanent as exc:
            self._drop(op, exc)
        except Exception as exc:
            self.failures += 1
            if error_code(exc) in PERMANENT:
                self._drop(op, exc)
            else:
                raise _Offline(str(exc)) from exc

    def _spool_append(self, ops: list[dict[str, Any]]) -> None:
        assert self.spool is not None
        try:
            self.spool.append(ops)
        except OSError as error:
            for op in ops:
                self._drop(op, error)

    def _drop(self, op: dict[str, Any], exc: BaseException) -> None:
        self.dropped += 1
        if op.get("op") in ("artifact", "model"):
            unstage(op["path"], self.spool_directory)  # no one will send it: free the staged copy
        event = {"event": "dropped", "what": describe(op), "message": short_message(exc)}
        self.emit({**event, "failures": self.failures})

    def _go_offline(self, op: dict[str, Any], exc: BaseException) -> None:
        try:
            self.spool = SpoolFile.create(self.spool_directory, self.uri, self.experiment, dict(self.ids))
        except OSError as error:  # no spool (disk full, read-only): the operation is lost, say so
            self._drop(op, error)
            return
        self._spool_append([op])
        self.next_retry = time.monotonic() + self.retry_seconds
        event = {"event": "offline", "what": describe(op), "message": short_message(exc)}
        self.emit({**event, "spool": str(self.spool.path), "failures": self.failures})

    def _apply(self, op: dict[str, Any], *, replay: bool) -> None:
        kind = op["op"]
        if kind == "create":
            self._create(op, replay=replay)
            return
        if kind in ("reopen", "ensure"):
            (self._reopen if kind == "reopen" else self._ensure)(op, replay=replay)
            return
        run_id = self._run_id(op["run"])
        client = self.client
        if kind == "log":
            self._log_batch(run_id, op.get("metrics", ()), op.get("params", {}), op.get("tags", {}))
        elif kind == "text":
            client.log_text(run_id, op["text"], op["path"])
        elif kind == "artifact":
            self._artifact(run_id, op)
        elif kind == "model":
            self._model(run_id, op)
        elif kind == "end":
            client.set_terminated(run_id, op["status"], end_time=op.get("time"))
        else:
            raise _Permanent(f"unknown operation {kind!r}")

    def _experiment_id(self, name: str) -> str:
        if name not in self._experiments:
            client = self.client
            found = client.get_experiment_by_name(name)
            if found is None:
                try:  # its kind opens the MLflow UI on the runs, not on the GenAI overview
                    self._experiments[name] = client.create_experiment(name, tags=EXPERIMENT_TAGS)
                except Exception:
                    found = client.get_experiment_by_name(name)  # another process created it meanwhile
                    if found is None:
                        raise
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    client.restore_experiment(found.experiment_id)
                    self.emit(
                        {"event": "note", "message": f"restored the deleted MLflow experiment {name!r}"}
                    )
                self._experiments[name] = found.experiment_id
        return self._experiments[name]

    def _find(self, uid: str, experiment_id: str) -> Any:
        runs = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`regtuner.uid` = '{uid}'", max_results=1
        )
        return runs[0] if runs else None

    def _create(self, op: dict[str, Any], *, replay: bool) -> None:
        uid = op["run"]
        if uid in self.ids:
            return  # created before (a replayed create that had gone through)
        experiment_id = self._experiment_id(op.get("experiment") or self.experiment or "Default")
        tags = dict(op.get("tags", {}))
        tags["regtuner.uid"] = uid
        if op.get("parent"):
            tags["mlflow.parentRunId"] = self._run_id(op["parent"], experiment_id)
        else:
            self.locks.hold(self.spool_directory, uid, 0)  # this worker writes the study run
        run = self._find(uid, experiment_id) if replay else None
        if run is None:
            try:
                start = op.get("time")  # when the study made it, not when it reached the store
                run = self.client.create_run(
                    experiment_id, start_time=start, run_name=op.get("name"), tags=tags
                )
            except Exception:
                # the server may have created it and the answer got lost: look before anyone retries
                try:
                    run = self._find(uid, experiment_id)
                except Exception:
                    run = None
                if run is None:
                    raise
        self._bind(uid, run.info.run_id, experiment_id)

    def _bind(self, uid: str, run_id: str, experiment_id: str | None) -> None:
        self.ids[uid] = (run_id, experiment_id)
        if self.spool is not None:
            self.spool.bind({uid: (run_id, experiment_id)})
        self.emit({"event": "run", "run": uid, "run_id": run_id, "experiment_id": experiment_id})

    def _run_id(self, uid: str, experiment_id: str | None = None) -> str:
        if uid in self.ids:
            return self.ids[uid][0]
        experiment_id = experiment_id or (self._experiment_id(self.experiment) if self.experiment else None)
        run = self._find(uid, experiment_id) if experiment_id else None
        if run is None:
            raise _Permanent(f"no MLflow run carries regtuner.uid={uid}; its creation was lost")
        self._bind(uid, run.info.run_id, run.info.experiment_id)
        return run.info.run_id

    def _log_batch(
        self, run_id: str, metrics: Iterable[Any], params: Mapping[str, str], tags: Mapping[str, str]
    ) -> None:
        from mlflow.entities import Metric, Param, RunTag

        ms = [Metric(k, float(v), int(ts), int(step)) for k, v, ts, step in metrics]
        ps = [Param(k, str(v)) for k, v in params.items()]
        ts_ = [RunTag(k, str(v)) for k, v in tags.items()]
        while ms or ps or ts_:  # at most 1000 metrics, 100 params, 100 tags, 1000 entities per call
            p, t = ps[:_MAX_PARAMS_TAGS], ts_[:_MAX_PARAMS_TAGS]
            ps, ts_ = ps[_MAX_PARAMS_TAGS:], ts_[_MAX_PARAMS_TAGS:]
            room = min(_MAX_METRICS, _MAX_ENTITIES - len(p) - len(t))
            m, ms = ms[:room], ms[room:]
            self.client.log_batch(run_id, metrics=m, params=p, tags=t)

    def _artifact(self, run_id: str, op: dict[str, Any]) -> None:
        path = Path(op["path"])
        if not path.exists():
            raise _Permanent(f"the staged artifact {path} is gone")
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), op.get("dest"))
        else:
            self.client.log_artifact(run_id, str(path), op.get("dest"))
        unstage(path, self.spool_directory)

    def _model(self, run_id: str, op: dict[str, Any]) -> None:

        path = Path(op["path"])
        if not path.is_dir():
            raise _Permanent(f"the staged model {path} is gone")
        experiment_id = (
            self.ids.get(op["run"], (None, None))[1] or self.client.get_run(run_id).info.experiment_id
        )
        upload_model(
            self.client, experiment_id, run_id, path, op["uid"], op.get("name", "model"), op.get("tags", {})
        )
        unstage(path, self.spool_directory)


class _Offline(Exception):
    """The store did not answer: spool and retry later."""

"""MLflow tracker: one experiment per study, a parent run per study, a child run per trial.

Every MLflow call goes through :meth:`MlflowTracker._call`, which never raises: the first failure warns
(:class:`~tuner.tracking.TrackingWarning`), later ones are counted in ``tracker.failures``, and the next
call tries again. Runs nest by the explicit parent run id (``mlflow.parentRunId``), never through
MLflow's fluent active-run stack, so trials may be tracked from any process: a pickled tracker carries the
resolved URI and the parent run id, nothing else.

HTTP limits: MLflow retries a request up to 7 times with exponential back-off and waits up to 120 s per
attempt, so a dead server would stall every trial for minutes. During our own calls only, and only for
variables the user has not set, we set ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=2``,
``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=1`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT=10``; after a failure, until a
call succeeds again, 0 retries and a 5 s timeout. These are process environment variables (MLflow has no
per-client setting), so MLflow calls made by other threads at the same moment see them too.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuner.errors import ConfigError
from tuner.records import TrialRecord
from tuner.tracking import (
    StudyInfo,
    StudySummary,
    Tracker,
    TrackingWarning,
    absolute_sqlite,
    cut,
    flatten,
    metric_key,
    objective_metrics,
    params_to_strings,
    redact_uri,
)

__all__ = ["MlflowTracker"]

FLUSH_METRICS = 500  # buffered epoch metrics that trigger a flush
FLUSH_SECONDS = 10.0  # or time since the last flush
_MAX_METRICS, _MAX_PARAMS_TAGS, _MAX_ENTITIES = 1000, 100, 1000  # MLflow's log_batch limits
_MAX_TAG_VALUE, _MAX_ERROR = 8000, 5000
_STATUSES = ("FINISHED", "FAILED", "KILLED")

_HTTP_NORMAL = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # a library must not print a line per run
}
_HTTP_DEGRADED = {**_HTTP_NORMAL, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}

_env_lock = threading.Lock()
_env_depth = 0
_env_ours: list[str] = []
_FAILED = object()  # what _call returns when the MLflow call raised


@contextlib.contextmanager
def _http_limits(values: Mapping[str, str]) -> Iterator[None]:
    """Set the variables in ``values`` that the user has not set, for the duration of our calls."""
    global _env_depth
    with _env_lock:
        if _env_depth == 0:
            for key, value in values.items():
                if key not in os.environ:
                    os.environ[key] = value
                    _env_ours.append(key)
        _env_depth += 1
    try:
        yield
    finally:
        with _env_lock:
            _env_depth -= 1
            if _env_depth == 0:
                for key in _env_ours:
                    os.environ.pop(key, None)
                _env_ours.clear()


@dataclass
class _TrialRun:
    run_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    params_logged: bool = False
    epochs_sent: int = 0  # epochs [0, epochs_sent) are logged or buffered...
    lost: set[int] = field(default_factory=set)  # ...except these, whose flush failed
    buffer: list[Any] = field(default_factory=list)  # mlflow Metric entities
    last_flush: float = field(default_factory=time.monotonic)


class MlflowTracker(Tracker):
    """Writes a study to MLflow. ``tracking_uri=None`` is MLflow's default store.

    ``parent_run_id`` attaches to an existing study run (a worker process, or a resumed study):
    trials nest under it, and ``start_study`` reopens it instead of creating a new one.
    """

    def __init__(
        self, tracking_uri: str | None, experiment: str, *, parent_run_id: str | None = None
    ) -> None:
        self._uri = tracking_uri
        self.experiment = experiment
        self._parent_id = parent_run_id
        self._experiment_id: str | None = None
        self._info: StudyInfo | None = None
        self._framework_tagged = False
        self._client: Any = None
        self._lock = threading.RLock()
        self._trials: dict[int, _TrialRun] = {}
        self.failures = 0
        self._warned = False
        self._degraded = False

    # -- public state -------------------------------------------------------------------------------

    @property
    def run_id(self) -> str | None:
        return self._parent_id

    @property
    def experiment_id(self) -> str | None:
        """The study's MLflow experiment id, once known."""
        return self._experiment_id

    @property
    def tracking_uri(self) -> str | None:
        """The URI in use; None means MLflow's default until the first call resolves it (SQLite absolute)."""
        return self._uri

    @property
    def run_url(self) -> str | None:
        """Link to the parent run in the MLflow UI, for HTTP tracking servers."""
        uri = self.tracking_uri or ""
        if not uri.startswith(("http://", "https://")) or not (self._parent_id and self._experiment_id):
            return None
        return f"{redact_uri(uri).rstrip('/')}/#/experiments/{self._experiment_id}/runs/{self._parent_id}"

    def __getstate__(self) -> dict[str, Any]:
        # Ship the resolved URI and run ids to workers; clients, locks and buffers stay here.
        keep = (self.tracking_uri, self.experiment, self._parent_id, self._experiment_id, self._info)
        return dict(zip(("uri", "experiment", "parent", "experiment_id", "info"), keep, strict=True))

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["uri"], state["experiment"], parent_run_id=state["parent"])  # type: ignore[misc]
        self._experiment_id = state["experiment_id"]
        self._info = state["info"]

    # -- the Tracker API ----------------------------------------------------------------------------

    def start_study(self, info: StudyInfo) -> None:
        with self._guard("start the study run"):
            self._info = info
            if self._parent_id is not None:
                self._reopen_parent()
            else:
                self._ensure_parent()

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        with self._guard("start a trial run"):
            trial = self._trials.setdefault(number, _TrialRun())
            trial.params = params_to_strings(params)
            self._ensure_trial_run(number, trial)

    def epoch_logged(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        with self._guard("log an epoch"):
            trial = self._trials.setdefault(number, _TrialRun())
            trial.buffer.extend(_metrics(metrics, epoch))
            trial.epochs_sent = max(trial.epochs_sent, epoch + 1)
            due = time.monotonic() - trial.last_flush >= FLUSH_SECONDS
            if len(trial.buffer) >= FLUSH_METRICS or due:
                self._flush(number, trial)

    def trial_finished(self, record: TrialRecord) -> None:
        with self._guard("finish a trial run"):
            trial = self._trials.pop(record.number, None) or _TrialRun()
            if not trial.params:
                trial.params = params_to_strings(record.params)
            for step in sorted(trial.lost | set(range(trial.epochs_sent, len(record.epochs)))):
                if step < len(record.epochs):
                    trial.buffer.extend(_metrics(record.epochs[step], step))
            trial.epochs_sent = len(record.epochs)
            finals = objective_metrics("objective", record.values)
            finals.update(epochs_run=record.epochs_run, duration_s=record.duration)
            if record.best_epoch is not None:
                finals["best_epoch"] = record.best_epoch
            trial.buffer.extend(_metrics(finals, max(len(record.epochs) - 1, 0)))
            tags: dict[str, str] = {"state": record.state}
            if record.error:
                tags["error"] = record.error[:_MAX_ERROR]
            if record.injected:
                lines = (
                    f"{i.knob}: {i.detail}" + ("" if i.applied else " (not applied)") for i in record.injected
                )
                tags["injected"] = "\n".join(lines)
            if record.framework:
                tags["regtuner.framework"] = record.framework
            run_id = self._flush(record.number, trial, tags)
            if run_id is None:
                return
            if record.traceback:
                self._call("log the traceback", "log_text", run_id, record.traceback, "traceback.txt")
            status = "FAILED" if record.state == "failed" else "FINISHED"
            self._call("close a trial run", "set_terminated", run_id, status)
            if record.framework and not self._framework_tagged and self._parent_id:
                tagged = self._call("tag", "set_tag", self._parent_id, "regtuner.framework", record.framework)
                self._framework_tagged = tagged is not _FAILED

    def end_study(self, summary: StudySummary, status: str = "FINISHED") -> None:
        status = str(status).upper()
        if status not in _STATUSES:
            raise ConfigError(f"end_study status must be one of {_STATUSES}, got {status!r}.")
        with self._guard("end the study run"):
            for number, trial in sorted(self._trials.items()):  # trials the study never finished
                run_id = self._flush(number, trial, {"state": "killed"})
                if run_id is not None:
                    self._call("close a trial run", "set_terminated", run_id, "KILLED")
            self._trials.clear()
            parent = self._ensure_parent()
            if parent is None:
                return
            metrics = objective_metrics("best_objective", summary.best_values)
            for name, value in summary.test_scores.items():
                metrics[name if name.startswith("test_") else f"test_{name}"] = value
            for state, count in summary.counts.items():
                metrics[f"trials_{state}"] = count
            metrics.update(summary.extra_metrics)
            params = params_to_strings({f"best.{k}": v for k, v in summary.best_params.items()})
            tags = {"regtuner.best_trial": str(summary.best_trial)} if summary.best_trial is not None else {}
            self._log_batch(parent, _metrics(metrics, 0), params, tags)
            if summary.report:
                self._call("log the report", "log_text", parent, summary.report, "report.txt")
            self._call("close the study run", "set_terminated", parent, status)

    # -- internals ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Serialize the public calls; anything they raise is a tracking failure, not the study's."""
        with self._lock:
            try:
                yield
            except Exception as exc:
                self._failed(what, exc)

    def _call(self, what: str, fn: str | Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` (a MlflowClient method name, or a function) after creating the client if needed;
        on failure return ``_FAILED``."""
        try:
            with _http_limits(_HTTP_DEGRADED if self._degraded else _HTTP_NORMAL):
                if self._client is None:
                    from tuner._imports import require

                    require("mlflow")
                    from mlflow.tracking import MlflowClient

                    self._client = MlflowClient(tracking_uri=self._uri)
                    self._uri = absolute_sqlite(str(self._client.tracking_uri))
                result = (getattr(self._client, fn) if isinstance(fn, str) else fn)(*args, **kwargs)
        except Exception as exc:
            self._failed(what, exc)
            return _FAILED
        self._degraded = False
        return result

    def _failed(self, what: str, exc: Exception) -> None:
        """Count a failure; warn about the first one only."""
        self.failures += 1
        self._degraded = True
        if self._warned:
            return
        self._warned = True
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        netloc = urllib.parse.urlsplit(self.tracking_uri or "").netloc
        if "@" in netloc:  # MLflow's own messages may repeat the URL with its credentials
            message = message.replace(netloc.rsplit("@", 1)[0], "***")
        warnings.warn(
            f"MLflow tracking at {redact_uri(self.tracking_uri)} failed to {what} ({message[:600]}). "
            "The study goes on; the tracker keeps trying, and further failures are only counted "
            "(tracker.failures).",
            TrackingWarning,
            stacklevel=2,
        )

    def _ensure_parent(self) -> str | None:
        """The parent run id, creating experiment and run if needed (again after an earlier failure)."""
        if self._parent_id is not None:
            if self._experiment_id is None:
                run = self._call("read the study run", "get_run", self._parent_id)
                if run is not _FAILED:
                    self._experiment_id = run.info.experiment_id
            return self._parent_id
        info = self._info
        if info is None:
            return None  # start_study was never called: nothing to nest under
        name = info.experiment or self.experiment
        experiment_id = self._call("get or create the experiment", self._get_or_create_experiment, name)
        if experiment_id is _FAILED:
            return None
        self._experiment_id = experiment_id
        run = self._call("create the study run", self._create_run, info.study_name, self._study_tags(info))
        if run is _FAILED:
            return None
        self._parent_id = run.info.run_id
        self._log_batch(
            self._parent_id, params=params_to_strings({**flatten(info.settings), "space": info.space_name})
        )
        if info.space_yaml:
            self._call("log space.yaml", "log_text", self._parent_id, info.space_yaml, "space.yaml")
        return self._parent_id

    def _get_or_create_experiment(self, name: str) -> str:
        client = self._client
        found = client.get_experiment_by_name(name)
        if found is None:
            try:
                return client.create_experiment(name)
            except Exception:
                found = client.get_experiment_by_name(name)  # another process created it meanwhile
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
            warnings.warn(
                f"Restored the deleted MLflow experiment {name!r} to log this study.",
                TrackingWarning,
                stacklevel=2,
            )
        return found.experiment_id

    def _study_tags(self, info: StudyInfo) -> dict[str, str]:
        tags = {"regtuner.role": "study", "regtuner.study": info.study_name, "regtuner.task": info.task}
        tags.update({"regtuner.executor": info.executor, "regtuner.fingerprint": info.fingerprint})
        tags.update(
            {"regtuner.objective": ",".join(info.objective), "regtuner.direction": ",".join(info.directions)}
        )
        tags["regtuner.version"] = info.version
        if info.framework:
            tags["regtuner.framework"] = info.framework
            self._framework_tagged = True
        return {k: cut(v, _MAX_TAG_VALUE) for k, v in tags.items()}

    def _create_run(self, name: str, tags: Mapping[str, str]) -> Any:
        return self._client.create_run(self._experiment_id, run_name=name, tags=dict(tags))

    def _reopen_parent(self) -> None:
        if self._ensure_parent() is None or self._info is None:
            return
        self._call("reopen the study run", "update_run", self._parent_id, status="RUNNING")
        self._log_batch(self._parent_id, tags=self._study_tags(self._info))

    def _ensure_trial_run(self, number: int, trial: _TrialRun) -> str | None:
        if trial.run_id is None:
            parent = self._ensure_parent()
            if parent is None or self._experiment_id is None:
                return None
            tags = {"mlflow.parentRunId": parent, "regtuner.role": "trial", "regtuner.trial": str(number)}
            if self._info is not None:
                tags["regtuner.study"] = cut(self._info.study_name, _MAX_TAG_VALUE)
            run = self._call("create a trial run", self._create_run, f"trial-{number:04d}", tags)
            if run is _FAILED:
                return None
            trial.run_id = run.info.run_id
        if not trial.params_logged and trial.params:
            trial.params_logged = self._log_batch(trial.run_id, params=trial.params)
        return trial.run_id

    def _flush(self, number: int, trial: _TrialRun, tags: Mapping[str, str] | None = None) -> str | None:
        """Send the trial's buffered metrics (and ``tags``); on failure the record will resend the epochs."""
        pending, trial.buffer = trial.buffer, []
        trial.last_flush = time.monotonic()
        run_id = self._ensure_trial_run(number, trial)
        if run_id is None or not self._log_batch(run_id, pending, tags=tags):
            trial.lost.update(m.step for m in pending)  # trial_finished sends them again from the record
        return run_id

    def _log_batch(
        self,
        run_id: str,
        metrics: Sequence[Any] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> bool:
        """log_batch in chunks within MLflow's limits; False when a chunk failed (the rest is dropped)."""
        from mlflow.entities import Param, RunTag

        ms, ps = list(metrics), [Param(k, v) for k, v in (params or {}).items()]
        ts = [RunTag(k, cut(v, _MAX_TAG_VALUE)) for k, v in (tags or {}).items()]
        while ms or ps or ts:  # at most 1000 metrics, 100 params, 100 tags, 1000 entities per call
            p, t = ps[:_MAX_PARAMS_TAGS], ts[:_MAX_PARAMS_TAGS]
            ps, ts = ps[_MAX_PARAMS_TAGS:], ts[_MAX_PARAMS_TAGS:]
            room = min(_MAX_METRICS, _MAX_ENTITIES - len(p) - len(t))
            m, ms = ms[:room], ms[room:]
            if self._call("log a batch", "log_batch", run_id, metrics=m, params=p, tags=t) is _FAILED:
                return False
        return True


def _metrics(values: Mapping[str, Any], step: int) -> list[Any]:
    """MLflow Metric entities at ``step``; values that are not numbers are left out."""
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    out = []
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        out.append(Metric(metric_key(key), number, stamp, step))
    return out

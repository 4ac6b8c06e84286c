"""Bring an MLflow store up to a :class:`~tuner.tracking.state.StudyRun`: one idempotent step.

The tracker calls :meth:`Projector.project` as the study goes on, ``regtuner sync`` calls it on a spooled
state, and a resumed study calls it on the records the Optuna storage kept. Runs are named by a UID (tag
``regtuner.uid``): a run whose creation may have happened already (a restored trial, a replay, a create
whose answer got lost) is looked up before it is made, so each trial ends as exactly one run. A restored
trial whose run exists gets only what the run lacks (each metric after its last step, missing params);
one that already holds its outcome is left alone. Reopening a resumed study closes the trial runs its
dead process left RUNNING (KILLED, ``error`` interrupted).

A call the store does not answer raises :class:`Offline` (the tracker spools and retries); an error MLflow
reports as the request's own fault (a bad value, a run deleted meanwhile) drops that run's part only.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.records import INTERRUPTED
from tuner.tracking.base import absolute_sqlite
from tuner.tracking.http import HTTP, HTTP_ONCE, PERMANENT, error_code, http_settings, short_message
from tuner.tracking.model_logging import upload_model
from tuner.tracking.spool import unstage
from tuner.tracking.state import StudyRun, TrialRun

__all__ = ["Projector", "Offline"]

_MAX_METRICS, _MAX_PARAMS_TAGS, _MAX_ENTITIES = 1000, 100, 1000  # MLflow's log_batch limits
_PAGE = 500
#: the experiment's kind in the MLflow UI: model training (runs, charts), not GenAI (traces)
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
Note = Callable[[str, str, str], None]  # (kind "dropped" | "note", what, message)


class Offline(Exception):
    """The store did not answer: keep the state and try again later."""


class _Permanent(Exception):
    """This part can never be sent (its run is gone, a file is missing)."""


@dataclass
class _Known:
    """What a run in the store already holds."""

    run_id: str
    status: str
    tags: dict[str, str]
    params: set[str]
    steps: dict[str, int]  # metric key -> last step logged

    @classmethod
    def of(cls, run: Any) -> _Known:
        steps = {m.key: int(m.step) for m in run.data.to_proto().metrics}
        return cls(run.info.run_id, run.info.status, dict(run.data.tags), set(run.data.params), steps)


class Projector:
    """Writes study states to the MLflow store at ``uri`` (None: MLflow's default store).

    ``lock`` guards the state against the thread that fills it; ``once`` makes no request twice (a
    replay: sync retries later anyway)."""

    def __init__(
        self, uri: str | None, lock: Any = None, note: Note | None = None, once: bool = False
    ) -> None:
        self.uri, self.once = uri, once
        self.lock = lock if lock is not None else threading.RLock()
        self.note: Note = note or (lambda kind, what, message: None)
        self.client: Any = None
        self.sent = self.dropped = 0
        self._experiments: dict[str, str] = {}
        self._children: dict[str, dict[str, _Known]] = {}  # study uid -> {trial uid: run}, listed on reopen
        self._found: dict[str, _Known] = {}  # trial uid -> the run a lookup found

    def connect(self) -> str:
        """Create the client (imports MLflow); returns the resolved tracking URI."""
        if self.client is None:
            from mlflow.tracking import MlflowClient

            self.client = MlflowClient(tracking_uri=self.uri)
            self.uri = absolute_sqlite(str(self.client.tracking_uri))
        return str(self.uri)

    def project(self, study: StudyRun) -> None:
        """Send what ``study`` holds that the store lacks; raises :class:`Offline` at the first call the
        store does not answer (what was sent until then is marked in ``study``)."""
        with http_settings(HTTP_ONCE if self.once else HTTP):
            try:
                self.connect()
            except Exception as exc:  # the store is unreachable or misconfigured
                raise Offline(short_message(exc)) from exc
            if study.name is not None and not study.opened:
                with self._part("open the study run", lambda: _drop_all(study)):
                    self._open(study)
            with self.lock:  # the tracker (or the worker's reader) adds trials meanwhile
                trials = sorted(study.trials.values(), key=lambda t: t.number)
            for trial in trials:
                if trial.pending and not study.done:
                    with self._part("log a trial run", lambda t=trial: setattr(t, "done", True)):
                        self._trial(study, trial)
            if study.run_id is not None and not study.done:
                self._study_end(study)

    # -- the parts -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _part(self, what: str, drop: Callable[[], None] = lambda: None) -> Iterator[None]:
        """One part of the state; a permanent error drops it (``drop``), any other means offline."""
        try:
            yield
            self.sent += 1
        except Exception as exc:
            if not isinstance(exc, _Permanent) and error_code(exc) not in PERMANENT:
                raise Offline(short_message(exc)) from exc
            self.dropped += 1
            drop()
            self.note("dropped", what, short_message(exc))

    def _open(self, study: StudyRun) -> None:
        experiment_id = self._experiment_id(study.experiment)
        run = None
        if study.run_id is not None:
            run = self.client.get_run(study.run_id)
        elif study.reopen or study.lookup:
            run = self._find(study.uid, experiment_id)
        if run is None:
            study.run_id = self._create(study.uid, experiment_id, study.name, study.tags, study.started, None)
            self._children[study.uid] = {}  # a study run made just now has no trial runs
            self._batch(study.run_id, (), study.params, {})
            if study.space:
                self.client.log_text(study.run_id, study.space, "space.yaml")
        else:
            study.run_id = run.info.run_id
            experiment_id = run.info.experiment_id
            if study.reopen:
                self.client.update_run(study.run_id, status="RUNNING")
                self._batch(study.run_id, (), {}, study.tags)
                self._close_orphans(study, experiment_id)
        study.experiment_id, study.opened = experiment_id, True

    def _close_orphans(self, study: StudyRun, experiment_id: str) -> None:
        children: dict[str, _Known] = {}
        for run in self._search(experiment_id, f"tags.mlflow.parentRunId = '{study.run_id}'"):
            known = _Known.of(run)
            if known.status == "RUNNING":  # its process died mid-trial
                tags = {"state": "failed", "error": INTERRUPTED}
                self._batch(known.run_id, (), {}, tags)
                self.client.set_terminated(known.run_id, "KILLED")
                known.status = "KILLED"
                known.tags.update(tags)
            if "regtuner.uid" in known.tags:
                children[known.tags["regtuner.uid"]] = known
        self._children[study.uid] = children

    def _trial(self, study: StudyRun, trial: TrialRun) -> None:
        uid = f"{study.uid}.{trial.number}"
        with self.lock:  # the status first: rows are released before a trial ends
            status, outcome, text = trial.status, dict(trial.outcome), trial.text
            end, params = trial.released, dict(trial.params)
        known = self._found.get(uid)
        if trial.run_id is None:
            known = self._lookup(study, uid) if trial.lookup else None
            if known is None:
                experiment_id = study.experiment_id or self._experiment_id(study.experiment)
                parent = study.run_id or self._parent(study, experiment_id)
                name = f"trial-{trial.number:04d}"
                trial.run_id = self._create(uid, experiment_id, name, trial.tags, trial.started, parent)
            else:
                trial.run_id, self._found[uid] = known.run_id, known
                held = known.status != "RUNNING" and known.status == status
                if held and (status == "KILLED" or known.tags.get("state") == outcome.get("state")):
                    with self.lock:
                        del trial.rows[:end]
                        trial.released -= end
                        trial.params_sent, trial.done = True, True
                    return  # the run holds the outcome already
        rows = trial.rows[trial.sent : end]
        if known is not None:
            rows = [row for row in rows if int(row[3]) > known.steps.get(row[0], -1)]
            params = {k: v for k, v in params.items() if k not in known.params}
        self._batch(trial.run_id, rows, {} if trial.params_sent else params, outcome if status else {})
        with self.lock:  # sent rows are not kept: a long study holds only what is unsent
            del trial.rows[:end]
            trial.released -= end
            trial.sent, trial.params_sent = 0, True
        if not status:
            return
        if known is not None and "error" in known.tags and "error" not in outcome:
            self._delete_tag(trial.run_id, "error")  # set when the run was closed as interrupted
        if text:
            self.client.log_text(trial.run_id, text, "traceback.txt")
        self.client.set_terminated(trial.run_id, status)
        trial.done = True
        self._found.pop(uid, None)

    def _study_end(self, study: StudyRun) -> None:
        run_id, client = study.run_id, self.client
        if study.extra_tags:
            with self._part("tag the study run"):
                with self.lock:
                    tags = dict(study.extra_tags)
                self._batch(run_id, (), {}, tags)
                with self.lock:  # tags added meanwhile stay
                    study.extra_tags = {k: v for k, v in study.extra_tags.items() if tags.get(k) != v}
        while study.files:
            entry = study.files[0]
            with self._part(f"log the {entry['kind']}"):
                self._upload(study, entry)
            study.files.pop(0)
            unstage(entry["path"], Path(entry["path"]).parents[2])
        if study.summary is not None:
            with self._part("log the study's results", lambda: setattr(study, "summary", None)):
                self._batch(run_id, study.summary["rows"], {}, study.summary["tags"])
                if study.summary.get("report"):
                    client.log_text(run_id, study.summary["report"], "report.txt")
                study.summary = None
        with self.lock:  # a trial that came (or changed) during this pass goes first, in the next one
            waiting = any(t.pending for t in study.trials.values())
        if study.status and not waiting:
            with self._part("close the study run", lambda: setattr(study, "done", True)):
                client.set_terminated(run_id, study.status)
                study.done = True

    def _upload(self, study: StudyRun, entry: Mapping[str, Any]) -> None:
        path = Path(entry["path"])
        if not path.exists():
            raise _Permanent(f"the staged {entry['kind']} {path} is gone")
        if entry["kind"] == "model":
            experiment_id = study.experiment_id or self.client.get_run(study.run_id).info.experiment_id
            upload_model(self.client, experiment_id, study.run_id, path, entry["uid"], "model", entry["tags"])
        elif path.is_dir():
            self.client.log_artifacts(study.run_id, str(path), entry.get("dest"))
        else:
            self.client.log_artifact(study.run_id, str(path), entry.get("dest"))

    # -- MLflow calls ------------------------------------------------------------------------------------

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
                    self.note("note", "restore", f"restored the deleted MLflow experiment {name!r}")
                self._experiments[name] = found.experiment_id
        return self._experiments[name]

    def _parent(self, study: StudyRun, experiment_id: str) -> str:
        run = self._find(study.uid, experiment_id)
        if run is None:
            raise _Permanent(f"no MLflow run carries regtuner.uid={study.uid}: the study run is missing")
        study.run_id = run.info.run_id
        return study.run_id

    def _lookup(self, study: StudyRun, uid: str) -> _Known | None:
        listed = self._children.get(study.uid)
        if listed is not None:
            return listed.get(uid)
        run = self._find(uid, study.experiment_id or self._experiment_id(study.experiment))
        return _Known.of(run) if run is not None else None

    def _find(self, uid: str, experiment_id: str) -> Any:
        runs = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`regtuner.uid` = '{uid}'", max_results=1
        )
        return runs[0] if runs else None

    def _create(
        self, uid: str, experiment_id: str, name: str | None, tags: Mapping[str, str], start: int,
        parent: str | None,
    ) -> str:  # fmt: skip
        tags = {**tags, "regtuner.uid": uid}
        if parent:
            tags["mlflow.parentRunId"] = parent
        try:
            with http_settings(HTTP_ONCE):  # creates are never retried blindly: a second run would appear
                run = self.client.create_run(experiment_id, start_time=start, run_name=name, tags=tags)
        except Exception:
            # the server may have created it and the answer got lost: look before anyone retries
            with contextlib.suppress(Exception):
                run = self._find(uid, experiment_id)
                if run is not None:
                    return str(run.info.run_id)
            raise
        return str(run.info.run_id)

    def _batch(
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

    def _delete_tag(self, run_id: str, key: str) -> None:
        try:
            self.client.delete_tag(run_id, key)
        except Exception as exc:
            if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":  # gone already: what we wanted
                raise


def _drop_all(study: StudyRun) -> None:
    study.done = True
    for trial in study.trials.values():
        trial.done = True

"""The driver side of a Ray study: Optuna's ``OptunaSearch`` working on the study's own storage.

:class:`StudySearch` is Ray Tune's ``OptunaSearch`` pointed at the same Optuna RDB storage and study
the local executor uses, so trials get their numbers when Ray asks for a configuration, and each
finished trial is told to Optuna with its record in the trial's user attributes (what
``tuner.api`` reads to build the :class:`~tuner.insight.result.Result`, and what ``resume=True`` continues).

Trials arrive back in one of three ways: with their record in the last result (the worker ran
``run_trial`` to the end), stopped by ASHA or the time budget (a pruned record from the epoch results
seen so far), or dead (the worker process died: a failed record, with Ray's error).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from ray.tune import Callback, Stopper
from ray.tune.search.optuna import OptunaSearch

from tuner.errors import StudyAborted
from tuner.executors.ray.worker import (
    EPOCH_KEY,
    FRAMEWORK_KEY,
    INJECTED_KEY,
    NUMBER_KEY,
    RECORD_KEY,
    metric_names,
)
from tuner.records import Injection, TrialRecord
from tuner.signals import stop_requested
from tuner.study.storage import ATTR, record_attrs, record_from_trial

if TYPE_CHECKING:
    from tuner.executors.base import StudyJob
    from tuner.space.searchspace import SearchSpace
    from tuner.tracking.base import Tracker
    from tuner.trial.objectives import Objective

__all__ = ["StudySearch", "TrialSink", "ErrorCallback", "AbortStopper"]

log = logging.getLogger("tuner")

_NOT_STARTED = "not started: the study stopped (time budget or abort) before this trial ran"


class TrialSink:
    """Where the driver sends each epoch and finished trial: tracking, progress display, failure policy.

    The driver is the only writer of MLflow: workers report epochs and records through Tune, and the
    sink hands them to the study's tracker. Ray Tune pickles its configuration (searcher and stopper
    included); a pickled sink keeps only the tracker (under Ray Client, Tune's driver runs on the head
    and tracks from there), without progress display or failure policy.
    """

    def __init__(self, job: StudyJob | None, tracker: Tracker | None = None) -> None:
        self.job = job
        self.tracker = job.tracker if job is not None else tracker
        self.aborted: StudyAborted | None = None
        self._open: set[int] = set()  # trials whose run is open

    def deliver(self, record: TrialRecord) -> None:
        if record.state == "failed":
            log.warning("trial %d failed: %s", record.number, record.error)
        if self.tracker is not None:
            self._open.discard(record.number)
            self.tracker.trial_finished(record)
        job = self.job
        if job is None:
            return
        if job.on_trial is not None:
            job.on_trial(record)
        if self.aborted is None:
            try:
                job.policy.observe(record)
            except StudyAborted as exc:
                self.aborted = exc

    def epoch_done(self, number: int, epoch: int, metrics: dict[str, float], params: dict[str, Any]) -> None:
        if self.tracker is not None:
            if number not in self._open:
                self._open.add(number)
                self.tracker.trial_started(number, params)
            self.tracker.epoch_logged(number, epoch, metrics)
        if self.job is not None and self.job.on_epoch is not None:
            self.job.on_epoch(number, epoch)

    def __getstate__(self) -> dict[str, Any]:
        return {"tracker": self.tracker}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(None, state.get("tracker"))  # type: ignore[misc]


class StudySearch(OptunaSearch):
    """``OptunaSearch`` on the study's storage; the space is sampled define-by-run with
    :meth:`SearchSpace.sample`, exactly as the local executor samples it."""

    def __init__(
        self,
        space: SearchSpace,
        objective: Objective,
        *,
        storage: Any,
        study_name: str,
        sampler: Any,
        sink: TrialSink,
    ) -> None:
        self._regtuner_space = space
        self._objective = objective
        self._sink = sink
        self._rdb = storage
        self._study_id = storage.get_study_id_from_name(study_name)
        self._numbers: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._params: dict[str, dict[str, Any]] = {}
        self._epochs: dict[str, dict[int, dict[str, float]]] = {}
        self._records: dict[str, str] = {}
        self._failing: set[str] = set()
        self._order: list[str] = []
        self._frameworks: dict[str, str] = {}
        self._injected: dict[str, tuple[Injection, ...]] = {}
        self._reported: dict[str, set[int]] = {}
        names = metric_names(objective)
        modes = ["min" if d == "minimize" else "max" for d in objective.directions]
        multi = objective.is_multi
        super().__init__(
            space=self._sample,
            metric=names if multi else names[0],
            mode=modes if multi else modes[0],
            sampler=sampler,
            study_name=study_name,
            storage=storage,
        )

    def _sample(self, trial: Any) -> dict[str, Any]:
        # ``trial`` is OptunaSearch's capturing wrapper of an Optuna trial of the study.
        params = self._regtuner_space.sample(trial)
        self._order = list(params)
        return {**params, NUMBER_KEY: trial.number}

    # -- Ray Tune's Searcher interface --------------------------------------------------------------

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        config = super().suggest(trial_id)
        if config:
            # OptunaSearch puts the suggested values first; keep the space's order, as the local executor
            config = {**{k: config[k] for k in self._order if k in config}, **config}
            self._numbers[trial_id] = int(config[NUMBER_KEY])
            self._started[trial_id] = time.time()
            self._params[trial_id] = {k: v for k, v in config.items() if k != NUMBER_KEY}
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        epoch = self._keep(trial_id, result)
        reported = self._reported.setdefault(trial_id, set())
        if epoch is not None and epoch not in reported:  # a retried trial reports its epochs again
            reported.add(epoch)
            metrics = self._epochs[trial_id][epoch]
            self._sink.epoch_done(self._numbers[trial_id], epoch, metrics, self._params.get(trial_id, {}))
            # Optuna's intermediate values at 0-based epochs, as the local executor reports them
            super().on_trial_result(trial_id, {**result, "training_iteration": epoch})

    def _keep(self, trial_id: str, result: dict[str, Any] | None) -> int | None:
        """Keep the record or the epoch's metrics a result carries; the epoch number, if any."""
        if not result or trial_id not in self._numbers:
            return None
        if RECORD_KEY in result:
            self._records[trial_id] = result[RECORD_KEY]
            return None
        if FRAMEWORK_KEY in result:
            self._frameworks[trial_id] = str(result[FRAMEWORK_KEY])
        if INJECTED_KEY in result:
            self._injected[trial_id] = tuple(Injection(*i) for i in json.loads(result[INJECTED_KEY]))
        prefix = EPOCH_KEY + "/"
        metrics = {k[len(prefix) :]: v for k, v in result.items() if k.startswith(prefix)}
        if "epoch" not in metrics:
            return None
        epoch = int(metrics.pop("epoch"))
        epochs = self._epochs.setdefault(trial_id, {})
        if epoch == 0:
            epochs.clear()  # a retried trial starts over
        epochs[epoch] = metrics
        return epoch

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if trial_id not in self._numbers:
            return
        self._keep(trial_id, result)  # the result that made ASHA stop the trial reaches us only here
        if error:
            self._failing.add(trial_id)  # ErrorCallback finishes it, with Ray's error message
            return
        data = (result or {}).get(RECORD_KEY) or self._records.get(trial_id)
        if data is not None:
            self._finish(trial_id, self._from_json(trial_id, data))
        elif trial_id in self._epochs:
            self._finish(trial_id, self._partial(trial_id, "pruned", None))
        else:
            self._finish(trial_id, self._partial(trial_id, "failed", _NOT_STARTED), unstarted=True)

    def fail(self, trial_id: str, error: str) -> None:
        """A trial whose worker died (after the retries ``max_failures`` allows)."""
        if trial_id in self._failing:
            self._failing.discard(trial_id)
            self._finish(trial_id, self._partial(trial_id, "failed", error))

    def flush(self) -> None:
        """After the experiment: finish what Tune left open. Trials still waiting for their error
        message fail; trials the time budget (or an abort) cut short are pruned, or not counted at
        all when they never started."""
        for trial_id in list(self._failing):
            self.fail(trial_id, "the Ray worker running this trial died")
        for trial_id in list(self._numbers):
            self.on_trial_complete(trial_id)

    def save(self, checkpoint_path: str) -> None:
        # The study's state lives in the Optuna storage; resume=True reads it from there.
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"regtuner": "state is in the Optuna storage"}, f)

    def restore(self, checkpoint_path: str) -> None:
        return None

    # -- records ------------------------------------------------------------------------------------

    def _from_json(self, trial_id: str, data: str) -> TrialRecord:
        number = self._numbers[trial_id]
        attrs = json.loads(data)
        stub = SimpleNamespace(number=number, params=attrs.get("params") or {}, user_attrs={ATTR: attrs})
        return record_from_trial(stub)  # type: ignore[arg-type]

    def _partial(self, trial_id: str, state: str, error: str | None) -> TrialRecord:
        """A record from the epoch results the driver saw (the worker could not send its own)."""
        number = self._numbers[trial_id]
        epochs = self._epochs.get(trial_id, {})
        history = tuple(epochs[e] for e in sorted(epochs))
        best = None
        for index, metrics in enumerate(history):
            try:
                value = self._objective.values(metrics)[0]
            except KeyError:
                continue
            if best is None or self._objective.improves(value, best[1]):
                best = (index, value)
        return TrialRecord(
            number=number,
            params=self._params.get(trial_id, {}),
            state=state,  # type: ignore[arg-type]
            epochs=history,
            best_epoch=best[0] if best else None,
            error=error,
            duration=time.time() - self._started.get(trial_id, time.time()),
            framework=self._frameworks.get(trial_id),
            injected=self._injected.get(trial_id, ()),
        )

    def _trial_id(self, number: int) -> int:
        return self._rdb.get_trial_id_from_study_id_trial_number(self._study_id, number)

    def _finish(self, trial_id: str, record: TrialRecord, *, unstarted: bool = False) -> None:
        storage_id = self._trial_id(record.number)
        self._rdb.set_trial_user_attr(storage_id, ATTR, record_attrs(record))
        if unstarted:  # does not count against the budget, like a trial a killed process left behind
            self._rdb.set_trial_user_attr(storage_id, "interrupted", True)
        complete = record.state == "complete" and record.values is not None
        names = metric_names(self._objective)
        values = dict(zip(names, record.values or (), strict=False)) if complete else None
        super().on_trial_complete(trial_id, values, error=record.state == "failed")
        stores = (
            self._numbers,
            self._started,
            self._params,
            self._epochs,
            self._records,
            self._frameworks,
            self._reported,
        )
        for store in stores:
            store.pop(trial_id, None)
        if not unstarted:
            self._sink.deliver(record)


class ErrorCallback(Callback):
    """Hands the error of a trial whose worker died to :meth:`StudySearch.fail`."""

    def __init__(self, search: StudySearch) -> None:
        self.search = search

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.search.fail(trial.trial_id, _error_text(trial))


def _error_text(trial: Any) -> str:
    text = ""
    try:
        path = trial.error_file  # the driver's copy, written just before this callback
        if path and os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        text = text or trial.get_error() or ""
    except Exception:  # the error file may be gone; the message below still says what happened
        pass
    blocks = [b for b in text.split("Failure # ") if b.strip()]
    last = blocks[-1].split("\n", 1)[-1] if blocks else ""
    detail = " ".join(last.split())[:800]
    attempts = getattr(getattr(trial, "run_metadata", None), "num_failures", 1) or 1
    return f"the Ray worker running this trial died ({attempts} attempt(s)): {detail or 'no detail'}"


class AbortStopper(Stopper):
    """Stops the whole experiment when the failure policy aborted the study, or a SIGTERM arrived
    (whose KeyboardInterrupt Ray may have swallowed)."""

    def __init__(self, sink: TrialSink) -> None:
        self.sink = sink

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.sink.aborted is not None or stop_requested()

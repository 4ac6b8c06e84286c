"""What MLflow should hold for one study: a study run and its trial runs, built from what the study reports.

The tracker fills a :class:`StudyRun` from the study's calls (and, on resume, from the records the Optuna
storage kept) and ships its changes (:func:`take_changes`) to the tracking worker, whose replica
(:func:`merge`) :class:`~tuner.tracking.projection.Projector` brings the store up to. The replica keeps
its progress (run ids, rows sent), so a state saved to the spool (:mod:`tuner.tracking.spool`)
is sent later from where it stopped. Metric rows are ``[key, value, timestamp ms, step]`` with the
timestamp fixed when the row is made: a row sent twice (a lost answer) is stored once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tuner.records import TrialRecord, is_interrupted
from tuner.tracking.base import (
    StudyInfo,
    StudySummary,
    cut,
    flatten,
    metric_key,
    objective_metrics,
    params_to_strings,
)

__all__ = ["StudyRun", "TrialRun", "now", "metric_rows", "study_tags", "take_changes", "merge"]

MAX_TAG_VALUE, MAX_ERROR = 8000, 5000
# what the tracker decides (the worker's replica takes these as they are); the rest is the worker's progress
_STUDY_HEAD = ("name", "experiment", "tags", "params", "space", "reopen", "lookup", "status", "started")
_TRIAL_HEAD = ("tags", "params", "epochs", "status", "outcome", "text", "lookup", "started")


def now() -> int:
    """Milliseconds since the epoch, as MLflow stamps metrics and run end times."""
    return int(time.time() * 1000)


def metric_rows(values: Mapping[str, Any], step: int) -> list[list[Any]]:
    """``[key, value, timestamp ms, step]`` rows; values that are not numbers are left out."""
    stamp, out = now(), []
    for key, value in values.items():
        try:
            out.append([metric_key(key), float(value), stamp, int(step)])
        except (TypeError, ValueError):
            continue
    return out


def _tags(values: Mapping[str, Any]) -> dict[str, str]:
    return {k: cut(v, MAX_TAG_VALUE) for k, v in values.items()}


def study_tags(info: StudyInfo) -> dict[str, str]:
    """The study run's tags: what was searched, how, on which data, by which version."""
    tags = {"regtuner.role": "study", "regtuner.study": info.study_name, "regtuner.task": info.task,
            "regtuner.executor": info.executor, "regtuner.fingerprint": info.fingerprint,
            "regtuner.objective": ",".join(info.objective), "regtuner.direction": ",".join(info.directions),
            "regtuner.version": info.version, "regtuner.space": info.space_name}  # fmt: skip
    if info.framework:
        tags["regtuner.framework"] = info.framework
    return _tags(tags)


@dataclass
class TrialRun:
    """One trial's run: what it should hold, and how much of it the store has."""

    number: int
    tags: dict[str, str]  # the tags it is created with
    params: dict[str, str] = field(default_factory=dict)
    rows: list[list[Any]] = field(default_factory=list)
    released: int = 0  # rows [0, released) may be sent (epochs are batched); sent rows are dropped
    sent: int = 0  # rows [0, sent) are in the store (0 but in a sync of an older state)
    params_sent: bool = False
    epochs: int = 0  # epochs [0, epochs) have rows
    status: str | None = None  # FINISHED / FAILED / KILLED: the trial ended, close the run
    outcome: dict[str, str] = field(default_factory=dict)  # tags written when it ends
    text: str | None = None  # a traceback
    lookup: bool = False  # the run may exist already (a restored or replayed trial): look before creating
    run_id: str | None = None
    done: bool = False  # closed in the store (or dropped)
    started: int = field(default_factory=now)

    @property
    def pending(self) -> bool:
        """Something is left to send."""
        if self.done:
            return False
        return self.run_id is None or self.released > self.sent or not self.params_sent or bool(self.status)

    def add_epoch(self, metrics: Mapping[str, Any], step: int) -> None:
        self.rows.extend(metric_rows(metrics, step))
        self.epochs = max(self.epochs, step + 1)

    def finish(self, record: TrialRecord, *, lookup: bool = False) -> None:
        """End with ``record``: its epochs not reported live, its final metrics and tags, its status."""
        if self.lookup:  # a trial replayed while it ran: every epoch again, its run takes what it lacks
            self.rows, self.released, self.epochs = [], 0, 0
        for step in range(self.epochs, len(record.epochs)):  # epochs not reported live
            self.add_epoch(record.epochs[step], step)
        if not self.params:
            self.params = params_to_strings(record.params)
        finals = objective_metrics("objective", record.values)
        finals.update(epochs_run=record.epochs_run, duration_s=record.duration)
        if record.best_epoch is not None:
            finals["best_epoch"] = record.best_epoch
        finals.update((record.user_attrs or {}).get("metrics") or {})  # e.g. cv_fold_0, cv_std
        self.rows.extend(metric_rows(finals, max(len(record.epochs) - 1, 0)))
        outcome: dict[str, Any] = {"state": record.state}
        if record.error:
            outcome["error"] = record.error[:MAX_ERROR]
        if record.injected:
            lines = (f"{i}" + ("" if i.applied else " (not applied)") for i in record.injected)
            outcome["injected"] = "\n".join(lines)
        if record.framework:
            outcome["regtuner.framework"] = record.framework
        self.text, self.lookup = record.traceback, self.lookup or lookup
        self.released, self.outcome = len(self.rows), _tags(outcome)
        if record.state != "failed":
            self.status = "FINISHED"
        else:
            self.status = "KILLED" if is_interrupted(record.error) else "FAILED"

    def kill(self) -> None:
        """The study ended before this trial did."""
        self.released, self.outcome, self.status = len(self.rows), {"state": "killed"}, "KILLED"


@dataclass
class StudyRun:
    """The study run and its trial runs (by number)."""

    uid: str  # tag regtuner.uid: found again on resume
    experiment: str
    name: str | None = None  # None: this copy never writes the study run itself (Tune's driver on a head)
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    space: str = ""
    reopen: bool = False  # a resumed study: mark the run RUNNING, close the trial runs left RUNNING
    lookup: bool = False
    run_id: str | None = None
    experiment_id: str | None = None
    opened: bool = False
    started: int = field(default_factory=now)
    trials: dict[int, TrialRun] = field(default_factory=dict)
    extra_tags: dict[str, str] = field(default_factory=dict)  # to add to the study run
    summary: dict[str, Any] | None = None  # {"rows", "tags", "report"} once the study ended
    files: list[dict[str, Any]] = field(default_factory=list)  # staged artifacts and models to upload
    status: str | None = None
    done: bool = False

    def start(self, info: StudyInfo, *, resume: bool) -> None:
        self.name, self.experiment = info.study_name, info.experiment or self.experiment
        self.tags, self.space, self.reopen = study_tags(info), info.space_yaml, resume
        self.params = params_to_strings({**flatten(info.settings), "space": info.space_name})

    def trial(self, number: int) -> TrialRun:
        trial = self.trials.get(number)
        if trial is None:
            tags = {"regtuner.role": "trial", "regtuner.trial": str(number), "state": "running"}
            if self.name is not None or "regtuner.study" in self.tags:
                tags["regtuner.study"] = cut(self.name or self.tags["regtuner.study"], MAX_TAG_VALUE)
            trial = self.trials[number] = TrialRun(number, tags)
        return trial

    def end(self, summary: StudySummary, status: str) -> None:
        """The study's results (best values, test and baseline scores, report) and its end status."""
        metrics = objective_metrics("best_objective", summary.best_values)
        for name, value in summary.test_scores.items():
            metrics[name if name.startswith("test_") else f"test_{name}"] = value
        metrics.update({f"trials_{state}": count for state, count in summary.counts.items()})
        metrics.update(summary.extra_metrics)
        # tags, not params: a resumed study may choose another configuration, and MLflow params never change
        tags: dict[str, Any] = params_to_strings({f"best.{k}": v for k, v in summary.best_params.items()})
        # baselines as tags too: as metrics, MLflow's chart view would show them before any trial curve
        for baseline, named in summary.baseline_scores.items():
            tags.update({f"baseline.{baseline}.{k}": f"{v:.6g}" for k, v in named.items()})
        if summary.best_trial is not None:
            tags["regtuner.best_trial"] = str(summary.best_trial)
        tags["regtuner.chosen"] = summary.chosen
        self.summary = {"rows": metric_rows(metrics, 0), "tags": _tags(tags), "report": summary.report}
        self.status = status

    @property
    def pending(self) -> bool:
        if self.done:
            return False
        if self.name is not None and not self.opened:
            return True
        trials = any(t.pending for t in self.trials.values())
        return bool(self.extra_tags or self.files or self.status or trials)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def skeleton(self) -> dict[str, Any]:
        """The run without its trials and the parts :func:`take_changes` ships (a worker's first state)."""
        return {**self.to_json(), "trials": {}, "extra_tags": {}, "summary": None, "files": []}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StudyRun:
        values = dict(data)
        trials = values.pop("trials", {}) or {}
        study = cls(**values)
        study.trials = {int(n): TrialRun(**t) for n, t in trials.items()}
        return study


def take_changes(study: StudyRun, numbers: set[int], fresh: set[int], head: bool) -> dict[str, Any]:
    """What a replica needs since the last call: the study's head (``head``), the trials ``numbers``
    (``fresh``: replaced by a restore). Released rows, added tags, files and the summary move out of
    ``study``: the replica's worker sends them."""
    change: dict[str, Any] = {"study": {k: getattr(study, k) for k in _STUDY_HEAD}} if head else {}
    if study.extra_tags:
        change["extra_tags"], study.extra_tags = study.extra_tags, {}
    if study.files:
        change["files"], study.files = study.files, []
    if study.summary is not None:
        change["summary"], study.summary = study.summary, None
    trials = change["trials"] = {}
    for number in numbers:
        trial = study.trials[number]
        rows, trial.rows, trial.released = trial.rows[: trial.released], trial.rows[trial.released :], 0
        part = {key: getattr(trial, key) for key in _TRIAL_HEAD}
        trials[number] = {**part, "rows": rows, "fresh": number in fresh}
    return change


def merge(study: StudyRun, change: Mapping[str, Any]) -> None:
    """Apply a :func:`take_changes` result to a replica."""
    for key, value in change.get("study", {}).items():
        setattr(study, key, value)
    study.extra_tags.update(change.get("extra_tags", {}))
    study.files.extend(change.get("files", []))
    if change.get("summary") is not None:
        study.summary = change["summary"]
    for number, part in change.get("trials", {}).items():
        number = int(number)
        trial = study.trials.get(number)
        if trial is None or part["fresh"]:
            trial = study.trials[number] = TrialRun(number, part["tags"])
        for key in _TRIAL_HEAD:
            setattr(trial, key, part[key])
        trial.rows.extend(part["rows"])
        trial.released = len(trial.rows)

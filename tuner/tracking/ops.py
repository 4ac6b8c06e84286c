"""Operations a tracker queues for its worker, built from what the study reports (pure functions).

An operation is a JSON-able dict (see :mod:`tuner.tracking.spool`); runs are named by UID. Metric rows are
``[key, value, timestamp ms, step]``: the timestamp is fixed when the row is made, so a row sent twice
(a replay after a lost answer) is stored once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
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
from tuner.tracking.spool import stage

__all__ = [
    "now",
    "metric_rows",
    "study_tags",
    "study_ops",
    "trial_outcome",
    "trial_tags",
    "trial_create_op",
    "TrialBuffer",
    "trial_status",
    "restore_op",
    "summary_ops",
    "coalesce",
    "describe",
]

MAX_TAG_VALUE, MAX_ERROR = 8000, 5000


class PermanentError(Exception):
    """Sending this operation can never succeed (unknown run, bad value): drop it, do not retry."""


def now() -> int:
    """Milliseconds since the epoch, as MLflow stamps metrics and run end times."""
    return int(time.time() * 1000)


def metric_rows(values: Mapping[str, Any], step: int) -> list[list[Any]]:
    """``[key, value, timestamp ms, step]`` rows; values that are not numbers are left out."""
    stamp = now()
    out = []
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        out.append([metric_key(key), number, stamp, int(step)])
    return out


def study_tags(info: StudyInfo) -> dict[str, str]:
    """The study run's tags: what was searched, how, on which data, by which version."""
    tags = {"regtuner.role": "study", "regtuner.study": info.study_name, "regtuner.task": info.task}
    tags.update({"regtuner.executor": info.executor, "regtuner.fingerprint": info.fingerprint})
    tags.update(
        {"regtuner.objective": ",".join(info.objective), "regtuner.direction": ",".join(info.directions)}
    )
    tags["regtuner.version"] = info.version
    tags["regtuner.space"] = info.space_name
    if info.framework:
        tags["regtuner.framework"] = info.framework
    return {k: cut(v, MAX_TAG_VALUE) for k, v in tags.items()}


def study_ops(uid: str, info: StudyInfo, experiment: str, *, resume: bool) -> list[dict[str, Any]]:
    """Create (or, resuming, reopen) the study run with its tags, budget params and space.yaml."""
    tags = study_tags(info)
    create = {"op": "create", "run": uid, "experiment": info.experiment or experiment,
              "name": info.study_name, "tags": tags, "parent": None, "time": now()}  # fmt: skip
    params = params_to_strings({**flatten(info.settings), "space": info.space_name})
    if resume:  # params and space.yaml serve when the study run never reached the store
        reopen = {"op": "reopen", "run": uid, "experiment": create["experiment"], "tags": tags}
        return [{**reopen, "create": create, "params": params, "space": info.space_yaml}]
    ops = [create, {"op": "log", "run": uid, "params": params}]
    if info.space_yaml:
        ops.append({"op": "text", "run": uid, "text": info.space_yaml, "path": "space.yaml"})
    return ops


def trial_outcome(record: TrialRecord) -> tuple[dict[str, Any], dict[str, str]]:
    """A finished trial's final metrics and its tags (state, error, what was injected)."""
    finals = objective_metrics("objective", record.values)
    finals.update(epochs_run=record.epochs_run, duration_s=record.duration)
    if record.best_epoch is not None:
        finals["best_epoch"] = record.best_epoch
    finals.update((record.user_attrs or {}).get("metrics") or {})  # e.g. cv_fold_0, cv_std
    tags: dict[str, str] = {"state": record.state}
    if record.error:
        tags["error"] = record.error[:MAX_ERROR]
    if record.injected:
        lines = (f"{i.knob}: {i.detail}" + ("" if i.applied else " (not applied)") for i in record.injected)
        tags["injected"] = "\n".join(lines)
    if record.framework:
        tags["regtuner.framework"] = record.framework
    return finals, tags


def trial_tags(number: int, study_name: str | None) -> dict[str, str]:
    """The tags a trial run is created with."""
    tags = {"regtuner.role": "trial", "regtuner.trial": str(number), "state": "running"}
    if study_name is not None:
        tags["regtuner.study"] = cut(study_name, MAX_TAG_VALUE)
    return tags


def trial_create_op(study_uid: str, number: int, experiment: str, study_name: str | None) -> dict[str, Any]:
    """The op that creates trial ``number``'s run under the study run."""
    op = {"op": "create", "run": f"{study_uid}.{number}", "experiment": experiment,
          "name": f"trial-{number:04d}", "tags": trial_tags(number, study_name), "parent": study_uid,
          "time": now()}  # fmt: skip
    return op


@dataclass
class TrialBuffer:
    """What a trial run has not queued yet: its params, and metric rows ``[key, value, time, step]``."""

    params: dict[str, str] = field(default_factory=dict)
    params_sent: bool = False
    epochs_sent: int = 0  # epochs [0, epochs_sent) are queued
    rows: list[list[Any]] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)

    def add(self, metrics: Mapping[str, Any], step: int) -> None:
        self.rows.extend(metric_rows(metrics, step))

    def take(self, uid: str, tags: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        """The ``log`` op of everything pending (None when there is nothing to send); empties the buffer."""
        op: dict[str, Any] = {"op": "log", "run": uid, "metrics": self.rows}
        if self.params and not self.params_sent:
            op["params"], self.params_sent = self.params, True
        if tags:
            op["tags"] = {k: cut(v, MAX_TAG_VALUE) for k, v in tags.items()}
        self.rows, self.last_flush = [], time.monotonic()
        return op if len(op) > 3 or op["metrics"] else None


def trial_status(record: TrialRecord) -> str:
    """The MLflow status a trial's run ends with: KILLED for a trial its process never finished."""
    if record.state != "failed":
        return "FINISHED"
    return "KILLED" if is_interrupted(record.error) else "FAILED"


def restore_op(
    study_uid: str, record: TrialRecord, experiment: str, study_name: str | None
) -> dict[str, Any]:
    """An ``ensure`` operation: trial ``record`` ends as exactly one run under the study run, whatever of
    it reached the store before its process died (see :mod:`tuner.tracking.restore`)."""
    finals, outcome = trial_outcome(record)
    rows = [row for step, epoch in enumerate(record.epochs) for row in metric_rows(epoch, step)]
    rows += metric_rows(finals, max(len(record.epochs) - 1, 0))
    tags = {**trial_tags(record.number, study_name), **outcome}
    return {
        "op": "ensure", "run": f"{study_uid}.{record.number}", "parent": study_uid, "experiment": experiment,
        "name": f"trial-{record.number:04d}", "tags": {k: cut(v, MAX_TAG_VALUE) for k, v in tags.items()},
        "params": params_to_strings(record.params), "metrics": rows, "status": trial_status(record),
        "text": record.traceback, "time": now(),
    }  # fmt: skip


def summary_ops(uid: str, summary: StudySummary, spool_directory: str) -> list[dict[str, Any]]:
    """The study's results on its run: best values, test and baseline scores, report, artifacts."""
    metrics = objective_metrics("best_objective", summary.best_values)
    for name, value in summary.test_scores.items():
        metrics[name if name.startswith("test_") else f"test_{name}"] = value
    for state, count in summary.counts.items():
        metrics[f"trials_{state}"] = count
    metrics.update(summary.extra_metrics)
    # tags, not params: a resumed study may choose another configuration, and MLflow params never change
    best = params_to_strings({f"best.{k}": v for k, v in summary.best_params.items()})
    # baselines as tags too: as metrics, MLflow's chart view would show them before any trial curve
    scores = summary.baseline_scores.items()
    baselines = {f"baseline.{b}.{k}": f"{v:.6g}" for b, named in scores for k, v in named.items()}
    tags = {k: cut(v, MAX_TAG_VALUE) for k, v in {**best, **baselines}.items()}
    if summary.best_trial is not None:
        tags["regtuner.best_trial"] = str(summary.best_trial)
    tags["regtuner.chosen"] = summary.chosen
    ops: list[dict[str, Any]] = [
        {"op": "log", "run": uid, "metrics": metric_rows(metrics, 0), "params": {}, "tags": tags}
    ]
    if summary.report:
        ops.append({"op": "text", "run": uid, "text": summary.report, "path": "report.txt"})
    for artifact_path, local in summary.artifacts.items():
        name = os.path.basename(artifact_path.rstrip("/"))
        staged = stage(local, spool_directory)  # a copy: the caller may delete its files at once
        if staged.name != name:
            staged = staged.rename(staged.with_name(name))
        dest = os.path.dirname(artifact_path.rstrip("/")) or None
        ops.append({"op": "artifact", "run": uid, "path": str(staged), "dest": dest})
    return ops


def coalesce(ops: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge adjacent ``log`` operations of the same run into one (fewer requests, same result)."""
    out: list[dict[str, Any]] = []
    for op in ops:
        last = out[-1] if out else None
        if op["op"] == "log" and last is not None and last["op"] == "log" and last["run"] == op["run"]:
            merged = dict(last)
            merged["metrics"] = [*last.get("metrics", ()), *op.get("metrics", ())]
            merged["params"] = {**last.get("params", {}), **op.get("params", {})}
            merged["tags"] = {**last.get("tags", {}), **op.get("tags", {})}
            out[-1] = merged
        else:
            out.append(op)
    return out


def describe(op: Mapping[str, Any]) -> str:
    """What an operation does, in words for a warning."""
    return {
        "create": "create a run",
        "reopen": "reopen the study run",
        "log": "log a batch",
        "text": "log a text artifact",
        "artifact": "log an artifact",
        "model": "log the model",
        "end": "close a run",
        "ensure": "restore a trial run",
    }.get(str(op.get("op")), f"send {op.get('op')!r}")

"""Immutable records that trials produce and observers (tracking, report) read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["TaskInfo", "Injection", "TrialRecord", "TrialState", "STATES", "INTERRUPTED", "is_interrupted"]

TrialState = Literal["complete", "pruned", "failed"]
STATES: tuple[str, ...] = ("complete", "pruned", "failed")

#: error of a failed trial whose process stopped before it finished (a kill, a lost node)
INTERRUPTED = "interrupted: the process running this trial stopped before the trial finished"


def is_interrupted(error: str | None) -> bool:
    """True for the error of a trial that :data:`INTERRUPTED` describes."""
    return (error or "").startswith("interrupted")


@dataclass(frozen=True)
class TaskInfo:
    """What the target looks like: ``kind`` is binary, multiclass or regression."""

    kind: Literal["binary", "multiclass", "regression"]
    n_classes: int = 0  # 0 for regression
    classes: tuple[Any, ...] = ()  # original labels, index = encoded label
    n_outputs: int = 1  # regression targets per row
    input_kind: Literal["tabular", "image", "sequence"] = "tabular"
    input_shape: tuple[int, ...] = ()  # one row, without the batch axis

    @property
    def is_classification(self) -> bool:
        return self.kind != "regression"


@dataclass(frozen=True)
class Injection:
    """What the adapter did to a model for one knob, in words a user reads."""

    knob: str
    applied: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.knob}: {self.detail}"


@dataclass(frozen=True)
class TrialRecord:
    """Everything a finished trial leaves behind. Per-epoch metrics are keyed by name."""

    number: int
    params: Mapping[str, Any]
    state: TrialState
    values: tuple[float, ...] | None = None
    epochs: tuple[Mapping[str, float], ...] = ()
    best_epoch: int | None = None
    injected: tuple[Injection, ...] = ()
    error: str | None = None
    traceback: str | None = None
    duration: float = 0.0
    framework: str | None = None
    user_attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def epochs_run(self) -> int:
        return len(self.epochs)

    @property
    def best_metrics(self) -> Mapping[str, float]:
        if self.best_epoch is None or not self.epochs:
            return {}
        return self.epochs[self.best_epoch]

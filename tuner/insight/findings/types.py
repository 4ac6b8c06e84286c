"""What the diagnosis rules read (:class:`Evidence`) and what they return (:class:`Finding`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tuner.records import TaskInfo, TrialRecord
from tuner.trial.objectives import Objective

if TYPE_CHECKING:
    from tuner.insight.baselines import Baseline

__all__ = ["KINDS", "Finding", "Evidence"]

KINDS: tuple[str, ...] = (
    "overfitting",
    "underfitting",
    "no_gain_over_linear",
    "loss_metric_divergence",
    "leakage",
    "lr_sensitivity",
    "important_knobs",
    "augmentation_hurt",
    "high_optimism",
    "at_chance",
    "worse_than_untuned",
    "epoch_budget",
)


@dataclass(frozen=True)
class Finding:
    """One diagnosis: what was found, the numbers that show it, and what to do about it."""

    kind: str
    summary: str
    evidence: Mapping[str, Any]
    suggestion: str
    severity: Literal["warning", "info"] = "warning"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "suggestion": self.suggestion,
        }

    def __str__(self) -> str:
        return f"[{self.kind}] {self.summary} Suggestion: {self.suggestion}"


@dataclass
class Evidence:
    """What the rules read. ``validation`` is the chosen configuration's validation estimate."""

    task: TaskInfo
    objective: Objective
    records: list[TrialRecord]
    chosen: TrialRecord
    validation: dict[str, float]
    test: dict[str, float] = field(default_factory=dict)
    test_se: dict[str, float] = field(default_factory=dict)
    baselines: list[Baseline] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    importances: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)  # searched float ranges
    y_train: np.ndarray | None = None
    y_test: np.ndarray | None = None
    standard_loss: bool = True  # the trials' loss is log loss / MSE (not a custom loss)
    cv: int | None = None
    max_epochs: int | None = None  # the study's epoch budget per trial

    def baseline(self, name: str) -> Baseline | None:
        return next((b for b in self.baselines if b.name == name and b.ok), None)

    @property
    def complete(self) -> list[TrialRecord]:
        return [r for r in self.records if r.state == "complete" and r.values]

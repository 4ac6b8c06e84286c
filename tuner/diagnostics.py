"""Diagnosis: what the study's numbers say about the model, each finding with its evidence.

:func:`diagnose` runs every rule in :mod:`tuner._findings` on an :class:`Evidence` (trials,
baselines, the chosen configuration's validation and test scores, split duplicates, parameter
importances) and returns a list of :class:`Finding`. A finding names its ``kind``, states the
``evidence`` in numbers, and gives a concrete ``suggestion``. Kinds and their rules:

======================  =============================================================================
kind                    present when
======================  =============================================================================
overfitting             on the untuned model's or the chosen trial's curve, after the best validation
                        epoch the validation loss rose >= 5 %, the training loss kept falling and the
                        gap grew
underfitting            train and validation loss of the chosen trial are both >= 80 % of the loss of
                        predicting the class prior / the mean
no_gain_over_linear     no trial's validation loss is >= 2 % below the linear baseline's
loss_metric_divergence  validation loss rose >= 10 % after its minimum while validation accuracy
                        held (within 0.5 points) or improved: over-confidence
leakage                 rows of validation/test (or, with cv, of different folds) are exact copies of
                        training rows; or train and validation loss match within 2 % (median) while
                        the test loss is clearly worse
lr_sensitivity          learning-rate importance >= 0.3 and the median objective differs >= 10 %
                        between the lowest and highest third of the sampled learning rates
important_knobs         parameter importances are known and the objective spreads >= 5 % over trials
augmentation_hurt       trials with augmentation have a median objective >= 5 % worse than those
                        without, and the best one is worse too
high_optimism           validation estimate above the test score by more than 2 test standard errors
                        (and more than 0.02 for bounded metrics, 5 % for losses)
at_chance               the test accuracy is within 2 standard errors of the majority class (R² of 0
                        for regression)
======================  =============================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tuner.objectives import Objective
from tuner.records import TaskInfo, TrialRecord

if TYPE_CHECKING:
    from tuner.baselines import Baseline

__all__ = ["Finding", "Evidence", "diagnose", "KINDS", "parameter_importances", "duplicate_rows"]

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

    def baseline(self, name: str) -> Baseline | None:
        return next((b for b in self.baselines if b.name == name and b.ok), None)

    @property
    def complete(self) -> list[TrialRecord]:
        return [r for r in self.records if r.state == "complete" and r.values]


def diagnose(ev: Evidence) -> list[Finding]:
    """Every finding the rules see in ``ev``, warnings first."""
    from tuner._findings import RULES

    found: list[Finding] = []
    for rule in RULES:
        found.extend(rule(ev))
    return sorted(found, key=lambda f: (f.severity != "warning", KINDS.index(f.kind)))


def parameter_importances(study: Any, objective: Objective) -> dict[str, float]:
    """Optuna's fANOVA importances of the searched parameters for the primary objective ({} if unknown)."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 4:
        return {}
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=32, seed=0)
        target = (lambda t: t.values[0]) if objective.is_multi else None
        values = optuna.importance.get_param_importances(study, evaluator=evaluator, target=target)
    except Exception:  # noqa: BLE001 - too few distinct values, dynamic spaces: no importances
        return {}
    return {k: float(v) for k, v in values.items() if np.isfinite(v)}


def duplicate_rows(X: np.ndarray) -> int:
    """How many rows of ``X`` repeat an earlier row exactly (copies that would straddle cv folds)."""
    if len(X) < 2:
        return 0
    rows = np.ascontiguousarray(X.reshape(len(X), -1)) + np.float32(0.0)  # -0.0 counts as 0.0
    view = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    return int(len(view) - len(np.unique(view)))

"""Diagnosis: what the study's numbers say about the model, each finding with its evidence.

:func:`diagnose` runs every rule in :mod:`tuner.insight.findings` on an :class:`Evidence` (trials,
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
                        for regression), or below it
worse_than_untuned      the chosen configuration's test accuracy (R²) is below the untuned model's by
                        more than 2 standard errors of the difference and more than 0.02
epoch_budget            the chosen trial, or 2 of the 3 leading trials, ran all max_epochs and had
                        their best epoch in the last tenth of them (suggests 2 x max_epochs)
======================  =============================================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tuner.insight.findings import RULES
from tuner.insight.findings.types import KINDS, Evidence, Finding
from tuner.trial.objectives import Objective

__all__ = ["Finding", "Evidence", "diagnose", "KINDS", "parameter_importances", "duplicate_rows"]


def diagnose(ev: Evidence) -> list[Finding]:
    """Every finding the rules see in ``ev``, warnings first."""
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
    if X.dtype == object:  # a raw table: rows compared by their text (a gap equals a gap)
        return int(len(X) - len(np.unique(X.reshape(len(X), -1).astype(str), axis=0)))
    rows = np.ascontiguousarray(X.reshape(len(X), -1)) + np.float32(0.0)  # -0.0 counts as 0.0
    view = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    return int(len(view) - len(np.unique(view)))

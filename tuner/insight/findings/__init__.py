"""The diagnosis rules (see :mod:`tuner.insight.diagnostics` for the table of kinds and thresholds)."""

from __future__ import annotations

from collections.abc import Callable

from tuner.insight.findings.curves import divergence, overfitting
from tuner.insight.findings.fit import epoch_budget, no_gain_over_linear, underfitting
from tuner.insight.findings.honesty import at_chance, high_optimism, worse_than_untuned
from tuner.insight.findings.leakage import leakage
from tuner.insight.findings.search import augmentation_hurt, important_knobs, lr_sensitivity

__all__ = ["RULES"]

RULES: tuple[Callable, ...] = (
    overfitting,
    underfitting,
    no_gain_over_linear,
    divergence,
    leakage,
    lr_sensitivity,
    important_knobs,
    augmentation_hurt,
    high_optimism,
    at_chance,
    worse_than_untuned,
    epoch_budget,
)

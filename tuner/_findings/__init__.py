"""The diagnosis rules (see :mod:`tuner.diagnostics` for the table of kinds and thresholds)."""

from __future__ import annotations

from collections.abc import Callable

from tuner._findings.curves import divergence, overfitting
from tuner._findings.fit import no_gain_over_linear, underfitting
from tuner._findings.honesty import at_chance, high_optimism
from tuner._findings.leakage import leakage
from tuner._findings.search import augmentation_hurt, important_knobs, lr_sensitivity

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
)

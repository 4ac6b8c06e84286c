"""Objectives: from one epoch's metrics to the value(s) the search optimizes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tuner.errors import ConfigError
from tuner.records import TaskInfo
from tuner.trial.metrics import DIRECTIONS, available_metrics

__all__ = ["Objective", "parse_objective", "GAP_PENALTY", "BASELINE_MARGIN", "BASELINE_SE", "choose_pareto"]

#: ``gap_penalized = val_loss + GAP_PENALTY * max(0, val_loss - train_loss)``
GAP_PENALTY = 0.5
#: The chosen trial replaces the untuned model or the textbook recipe only when better on validation
#: by more than this fraction of their objective ...
BASELINE_MARGIN = 0.02
#: ... and by more than this many standard errors of that gain (the one-standard-error rule: prefer the
#: model the user knows unless the search's gain is beyond the noise; tuner/insight/selection.py).
#: Both measured on the wide benchmark, 99 splits at two budgets (benchmarks/README.md).
BASELINE_SE = 1.0


@dataclass(frozen=True)
class Objective:
    """One or more objective names with their Optuna directions."""

    names: tuple[str, ...]
    directions: tuple[str, ...]

    @property
    def is_multi(self) -> bool:
        return len(self.names) > 1

    @property
    def primary(self) -> str:
        return self.names[0]

    def values(self, metrics: Mapping[str, float]) -> tuple[float, ...]:
        return tuple(_value(name, metrics) for name in self.names)

    def improves(self, new: float, best: float | None, min_delta: float = 0.0) -> bool:
        """True when ``new`` beats ``best`` on the primary objective by more than ``min_delta``."""
        if best is None or not math.isfinite(best):
            return math.isfinite(new)
        if self.directions[0] == "minimize":
            return new < best - min_delta
        return new > best + min_delta


def _value(name: str, metrics: Mapping[str, float]) -> float:
    if name == "gap_penalized":
        return metrics["val_loss"] + GAP_PENALTY * max(0.0, metrics["gap"])
    return float(metrics[name])


def parse_objective(objective: str | Sequence[str], task: TaskInfo) -> Objective:
    """Validate ``objective=`` for ``task``; a list gives a Pareto (multi-objective) search."""
    if not isinstance(objective, (str, Sequence)):
        raise ConfigError(
            f"objective must be a name such as 'val_loss' or a list of names, got {objective!r}."
        )
    names = [objective] if isinstance(objective, str) else list(objective)
    if not names:
        raise ConfigError("objective is an empty list; give one name such as 'val_loss' or several.")
    allowed = ["val_loss", "gap_penalized"] + [f"val_{m}" for m in available_metrics(task)]
    directions = []
    for name in names:
        if not isinstance(name, str) or name not in allowed:
            raise ConfigError(
                f"objective {name!r} is not known for a {task.kind} task; "
                f"choose from {allowed} (or a list of them for a Pareto search)."
            )
        metric = name[4:] if name.startswith("val_") else "loss"
        directions.append(DIRECTIONS[metric])
    if len(set(names)) != len(names):
        raise ConfigError(f"objective lists a name twice: {names}.")
    return Objective(tuple(names), tuple(directions))


def choose_pareto(values: Sequence[Sequence[float]], directions: Sequence[str]) -> int:
    """Index of the front member closest to the utopia point.

    Each objective is min-max normalized over the front (flipped so lower is better);
    the chosen point minimizes the Euclidean distance to the all-zero corner.
    """
    v = np.asarray(values, dtype=np.float64)
    sign = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    v = v * sign
    lo, hi = v.min(axis=0), v.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    dist = np.sqrt((((v - lo) / span) ** 2).sum(axis=1))
    return int(np.argmin(dist))

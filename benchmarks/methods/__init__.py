"""The compared methods. Each is one function ``(split, budget, seed, framework) -> Row``.

Every method sees the same :class:`~benchmarks.tasks.Split` for a seed, trains at most
``budget.n_trials`` configurations of at most ``budget.max_epochs`` epochs each (so at most
``n_trials * max_epochs`` epochs in all), selects on the validation part only, and is scored
once on the test part. ``reported_val`` is the method's own validation estimate of the chosen
configuration (the number a user of that tool would quote), so optimism can be compared.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks.tasks import Split

__all__ = ["Row", "Budget", "METHODS", "get_method", "TUNING_PEERS", "OURS"]


@dataclass(frozen=True)
class Budget:
    n_trials: int = 8
    max_epochs: int = 30

    @property
    def epoch_cap(self) -> int:
        return self.n_trials * self.max_epochs


@dataclass
class Row:
    """One (task, method, seed) measurement; ``metric`` is accuracy or r2 (higher is better)."""

    task: str
    method: str
    seed: int
    framework: str
    metric: str
    test_metric: float | None
    reported_val: float | None
    wall_s: float
    epochs_trained: int
    trials: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Method = Callable[[Split, Budget, int, str], Row]

# name -> "module:function"; modules load lazily so a missing peer library only fails its own rows
_REGISTRY: dict[str, str] = {
    "regtuner": "benchmarks.methods.ours:regtuner_zero_arg",
    "regtuner_hp": "benchmarks.methods.ours:regtuner_hp",
    "regtuner_kt": "benchmarks.methods.ours:regtuner_kt",
    "regtuner_auto": "benchmarks.methods.ours:regtuner_auto",
    "regtuner_noprune": "benchmarks.methods.ours:regtuner_noprune",
    "regtuner_prune5": "benchmarks.methods.ours:regtuner_prune5",
    "regtuner_nopruner": "benchmarks.methods.ours:regtuner_nopruner",
    "regtuner_patient": "benchmarks.methods.ours:regtuner_patient",
    "regtuner_hyperband": "benchmarks.methods.ours:regtuner_hyperband",
    "regtuner_halving": "benchmarks.methods.ours:regtuner_halving",
    "regtuner_sobol_start": "benchmarks.methods.sobol_start:regtuner_sobol_start",
    "regtuner_user_start": "benchmarks.methods.ours:regtuner_user_start",
    "regtuner_pat10": "benchmarks.methods.ours:regtuner_pat10",
    "regtuner_start_d02": "benchmarks.methods.ours:regtuner_start_d02",
    "regtuner_start_fast": "benchmarks.methods.ours:regtuner_start_fast",
    "regtuner_no_start": "benchmarks.methods.ours:regtuner_no_start",
    "regtuner_smooth_select": "benchmarks.methods.ours:regtuner_smooth_select",
    "regtuner_open": "benchmarks.methods.ours:regtuner_open",
    "untuned": "benchmarks.methods.ours:untuned",
    "textbook": "benchmarks.methods.ours:textbook",
    "optuna_tpe": "benchmarks.methods.optuna_tpe:optuna_tpe",
    "keras_tuner": "benchmarks.methods.keras_tuner:keras_tuner_hyperband",
    "ray_tune": "benchmarks.methods.ray_tune:ray_tune_default",
    "hgb": "benchmarks.methods.references:hist_gradient_boosting",
    "linear": "benchmarks.methods.references:linear_model",
}
METHODS: tuple[str, ...] = tuple(_REGISTRY)
OURS = ("regtuner", "regtuner_hp")
TUNING_PEERS = ("optuna_tpe", "keras_tuner", "ray_tune")


def get_method(name: str) -> Method:
    try:
        module, func = _REGISTRY[name].split(":")
    except KeyError:
        raise SystemExit(f"unknown method {name!r}; choose from {', '.join(METHODS)}") from None
    return getattr(importlib.import_module(module), func)

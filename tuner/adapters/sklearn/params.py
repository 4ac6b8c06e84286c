"""How the scikit-learn adapter finds and sets an estimator's regularization parameters.

The ``l2`` knob means the same in every adapter: the strength ``l2`` of a penalty
``l2 * ||w||^2`` added to the *mean* training loss (what Keras' ``L2(l2)`` adds). Estimators
scale their own parameter differently (Ridge sums its loss over the rows, LogisticRegression
puts ``C`` on the loss, the MLP divides ``alpha`` by the batch size), so :data:`PENALTIES`
converts ``l2`` into each known estimator's parameter. That keeps the presets' ``l2`` ranges
meaningful for scikit-learn models too: with 1,000 rows, ``l2`` from 1e-7 to 1e-2 gives
Ridge ``alpha`` from 1e-4 to 10 and LogisticRegression ``C`` from 0.05 to 5,000. An estimator
not in the table gets ``alpha = l2`` or ``C = 1 / l2`` as is, and its record says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PENALTIES", "Penalty", "final_step", "penalty_for", "is_mlp", "route"]

#: class name -> (parameter, factor, scale): ``alpha = factor * l2 * scale`` or
#: ``C = 1 / (factor * l2 * scale)``; scale "n" is the number of training rows, "batch" the
#: MLP's batch size, "" none.
PENALTIES: dict[str, tuple[str, float, str]] = {
    # mean loss per batch + alpha / (2 * batch) * ||W||^2 (the regressor's loss is MSE / 2)
    "MLPClassifier": ("alpha", 2.0, "batch"),
    "MLPRegressor": ("alpha", 1.0, "batch"),
    # sum of losses + alpha * ||w||^2
    "Ridge": ("alpha", 1.0, "n"),
    "RidgeClassifier": ("alpha", 1.0, "n"),
    "KernelRidge": ("alpha", 1.0, "n"),
    "HuberRegressor": ("alpha", 1.0, "n"),
    # C * sum of losses + ||w||^2 / 2
    "LogisticRegression": ("C", 2.0, "n"),
    "SVC": ("C", 2.0, "n"),
    "SVR": ("C", 2.0, "n"),
    "NuSVR": ("C", 2.0, "n"),
    "LinearSVC": ("C", 2.0, "n"),
    "LinearSVR": ("C", 2.0, "n"),
    # mean loss + alpha * ||w||^2 / 2 (SGDRegressor's squared error is halved)
    "SGDClassifier": ("alpha", 2.0, ""),
    "SGDRegressor": ("alpha", 1.0, ""),
    "PoissonRegressor": ("alpha", 1.0, ""),
    "GammaRegressor": ("alpha", 1.0, ""),
    "TweedieRegressor": ("alpha", 1.0, ""),
    # MSE / 2 + alpha * penalty: the same strength on the mean squared error
    "Lasso": ("alpha", 0.5, ""),
    "ElasticNet": ("alpha", 0.5, ""),
    "LassoLars": ("alpha", 0.5, ""),
    "MultiTaskLasso": ("alpha", 0.5, ""),
    "MultiTaskElasticNet": ("alpha", 0.5, ""),
}
#: parameter names that count as regularization parameters when found by name
REGULARIZATION_NAMES = ("alpha", "C", "l1_ratio")


@dataclass(frozen=True)
class Penalty:
    """Where ``l2`` goes on one estimator and how it converts."""

    param: str  # "alpha" or "C"
    factor: float
    scale: str  # "n", "batch" or ""
    known: bool  # False: set as is (alpha = l2, C = 1 / l2)

    def value(self, l2: float, n: int, batch: int) -> float:
        size = {"n": n, "batch": batch}.get(self.scale, 1)
        strength = self.factor * l2 * size
        if self.param == "C":
            return float("inf") if strength == 0 else 1.0 / strength
        return strength

    def formula(self) -> str:
        scale = {"n": " * n_train", "batch": " * batch_size"}.get(self.scale, "")
        factor = "" if self.factor == 1.0 else f"{self.factor:g} * "
        inner = f"{factor}l2{scale}"
        return f"C = 1 / ({inner})" if self.param == "C" else f"alpha = {inner}"


def final_step(est: Any) -> tuple[str, Any, list[Any]]:
    """``(prefix, final estimator, transformers before it)`` of ``est``, looking inside Pipelines.

    ``prefix`` is the ``set_params`` path to the final step (``"clf__"``), "" for a bare estimator.
    """
    prefix, before = "", []
    while hasattr(est, "steps") and isinstance(est.steps, list) and est.steps:
        name, last = est.steps[-1]
        before.extend(step for _, step in est.steps[:-1] if step not in (None, "passthrough"))
        prefix, est = f"{prefix}{name}__", last
    return prefix, est, before


def is_mlp(est: Any) -> bool:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    return isinstance(est, (MLPClassifier, MLPRegressor))


def penalty_for(est: Any) -> Penalty | None:
    """The penalty parameter of ``est`` (its class, then its parents, in :data:`PENALTIES`), by name."""
    names = est.get_params(deep=False)
    for cls in type(est).__mro__:
        entry = PENALTIES.get(cls.__name__)
        if entry is not None and entry[0] in names:
            return Penalty(*entry, known=True)
    if "alpha" in names and _numeric(names["alpha"]):
        return Penalty("alpha", 1.0, "", known=False)
    if "C" in names and _numeric(names["C"]):
        return Penalty("C", 1.0, "", known=False)
    return None


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def route(est: Any, prefix: str, name: str) -> str | None:
    """The ``set_params`` path of a declared hyperparameter ``name`` on ``est``, or None.

    A full path (``"clf__max_depth"``) is used as is; a bare name goes to the final step.
    """
    params: Mapping[str, Any] = est.get_params(deep=True)
    if name in params:
        return name
    if f"{prefix}{name}" in params:
        return f"{prefix}{name}"
    return None

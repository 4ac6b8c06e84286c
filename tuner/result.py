"""What ``tune()`` returns: the chosen settings, the honest scores, every trial."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.objectives import Objective
from tuner.records import TaskInfo, TrialRecord

if TYPE_CHECKING:
    import optuna
    import pandas as pd

__all__ = ["Result", "trials_frame"]


def trials_frame(records: Sequence[TrialRecord], objective: Objective) -> pd.DataFrame:
    """One row per trial: number, state, objective value(s), params, epochs, duration, error."""
    import pandas as pd

    rows = []
    for r in records:
        row: dict[str, Any] = {"number": r.number, "state": r.state}
        values = r.values or (None,) * len(objective.names)
        if objective.is_multi:
            row.update({f"value_{n}": v for n, v in zip(objective.names, values, strict=True)})
        else:
            row["value"] = values[0]
        row.update({f"params_{k}": v for k, v in r.params.items()})
        row["epochs"] = r.epochs_run
        row["best_epoch"] = r.best_epoch
        for key in ("train_loss", "val_loss", "gap"):
            row[key] = r.best_metrics.get(key)
        row["duration"] = r.duration
        row["framework"] = r.framework
        row["error"] = r.error
        rows.append(row)
    return pd.DataFrame(rows).sort_values("number").reset_index(drop=True) if rows else pd.DataFrame()


@dataclass
class Result:
    """The outcome of a study. ``best_value`` is the validation estimate; trust ``test_scores``."""

    best_params: dict[str, Any]
    best_value: float | tuple[float, ...]
    best_model: Any
    test_scores: dict[str, float]
    validation_scores: dict[str, float]
    trials: pd.DataFrame
    study: optuna.Study
    mlflow_run_id: str | None
    objective: Objective
    task: TaskInfo
    best_trial: int
    records: list[TrialRecord] = field(repr=False, default_factory=list)
    pareto_front: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def study_name(self) -> str:
        return self.study.study_name

    @property
    def counts(self) -> dict[str, int]:
        out = {"complete": 0, "pruned": 0, "failed": 0}
        for r in self.records:
            out[r.state] += 1
        return out

    def report(self) -> str:
        """A plain-text summary a person reads in a terminal."""
        c = self.counts
        obj = ", ".join(
            f"{n} ({d})" for n, d in zip(self.objective.names, self.objective.directions, strict=True)
        )
        lines = [
            f"Study {self.study_name!r}: {len(self.records)} trials "
            f"({c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed)",
            f"Task: {self.task.kind}, objective: {obj}",
            f"Chosen trial: #{self.best_trial}",
            "Chosen settings:",
        ]
        lines += [f"  {k} = {_fmt(v)}" for k, v in sorted(self.best_params.items())]
        lines.append(f"{'score':<14}{'validation':>12}{'test':>12}{'optimism':>12}")
        for name in sorted(set(self.validation_scores) | set(self.test_scores)):
            val, test = self.validation_scores.get(name), self.test_scores.get(name)
            opt = _optimism(name, val, test)
            lines.append(f"{name:<14}{_fmt(val):>12}{_fmt(test):>12}{_fmt(opt):>12}")
        if not self.test_scores:
            lines.append("No held-out test part (test=None): the validation score is optimistic.")
        best = next((r for r in self.records if r.number == self.best_trial), None)
        if best is not None and best.injected:
            lines.append("What regtuner applied to the model:")
            lines += [f"  {i}" for i in best.injected]
        failed = [r for r in self.records if r.state == "failed"]
        if failed:
            numbers = ", ".join(f"#{r.number}" for r in failed[:10])
            lines.append(f"Failed trials: {numbers}; first error: {failed[0].error}")
        lines += [f"Note: {n}" for n in self.notes]
        if self.mlflow_run_id:
            lines.append(f"MLflow parent run: {self.mlflow_run_id}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"Result(study={self.study_name!r}, best_value={self.best_value!r}, "
            f"test_scores={self.test_scores!r}, best_params={self.best_params!r})"
        )


_HIGHER_IS_BETTER = {"accuracy", "f1", "roc_auc", "r2"}


def _optimism(name: str, val: float | None, test: float | None) -> float | None:
    """How much better validation looked than test (positive = optimistic)."""
    if val is None or test is None:
        return None
    return val - test if name in _HIGHER_IS_BETTER else test - val


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def scores_from(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    """``{"val_loss": .., "val_accuracy": ..}`` -> ``{"loss": .., "accuracy": ..}``."""
    return {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}

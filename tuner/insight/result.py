"""What ``tune()`` returns: the chosen settings, the honest scores, every trial."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.errors import ConfigError, StudyAborted
from tuner.insight.plots import make_plots
from tuner.insight.report import render_markdown, render_text, write_html
from tuner.records import TaskInfo, TrialRecord
from tuner.trial.objectives import Objective

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from tuner.adapters.base import Adapter
    from tuner.data.prepare import PreparedData
    from tuner.insight.baselines import Baseline
    from tuner.insight.diagnostics import Finding
    from tuner.insight.selection import Selection

__all__ = ["Result", "trials_frame"]


def trials_frame(records: Sequence[TrialRecord], objective: Objective) -> pd.DataFrame:
    """One row per trial: number, state, objective value(s), params, epochs, duration, what each knob
    did to the model (``applied``; ``not_applied`` names the knobs it could not take), error."""
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
        # what each knob did to this trial's model, readable: "dropout: inserted 2 Dropout(0.3) ...; l2: ..."
        row["applied"] = "; ".join(f"{i.knob}: {i.detail}" for i in r.injected) or None
        row["not_applied"] = ", ".join(i.knob for i in r.injected if not i.applied) or None
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
    baselines: list[Baseline] = field(default_factory=list, repr=False)
    diagnosis: list[Finding] = field(default_factory=list, repr=False)
    importances: dict[str, float] = field(default_factory=dict)  # fANOVA, searched parameters
    test_std: dict[str, float] = field(default_factory=dict)  # spread over repeats (repeats > 1)
    test_se: dict[str, float] = field(default_factory=dict)  # standard error from the test rows
    test_repeats: list[dict[str, float]] = field(default_factory=list, repr=False)
    cv: dict[str, Any] | None = None  # the chosen trial's fold summary (cv=k)
    lr_range: Any = None  # LRRangeResult when tune(lr_range=True) ran one
    # what best_params and best_model are: "trial" (trial best_trial), or a neural baseline the study
    # trained anyway ("untuned", "textbook") that no trial beat on validation by more than its noise
    chosen: str = "trial"
    selection: Selection | None = None  # how ``chosen`` was decided (tuner/insight/selection.py)
    predictor: Adapter | None = field(default=None, repr=False)  # best_model's adapter
    data: PreparedData | None = field(default=None, repr=False)  # how new rows are read and labels decoded

    @property
    def study_name(self) -> str:
        return self.study.study_name

    @property
    def counts(self) -> dict[str, int]:
        out = {"complete": 0, "pruned": 0, "failed": 0}
        for r in self.records:
            out[r.state] += 1
        return out

    @property
    def optimism(self) -> dict[str, float]:
        """Validation estimate minus test score per score, oriented so that positive = optimistic."""
        out = {}
        for name in sorted(set(self.validation_scores) & set(self.test_scores)):
            value = _optimism(name, self.validation_scores[name], self.test_scores[name])
            if value is not None:
                out[name] = value
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Predictions of ``best_model`` for new rows ``X``, read as ``tune()`` read its data (with
        ``preprocess=True``, its fitted steps applied): the user's own class labels, or values in
        the target's units (``(n,)`` for one target)."""
        scores = self._scores(X)
        if self.task.is_classification and self.data is not None:
            return self.data.decode(scores)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, K)`` for new rows ``X``, columns in the order of ``task.classes``."""
        if not self.task.is_classification:
            raise ConfigError(
                "predict_proba() is for classification; this study is a regression, use predict()."
            )
        return self._scores(X)

    def _scores(self, X: Any) -> np.ndarray:
        if self.predictor is None or self.data is None:
            raise StudyAborted(
                "no model to predict with: the refit of the chosen settings failed (see notes)."
            )
        return np.asarray(self.predictor.predict(self.data.inputs(X)))

    def report(self) -> str:
        """A plain-text summary a person reads in a terminal."""

        return render_text(self)

    def to_markdown(self, plots_dir: str | Path | None = None) -> str:
        """The report as Markdown; with ``plots_dir``, plots are written there and linked."""

        return render_markdown(self, plots_dir)

    def to_html(self, path: str | Path) -> Path:
        """Write the report as one self-contained HTML file (plots embedded) to ``path``."""

        return write_html(self, Path(path))

    def plots(self, folder: str | Path) -> dict[str, Path]:
        """Write the report's plots as PNG files into ``folder``; returns name -> path."""

        return make_plots(self, Path(folder))

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


def scores_from(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    """``{"val_loss": .., "val_accuracy": ..}`` -> ``{"loss": .., "accuracy": ..}``."""
    return {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}

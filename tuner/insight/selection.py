"""What a study returns: its best trial, or a neural baseline it trained anyway.

The untuned model and the textbook recipe are trained on the study's split (``baselines=True``).
The better of them on validation stays the answer unless the chosen trial beats it by more than both

- :data:`~tuner.trial.objectives.BASELINE_MARGIN` of its objective, and
- :data:`~tuner.trial.objectives.BASELINE_SE` standard errors of the gain (the one-standard-error
  rule): over the folds with ``cv``, else a paired bootstrap over the validation rows (both models'
  predictions on the same resampled rows).

Selection uses validation only; the test part scores what is returned. The measurements behind
both numbers are in benchmarks/README.md (``python -m benchmarks.select_replay``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.records import TrialRecord
from tuner.trial.folds import CV_KEY
from tuner.trial.objectives import BASELINE_MARGIN, BASELINE_SE, Objective

if TYPE_CHECKING:
    from tuner.insight.baselines import Baseline

__all__ = ["Selection", "CANDIDATES", "best_baseline", "select", "paired_se", "fold_se", "note", "why"]

#: the baselines that can be returned instead of a trial (the neural ones, trained as the trials are)
CANDIDATES = ("untuned", "textbook")
PAIRED_REPS = 200


@dataclass(frozen=True)
class Selection:
    """How the returned configuration was chosen. ``gain`` is the trial's validation advantage over
    the best baseline in the objective's direction (positive: the trial is better); the trial is
    returned only when ``gain > margin``. ``se`` is the gain's standard error, when measured."""

    returned: str  # "trial", or the baseline's name
    trial: int
    trial_value: float
    baseline: str | None = None
    baseline_value: float = math.nan
    gain: float = math.nan
    margin: float = math.nan  # max(BASELINE_MARGIN * |baseline_value|, BASELINE_SE * se)
    se: float | None = None

    @property
    def reason(self) -> str:
        """``"trial"``, ``"beaten"`` (the baseline was better outright), ``"margin"`` (the trial was
        better by no more than BASELINE_MARGIN) or ``"noise"`` (by no more than BASELINE_SE standard
        errors)."""
        if self.returned == "trial":
            return "trial"
        if self.gain < 0:
            return "beaten"
        return "noise" if self.margin > _floor(self.baseline_value) else "margin"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"reason": self.reason}


def _floor(value: float) -> float:
    return BASELINE_MARGIN * abs(value)


def best_baseline(baselines: list[Baseline], obj: Objective) -> tuple[Baseline | None, float]:
    """The better of the untuned and textbook baselines on validation (finite, complete), with its value."""
    best: Baseline | None = None
    best_value = math.nan
    if obj.is_multi:
        return None, best_value
    for baseline in baselines:
        record = baseline.record
        if baseline.name not in CANDIDATES or not baseline.ok or record is None:
            continue
        value = record.values[0] if record.state == "complete" and record.values else math.nan
        if math.isfinite(value) and (best is None or obj.improves(value, best_value)):
            best, best_value = baseline, value
    return best, best_value


def select(
    chosen: TrialRecord,
    baseline: Baseline | None,
    baseline_value: float,
    obj: Objective,
    se: float | None = None,
) -> Selection:
    """The trial, unless it beats ``baseline`` on validation by at most the bar (module doc); ``se``
    is the gain's standard error once measured (None: the margin alone)."""
    value = chosen.values[0] if chosen.values else math.nan
    if baseline is None or obj.is_multi:
        return Selection("trial", chosen.number, value)
    gain = baseline_value - value if obj.directions[0] == "minimize" else value - baseline_value
    noise = BASELINE_SE * se if se is not None and math.isfinite(se) else 0.0
    margin = max(_floor(baseline_value), noise)
    returned = "trial" if gain > margin else baseline.name
    return Selection(returned, chosen.number, value, baseline.name, baseline_value, gain, margin, se)


def paired_se(
    score: Callable[[np.ndarray, np.ndarray], float],
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    reps: int = PAIRED_REPS,
) -> float:
    """Standard error of ``score(y, a) - score(y, b)`` from resampling the rows (seeded), NaN if
    fewer than two draws are finite."""
    rng = np.random.default_rng(12345)
    n = len(y)
    diffs = []
    for _ in range(reps):
        idx = rng.integers(0, n, n)
        diffs.append(score(y[idx], a[idx]) - score(y[idx], b[idx]))
    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    return float(np.std(d, ddof=1)) if len(d) > 1 else math.nan


def fold_se(trial: TrialRecord, baseline: TrialRecord) -> float | None:
    """With ``cv``: the standard error of the mean per-fold difference (the same folds), None
    without fold values for both."""
    a, b = (_fold_values(r) for r in (trial, baseline))
    if a is None or b is None or len(a) != len(b) or len(a) < 2:
        return None
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(np.std(d, ddof=1) / np.sqrt(len(d))) if np.isfinite(d).all() else None


def _fold_values(record: TrialRecord) -> list[float] | None:
    cv = record.user_attrs.get(CV_KEY) if record.user_attrs else None
    return list(cv["values"]) if cv and cv.get("values") else None


def note(sel: Selection, obj: Objective) -> str | None:
    """The sentence for ``result.notes``: why a baseline was returned, or how sure the trial's gain is."""
    if sel.baseline is None:
        return None
    if sel.returned == "trial":
        measured = sel.se is not None and math.isfinite(sel.se) and sel.se > 0
        bar = f"the {BASELINE_MARGIN:.0%}" + (f" and the {BASELINE_SE:g} standard error" if measured else "")
        noise = f", standard error {sel.se:.2g} ({sel.gain / sel.se:.1f} standard errors)" if measured else ""
        unmeasured = "" if measured else " (its standard error could not be measured)"
        return (
            f"Returned: trial #{sel.trial}. Its {obj.primary} {sel.trial_value:.4g} beat the {sel.baseline} "
            f"baseline's {sel.baseline_value:.4g} on validation by {sel.gain:.3g}{noise}: more than "
            f"{bar} a searched trial needs{unmeasured}."
        )
    what = "your model as build_model gives it" if sel.returned == "untuned" else "the textbook recipe"
    head = f"Its {obj.primary} {sel.baseline_value:.4g}"
    trial = f"the best searched trial's ({sel.trial_value:.4g}, trial #{sel.trial})"
    if sel.reason == "beaten":
        why_ = f"{head} beat {trial} on validation"
    else:
        noise = f"{BASELINE_SE:g} standard error ({sel.se:.2g})" if sel.reason == "noise" else ""
        within = noise or f"{BASELINE_MARGIN:.0%}"
        why_ = (
            f"{head} was within {within} of {trial} on validation, and a searched trial replaces it only "
            "when better by more than that (smaller gains are validation noise)"
        )
    return (
        f"Returned: the {sel.returned} baseline ({what}). {why_}; the test part scored it once. "
        "best_params are its settings."
    )


def why(sel: Selection | None, trial: int) -> str:
    """The report's short reason a baseline was returned."""
    if sel is None or sel.reason == "beaten":
        return f"better on validation than trial #{trial}"
    if sel.reason == "noise":
        return f"trial #{trial} was not better by more than {BASELINE_SE:g} standard error on validation"
    return f"trial #{trial} was not better by more than {BASELINE_MARGIN:.0%} on validation"

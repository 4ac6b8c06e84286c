"""Rules on what the search learned: knob importances, learning-rate sensitivity, harmful augmentation."""

from __future__ import annotations

import numpy as np

from tuner.insight.findings.common import fmt
from tuner.insight.findings.types import Evidence, Finding

LR_IMPORTANCE = 0.3
LR_SPREAD = 0.10
KNOB_SPREAD = 0.05
AUG_WORSE = 0.05
MIN_TRIALS = 6


def _values(ev: Evidence) -> list[tuple[dict, float]]:
    """(params, primary objective oriented so lower is better) of the complete trials."""
    sign = 1.0 if ev.objective.directions[0] == "minimize" else -1.0
    return [(dict(r.params), sign * r.values[0]) for r in ev.complete if np.isfinite(r.values[0])]


def _spread(values: list[float]) -> float:
    med = float(np.median(values))
    return float((np.max(values) - np.min(values)) / max(abs(med), 1e-12))


def lr_sensitivity(ev: Evidence) -> list[Finding]:
    importance = ev.importances.get("learning_rate")
    pts = [
        (p["learning_rate"], v) for p, v in _values(ev) if isinstance(p.get("learning_rate"), (int, float))
    ]
    if importance is None or importance < LR_IMPORTANCE or len(pts) < MIN_TRIALS:
        return []
    pts.sort()
    third = len(pts) // 3
    low, high = pts[:third], pts[-third:]
    med_low, med_high = (float(np.median([v for _, v in part])) for part in (low, high))
    best = min(med_low, med_high)
    spread = abs(med_low - med_high) / max(abs(best), 1e-12)
    if spread < LR_SPREAD:
        return []
    sign = 1.0 if ev.objective.directions[0] == "minimize" else -1.0
    name = ev.objective.primary
    evidence = {
        "importance": fmt(importance),
        "low_lr_range": f"{low[0][0]:.3g}-{low[-1][0]:.3g}",
        f"low_lr_median_{name}": fmt(sign * med_low),
        "high_lr_range": f"{high[0][0]:.3g}-{high[-1][0]:.3g}",
        f"high_lr_median_{name}": fmt(sign * med_high),
        "chosen_lr": fmt(float(ev.chosen.params.get("learning_rate", float("nan")))),
    }
    better = "higher" if med_high < med_low else "lower"
    edge = ""
    bounds = ev.bounds.get("learning_rate")
    lr = ev.chosen.params.get("learning_rate")
    if bounds and isinstance(lr, (int, float)) and lr > 0:
        lo, hi = bounds
        evidence["searched_range"] = f"{lo:.3g}-{hi:.3g}"
        if np.log10(hi / lr) < 0.1 * np.log10(hi / lo):
            edge = " The chosen rate sits at the top of the searched range: widen it upward."
        elif np.log10(lr / lo) < 0.1 * np.log10(hi / lo):
            edge = " The chosen rate sits at the bottom of the searched range: widen it downward."
    summary = (
        f"The objective is sensitive to the learning rate (importance {importance:.2f}): the median {name} "
        f"is {spread:.0%} better with {better} rates "
        f"({evidence['low_lr_range']} vs {evidence['high_lr_range']})." + edge
    )
    advice = (
        "Narrow the learning-rate bounds with an LR range test (tuner.lr_range_test, or "
        "tune(lr_range=True)), "
        "and prefer a schedule with warm-up (cosine, one_cycle), which is less sensitive to the peak rate."
    )
    return [Finding("lr_sensitivity", summary, evidence, advice)]


def important_knobs(ev: Evidence) -> list[Finding]:
    values = [v for _, v in _values(ev)]
    if not ev.importances or len(values) < 4:
        return []
    spread = _spread(values)
    if spread < KNOB_SPREAD:
        return []
    top = sorted(ev.importances.items(), key=lambda kv: -kv[1])[:3]
    evidence = {f"importance.{k}": fmt(v) for k, v in top}
    evidence["objective_spread"] = f"{spread:.0%}"
    listed = ", ".join(f"{k} ({v:.2f})" for k, v in top)
    summary = (
        f"The most important knobs (fANOVA importances over {len(values)} trials, objective spread "
        f"{spread:.0%}): {listed}."
    )
    advice = (
        f"Spend the next trials on {top[0][0]}: narrow or shift its range around the best trials; fix the "
        "knobs with importance near 0 to their best value to search the rest faster."
    )
    return [Finding("important_knobs", summary, evidence, advice, severity="info")]


def augmentation_hurt(ev: Evidence) -> list[Finding]:
    groups: dict[str, list[float]] = {}
    for params, v in _values(ev):
        policy = params.get("augmentation")
        if isinstance(policy, str):
            groups.setdefault(policy, []).append(v)
    none = groups.pop("none", [])
    aug = [v for vs in groups.values() for v in vs]
    if len(none) < 2 or len(aug) < 2:
        return []
    med_none, med_aug = float(np.median(none)), float(np.median(aug))
    worse = (med_aug - med_none) / max(abs(med_none), 1e-12)
    if worse < AUG_WORSE or min(aug) <= min(none):
        return []
    sign = 1.0 if ev.objective.directions[0] == "minimize" else -1.0
    name = ev.objective.primary
    evidence: dict[str, object] = {"none.trials": len(none), f"none.median_{name}": fmt(sign * med_none)}
    for policy, vs in sorted(groups.items()):
        evidence[f"{policy}.trials"] = len(vs)
        evidence[f"{policy}.median_{name}"] = fmt(sign * float(np.median(vs)))
    evidence["best_with_augmentation"] = fmt(sign * min(aug))
    evidence["best_without"] = fmt(sign * min(none))
    summary = (
        f"Augmentation hurt: the median {name} of the {len(aug)} trials with augmentation is {worse:.0%} "
        "worse "
        f"than that of the {len(none)} without ({sign * med_aug:.4g} vs {sign * med_none:.4g}), and the best "
        "augmented trial is worse than the best plain one."
    )
    advice = (
        "Drop the harmful policies from the space (augmentation: none) or lower augment_strength; "
        "augmentation must fit the inputs (noise on one-hot or count features destroys them)."
    )
    return [Finding("augmentation_hurt", summary, evidence, advice)]

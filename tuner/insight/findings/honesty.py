"""Rules on the honesty of the numbers: optimism of the validation estimate, a test score at chance."""

from __future__ import annotations

import numpy as np

from tuner.insight.findings.common import BOUNDED, fmt, loss_key, main_metric, oriented
from tuner.insight.findings.types import Evidence, Finding
from tuner.trial.metrics import compute

SE_FACTOR = 2.0
FLOOR_BOUNDED = 0.02
FLOOR_LOSS = 0.05  # relative


def _metrics_to_check(ev: Evidence) -> list[str]:
    primary = ev.objective.primary
    first = primary[4:] if primary.startswith("val_") else "loss"
    return list(dict.fromkeys([first, main_metric(ev.task), "loss"]))


def high_optimism(ev: Evidence) -> list[Finding]:
    if not ev.test:
        return []
    rows, flagged = {}, []
    for name in _metrics_to_check(ev):
        val, test = ev.validation.get(name), ev.test.get(name)
        if val is None or test is None or not np.isfinite([val, test]).all():
            continue
        opt = oriented(name, val, test)
        se = ev.test_se.get(name, 0.0)
        floor = FLOOR_BOUNDED if name in BOUNDED else FLOOR_LOSS * abs(test)
        rows[name] = {"validation": fmt(val), "test": fmt(test), "optimism": fmt(opt), "test_se": fmt(se)}
        if opt > max(SE_FACTOR * se, floor):
            flagged.append(name)
    key = loss_key(ev.task, ev.test)
    val_loss, test_loss = ev.validation.get(key), ev.test.get(key)
    if "r2" in flagged and val_loss is not None and test_loss is not None:
        if oriented(key, val_loss, test_loss) <= 0:  # R² moves with the test part's target variance
            flagged.remove("r2")
    if not flagged:
        return []
    n = len(ev.complete)
    evidence: dict[str, object] = {f"{k}.{m}": v for k, row in rows.items() for m, v in row.items()}
    evidence.update({"complete_trials": n, "test_rows": 0 if ev.y_test is None else len(ev.y_test)})
    first = flagged[0]
    r = rows[first]
    summary = (
        f"The validation estimate is optimistic: {first} {r['validation']} on validation against "
        f"{r['test']} on the held-out test part (optimism {r['optimism']}, more than {SE_FACTOR:g} test "
        f"standard errors of {r['test_se']}). Picking the best of {n} trials on the same validation data "
        "selected its luck along with its settings."
    )
    advice = (
        "Trust the test score, not the best validation score. Use cv=k on small data, a larger validation "
        "part, or fewer trials; repeats=r shows how much of a difference is seed noise."
    )
    return [Finding("high_optimism", summary, evidence, advice)]


def at_chance(ev: Evidence) -> list[Finding]:
    metric = main_metric(ev.task)
    test = ev.test.get(metric)
    if test is None or ev.y_train is None or ev.y_test is None or not len(ev.y_test):
        return []
    if ev.task.is_classification:
        counts = np.bincount(ev.y_train.astype(np.int64), minlength=ev.task.n_classes)
        pred = np.tile(np.eye(ev.task.n_classes)[int(np.argmax(counts))], (len(ev.y_test), 1))
        what = "predicting the majority class"
    else:
        y = ev.y_train.reshape(len(ev.y_train), -1).astype(np.float64)
        pred = np.tile(y.mean(axis=0), (len(ev.y_test), 1))
        what = "predicting the training mean"
    chance = compute(ev.task, ev.y_test, pred, (metric,))[metric]
    se = ev.test_se.get(metric, 0.0)
    if test - chance > SE_FACTOR * se:
        return []
    evidence = {f"test_{metric}": fmt(test), f"chance_{metric}": fmt(chance), "test_se": fmt(se)}
    if metric in ev.validation:
        evidence[f"validation_{metric}"] = fmt(ev.validation[metric])
    if chance - test > SE_FACTOR * se:
        where = f"below chance: {metric} {test:.3f} on the test part, worse than {what} ({chance:.3f})"
        by = f"by more than {SE_FACTOR:g} standard errors of {se:.3f}"
    else:
        where = f"at chance: {metric} {test:.3f} on the test part, {what} gives {chance:.3f}"
        by = f"difference within {SE_FACTOR:g} standard errors of {se:.3f}"
    summary = f"The test score is {where} ({by}). Nothing the model learned transfers."
    advice = (
        "Check that the labels match the rows and that the features can predict them; a validation score "
        "above chance next to this one is selection luck or leakage, not signal."
    )
    return [Finding("at_chance", summary, evidence, advice)]


def worse_than_untuned(ev: Evidence) -> list[Finding]:
    """The chosen configuration's test score is worse than the user's own model's, beyond noise."""
    untuned = ev.baseline("untuned")
    metric = main_metric(ev.task)
    if untuned is None or metric not in ev.test or metric not in untuned.test:
        return []
    tuned, own = ev.test[metric], untuned.test[metric]
    se = ev.test_se.get(metric, 0.0) * 2**0.5  # the difference of two scores on the same test rows
    if own - tuned <= max(SE_FACTOR * se, FLOOR_BOUNDED):
        return []
    evidence = {f"test_{metric}": fmt(tuned), f"untuned_test_{metric}": fmt(own), "difference_se": fmt(se)}
    evidence.update({f"chosen.{k}": v for k, v in ev.chosen.params.items() if isinstance(v, (int, float))})
    summary = (
        f"Tuning did worse than your own model: test {metric} {tuned:.3f} for the chosen configuration "
        f"against {own:.3f} for build_model as given (untuned), a difference of {own - tuned:.3f}, more "
        f"than {SE_FACTOR:g} standard errors of {se:.3f}."
    )
    advice = (
        "Keep your own settings, or search around them: narrow the space to the ranges your model was "
        "built for (an SGD learning rate is not an Adam one), with your settings as a start point "
        "(space={'start': [...]}), and compare again."
    )
    return [Finding("worse_than_untuned", summary, evidence, advice)]

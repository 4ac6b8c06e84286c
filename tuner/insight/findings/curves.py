"""Rules on learning curves: overfitting and loss/metric divergence (over-confidence)."""

from __future__ import annotations

import numpy as np

from tuner.insight.findings.common import curve, curve_sources, fmt, rel
from tuner.insight.findings.types import Evidence, Finding

MIN_EPOCHS = 5
OVERFIT_RISE = 0.05  # validation loss above its minimum by this fraction at the end
DIVERGE_RISE = 0.10
ACCURACY_HOLD = 0.005  # accuracy may drop this much and still "hold"


def overfitting(ev: Evidence) -> list[Finding]:
    for source, record in curve_sources(ev):
        tl, vl = curve(record, "train_loss"), curve(record, "val_loss")
        if tl is None or vl is None or len(vl) < MIN_EPOCHS:
            continue
        b, n = int(np.argmin(vl)), len(vl)
        rise, fall = rel(vl[-1], vl[b]), rel(tl[b], tl[-1])
        gap_b, gap_end = vl[b] - tl[b], vl[-1] - tl[-1]
        if n - 1 - b < 2 or rise < OVERFIT_RISE or fall <= 0 or gap_end <= gap_b:
            continue
        evidence = {
            "curve": source,
            "best_epoch": b + 1,
            "epochs_run": n,
            "val_loss_best": fmt(vl[b]),
            "val_loss_last": fmt(vl[-1]),
            "val_loss_rise": f"{rise:.0%}",
            "train_loss_best": fmt(tl[b]),
            "train_loss_last": fmt(tl[-1]),
            "gap_at_best": fmt(gap_b),
            "gap_last": fmt(gap_end),
        }
        chosen_gap = ev.chosen.best_metrics.get("gap")
        if record is not ev.chosen and chosen_gap is not None:
            evidence["chosen_gap_at_best"] = fmt(chosen_gap)
        if record is ev.chosen:
            advice = (
                "Even the chosen settings overfit after that epoch, and early stopping is what holds them: "
                "widen the space toward stronger regularization (higher dropout and L2, augmentation that "
                "fits the inputs), get more data, or use a smaller model."
            )
        else:
            advice = (
                f"Keep early stopping (the best epoch was {b + 1} of {n}) and regularize; compare the chosen "
                "settings' gap in the report, and widen the space toward stronger dropout/L2 if it stays "
                "large."
            )
        summary = (
            f"Overfitting: on {source}, validation loss rose {rise:.0%} after epoch {b + 1} of {n} while the "
            f"training loss kept falling ({fall:.0%} lower) and the gap grew from {gap_b:.3g} to "
            f"{gap_end:.3g}."
        )
        return [Finding("overfitting", summary, evidence, advice)]
    return []


def divergence(ev: Evidence) -> list[Finding]:
    if not ev.task.is_classification:
        return []
    for source, record in curve_sources(ev):
        vl, acc = curve(record, "val_loss"), curve(record, "val_accuracy")
        if vl is None or acc is None or len(vl) < MIN_EPOCHS:
            continue
        b, n = int(np.argmin(vl)), len(vl)
        rise = rel(vl[-1], vl[b])
        if n - 1 - b < 2 or rise < DIVERGE_RISE or acc[-1] < acc[b] - ACCURACY_HOLD:
            continue
        evidence = {
            "curve": source,
            "val_loss_min_epoch": b + 1,
            "epochs_run": n,
            "val_loss_min": fmt(vl[b]),
            "val_loss_last": fmt(vl[-1]),
            "val_loss_rise": f"{rise:.0%}",
            "val_accuracy_at_min": fmt(acc[b]),
            "val_accuracy_last": fmt(acc[-1]),
            "val_accuracy_best": fmt(acc.max()),
        }
        summary = (
            f"Loss/metric divergence on {source}: validation loss rose {rise:.0%} after epoch {b + 1} while "
            f"validation accuracy held ({acc[b]:.3f} -> {acc[-1]:.3f}): the model grows over-confident on "
            "the "
            "examples it gets wrong; the metric is fine, the probabilities are not."
        )
        advice = (
            "Add label smoothing (0.05-0.1; the label_smoothing knob), calibrate the probabilities "
            "(temperature scaling) if you use them, and stop on the metric you care about "
            "(objective='val_accuracy') rather than the loss."
        )
        return [Finding("loss_metric_divergence", summary, evidence, advice)]
    return []

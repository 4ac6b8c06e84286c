"""Possible leakage: rows copied across the splits, or train and validation curves that match too well."""

from __future__ import annotations

import numpy as np

from tuner.insight.findings.common import curve, fmt, rel
from tuner.insight.findings.types import Evidence, Finding

MATCH = 0.02  # median relative |val_loss - train_loss| at or below this is a suspicious match
TEST_WORSE = 0.10  # ... when the test loss is this much worse than validation (and > 2 SE)

_WHERE = {
    "validation_in_train": "validation rows that are exact copies of training rows",
    "test_in_train": "test rows that are exact copies of training rows",
    "train_duplicates": "training rows repeated within the training part (they straddle the cv folds)",
}


def _curves_match(ev: Evidence) -> dict[str, object] | None:
    tl, vl = curve(ev.chosen, "train_loss"), curve(ev.chosen, "val_loss")
    test, val = ev.test.get("loss"), ev.validation.get("loss")
    if tl is None or vl is None or len(vl) < 3 or test is None or val is None:
        return None
    start = len(vl) // 5
    match = float(np.median(np.abs(vl[start:] - tl[start:]) / np.maximum(np.abs(tl[start:]), 1e-12)))
    worse = rel(test, val)
    se = ev.test_se.get("loss", 0.0)
    if match > MATCH or worse < TEST_WORSE or test - val <= 2 * se:
        return None
    return {
        "median_train_val_mismatch": f"{match:.1%}",
        "validation_loss": fmt(val),
        "test_loss": fmt(test),
        "test_worse_by": f"{worse:.0%}",
    }


def leakage(ev: Evidence) -> list[Finding]:
    counts = {k: int(v) for k, v in ev.duplicates.items() if v}
    match = _curves_match(ev)
    if not counts and match is None:
        return []
    evidence: dict[str, object] = dict(counts)
    parts = [f"{n} {_WHERE.get(k, k)}" for k, n in counts.items()]
    if match is not None:
        evidence.update(match)
        parts.append(
            f"train and validation loss match within {match['median_train_val_mismatch']} (median) over "
            f"the epochs while the test loss is {match['test_worse_by']} worse"
        )
    summary = "Possible leakage between the splits: " + "; ".join(parts) + "."
    advice = (
        "Deduplicate the rows before splitting, and split by the unit that repeats (patient, user, "
        "session, source image) with groups=...; validation and cv scores are optimistic until then."
    )
    return [Finding("leakage", summary, evidence, advice)]

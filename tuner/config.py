"""The study settings of ``tune()`` and of a job spec: one table of rules, checked in one place.

``tune(**settings)`` and ``regtuner run|submit spec.yaml`` both call :func:`check_settings`, so a
spec is refused for exactly what ``tune()`` would refuse, before any data loads or job is sent.
Settings shaped by the data (``task``, ``validation_split``, ``test``, ``cv``) are checked where the
data enters (:func:`tuner.data.prepare.check_split`), from here as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from tuner.data.arrays import is_pair
from tuner.data.prepare import check_split
from tuner.errors import ConfigError
from tuner.tracking.base import validate_tracking_uri
from tuner.trial.metrics import available_metrics

__all__ = ["Setting", "SETTINGS", "check_settings", "check_names"]


def _int_from(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _epochs(v: Any) -> bool:
    return v == "auto" or _int_from(1)(v)


def _seconds(v: Any) -> bool:
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    return v is None or (number and 0 < v < math.inf)


def _text(v: Any) -> bool:
    return v is None or (isinstance(v, str) and bool(v.strip()))


def _flag(v: Any) -> bool:
    return isinstance(v, bool)


def _loss(v: Any) -> bool:
    return v is None or isinstance(v, str) or callable(v)


def _tracking(v: Any) -> bool:
    if isinstance(v, str):
        validate_tracking_uri(v)  # raises with its own message, naming the fix
        return True
    return v in (None, True, False)


@dataclass(frozen=True)
class Setting:
    """A setting's rule; the message is ``rule`` (with ``{name}``), the value given, then ``hint``."""

    valid: Callable[[Any], bool]
    rule: str
    hint: str = ""

    def message(self, name: str, value: Any) -> str:
        return f"{self.rule.format(name=name)}, got {value!r}.{self.hint}"


_TIMEOUT_HINT = " Pass e.g. trial_timeout=600 to stop any single trial after 10 minutes."

#: every setting of ``tune()`` that does not depend on the data, in the order they are checked
SETTINGS: dict[str, Setting] = {
    "n_trials": Setting(_int_from(1), "{name} must be a positive int"),
    "max_epochs": Setting(
        _epochs,
        "{name} must be a positive int or 'auto'",
        " 'auto' trains each trial until early stopping ends it, up to 200 epochs.",
    ),
    "timeout": Setting(_seconds, "{name} must be None (no limit) or seconds > 0"),
    "seed": Setting(_int_from(0), "{name} must be an int >= 0"),
    "progress": Setting(lambda v: v in (True, False, "always"), "{name} must be True, False or 'always'"),
    "study_name": Setting(_text, "{name} must be a non-empty string"),
    "experiment": Setting(_text, "{name} must be a non-empty string"),
    "loss": Setting(_loss, "{name} must be None (inferred), a loss name or a callable"),
    "resume": Setting(_flag, "{name} must be True or False"),
    "max_consecutive_failures": Setting(_int_from(1), "{name} must be an int >= 1"),
    "trial_timeout": Setting(_seconds, "{name} must be None (no limit) or seconds > 0", _TIMEOUT_HINT),
    "repeats": Setting(_int_from(1), "{name} must be an int >= 1 (refits of the chosen settings)"),
    "baselines": Setting(_flag, "{name} must be True or False"),
    "lr_range": Setting(_flag, "{name} must be True or False"),
    "preprocess": Setting(
        _flag,
        "{name} must be True or False",
        " True imputes, one-hot encodes and standardizes a table for the model.",
    ),
    "tracking": Setting(
        _tracking,
        "{name} must be a tracking URI string, True/None (MLflow's default store) or False (no tracking)",
    ),
}


def check_settings(values: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ConfigError` for the first setting in ``values`` its rule refuses.

    ``labels`` names a setting as the user wrote it (``budget.n_trials`` in a spec). The data-shaped
    settings are checked too, against the defaults of those not given.
    """
    labels = labels or {}
    for name, setting in SETTINGS.items():
        if name in values and not setting.valid(values[name]):
            raise ConfigError(setting.message(labels.get(name, name), values[name]))
    repeats, test = values.get("repeats", 1), values.get("test", 0.2)
    if repeats > 1 and test is None:
        raise ConfigError(
            f"repeats={repeats} repeats the final test estimate, but test=None leaves no test part; "
            "pass test=0.2 (or a test pair), or repeats=1."
        )
    check_split(
        values.get("task"),
        values.get("validation_split", 0.2),
        test,
        is_pair(test),
        values.get("cv"),
        None,
        values.get("seed", 0),
    )


def check_names(values: Mapping[str, Any]) -> None:
    """``metrics`` and ``objective`` name known metrics of some task (the real task is checked later)."""
    tasks = [SimpleNamespace(kind=k) for k in ("binary", "multiclass", "regression")]
    metrics = sorted({m for task in tasks for m in available_metrics(task)})  # type: ignore[arg-type]
    _names("metrics", values.get("metrics"), metrics, none_ok=True)
    objectives = ["val_loss", "gap_penalized", *(f"val_{m}" for m in metrics)]
    _names("objective", values.get("objective", "val_loss"), objectives)


def _names(what: str, value: Any, allowed: list[str], none_ok: bool = False) -> None:
    if value is None and none_ok:
        return
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ConfigError(
            f"{what} must be a name or a non-empty list of names from {allowed}, got {value!r}."
        )
    for name in names:
        if name not in allowed:
            raise ConfigError(f"{what}: {name!r} is not a known name; choose from {allowed}.")

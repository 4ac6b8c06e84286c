"""A job spec's ``tune()`` settings, checked with ``tune()``'s own rules when the spec is read.

So ``regtuner run --check`` and ``regtuner submit`` refuse a spec that ``tune()`` would refuse, before
anything runs or is sent to a cluster. What needs the data (which metrics and objectives apply to the
task) is checked against every task here and against the real one by ``tune()``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from tuner.errors import ConfigError

__all__ = ["check_settings"]


def check_settings(args: Mapping[str, Any], data_args: Mapping[Any, Any], source: str) -> None:
    """Raise ConfigError, prefixed with ``source``, for a setting ``tune(**args)`` would refuse."""
    for key in data_args:
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(
                f"{source}: data_args key {key!r} is not a keyword argument name; the data loader is "
                "called as load_data(**data_args), so write names such as 'n_rows: 1200'."
            )
    try:
        _check(args)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _check(args: Mapping[str, Any]) -> None:
    from tuner.api import _check_inputs, _check_settings, tune
    from tuner.data import _check_settings as check_split
    from tuner.data import _is_pair
    from tuner.evaluation import check_options
    from tuner.metrics import available_metrics
    from tuner.tracking import validate_tracking_uri

    a = {name: p.default for name, p in inspect.signature(tune).parameters.items()}
    a.update(args)
    _check_settings(
        a["n_trials"], a["timeout"], a["max_epochs"], a["seed"], True, a["study_name"], a["experiment"]
    )
    _check_inputs(a["loss"], a["resume"], a["max_consecutive_failures"], None)
    check_options(a["repeats"], a["baselines"], a["lr_range"], a["test"])
    check_split(a["task"], a["validation_split"], a["test"], _is_pair(a["test"]), a["cv"], None, a["seed"])
    if isinstance(a["tracking"], str):
        validate_tracking_uri(a["tracking"])
    elif a["tracking"] not in (None, True, False):
        raise ConfigError(
            f"tracking must be false or a tracking URI such as 'http://HOST:5000', got {a['tracking']!r}."
        )
    tasks = [SimpleNamespace(kind=k) for k in ("binary", "multiclass", "regression")]
    metrics = sorted({m for task in tasks for m in available_metrics(task)})  # type: ignore[arg-type]
    _names("metrics", a["metrics"], metrics, none_ok=True)
    _names("objective", a["objective"], ["val_loss", "gap_penalized", *(f"val_{m}" for m in metrics)])


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

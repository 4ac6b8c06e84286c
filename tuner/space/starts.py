"""Start points of a search space: trials enqueued first (the textbook settings the search must beat),
checked where a space declares them and fitted into a space that another one changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuner.errors import ConfigError
from tuner.space.knobs import _did_you_mean, _is_number, _Param

__all__ = ["adapt_starts", "parse_starts"]


def adapt_starts(starts: list[dict[str, Any]], params: Mapping[str, _Param], notes: list[str]) -> list[dict]:
    """Fit inherited start points into ``params``: clip numbers, drop what no longer applies."""
    out = []
    for i, point in enumerate(starts):
        kept: dict[str, Any] = {}
        for key, value in point.items():
            p = params.get(key)
            if p is None or p.type == "fixed":
                continue
            where = f"start[{i}].{key}"
            try:
                kept[key] = p.check(value, where)
                continue
            except ConfigError:
                pass
            if p.type != "categorical" and _is_number(value):
                clipped = min(max(value, p.low), p.high)
                if p.step:
                    clipped = min(p.low + round((clipped - p.low) / p.step) * p.step, p.high)
                try:
                    kept[key] = p.check(round(clipped) if p.type == "int" else float(clipped), where)
                    notes.append(
                        f"start[{i}]: {key}={value!r} clipped to {kept[key]!r} (range of this space)"
                    )
                    continue
                except ConfigError:
                    pass
            notes.append(f"start[{i}]: dropped {key}={value!r} (not a value of this space)")
        if kept:
            out.append(kept)
    return out


def parse_starts(raw: Any, params: Mapping[str, _Param]) -> list[dict[str, Any]]:
    """A space's ``start:`` list, each point checked against ``params``."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"start: must be a list of mappings (parameter: value), got {raw!r}")
    out = []
    for i, point in enumerate(raw):
        if not isinstance(point, Mapping):
            raise ConfigError(f"start[{i}]: must be a mapping of parameter: value, got {point!r}")
        checked = {}
        for key, value in point.items():
            if key not in params:
                raise ConfigError(
                    f"start[{i}].{key}: not a parameter of this space{_did_you_mean(key, params)}; "
                    f"start points may set: {', '.join(params) or 'nothing (the space is empty)'}"
                )
            checked[key] = params[key].check(value, f"start[{i}].{key}")
        out.append(checked)
    return out

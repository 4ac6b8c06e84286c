"""The read-only hyperparameter view a builder receives as ``hp``.

Besides ``hp.name`` and ``hp["name"]`` for the space's values, a builder written for Keras Tuner
(``hp.Int``, ``hp.Float``, ``hp.Choice``, ``hp.Boolean``, ``hp.Fixed``) or in Optuna's style
(``hp.suggest_int``, ``hp.suggest_float``, ``hp.suggest_categorical``) runs unchanged: a declared
name returns this trial's value when the space has it, else the declaration's default, and the
declaration is kept (:meth:`HyperParameters.declared`) so that the study searches it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tuner.space.knobs import KNOBS, _Param, _parse_param

__all__ = ["HyperParameters", "declared_params"]

_LOG = ("log", "reverse_log")


class HyperParameters(Mapping[str, Any]):
    """This trial's values, with item and attribute access.

    It remembers which names the builder read, so that an adapter injects only the
    knobs the builder did not apply itself.
    """

    __slots__ = ("_values", "_read", "_declared")

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_read", set())
        object.__setattr__(self, "_declared", {})

    def __getitem__(self, name: str) -> Any:
        try:
            value = self._values[name]
        except KeyError:
            known = ", ".join(sorted(self._values)) or "none"
            raise KeyError(
                f"hp has no {name!r}; this trial's names are: {known}. "
                "Declare your own hyperparameters under 'hyperparameters:' in the space."
            ) from None
        self._read.add(name)
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(exc.args[0]) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError("hp is read-only: the tuner sets its values for each trial")

    def __setitem__(self, name: str, value: Any) -> None:
        raise TypeError("hp is read-only: the tuner sets its values for each trial")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self._values else default

    @property
    def read(self) -> frozenset[str]:
        """Names the builder has read so far."""
        return frozenset(self._read)

    @property
    def declared(self) -> dict[str, tuple[str, Any]]:
        """Declarations made so far: name -> (the call, as written; a space spec of it)."""
        return dict(self._declared)

    # -- Keras Tuner's declarations ---------------------------------------------------------------
    def Int(self, name: str, min_value: int, max_value: int, step: int | None = None,
            sampling: str | None = "linear", default: int | None = None, **scope: Any) -> Any:  # fmt: skip
        spec = _numeric("int", min_value, max_value, step, sampling)
        call = f"hp.Int({name!r}, {min_value!r}, {max_value!r}, step={step!r}, sampling={sampling!r})"
        return self._declare(name, call, spec, min_value if default is None else default)

    def Float(self, name: str, min_value: float, max_value: float, step: float | None = None,
              sampling: str | None = "linear", default: float | None = None, **scope: Any,
              ) -> Any:  # fmt: skip
        spec = _numeric("float", min_value, max_value, step, sampling)
        call = f"hp.Float({name!r}, {min_value!r}, {max_value!r}, step={step!r}, sampling={sampling!r})"
        return self._declare(name, call, spec, min_value if default is None else default)

    def Choice(self, name: str, values: Sequence[Any], ordered: bool | None = None,
               default: Any = None, **scope: Any) -> Any:  # fmt: skip
        spec = list(values) if len(values) != 1 else values[0]
        return self._declare(name, f"hp.Choice({name!r}, {list(values)!r})", spec,
                             values[0] if default is None and len(values) else default)  # fmt: skip

    def Boolean(self, name: str, default: bool = False, **scope: Any) -> Any:
        return self._declare(name, f"hp.Boolean({name!r})", [False, True], default)

    def Fixed(self, name: str, value: Any, **scope: Any) -> Any:
        return self._declare(name, f"hp.Fixed({name!r}, {value!r})", value, value)

    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        """Keras Tuner's scope: here every declaration is searched, whatever its parent's value."""
        yield

    # -- Optuna's declarations ----------------------------------------------------------------------
    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> Any:
        spec = _numeric("int", low, high, step if step != 1 else None, "log" if log else "linear")
        return self._declare(name, f"hp.suggest_int({name!r}, {low!r}, {high!r})", spec, low)

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> Any:  # fmt: skip
        spec = _numeric("float", low, high, step, "log" if log else "linear")
        return self._declare(name, f"hp.suggest_float({name!r}, {low!r}, {high!r}, log={log!r})", spec, low)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        spec = list(choices) if len(choices) != 1 else choices[0]
        return self._declare(name, f"hp.suggest_categorical({name!r}, {list(choices)!r})", spec, choices[0])

    def _declare(self, name: str, call: str, spec: Any, default: Any) -> Any:
        self._declared.setdefault(name, (call, spec))
        if name in self._values:
            return self[name]
        return default

    def __repr__(self) -> str:
        return f"HyperParameters({self._values!r})"

    def __reduce__(self):
        return (HyperParameters, (self._values,))


def declared_params(hp: HyperParameters) -> dict[str, _Param]:
    """The space parameters of what the builder declared on ``hp``, each checked as a space's own
    (a knob's name keeps the knob's rules); a ConfigError names the call."""
    out = {}
    for name, (call, spec) in hp.declared.items():
        param = _parse_param(name, spec, f"build_model's {call}", KNOBS.get(name))
        if param is not None:
            out[name] = param
    return out


def _numeric(kind: str, low: Any, high: Any, step: Any, sampling: str | None) -> Any:
    """A space spec of a numeric declaration; a log scale with a step (Keras Tuner: a factor) becomes
    the list of its values, since Optuna cannot step on a log scale."""
    log = sampling in _LOG
    if log and step not in (None, 0, 1) and low > 0 and high >= low and step > 1:
        count = int(math.floor(math.log(high / low, step) + 1e-9)) + 1
        values = [low * step**k for k in range(count)]
        return [int(v) if kind == "int" else float(v) for v in values]
    spec: dict[str, Any] = {"type": kind, "low": low, "high": high}
    if log:
        spec["log"] = True
    elif step not in (None, 0) and not (kind == "int" and step == 1):
        spec["step"] = step
    return spec

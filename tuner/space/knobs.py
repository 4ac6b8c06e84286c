"""The knob catalogue and parameter-spec checking behind :mod:`tuner.space.searchspace`.

:data:`KNOBS` lists the regularization knobs with their rules; :class:`_Param` is one validated
parameter (fixed or searched) parsed from a spec by :func:`_parse_param`; :func:`parse_policy`
reads augmentation policies such as ``"flip+translate"``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from tuner.errors import ConfigError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "KNOBS",
    "Knob",
    "AUGMENTATION_OPS",
    "AUGMENTATIONS_BY_INPUT",
    "OPEN_ENDED_SCHEDULES",
    "parse_policy",
]

AUGMENTATION_OPS: tuple[str, ...] = (
    "none", "noise", "mixup", "flip", "translate", "rotate", "zoom", "contrast", "cutout", "shift", "mask",
)  # fmt: skip
AUGMENTATIONS_BY_INPUT: dict[str, frozenset[str]] = {
    "tabular": frozenset({"noise", "mixup"}),
    "image": frozenset({"noise", "mixup", "flip", "translate", "rotate", "zoom", "contrast", "cutout"}),
    "sequence": frozenset({"noise", "mixup", "shift", "mask"}),
}
_SPEC_KEYS = ("type", "low", "high", "log", "step", "choices")
_SCALARS = (str, int, float, bool, type(None))


def _did_you_mean(word: object, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_policy(name: str) -> tuple[str, ...]:
    """Operations of a policy: ``"flip+translate"`` -> ``("flip", "translate")``; none or "" -> ``()``."""
    if not isinstance(name, str):
        raise ConfigError(f"an augmentation policy is a string such as 'flip+translate', got {name!r}")
    parts = tuple(p.strip().lower() for p in name.split("+"))
    if parts in (("none",), ("",)):
        return ()
    for part in parts:
        if part == "none":
            raise ConfigError(f"augmentation {name!r}: 'none' cannot be combined with other operations")
        if part not in AUGMENTATION_OPS:
            raise ConfigError(
                f"augmentation {name!r}: unknown operation {part!r}{_did_you_mean(part, AUGMENTATION_OPS)}; "
                f"a policy is one of {', '.join(AUGMENTATION_OPS)} or several joined by '+'"
            )
    if len(set(parts)) != len(parts):
        raise ConfigError(f"augmentation {name!r}: an operation is listed twice")
    return parts


def _number(value: Any, where: str, *, integer: bool = False) -> int | float:
    """A finite number (numeric strings accepted); an int when ``integer``."""
    noun = "an integer" if integer else "a number"
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected {noun}, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected {noun}, got {value!r} ({type(value).__name__})")
    if isinstance(value, int):
        if integer:
            return value
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"{where}: {value} is too large for a float") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if integer:
        if not value.is_integer():
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    return value


@dataclass(frozen=True)
class Knob:
    """One regularization knob of the catalogue: its type, allowed range and default."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    description: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    default: Any = None  # None: not applied unless the space sets it

    @property
    def rule(self) -> str:
        """The allowed values in words, e.g. ``a float in [0, 0.9]``."""
        if self.name == "augmentation":
            return f"one of {', '.join(AUGMENTATION_OPS)}, or several joined by '+'"
        if self.kind == "categorical":
            return f"one of {', '.join(self.choices)}"
        noun = "a float" if self.kind == "float" else "an integer"
        if self.low is not None and self.high is not None:
            left, right = "(["[not self.low_open], ")]"[not self.high_open]
            return f"{noun} in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {self.low:g}"
        return noun

    def check(self, value: Any, where: str) -> Any:
        """``value`` normalized for this knob, or a ConfigError naming the rule and the value."""
        bad = f"{where}: {value!r} is not allowed; {self.name} must be {self.rule}"
        if self.kind == "categorical":
            if not isinstance(value, str):
                raise ConfigError(bad)
            if self.name == "augmentation":
                try:
                    return "+".join(parse_policy(value)) or "none"
                except ConfigError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
            if value.strip().lower() not in self.choices:
                raise ConfigError(bad + _did_you_mean(value, self.choices))
            return value.strip().lower()
        try:
            number = _number(value, where, integer=self.kind == "int")
        except ConfigError:
            raise ConfigError(bad) from None
        if self.low is not None and (number < self.low or (self.low_open and number == self.low)):
            raise ConfigError(bad)
        if self.high is not None and (number > self.high or (self.high_open and number == self.high)):
            raise ConfigError(bad)
        return number


def _catalogue(*knobs: Knob) -> Mapping[str, Knob]:
    return MappingProxyType({k.name: k for k in knobs})


#: schedules that need no last epoch: the ones an open budget (``max_epochs="auto"``) keeps
OPEN_ENDED_SCHEDULES: tuple[str, ...] = ("constant", "plateau")

KNOBS: Mapping[str, Knob] = _catalogue(
    Knob("dropout", "float", "rate of the Dropout layers (absent: the model keeps its own)", 0.0, 0.9),
    Knob("l2", "float", "kernel L2 / weight decay strength (absent: not applied)", 0.0),
    Knob("l2_mode", "categorical", "auto: keras kernel regularizer, torch AdamW decoupled decay",
         choices=("auto", "coupled", "decoupled"), default="auto"),
    Knob("learning_rate", "float", "initial learning rate (absent: the model's own, or 1e-3)", 0.0,
         low_open=True),
    Knob("lr_schedule", "categorical", "learning-rate schedule over the epochs",
         choices=("constant", "step", "exponential", "cosine", "one_cycle", "plateau"), default="constant"),
    Knob("warmup_fraction", "float", "fraction of max_epochs of linear warm-up (cosine)", 0.0, 0.5,
         default=0.0),
    Knob("batch_size", "int", "training batch size", 1, default=32),
    Knob("patience", "int", "early-stopping patience in epochs; 0 disables early stopping", 0, default=10),
    Knob("min_delta", "float", "smallest improvement that resets early stopping", 0.0, default=0.0),
    Knob("label_smoothing", "float", "label smoothing of the loss (classification only)", 0.0, 0.5,
         high_open=True, default=0.0),
    Knob("augmentation", "categorical", "augmentation policy: operations joined by '+', or none",
         default="none"),
    Knob("augment_strength", "float", "strength of the augmentation operations", 0.0, 1.0, default=0.5),
    Knob("gradient_clip", "float", "global gradient-norm clip; 0 is off", 0.0, default=0.0),
    Knob("optimizer", "categorical", "keep: the model's own optimizer class (Adam if none)",
         choices=("keep", "adam", "adamw", "sgd", "rmsprop"), default="keep"),
)  # fmt: skip


@dataclass(frozen=True)
class _Param:
    """One validated parameter: fixed, or searched as float, int or categorical."""

    name: str
    type: str  # "fixed" | "float" | "int" | "categorical"
    value: Any = None
    low: int | float = 0
    high: int | float = 0
    log: bool = False
    step: int | float | None = None
    choices: tuple[Any, ...] = ()

    def spec(self) -> Any:
        if self.type == "fixed":
            return self.value
        if self.type == "categorical":
            return list(self.choices)
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def check(self, value: Any, where: str) -> Any:
        """``value`` as a valid value of this parameter, or a ConfigError."""
        knob = KNOBS.get(self.name)  # hyperparameters never take a knob's name
        if knob is not None:
            value = knob.check(value, where)
        if self.type == "fixed":
            if not _same(value, self.value):
                raise ConfigError(f"{where}: {value!r} differs from the fixed value {self.value!r}")
            return self.value
        if self.type == "categorical":
            for choice in self.choices:
                if _same(value, choice):
                    return choice
            raise ConfigError(f"{where}: {value!r} is not one of the choices {list(self.choices)}")
        value = _number(value, where, integer=self.type == "int")
        if not self.low <= value <= self.high or not _on_grid(value, self.low, self.step):
            grid = f" with step {self.step}" if self.step else ""
            raise ConfigError(
                f"{where}: {value!r} is outside this space's range [{self.low}, {self.high}]{grid}"
            )
        return value

    def distribution(self) -> optuna.distributions.BaseDistribution:
        from optuna import distributions as od

        if self.type == "float":
            return od.FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return od.IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        return od.CategoricalDistribution(self.choices)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same kind: 1 matches 1.0, True matches neither."""
    return a == b and (type(a) is type(b) or (_is_number(a) and _is_number(b)))


def _on_grid(value: float, low: float, step: float | None) -> bool:
    if step is None:
        return True
    n = (value - low) / step
    return math.isfinite(n) and n < 1e12 and abs(n - round(n)) <= 1e-9 * max(1.0, abs(n))


def _parse_param(name: str, raw: Any, where: str, knob: Knob | None) -> _Param | None:
    """Validate one spec: a scalar (fixed), a list (choices) or a mapping."""
    if isinstance(raw, Mapping):
        return _parse_mapping(name, raw, where, knob)
    if isinstance(raw, list):
        return _categorical(name, raw, where, knob)
    if knob is None:
        return _Param(name, "fixed", value=_scalar(raw, where))
    if raw is None:  # a knob set to null is not applied, as if absent
        return None
    return _Param(name, "fixed", value=knob.check(raw, where))


def _scalar(value: Any, where: str) -> Any:
    if not isinstance(value, _SCALARS):
        raise ConfigError(
            f"{where}: {value!r} ({type(value).__name__}) is not a value; use a string, number, bool or null"
        )
    return value


def _categorical(name: str, raw: Any, where: str, knob: Knob | None) -> _Param:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: choices must be a non-empty list, got {raw!r}")
    choices: list[Any] = []
    for i, choice in enumerate(raw):
        w = f"{where}[{i}]"
        choice = knob.check(choice, w) if knob is not None else _scalar(choice, w)
        if any(_same(choice, c) for c in choices):
            raise ConfigError(f"{w}: {choice!r} is listed twice")
        choices.append(choice)
    return _Param(name, "categorical", choices=tuple(choices))


def _parse_mapping(name: str, raw: Mapping[Any, Any], where: str, knob: Knob | None) -> _Param:
    for key in raw:
        if key not in _SPEC_KEYS:
            raise ConfigError(
                f"{where}.{key}: unknown key in a parameter spec{_did_you_mean(key, _SPEC_KEYS)}; "
                f"allowed keys: {', '.join(_SPEC_KEYS)}"
            )
    kind = raw.get("type")
    if kind is None:
        if "choices" in raw or (knob is not None and knob.kind == "categorical"):
            kind = "categorical"
        elif knob is not None:
            kind = knob.kind
        else:
            ints = all(isinstance(raw.get(k), int) and _is_number(raw.get(k)) for k in ("low", "high"))
            kind = "int" if ints else "float"
    if kind not in ("float", "int", "categorical"):
        raise ConfigError(f"{where}.type: must be float, int or categorical, got {kind!r}")
    if kind == "categorical":
        for key in ("low", "high", "log", "step"):
            if key in raw:
                raise ConfigError(f"{where}.{key}: not allowed with type categorical; give choices only")
        if "choices" not in raw:
            raise ConfigError(f"{where}.choices: required for type categorical")
        return _categorical(name, raw["choices"], f"{where}.choices", knob)
    if "choices" in raw:
        raise ConfigError(f"{where}.choices: only allowed with type categorical, not {kind}")
    if knob is not None and knob.kind != kind:
        if knob.kind == "categorical":
            raise ConfigError(f"{where}: {name} is categorical ({knob.rule}); give a list of choices")
        raise ConfigError(f"{where}.type: {name} takes {knob.kind} values, not {kind}; {knob.rule}")
    integer = kind == "int"
    for key in ("low", "high"):
        if key not in raw:
            raise ConfigError(f"{where}.{key}: required for type {kind}")
    low = _number(raw["low"], f"{where}.low", integer=integer)
    high = _number(raw["high"], f"{where}.high", integer=integer)
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}.log: must be true or false, got {log!r}")
    step = raw.get("step")
    if step is not None:
        step = _number(step, f"{where}.step", integer=integer)
        if step <= 0:
            raise ConfigError(f"{where}.step: must be > 0, got {step!r}")
        if log:
            raise ConfigError(f"{where}.step: cannot be combined with log: true (Optuna's rule); drop one")
    if low > high:
        raise ConfigError(f"{where}: low ({low}) is greater than high ({high}); swap them")
    if log and low <= 0:
        raise ConfigError(f"{where}.low: log: true needs low > 0, got {low}; raise low or drop log")
    if not _on_grid(high, low, step):
        raise ConfigError(f"{where}.step: high - low ({high} - {low}) must be a multiple of step ({step})")
    if knob is not None:
        low, high = knob.check(low, f"{where}.low"), knob.check(high, f"{where}.high")
    return _Param(name, kind, low=low, high=high, log=log, step=step)

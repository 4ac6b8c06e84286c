"""The search space: knob catalogue, presets, YAML validation, Optuna distributions.

A space is data: a preset name, a YAML file or a dict with the keys ``description``,
``extends``, ``knobs``, ``hyperparameters`` and ``start``. :func:`resolve` validates it
up front into a :class:`SearchSpace`; :meth:`SearchSpace.sample` feeds an Optuna trial and
:attr:`SearchSpace.distributions` feeds Ray Tune's ``OptunaSearch``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from tuner.errors import ConfigError
from tuner.records import TaskInfo

if TYPE_CHECKING:
    import optuna

__all__ = [
    "KNOBS",
    "Knob",
    "PRESETS",
    "SearchSpace",
    "resolve",
    "preset_dir",
    "preset_path",
    "AUGMENTATION_OPS",
    "AUGMENTATIONS_BY_INPUT",
    "parse_policy",
]

PRESETS: tuple[str, ...] = ("default", "quick", "small_data", "tabular", "vision", "sequence")
AUGMENTATION_OPS: tuple[str, ...] = (
    "none", "noise", "mixup", "flip", "translate", "rotate", "zoom", "contrast", "cutout", "shift", "mask",
)  # fmt: skip
AUGMENTATIONS_BY_INPUT: dict[str, frozenset[str]] = {
    "tabular": frozenset({"noise", "mixup"}),
    "image": frozenset({"noise", "mixup", "flip", "translate", "rotate", "zoom", "contrast", "cutout"}),
    "sequence": frozenset({"noise", "mixup", "shift", "mask"}),
}
_TOP_KEYS = ("description", "extends", "knobs", "hyperparameters", "start")
_SPEC_KEYS = ("type", "low", "high", "log", "step", "choices")
_SCALARS = (str, int, float, bool, type(None))
# PyYAML (YAML 1.1) reads 1e-4 as a string; YAML 1.2 and every user read it as a float.
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$")


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


class SearchSpace:
    """A validated, immutable search space. Build it with :func:`resolve`."""

    def __init__(
        self,
        *,
        name: str,
        source: str,
        description: str,
        knobs: Mapping[str, _Param],
        hyperparameters: Mapping[str, _Param],
        start: list[dict[str, Any]],
        notes: Iterable[str] = (),
    ) -> None:
        self._name, self._source, self._description = name, source, description
        self._knobs = {k: knobs[k] for k in KNOBS if k in knobs}  # catalogue order
        self._hps = dict(hyperparameters)
        params = {**self._knobs, **self._hps}
        self._start = [{k: v for k, v in p.items() if params[k].type != "fixed"} for p in start]
        self._notes = list(notes)
        self._searched = tuple(p for p in params.values() if p.type != "fixed")
        base = {k: kn.default for k, kn in KNOBS.items() if kn.default is not None and k not in params}
        base.update({p.name: p.value for p in params.values() if p.type == "fixed"})
        self._base = base
        self._order = tuple(k for k in (*KNOBS, *self._hps) if k in params or k in base)
        self._dists: dict[str, optuna.distributions.BaseDistribution] | None = None

    name = property(lambda self: self._name, doc="Preset name, file stem, or 'custom' for a dict.")
    source = property(lambda self: self._source, doc="Where the space came from, for messages.")
    description = property(lambda self: self._description)
    notes = property(lambda self: list(self._notes), doc="What for_task and extends changed, in words.")
    knob_names = property(lambda self: tuple(self._knobs), doc="Knobs the space searches or fixes.")
    hyperparameter_names = property(lambda self: tuple(self._hps))
    start_points = property(lambda self: [dict(p) for p in self._start], doc="Trials to enqueue first.")

    @property
    def fixed(self) -> dict[str, Any]:
        """Values the space fixes (knobs and hyperparameters), without the knob defaults."""
        return {p.name: p.value for p in (*self._knobs.values(), *self._hps.values()) if p.type == "fixed"}

    @property
    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Optuna distributions of the searched parameters, in sampling order."""
        if self._dists is None:
            from tuner._imports import require

            require("optuna")
            self._dists = {p.name: p.distribution() for p in self._searched}
        return dict(self._dists)

    def sample(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """This trial's values: suggested, fixed, and the defaults of knobs the space leaves out."""
        out = dict(self._base)
        for p in self._searched:
            if p.type == "float":
                out[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)
            elif p.type == "int":
                out[p.name] = trial.suggest_int(p.name, p.low, p.high, log=p.log, step=p.step or 1)
            else:
                out[p.name] = trial.suggest_categorical(p.name, p.choices)
        return {k: out[k] for k in self._order}

    def for_task(self, task: TaskInfo) -> SearchSpace:
        """This space without what cannot apply to ``task`` (label smoothing, foreign augmentations)."""
        knobs, notes = dict(self._knobs), list(self._notes)
        if not task.is_classification and knobs.pop("label_smoothing", None) is not None:
            notes.append("label_smoothing: removed (a regression task has no labels to smooth)")
        allowed = AUGMENTATIONS_BY_INPUT.get(task.input_kind)
        if allowed is None:
            raise ConfigError(
                f"input kind {task.input_kind!r} is not one of {', '.join(AUGMENTATIONS_BY_INPUT)}"
            )

        def fits(policy: str) -> bool:
            return set(parse_policy(policy)) <= allowed

        aug = knobs.get("augmentation")
        policies = () if aug is None else (aug.value,) if aug.type == "fixed" else aug.choices
        keep = [c for c in policies if fits(c)]
        if len(keep) < len(policies):
            dropped = ", ".join(c for c in policies if not fits(c))
            notes.append(f"augmentation: dropped {dropped} (not for {task.input_kind} inputs)")
            knobs["augmentation"] = (
                _Param("augmentation", "categorical", choices=tuple(keep))
                if len(keep) > 1
                else _Param("augmentation", "fixed", value=keep[0] if keep else "none")
            )
            strength = knobs.get("augment_strength")
            if knobs["augmentation"].spec() == "none" and strength is not None and strength.type != "fixed":
                del knobs["augment_strength"]
                notes.append("augment_strength: not searched (no augmentation applies)")
        start = [
            {k: ("none" if k == "augmentation" and not fits(v) else v) for k, v in p.items()}
            for p in self._start
        ]
        start = _adapt_starts(start, {**knobs, **self._hps}, notes)
        return SearchSpace(
            name=self._name, source=self._source, description=self._description,
            knobs=knobs, hyperparameters=self._hps, start=start, notes=notes,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved space as plain data; ``resolve(space.to_dict())`` rebuilds it."""
        return {
            "description": self._description,
            "knobs": {k: p.spec() for k, p in self._knobs.items()},
            "hyperparameters": {k: p.spec() for k, p in self._hps.items()},
            "start": self.start_points,
        }

    def to_yaml(self) -> str:
        """The fully resolved space as YAML text, headed by its name, source and notes."""
        import yaml

        head = [f"# search space {self._name!r} (from {self._source})"]
        head += [f"# note: {n}" for n in self._notes]
        return (
            "\n".join(head)
            + "\n"
            + yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        searched = ", ".join(p.name for p in self._searched)
        return f"SearchSpace({self._name!r}, searched=[{searched}], fixed={self.fixed})"


def _adapt_starts(starts: list[dict[str, Any]], params: Mapping[str, _Param], notes: list[str]) -> list[dict]:
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


def _parse_starts(raw: Any, params: Mapping[str, _Param]) -> list[dict[str, Any]]:
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


def _section(doc: Mapping[Any, Any], key: str) -> Mapping[Any, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: must be a mapping of name: spec, got {value!r}")
    return value


def _from_document(doc: Any, name: str, source: str, base_dir: Path, chain: tuple[str, ...]) -> SearchSpace:
    if not isinstance(doc, Mapping):
        raise ConfigError(f"search space {source}: must be a mapping with keys {', '.join(_TOP_KEYS)}")
    for key in doc:
        if key not in _TOP_KEYS:
            raise ConfigError(
                f"search space {source}: unknown top-level key {key!r}{_did_you_mean(key, _TOP_KEYS)}; "
                f"allowed keys: {', '.join(_TOP_KEYS)}"
            )
    parent = _extends(doc["extends"], source, base_dir, chain) if "extends" in doc else None
    try:
        return _build(doc, name, source, parent)
    except ConfigError as exc:
        raise ConfigError(f"search space {source}: {exc}") from None


def _build(doc: Mapping[str, Any], name: str, source: str, parent: SearchSpace | None) -> SearchSpace:
    description = doc.get("description")
    if description is None:
        description = parent.description if parent else ""
    if not isinstance(description, str):
        raise ConfigError(f"description: must be a string, got {description!r}")
    knobs = dict(parent._knobs) if parent else {}
    for key, raw in _section(doc, "knobs").items():
        if key not in KNOBS:
            raise ConfigError(
                f"knobs.{key}: unknown knob{_did_you_mean(key, KNOBS)}; the knobs are {', '.join(KNOBS)}. "
                "To search a setting of your own model, put your own hyperparameters under 'hyperparameters:'"
            )
        param = _parse_param(key, raw, f"knobs.{key}", KNOBS[key])
        if param is None:
            knobs.pop(key, None)
        else:
            knobs[key] = param
    hps = dict(parent._hps) if parent else {}
    for key, raw in _section(doc, "hyperparameters").items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(
                f"hyperparameters.{key}: a name must be a Python identifier (hp.{key} must work)"
            )
        if key in KNOBS:
            raise ConfigError(
                f"hyperparameters.{key}: {key!r} is a knob; set it under 'knobs:' or rename yours"
            )
        hps[key] = _parse_param(key, raw, f"hyperparameters.{key}", None)  # type: ignore[assignment]
    params = {**knobs, **hps}
    notes: list[str] = list(parent.notes) if parent else []
    if "start" in doc:
        start = _parse_starts(doc["start"], params)
    else:
        start = _adapt_starts(parent._start if parent else [], params, notes)
    return SearchSpace(
        name=name, source=source, description=description, knobs=knobs, hyperparameters=hps,
        start=start, notes=notes,
    )  # fmt: skip


def _extends(value: Any, source: str, base_dir: Path, chain: tuple[str, ...]) -> SearchSpace:
    if isinstance(value, str) and value in PRESETS:
        path, name = preset_path(value), value
    elif isinstance(value, str) and value.lower().endswith((".yaml", ".yml")):
        path, name = base_dir / Path(value).expanduser(), Path(value).stem
    else:
        raise ConfigError(
            f"search space {source}: extends: {value!r} is not a preset{_did_you_mean(value, PRESETS)}; "
            f"presets: {', '.join(PRESETS)}, or a path ending in .yaml"
        )
    if str(path.resolve()) in chain:
        raise ConfigError(f"search space {source}: extends {value!r} loops back to itself")
    return _load_file(path, name, chain)


def _fix_floats(obj: Any, seen: set[int] | None = None) -> Any:
    """Turn strings such as '1e-4' into floats, in place, through lists and mappings."""
    seen = set() if seen is None else seen
    if id(obj) in seen or not isinstance(obj, (dict, list)):
        return obj
    seen.add(id(obj))
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for key, value in list(items):
        if isinstance(value, str) and _EXP_FLOAT.match(value):
            obj[key] = float(value)
        else:
            _fix_floats(value, seen)
    return obj


def _load_file(path: Path, name: str | None = None, chain: tuple[str, ...] = ()) -> SearchSpace:
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"search space file {str(path)!r} does not exist (or is not a file)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read search space file {str(path)!r}: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(f"{path}: YAML syntax error at {at}: {exc.problem or exc}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if doc is None:
        raise ConfigError(f"{path}: the file is empty; write at least 'knobs:' or 'extends: default'")
    return _from_document(
        _fix_floats(doc), name or path.stem, str(path), path.parent, chain + (str(path.resolve()),)
    )


def preset_dir() -> Path:
    """The folder holding the preset YAML files (inside the wheel, or the source checkout)."""
    from importlib import resources

    try:
        packaged = resources.files("tuner") / "search_spaces"
        if isinstance(packaged, Path) and packaged.is_dir():
            return packaged
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "search_spaces"


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``."""
    if name not in PRESETS:
        raise ConfigError(
            f"unknown preset {name!r}{_did_you_mean(name, PRESETS)}; presets: {', '.join(PRESETS)}"
        )
    path = preset_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"preset file {path} is missing; reinstall regtuner")
    return path


def resolve(space: str | Path | Mapping[str, Any] | SearchSpace | None = "default") -> SearchSpace:
    """A validated :class:`SearchSpace` from a preset name, a .yaml path, a dict or a SearchSpace."""
    if isinstance(space, SearchSpace):
        return space
    if space is None:
        space = "default"
    if isinstance(space, Path):
        return _load_file(space)
    if isinstance(space, str):
        if space in PRESETS:
            return _load_file(preset_path(space), space)
        if space.lower().endswith((".yaml", ".yml")):
            return _load_file(Path(space))
        raise ConfigError(
            f"unknown search space {space!r}{_did_you_mean(space, PRESETS)}; presets: {', '.join(PRESETS)}. "
            "A path to your own space must end in .yaml or .yml"
        )
    if isinstance(space, Mapping):
        return _from_document(space, "custom", "dict", Path.cwd(), ())
    raise ConfigError(
        f"space must be a preset name, a .yaml path, a dict or a SearchSpace, not {type(space).__name__}"
    )

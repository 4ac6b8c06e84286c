"""The search space: presets, YAML validation, Optuna distributions (knobs: :mod:`tuner.space.knobs`).

A space is data: a preset name, a YAML file or a dict with the keys ``description``,
``extends``, ``knobs``, ``hyperparameters`` and ``start``. :func:`resolve` validates it
up front into a :class:`SearchSpace`; :meth:`SearchSpace.sample` feeds an Optuna trial and
:attr:`SearchSpace.distributions` feeds Ray Tune's ``OptunaSearch``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner._imports import require
from tuner.errors import ConfigError
from tuner.records import TaskInfo
from tuner.space.knobs import (
    AUGMENTATION_OPS,
    AUGMENTATIONS_BY_INPUT,
    KNOBS,
    OPEN_ENDED_SCHEDULES,
    Knob,
    _did_you_mean,
    _Param,
    _parse_param,
    parse_policy,
)
from tuner.space.presets import PRESETS, preset_dir, preset_path
from tuner.space.starts import adapt_starts, parse_starts
from tuner.space.yamldoc import safe_load

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

_TOP_KEYS = ("description", "extends", "knobs", "hyperparameters", "start")
# PyYAML (YAML 1.1) reads 1e-4 as a string; YAML 1.2 and every user read it as a float.
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$")


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
        dropped: Iterable[str] = (),
    ) -> None:
        self._name, self._source, self._description = name, source, description
        self._knobs = {k: knobs[k] for k in KNOBS if k in knobs}  # catalogue order
        self._hps = dict(hyperparameters)
        params = {**self._knobs, **self._hps}
        self._start = [{k: v for k, v in p.items() if params[k].type != "fixed"} for p in start]
        self._notes = list(notes)
        self._searched = tuple(p for p in params.values() if p.type != "fixed")
        self._dropped = frozenset(dropped)  # knobs the model cannot take: not even their defaults
        skip = set(params) | self._dropped
        base = {k: kn.default for k, kn in KNOBS.items() if kn.default is not None and k not in skip}
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

        if _narrow(knobs, "augmentation", fits, "none", f"not for {task.input_kind} inputs", notes):
            strength = knobs.get("augment_strength")
            if knobs["augmentation"].spec() == "none" and strength is not None and strength.type != "fixed":
                del knobs["augment_strength"]
                notes.append("augment_strength: not searched (no augmentation applies)")
        start = [
            {k: ("none" if k == "augmentation" and not fits(v) else v) for k, v in p.items()}
            for p in self._start
        ]
        return self._derived(knobs, self._hps, adapt_starts(start, {**knobs, **self._hps}, notes), notes)

    def without(self, reasons: Mapping[str, str]) -> SearchSpace:
        """This space without the knobs in ``reasons`` (knob -> why the model cannot take it)."""
        knobs = {k: p for k, p in self._knobs.items() if k not in reasons}
        notes = [
            *self._notes,
            *(f"{k}: not searched, not applicable to this model ({why})" for k, why in reasons.items()),
        ]
        start = [{k: v for k, v in p.items() if k not in reasons} for p in self._start]
        return self._derived(knobs, self._hps, start, notes, dropped=reasons) if reasons else self

    def with_params(self, params: Mapping[str, _Param], note: str) -> SearchSpace:
        """This space with ``params`` added or replacing what it had (knobs by their name, the rest as
        hyperparameters), e.g. those a Keras Tuner builder declares; ``note`` says where they came from."""
        knobs = {**self._knobs, **{k: p for k, p in params.items() if k in KNOBS}}
        hps = {**self._hps, **{k: p for k, p in params.items() if k not in KNOBS}}
        notes = [*self._notes, note] if params else self._notes
        start = adapt_starts(self._start, {**knobs, **hps}, notes)
        return self._derived(knobs, hps, start, notes) if params else self

    def for_open_budget(self, patience: int) -> SearchSpace:
        """This space for ``max_epochs="auto"``: early stopping always on (``patience`` where the space
        has none), and only the schedules that need no last epoch (``constant``, ``plateau``)."""
        knobs, notes = dict(self._knobs), list(self._notes)
        why = "max_epochs='auto' has no last epoch"
        _narrow(knobs, "lr_schedule", OPEN_ENDED_SCHEDULES.__contains__, "constant", why, notes)
        stop = knobs.get("patience")
        if stop is None or (stop.type == "fixed" and not stop.value):
            knobs["patience"] = _Param("patience", "fixed", value=patience)
            notes.append(f"patience: {patience} (max_epochs='auto': early stopping ends each trial)")
        start = adapt_starts(self._start, {**knobs, **self._hps}, notes)
        return self._derived(knobs, self._hps, start, notes)

    def around_learning_rate(self, lr: float, why: str) -> SearchSpace:
        """The searched learning-rate range moved to centre on ``lr`` (log scale, the same width)."""
        p = self._knobs.get("learning_rate")
        if p is None or p.type != "float" or not p.log or not lr > 0:
            return self
        half = math.sqrt(p.high / p.low)
        spec = {"low": lr / half, "high": lr * half, "log": True}
        try:
            new = _parse_param("learning_rate", spec, "learning_rate", KNOBS["learning_rate"])
        except ConfigError:  # outside what the knob allows: keep the space's range
            return self
        note = f"learning_rate: searched from {new.low:.3g} to {new.high:.3g} around {why}"
        return self.with_params({"learning_rate": new}, f"{note}, not {p.low:g} to {p.high:g}")

    def _derived(
        self, knobs: dict, hps: dict, start: list, notes: list, dropped: Iterable[str] = ()
    ) -> SearchSpace:
        return SearchSpace(
            name=self._name, source=self._source, description=self._description, knobs=knobs,
            hyperparameters=hps, start=start, notes=notes, dropped=self._dropped | set(dropped),
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


def _narrow(
    knobs: dict[str, _Param],
    name: str,
    fits: Callable[[Any], bool],
    fallback: Any,
    why: str,
    notes: list[str],
) -> bool:
    """Keep only the values of knob ``name`` that ``fits`` (``fallback`` when none is left); True when
    some were dropped (said in ``notes``)."""
    p = knobs.get(name)
    values = () if p is None else (p.value,) if p.type == "fixed" else p.choices
    keep = [v for v in values if fits(v)]
    if len(keep) == len(values):
        return False
    notes.append(f"{name}: dropped {', '.join(str(v) for v in values if not fits(v))} ({why})")
    knobs[name] = (
        _Param(name, "categorical", choices=tuple(keep))
        if len(keep) > 1
        else _Param(name, "fixed", value=keep[0] if keep else fallback)
    )
    return True


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
        start = parse_starts(doc["start"], params)
    else:
        start = adapt_starts(parent._start if parent else [], params, notes)
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
        doc = safe_load(text, str(path))  # yaml.safe_load's plain data; refuses alias bombs and loops
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(f"{path}: YAML syntax error at {at}: {exc.problem or exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: the YAML nests too deeply to read; flatten it") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if doc is None:
        raise ConfigError(f"{path}: the file is empty; write at least 'knobs:' or 'extends: default'")
    return _from_document(
        _fix_floats(doc), name or path.stem, str(path), path.parent, chain + (str(path.resolve()),)
    )


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

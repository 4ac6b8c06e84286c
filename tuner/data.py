"""Data entry: validate the user's data, infer the task, split it, fingerprint it.

Task inference (``task=None``), read from the training labels:

* bool, str, object or pandas category y -> classification;
* integer y -> classification with <= 100 distinct values, else regression (with a note);
* float y -> regression; when all values are whole numbers and there are <= 20 of them, a note
  suggests ``task="binary"``/``"multiclass"``;
* 2-D y that is one-hot (0/1, each row sums to 1) -> multiclass, converted to class indices;
  any other 2-D numeric y -> multi-output regression;
* 2 classes -> binary, more -> multiclass.

``task=`` may be "binary", "multiclass", "classification" (binary or multiclass by count) or
"regression"; labels that contradict it raise :class:`~tuner.errors.DataError`.

Splits: the test part first, then validation from the rest (``validation_split`` is a fraction of
what is left after the test split), both stratified for classification and seeded. With ``cv=k``
there is no validation part: ``folds`` holds k (train_idx, val_idx) index pairs into ``train``
(StratifiedKFold / KFold, shuffled; StratifiedGroupKFold / GroupKFold when ``groups`` is given).
With ``groups`` every split is group-wise (GroupShuffleSplit for test and validation), so no
group lands on both sides of any split.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuner._imports import require
from tuner.errors import ConfigError, DataError
from tuner.records import TaskInfo

__all__ = ["prepare", "PreparedData"]

TASKS = ("binary", "multiclass", "classification", "regression")
INPUT_KINDS = ("tabular", "sequence", "image")
PART_KEYS = ("train", "validation", "test")
MAX_INT_CLASSES = 100  # integer y with more distinct values is treated as a quantity
MAX_FLOAT_HINT = 20  # whole-number float y with at most this many values gets a classification hint
_NDIM = {"tabular": 2, "sequence": 3, "image": 4}
_SHAPES = {"tabular": "(n, features)", "sequence": "(n, steps, features)", "image": "(n, h, w, c)"}
_FIX = "use fewer folds, a smaller test split or test=None, explicit parts, or more data"

Pair = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True, eq=False)
class PreparedData:
    """Encoded, validated, split data. X is float32; y is int64 class indices or float32 targets."""

    train: Pair
    validation: Pair | None
    test: Pair | None
    folds: tuple[Pair, ...]
    task: TaskInfo
    fingerprint: str
    n_rows: int
    leakage: dict[str, int]
    notes: tuple[str, ...] = ()

    def decode(self, labels: Any) -> np.ndarray:
        """Map encoded class indices (or an (n, K) score matrix, by argmax) to the original labels."""
        idx = np.asarray(labels)
        idx = idx.argmax(axis=1) if idx.ndim == 2 else idx
        k = self.task.n_classes
        if not k or idx.dtype.kind not in "iu" or (idx.size and not 0 <= idx.min() <= idx.max() < k):
            raise DataError(
                f"decode() needs class indices in 0..{k - 1} of a classification task (this one: "
                f"{self.task.kind!r}); got dtype {idx.dtype}"
                f"{f', values {idx.min()}..{idx.max()}' if idx.size else ''}."
            )
        return np.asarray(self.task.classes)[idx]

    def __repr__(self) -> str:
        def shape(p: Pair | None) -> str:
            return "None" if p is None else f"X{p[0].shape}, y{p[1].shape}"

        return (
            f"PreparedData(task={self.task.kind!r}, train={shape(self.train)}, "
            f"validation={shape(self.validation)}, test={shape(self.test)}, folds={len(self.folds)}, "
            f"fingerprint={self.fingerprint!r})"
        )


@dataclass
class _Target:
    kind: str  # binary | multiclass | regression
    classes: np.ndarray | None  # labels in encoded order (classification)
    onehot: int = 0  # width of a one-hot y, 0 otherwise
    n_outputs: int = 1
    numeric_labels: bool = False  # integer/float class labels (which might be a quantity)


def prepare(
    data: Any,
    *,
    task: str | None = None,
    validation_split: float | None = 0.2,
    test: Any = 0.2,
    cv: int | None = None,
    groups: Any = None,
    input_kind: str | None = None,
    seed: int = 0,
) -> PreparedData:
    """Validate ``data``, infer the task and split it (rules in the module docstring).

    ``data`` is ``(X, y)`` (arrays, lists, pandas) or a mapping with ``train`` and optional
    ``validation`` / ``test`` pairs; explicit parts win over ``validation_split`` / ``test``
    fractions. ``test`` is a fraction, an ``(X, y)`` pair, or None for no test part.
    """
    test_pair = _is_pair(test)
    _check_settings(task, validation_split, test, test_pair, cv, input_kind, seed)
    cv, seed = (None if cv is None else int(cv)), int(seed)  # numpy ints would change the fingerprint
    raw = _parts(data, test if test_pair else None)
    notes: list[str] = []
    if cv is not None and "validation" in raw:
        raise ConfigError(
            f"cv={cv} makes its own validation folds, but the data has an explicit 'validation' part. "
            "Drop that part, or pass cv=None to use it."
        )
    if validation_split is None and cv is None and "validation" not in raw:
        raise ConfigError("validation_split=None needs cv=k or an explicit 'validation' part; e.g. use 0.2.")
    if test is None and "test" in raw:
        notes.append("test=None ignored: the data has an explicit 'test' part")

    xs: dict[str, np.ndarray] = {}
    ys: dict[str, np.ndarray] = {}
    orders: dict[str, tuple[Any, ...] | None] = {}
    for name, (X, y) in raw.items():
        xs[name], (ys[name], orders[name]) = _to_x(X, name), _to_y(y, name)
        if len(xs[name]) != len(ys[name]):
            raise DataError(
                f"X and y of {name} differ in length: X has {len(xs[name])} rows, y has {len(ys[name])}. "
                "Pass one label per row of X."
            )
    kind = _input_kind(xs, input_kind, notes)
    n = len(xs["train"])
    g = None if groups is None else np.asarray(groups)
    if g is not None:
        if g.ndim != 1 or len(g) != n:
            raise DataError(f"groups has {g.size} entries but train has {n} rows; pass one group id per row.")
        g = g.astype(str) if g.dtype.kind == "O" else g

    target = _resolve_task(ys["train"], orders["train"], task, notes)
    enc = {name: _encode_y(y, target, name) for name, y in ys.items()}
    if target.classes is not None:
        seen = np.unique(enc["train"])  # a one-hot column never hot in train counts as unseen
        for part in ("validation", "test"):
            if part in enc and not np.isin(enc[part], seen).all():
                _unseen_error(target.classes[enc[part][~np.isin(enc[part], seen)]], part)

    test_frac = float(test) if test is not None and not test_pair and "test" not in raw else None
    val_frac = float(validation_split) if cv is None and "validation" not in raw else None  # type: ignore[arg-type]
    if g is not None and cv is None and test_frac is None and val_frac is None:
        notes.append("groups unused: there is no split to make (explicit parts and no cv)")
    strat = enc["train"] if target.classes is not None else None
    tr, va, te, folds = _split(n, strat, g, test_frac, val_frac, cv, seed, target, notes)

    X0, y0 = xs["train"], enc["train"]
    parts: dict[str, Pair | None] = {p: (xs[p], enc[p]) if p in xs else None for p in PART_KEYS}
    for name, idx in (("train", tr), ("validation", va), ("test", te)):
        if idx is not None:
            parts[name] = (X0[idx], y0[idx])
    leakage = {}
    for name in ("validation", "test"):
        pair = parts[name]
        leakage[f"{name}_in_train"] = count = 0 if pair is None else _count_in(parts["train"][0], pair[0])  # type: ignore[index]
        if count:
            notes.append(
                f"{count} {name} rows are exact copies of training rows: {name} scores are optimistic"
            )
    info = TaskInfo(
        kind=target.kind,  # type: ignore[arg-type]
        n_classes=0 if target.classes is None else len(target.classes),
        classes=() if target.classes is None else tuple(target.classes.tolist()),
        n_outputs=target.n_outputs,
        input_kind=kind,  # type: ignore[arg-type]
        input_shape=tuple(int(d) for d in X0.shape[1:]),
    )
    settings = {"task": target.kind, "test": test_frac, "validation": val_frac, "cv": cv, "seed": seed}
    return PreparedData(
        train=parts["train"],  # type: ignore[arg-type]
        validation=parts["validation"],
        test=parts["test"],
        folds=folds,
        task=info,
        fingerprint=_fingerprint(xs, enc, info, settings, g),
        n_rows=sum(len(x) for x in xs.values()),
        leakage=leakage,
        notes=tuple(notes),
    )


# ----------------------------------------------------------------------------- settings and parsing


def _is_pair(obj: Any) -> bool:
    return isinstance(obj, (tuple, list)) and len(obj) == 2


def _check_settings(task: Any, val: Any, test: Any, test_pair: bool, cv: Any, kind: Any, seed: Any) -> None:
    def is_int(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    def is_frac(v: Any) -> bool:
        return (is_int(v) or isinstance(v, (float, np.floating))) and 0 < v < 1

    problems = [
        (
            task is not None and task not in TASKS,
            f"task={task!r} is not one of {TASKS} (or None to infer it)",
        ),
        (kind is not None and kind not in INPUT_KINDS, f"input_kind={kind!r} is not one of {INPUT_KINDS}"),
        (
            cv is not None and not (is_int(cv) and cv >= 2),
            f"cv={cv!r} must be an int >= 2 (e.g. cv=5) or None",
        ),
        (
            val is not None and not is_frac(val),
            f"validation_split={val!r} must be a fraction in (0, 1), e.g. 0.2",
        ),
        (
            test is not None and not test_pair and not is_frac(test),
            f"test={test!r} must be a fraction in (0, 1) (e.g. 0.2), an (X, y) pair, or None",
        ),
        (not (is_int(seed) and 0 <= seed < 2**32), f"seed={seed!r} must be an int in [0, 2**32)"),
    ]
    for bad, message in problems:
        if bad:
            raise ConfigError(message + ".")


def _parts(data: Any, test_pair: Any) -> dict[str, tuple[Any, Any]]:
    if isinstance(data, Mapping):
        unknown = sorted(map(str, set(data) - set(PART_KEYS)))
        if unknown:
            raise DataError(f"data has unknown keys {unknown}; use only 'train', 'validation', 'test'.")
        if data.get("train") is None:
            raise DataError("data mapping has no 'train' part; pass {'train': (X, y), ...}.")
        parts = {k: _pair(data[k], k) for k in PART_KEYS if data.get(k) is not None}
    else:
        parts = {"train": _pair(data, "data")}
    if test_pair is not None:
        if "test" in parts:
            raise ConfigError("test data given twice (in the data mapping and as test=); pass it once.")
        parts["test"] = _pair(test_pair, "test")
    return parts


def _pair(obj: Any, name: str) -> tuple[Any, Any]:
    if not _is_pair(obj):
        hint = " Convert framework datasets to arrays first." if "Dataset" in type(obj).__name__ else ""
        raise DataError(
            f"{name} must be an (X, y) pair of arrays or pandas objects; got {type(obj).__name__}"
            f"{f' of length {len(obj)}' if isinstance(obj, (tuple, list)) else ''}.{hint}"
        )
    return obj[0], obj[1]


def _is_pandas(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas")


def _name(value: Any) -> str:
    """repr of a label without numpy's scalar wrapper (np.str_('a') -> 'a')."""
    return repr(value.item() if isinstance(value, np.generic) else value)


# ----------------------------------------------------------------------------- X and y conversion


def _to_x(X: Any, part: str) -> np.ndarray:
    columns = None
    if _is_pandas(X) and hasattr(X, "columns"):
        pd = require("pandas")
        bad = [str(c) for c, dt in X.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)]
        if bad:
            raise DataError(
                f"X ({part}) has non-numeric columns {bad}. Encode them first, "
                f"e.g. pd.get_dummies(X, columns={bad}) or sklearn's OrdinalEncoder."
            )
        columns = [str(c) for c in X.columns]
        X = X.to_numpy(dtype=np.float64, na_value=np.nan)
    arr = np.asarray(X)
    if arr.ndim <= 1:
        fix = " If it is one feature, pass X.reshape(-1, 1)." if arr.ndim == 1 else ""
        raise DataError(f"X ({part}) needs a row axis and feature axes; got shape {arr.shape}.{fix}")
    if arr.ndim > 4:
        raise DataError(f"X ({part}) has shape {arr.shape}; at most 4 axes (n, h, w, c) are supported.")
    if arr.size == 0:
        raise DataError(f"X ({part}) is empty (shape {arr.shape}); it needs at least one row and feature.")
    if arr.dtype.kind not in "biufO":
        raise DataError(
            f"X ({part}) is not numeric (dtype {arr.dtype}). Encode text and categories as numbers "
            "first (e.g. pd.get_dummies or sklearn's OneHotEncoder)."
        )
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.ascontiguousarray(arr, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"X ({part}) holds values that are not numbers ({exc}); encode them first.") from exc
    bad = ~np.isfinite(out)
    if bad.any():
        n_nan = int(np.isnan(out).sum())
        rows = bad.reshape(len(out), -1).any(axis=1)
        where = f"first at row {int(np.flatnonzero(rows)[0])}"
        if out.ndim == 2:
            cols = np.flatnonzero(bad.any(axis=0))
            names = ", ".join(repr(columns[c]) if columns else str(c) for c in cols[:5])
            where = f"in column{'s' * (len(cols) > 1)} {names}{' ...' * (len(cols) > 5)}; {where}"
        raise DataError(
            f"X ({part}) has {n_nan} NaN and {int(bad.sum()) - n_nan} inf values in {int(rows.sum())} rows "
            f"({where}). Impute them (e.g. sklearn.impute.SimpleImputer) or drop those rows "
            "(X[np.isfinite(X).all(axis=1)], or df.dropna() for pandas)."
        )
    return out


def _to_y(y: Any, part: str) -> tuple[np.ndarray, tuple[Any, ...] | None]:
    order = None
    if _is_pandas(y):
        pd = require("pandas")
        if hasattr(y, "columns"):
            y = y.iloc[:, 0] if y.shape[1] == 1 else y.to_numpy()
        if isinstance(y, pd.Series):
            if y.isna().any():
                _missing_error(y.isna().to_numpy(), part, "missing")
            if isinstance(y.dtype, pd.CategoricalDtype):
                order = tuple(y.cat.categories.tolist())
            y = y.to_numpy(dtype=getattr(y.dtype, "numpy_dtype", None))  # Int64 -> int64, category -> object
    arr = np.asarray(y)
    arr = arr[:, 0] if arr.ndim == 2 and arr.shape[1] == 1 else arr
    if arr.ndim not in (1, 2) or arr.dtype.kind not in "biufUSO":
        raise DataError(
            f"y ({part}) must be 1-D labels/targets or 2-D (n, outputs); got {arr.shape} {arr.dtype}."
        )
    if arr.size == 0:
        raise DataError(f"y ({part}) is empty (shape {arr.shape}); it needs one label per row of X.")
    if arr.dtype.kind in "fO":
        bad = ~np.isfinite(arr) if arr.dtype.kind == "f" else np.equal(arr, None) | (arr != arr)
        if bad.any():
            _missing_error(bad.reshape(len(arr), -1).any(axis=1), part, "NaN/inf/None")
    return arr, order


def _missing_error(rows: np.ndarray, part: str, what: str) -> None:
    raise DataError(
        f"y ({part}) has {int(rows.sum())} rows with {what} values, first at row "
        f"{int(np.flatnonzero(rows)[0])}. Drop those rows (from X too) or fill them in."
    )


def _input_kind(xs: dict[str, np.ndarray], input_kind: str | None, notes: list[str]) -> str:
    ndim, before = xs["train"].ndim, xs["train"].shape[1:]
    kind = input_kind or {2: "tabular", 3: "sequence", 4: "image"}[ndim]
    for name, X in xs.items():
        if X.ndim == _NDIM[kind]:
            continue
        if input_kind == "tabular":
            xs[name] = X.reshape(len(X), -1)
        elif input_kind is not None and X.ndim == _NDIM[kind] - 1:
            xs[name] = X[..., None]  # (n, h, w) images get a channel, (n, steps) sequences a feature axis
        else:
            raise DataError(
                f"X ({name}) has shape {X.shape}, but input_kind {kind!r} needs {_SHAPES[kind]}; reshape it."
            )
    if input_kind is not None and ndim != _NDIM[kind]:
        notes.append(f"input_kind={kind!r}: rows of shape {before} reshaped to {xs['train'].shape[1:]}")
    shapes = {name: X.shape[1:] for name, X in xs.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in shapes.items())
        raise DataError(f"the parts have different feature shapes ({listed}); every part needs the same.")
    return kind


# ----------------------------------------------------------------------------- task and labels


def _resolve_task(y: np.ndarray, order: tuple | None, task: str | None, notes: list[str]) -> _Target:
    k = y.dtype.kind
    if y.ndim == 2:
        d = y.shape[1]
        if k not in "biuf":
            raise DataError(f"2-D y must be numeric (one-hot or multi-output targets); got dtype {y.dtype}.")
        binary01 = bool(np.all((y == 0) | (y == 1)))
        onehot = binary01 and bool(np.all(y.sum(axis=1) == 1))
        if task == "regression" or (task is None and not onehot):
            if task is None and binary01:
                notes.append(f"y is 2-D 0/1 with {d} columns, not one-hot: read as multi-output regression")
            return _Target("regression", None, n_outputs=d)
        if not onehot:
            raise DataError(
                f"task={task!r} needs 1-D labels or a one-hot y, but this y has {d} columns whose rows "
                "are not one-hot. Pass class labels as a 1-D array, or task='regression'."
            )
        notes.append(f"y is one-hot with {d} columns: converted to class indices")
        return _classes(np.arange(d), len(np.unique(y.argmax(axis=1))), task, d, notes, "", y)
    if order is not None or k in "bUSO":
        if task == "regression" and k != "b":
            raise DataError(
                f"task='regression' but y holds labels (dtype {y.dtype}, e.g. {_name(y[0])}). "
                "Use task='classification', or map the labels to numbers first."
            )
        if task != "regression":
            try:
                classes = np.unique(y)
            except TypeError as exc:
                raise DataError(
                    f"y mixes label types ({exc}); give all labels one type, e.g. y.astype(str)."
                ) from exc
            if order is not None:
                present = set(classes.tolist())
                classes = np.asarray([c for c in order if c in present], dtype=object)
            desc = {"b": "boolean", "U": "string", "S": "bytes"}.get(k, "categorical" if order else "object")
            return _classes(classes, len(classes), task, 0, notes, desc, y)
    if task == "regression":
        return _Target("regression", None)
    classes = np.unique(y)
    if k == "f":
        integral = bool(np.all(classes == np.round(classes)))
        if task is not None and not integral:
            raise DataError(
                f"task={task!r} but y has non-integer values such as "
                f"{_name(classes[classes != np.round(classes)][0])}; class labels must be whole numbers "
                "or strings. Use task='regression' for a quantity."
            )
        if task is None:
            if integral and len(classes) <= MAX_FLOAT_HINT:
                notes.append(
                    f"y is float with only {len(classes)} whole-number values: treated as regression; pass "
                    f"task={'binary' if len(classes) == 2 else 'multiclass'!r} if they are class labels"
                )
            return _Target("regression", None)
    elif task is None and len(classes) > MAX_INT_CLASSES:
        notes.append(
            f"y has {len(classes)} distinct integer values (> {MAX_INT_CLASSES}): treated as regression; "
            "pass task='multiclass' if they are class labels"
        )
        return _Target("regression", None)
    return _classes(classes, len(classes), task, 0, notes, "integer" if k in "iu" else "float", y)


def _classes(
    classes: np.ndarray, observed: int, task: str | None, onehot: int, notes: list[str], desc: str, y: Any
) -> _Target:
    if observed < 2:
        value = int(np.argmax(y[0])) if onehot else y[0]
        raise DataError(
            f"y has one class only (value {_name(value)}, {len(y)} rows); classification needs at least "
            "two. Add rows of other classes, or use task='regression' for a numeric target."
        )
    n = len(classes)
    if task == "binary" and n != 2:
        shown = ", ".join(map(_name, classes[:10]))
        raise DataError(f"task='binary' but y has {n} classes ({shown}); use task='multiclass'.")
    kind = task if task in ("binary", "multiclass") else ("binary" if n == 2 else "multiclass")
    if task is None and desc:
        notes.append(f"task inferred as {kind} from {n} distinct {desc} labels")
    return _Target(kind, classes, onehot, 1, desc in ("integer", "float"))


def _encode_y(y: np.ndarray, target: _Target, part: str) -> np.ndarray:
    if target.classes is None:
        width = y.shape[1] if y.ndim == 2 else 1
        if y.dtype.kind not in "biuf" or width != target.n_outputs:
            raise DataError(
                f"y ({part}) must be numeric with {target.n_outputs} outputs like train's; "
                f"got {width} outputs of dtype {y.dtype}."
            )
        with np.errstate(over="ignore"):
            out = np.ascontiguousarray(y, dtype=np.float32)
        if not np.isfinite(out).all():
            raise DataError(f"y ({part}) has values beyond float32 range; rescale the target.")
        return out
    if target.onehot and y.ndim == 2:
        if y.shape[1] != target.onehot or not np.all(y.sum(axis=1) == 1):
            raise DataError(f"y ({part}) must be one-hot with {target.onehot} columns like train.")
        return y.argmax(axis=1).astype(np.int64)
    if y.ndim != 1:
        raise DataError(f"y ({part}) must be 1-D labels like train; got shape {y.shape}.")
    classes = target.classes
    try:
        sorter = np.argsort(classes)
        idx = sorter[np.clip(np.searchsorted(classes, y, sorter=sorter), 0, len(classes) - 1)]
        hit = np.asarray(classes[idx] == y, dtype=bool)
    except TypeError as exc:
        raise DataError(
            f"labels of {part} (dtype {y.dtype}) do not compare with train's labels ({exc}); "
            "give every part labels of the same type."
        ) from exc
    if not hit.all():
        _unseen_error(y[~hit], part)
    return idx.astype(np.int64)


def _unseen_error(values: np.ndarray, part: str) -> None:
    uniq, counts = np.unique(values.astype(object).astype(str), return_counts=True)
    listed = ", ".join(f"{_name(u)} ({c} rows)" for u, c in zip(uniq[:10], counts[:10], strict=True))
    raise DataError(
        f"y ({part}) has labels not seen in train: {listed}. Add rows of those classes to train, drop "
        f"them from {part}, or pass a single (X, y) and let prepare() split it stratified."
    )


# ----------------------------------------------------------------------------- splits


def _split(
    n: int,
    y: np.ndarray | None,
    groups: np.ndarray | None,
    test_frac: float | None,
    val_frac: float | None,
    cv: int | None,
    seed: int,
    target: _Target,
    notes: list[str],
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, tuple[Pair, ...]]:
    """Check that the splits can be made (before making any), then make them."""
    ms = require("sklearn.model_selection")
    if groups is not None:
        _sizes(len(np.unique(groups)), test_frac, val_frac, cv, 1, "groups")
    else:
        _precheck(n, y, test_frac, val_frac, cv, target)

    def cut(idx: np.ndarray, frac: float | None) -> tuple[np.ndarray, np.ndarray | None]:
        if frac is None:
            return idx, None
        if groups is not None:
            splitter = ms.GroupShuffleSplit(n_splits=1, test_size=frac, random_state=seed)
            a, b = (idx[i] for i in next(splitter.split(idx, groups=groups[idx])))
        else:
            strat = None if y is None else y[idx]
            try:
                a, b = ms.train_test_split(idx, test_size=frac, stratify=strat, random_state=seed)
            except ValueError as exc:  # a case the prechecks missed; still the user's data
                raise DataError(f"cannot split {len(idx)} rows {frac:g}: {exc}; {_FIX}.") from exc
        return np.sort(a), np.sort(b)

    rest, te = cut(np.arange(n), test_frac)
    tr, va = cut(rest, val_frac)
    if y is not None and groups is not None and np.setdiff1d(y, y[tr]).size:
        lost = _name(target.classes[np.setdiff1d(y, y[tr])[0]])  # type: ignore[index]
        raise DataError(
            f"the group-wise split left class {lost} out of train (all its groups went to validation/test); "
            f"try another seed, give that class more groups, or {_FIX}."
        )
    folds: tuple[Pair, ...] = ()
    if cv is not None:
        yt, gt = (None if y is None else y[tr]), (None if groups is None else groups[tr])
        if gt is not None:
            if len(np.unique(gt)) < cv:
                raise DataError(
                    f"cv={cv} folds need {cv} groups in train, but it has {len(np.unique(gt))}; {_FIX}."
                )
            cls = ms.StratifiedGroupKFold if yt is not None else ms.GroupKFold
            if yt is not None and np.bincount(yt)[np.bincount(yt) > 0].min() < cv:
                notes.append(f"some classes have fewer than {cv} training rows: some group folds lack them")
        elif yt is not None:
            counts = np.bincount(yt)
            low = np.flatnonzero(counts)[np.argmin(counts[counts > 0])]
            if counts[low] < cv:
                raise DataError(
                    f"cv={cv} stratified folds need {cv} rows of each class in train, but class "
                    f"{_name(target.classes[low])} has {counts[low]}; {_FIX}."  # type: ignore[index]
                )
            cls = ms.StratifiedKFold
        else:
            cls = ms.KFold
        with warnings.catch_warnings():  # the note above says it in our words
            warnings.filterwarnings("ignore", "The least populated class", UserWarning)
            pairs = list(cls(n_splits=cv, shuffle=True, random_state=seed).split(tr, yt, groups=gt))
        folds = tuple((a.astype(np.int64), b.astype(np.int64)) for a, b in pairs)
    if test_frac is not None or val_frac is not None:
        sizes = ", ".join(
            f"{len(i)} {s}" for i, s in ((tr, "train"), (va, "validation"), (te, "test")) if i is not None
        )
        how = "group-wise" if groups is not None else ("stratified" if y is not None else "shuffled")
        notes.append(f"split {n} rows into {sizes} ({how}, seed {seed})")
    return tr, va, te, folds


def _precheck(
    n: int,
    y: np.ndarray | None,
    test_frac: float | None,
    val_frac: float | None,
    cv: int | None,
    target: _Target,
) -> None:
    _sizes(n, test_frac, val_frac, cv, 1 if y is None else len(np.unique(y)), "rows")
    if y is None:
        return
    counts = np.bincount(y)
    fits = _fits(np.arange(1, n + 1), n, test_frac, val_frac, cv)
    minimum = f"at least {int(np.argmax(fits)) + 1}" if fits.any() else f"more than {n}"
    small = np.flatnonzero((counts > 0) & ~_fits(counts, n, test_frac, val_frac, cv))
    if small.size:
        listed = ", ".join(f"{_name(target.classes[c])} has {counts[c]} rows" for c in small[:5])  # type: ignore[index]
        parts = ["test"] * (test_frac is not None) + ["validation"] * (val_frac is not None)
        parts.append(f"{cv} folds" if cv else "train")
        hint = " If y is a quantity, pass task='regression'." if target.numeric_labels else ""
        raise DataError(
            f"class {listed}; the stratified splits ({' + '.join(parts)}) need {minimum} rows "
            f"of each class; {_FIX}.{hint}"
        )


def _sizes(
    n: int, test_frac: float | None, val_frac: float | None, cv: int | None, k: int, unit: str
) -> None:
    """Each split must leave ``k`` (rows: one per class) ``unit`` on both sides, and ``cv`` for the folds."""
    left = n
    for what, frac in (("test", test_frac), ("validation", val_frac)):
        if frac is not None:
            out = math.ceil(frac * left)  # sklearn's rounding of a fractional test_size
            if min(out, left - out) < k:
                each = f"at least {k} (one per class)" if k > 1 else "at least 1"
                raise DataError(
                    f"a {what} split of {frac:g} of {left} {unit} gives {out} {what} and {left - out} "
                    f"other {unit}; each side needs {each}; {_FIX}."
                )
            left -= out
    if cv is not None and left < cv:
        raise DataError(f"cv={cv} folds need at least {cv} training {unit}, but only {left} remain; {_FIX}.")


def _fits(
    counts: np.ndarray, n: int, test_frac: float | None, val_frac: float | None, cv: int | None
) -> np.ndarray:
    """Which class sizes survive the stratified splits in the worst case of sklearn's rounding.

    A stratified split of ``n_out`` rows gives a class of ``c`` rows at most ``ceil(c * n_out / n)`` of
    them; each split needs 2 rows of the class, and train keeps at least ``cv`` (or 1).
    """
    worst, left, ok = counts.astype(np.int64), n, np.ones(len(counts), dtype=bool)
    for frac in (test_frac, val_frac):
        if frac is not None:
            out = math.ceil(frac * left)
            ok &= worst >= 2
            worst = worst - np.ceil(worst * out / left).astype(np.int64)
            left -= out
    return ok & (worst >= (cv or 1))


# ----------------------------------------------------------------------------- hashing


def _row_hashes(X: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """64-bit hash of each row's float32 bits (-0.0 counted as 0.0): a seeded linear hash mod 2**64."""
    rows = X.reshape(len(X), -1)
    weights = np.random.default_rng(12345).integers(
        1, 2**63, size=rows.shape[1], dtype=np.uint64
    ) | np.uint64(1)
    out = np.empty(len(rows), dtype=np.uint64)
    for start in range(0, len(rows), chunk):  # chunks bound the uint64 copy for wide (image) rows
        block = rows[start : start + chunk] + np.float32(0.0)
        out[start : start + chunk] = block.view(np.uint32).astype(np.uint64) @ weights
    return out


def _count_in(train: np.ndarray, other: np.ndarray) -> int:
    """How many rows of ``other`` equal some row of ``train`` exactly (hash match, then compared)."""
    if not len(train) or not len(other):
        return 0
    ht, ho = _row_hashes(train), _row_hashes(other)
    order = np.argsort(ht)
    pos = order[np.clip(np.searchsorted(ht, ho, sorter=order), 0, len(ht) - 1)]
    cand = np.flatnonzero(ht[pos] == ho)
    same = other.reshape(len(other), -1)[cand] == train.reshape(len(train), -1)[pos[cand]]
    return int(same.all(axis=1).sum())


def _fingerprint(xs: dict, ys: dict, info: TaskInfo, settings: dict, groups: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for name in (p for p in PART_KEYS if p in xs):
        for arr in (xs[name], ys[name]):
            h.update(f"{name}|{arr.shape}|{arr.dtype.str}|".encode())
            h.update(np.ascontiguousarray(arr).data)
    h.update(repr((info.classes, info.input_kind, sorted(settings.items()))).encode())
    if groups is not None:
        h.update(np.unique(groups, return_inverse=True)[1].astype(np.int64).data)
    return h.hexdigest()[:16]

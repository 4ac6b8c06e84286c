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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuner._imports import require
from tuner.data.splits import Pair, _count_in, _split
from tuner.data.targets import MAX_FLOAT_HINT as MAX_FLOAT_HINT
from tuner.data.targets import MAX_INT_CLASSES as MAX_INT_CLASSES
from tuner.data.targets import _encode_y, _resolve_task, _unseen_error
from tuner.data.torch_data import dataset_arrays, is_torch_dataset
from tuner.errors import ConfigError, DataError
from tuner.records import TaskInfo

__all__ = ["prepare", "PreparedData", "check_split", "is_pair"]

TASKS = ("binary", "multiclass", "classification", "regression")
INPUT_KINDS = ("tabular", "sequence", "image")
PART_KEYS = ("train", "validation", "test")
_NDIM = {"tabular": 2, "sequence": 3, "image": 4}
_SHAPES = {"tabular": "(n, features)", "sequence": "(n, steps, features)", "image": "(n, h, w, c)"}


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
    fractions. ``test`` is a fraction, an ``(X, y)`` pair, or None for no test part. A map-style
    torch ``Dataset`` of ``(input, target)`` items may stand for any pair; it is read once into arrays.
    """
    test_pair = is_pair(test)
    check_split(task, validation_split, test, test_pair, cv, input_kind, seed)
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


def is_pair(obj: Any) -> bool:
    """An ``(X, y)`` pair (or a torch Dataset standing for one)."""
    return (isinstance(obj, (tuple, list)) and len(obj) == 2) or is_torch_dataset(obj)


def check_split(task: Any, val: Any, test: Any, test_pair: bool, cv: Any, kind: Any, seed: Any) -> None:
    """Refuse a task, split, folds, input kind or seed that :func:`prepare` cannot use."""

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
    if is_torch_dataset(obj):  # read once into arrays; see tuner.data.torch_data
        return dataset_arrays(obj, name)
    if not is_pair(obj):
        hint = " Convert framework datasets to arrays first." if "Dataset" in type(obj).__name__ else ""
        raise DataError(
            f"{name} must be an (X, y) pair of arrays or pandas objects; got {type(obj).__name__}"
            f"{f' of length {len(obj)}' if isinstance(obj, (tuple, list)) else ''}.{hint}"
        )
    return obj[0], obj[1]


def _is_pandas(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas")


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
    arr = _array(X, f"X ({part})")
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
    arr = _array(y, f"y ({part})")
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


def _array(obj: Any, what: str) -> np.ndarray:
    try:
        return np.asarray(obj)
    except (TypeError, ValueError) as exc:  # ragged nested lists: numpy cannot make one array of them
        raise DataError(
            f"{what} is not a rectangular array ({str(exc).split('.')[0]}); every row needs the same "
            "length. Pad or trim the rows, or pass a numpy array."
        ) from None


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

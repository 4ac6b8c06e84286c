"""Reading the user's data into arrays: ``(X, y)`` pairs, parts, pandas, torch Datasets.

Each part's X becomes a float32 array (numeric columns only, no NaN/inf), each y a 1-D or 2-D
array; every message says which part and how to fix it. The task, splits and fingerprint are
:mod:`tuner.data.prepare`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tuner._imports import require
from tuner.data.tables import PREPROCESS_FIX, Table, read_table
from tuner.data.torch_data import dataset_arrays, is_torch_dataset
from tuner.errors import ConfigError, DataError

__all__ = ["PART_KEYS", "INPUT_KINDS", "is_pair", "read_parts", "read_x", "resolve_input_kind"]

INPUT_KINDS = ("tabular", "sequence", "image")
PART_KEYS = ("train", "validation", "test")
_NDIM = {"tabular": 2, "sequence": 3, "image": 4}
_SHAPES = {"tabular": "(n, features)", "sequence": "(n, steps, features)", "image": "(n, h, w, c)"}

Arrays = dict[str, np.ndarray]


def read_parts(
    data: Any, test_pair: Any
) -> tuple[Arrays, Arrays, dict[str, tuple[Any, ...] | None], Table | None]:
    """X and y arrays of each part present (``train``, then ``validation`` / ``test``), each y's
    category order where pandas gave one, and the :class:`~tuner.data.tables.Table` when the train
    X is a raw table (text columns, missing values). ``test_pair`` is a ``test=(X, y)`` given apart."""
    xs: Arrays = {}
    ys: Arrays = {}
    orders: dict[str, tuple[Any, ...] | None] = {}
    table: Table | None = None
    for name, (X, y) in _parts(data, test_pair).items():
        raw = read_table(X, name, table) if name == "train" or table is not None else None
        if raw is not None:
            xs[name], table = raw
        else:
            xs[name] = read_x(X, name)
        ys[name], orders[name] = _to_y(y, name)
        if len(xs[name]) != len(ys[name]):
            raise DataError(
                f"X and y of {name} differ in length: X has {len(xs[name])} rows, y has {len(ys[name])}. "
                "Pass one label per row of X."
            )
    return xs, ys, orders, table


def is_pair(obj: Any) -> bool:
    """An ``(X, y)`` pair (or a torch Dataset standing for one)."""
    return (isinstance(obj, (tuple, list)) and len(obj) == 2) or is_torch_dataset(obj)


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


def read_x(X: Any, part: str) -> np.ndarray:
    """``X`` as a float32 array of numbers, or a :class:`DataError` naming the fault and its fix."""
    columns = None
    if _is_pandas(X) and hasattr(X, "columns"):
        pd = require("pandas")
        bad = [str(c) for c, dt in X.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)]
        if bad:
            raise DataError(
                f"X ({part}) has non-numeric columns {bad}. Encode them first, "
                f"e.g. pd.get_dummies(X, columns={bad}) or sklearn's OrdinalEncoder, or {PREPROCESS_FIX}."
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


def resolve_input_kind(xs: Arrays, input_kind: str | None, notes: list[str]) -> str:
    """The input kind (given, or read from the train part's axes); parts reshaped to it in place."""
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

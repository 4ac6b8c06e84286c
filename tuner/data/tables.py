"""Raw tables (string columns, missing values) and the preprocessing ``tune(preprocess=True)`` fits.

A 2-D ``X`` that is not all numbers and finite, but whose only faults are text/category columns and
missing values, is kept as the user gave it: a :class:`Table` records its columns, and every part
stays an object (pandas) or float64 (numpy) array of the raw values. A scikit-learn model with its
own preprocessing (a ``Pipeline`` with a ``ColumnTransformer``) gets it back as a DataFrame; a model
that needs numbers gets :attr:`Table.problem` as its error, unless ``preprocess=True`` made numbers
of it with a :class:`Preprocessor` fitted on the training part only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tuner._imports import require
from tuner.errors import DataError

__all__ = ["Table", "Preprocessor", "read_table", "row_hashes", "PREPROCESS_FIX"]

PREPROCESS_FIX = (
    "pass tune(..., preprocess=True) to impute, one-hot encode and standardize it (fitted on the "
    "training part only; result.predict(X) applies the same steps)"
)


@dataclass(frozen=True)
class Table:
    """The columns of a raw table: names and dtypes of a DataFrame (``columns`` None: a numpy array),
    and which of them hold text/categories (``text``) or missing values (``missing``)."""

    columns: tuple[str, ...] | None
    dtypes: tuple[Any, ...]
    text: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    labels: tuple[Any, ...] = field(default=(), repr=False)  # the DataFrame's own column labels

    def describe(self) -> str:
        """What makes it a raw table, in words."""
        what = []
        if self.text:
            what.append(f"non-numeric columns {list(self.text)}")
        if self.missing:
            what.append(f"missing values (NaN/None) in {list(self.missing)}")
        return " and ".join(what)

    @property
    def problem(self) -> str:
        """Why a model that needs an array of numbers cannot take this table, and the fixes."""
        return (
            f"X has {self.describe()}. This model needs numbers: {PREPROCESS_FIX}; or encode and "
            "impute it yourself (pd.get_dummies, sklearn.impute.SimpleImputer); or return a scikit-learn "
            "Pipeline whose ColumnTransformer does it."
        )

    def frame(self, X: np.ndarray) -> Any:
        """Rows of the table as the model first saw them: a DataFrame with the columns' dtypes."""
        if self.columns is None:
            return np.asarray(X, dtype=np.float64)
        pd = require("pandas")
        out = pd.DataFrame(X, columns=list(self.labels or self.columns))
        for label, dtype in zip(out.columns, self.dtypes, strict=True):
            try:
                out[label] = out[label].astype(dtype)
            except (TypeError, ValueError):  # e.g. an int column with a missing value in this part
                if getattr(dtype, "kind", "O") in "biu":
                    out[label] = out[label].astype(np.float64)
        return out


def read_table(X: Any, part: str, table: Table | None) -> tuple[np.ndarray, Table] | None:
    """``X`` as a raw table (object or float64 array and its :class:`Table`), or None when it is not one
    (not 2-D, numeric and complete, or a numpy array with inf: the caller reads it as numbers and says
    what is wrong). A DataFrame with inf values or list cells is refused here. ``table`` is the train
    part's: when the train part is a table, so is every other part, read with its columns."""
    pandas = type(X).__module__.startswith("pandas")
    pd = require("pandas") if pandas or (table is not None and table.columns is not None) else None
    if pd is not None and not hasattr(X, "columns") and table is not None and table.columns is not None:
        X = pd.DataFrame(np.asarray(X), columns=list(table.labels))  # a numpy part beside a DataFrame train
    if pd is not None and hasattr(X, "columns"):
        return _read_frame(X, part, pd, table)
    arr = np.asarray(X) if isinstance(X, np.ndarray) else None
    if arr is None or arr.ndim != 2 or arr.dtype.kind not in "biuf" or np.isinf(arr).any():
        return None
    if table is None and (arr.dtype.kind != "f" or not np.isnan(arr).any()):
        return None
    missing = tuple(str(c) for c in np.flatnonzero(np.isnan(arr).any(axis=0)))
    if table is not None:
        return arr.astype(np.float64), Table(
            None, table.dtypes, (), tuple(dict.fromkeys((*table.missing, *missing)))
        )
    return arr.astype(np.float64), Table(None, (np.dtype(np.float64),) * arr.shape[1], (), missing)


def _read_frame(X: Any, part: str, pd: Any, table: Table | None) -> tuple[np.ndarray, Table] | None:
    text = [str(c) for c, dt in X.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)]
    na = X.isna().any()
    missing = [str(c) for c in X.columns if bool(na[c])]
    if table is None and not text and not missing:
        return None
    numeric = [c for c, dt in X.dtypes.items() if pd.api.types.is_numeric_dtype(dt)]
    inf = (
        np.isinf(X[numeric].to_numpy(dtype=np.float64, na_value=np.nan))
        if numeric
        else np.zeros((1, 0), bool)
    )
    if inf.any():
        cols = [str(numeric[i]) for i in np.flatnonzero(inf.any(axis=0))]
        raise DataError(
            f"X ({part}) has {int(inf.sum())} inf values in columns {cols} (first at row "
            f"{int(np.flatnonzero(inf.any(axis=1))[0])}). Replace them with NaN to have them imputed "
            "(df.replace([np.inf, -np.inf], np.nan)) or drop those rows."
        )
    for c in text:
        bad = X[c].map(lambda v: isinstance(v, (list, dict, set, tuple, np.ndarray))).to_numpy(dtype=bool)
        if bad.any():
            raise DataError(
                f"X ({part}) column {c!r} holds {type(X[c].to_numpy()[bad.argmax()]).__name__} values; a "
                "table cell must be a number, a string or missing. Flatten or encode that column."
            )
    if table is not None and table.columns is not None and tuple(map(str, X.columns)) != table.columns:
        raise DataError(
            f"X ({part}) has columns {list(map(str, X.columns))}, but train has {list(table.columns)}; "
            "every part needs the same columns in the same order."
        )
    arr = X.astype(object).where(X.notna(), None).to_numpy(dtype=object)
    found = Table(
        columns=tuple(str(c) for c in X.columns),
        dtypes=tuple(X.dtypes),
        text=tuple(text),
        missing=tuple(missing),
        labels=tuple(X.columns),
    )
    if table is not None:  # the train part's dtypes rebuild every part; its text/missing lists grow
        found = Table(
            table.columns,
            table.dtypes,
            tuple(dict.fromkeys((*table.text, *text))),
            tuple(dict.fromkeys((*table.missing, *missing))),
            table.labels,
        )
    return arr, found


def row_hashes(X: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of a raw table (pandas' value hashing; equal rows, equal hashes)."""
    pd = require("pandas")
    frame = pd.DataFrame(np.asarray(X, dtype=object).reshape(len(X), -1))
    return pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy(dtype=np.uint64)


class Preprocessor:
    """``preprocess=True``: impute (median) and standardize numeric columns, impute (most frequent)
    and one-hot encode text columns (categories unseen in training become all zeros), and
    standardize a regression target; all fitted on the training part only."""

    def __init__(self, table: Table | None, scale_target: bool) -> None:
        self.table = table
        self.scale_target = scale_target
        self.target_scale: tuple[np.ndarray, np.ndarray] | None = None
        self._ct: Any = None
        self._counts = (0, 0)  # numeric and text columns
        self.n_features = 0

    def fit(self, X: np.ndarray, y: np.ndarray) -> Preprocessor:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        text = set(self.table.text) if self.table is not None else set()
        names = self._names(X)
        numeric = [i for i, n in enumerate(names) if n not in text]
        categorical = [i for i, n in enumerate(names) if n in text]
        steps = []
        if numeric:
            num = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
            steps.append(("numeric", num, numeric))
        if categorical:
            onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            steps.append(
                ("text", make_pipeline(SimpleImputer(strategy="most_frequent"), onehot), categorical)
            )
        self._ct = ColumnTransformer(steps, sparse_threshold=0.0)
        self._counts = (len(numeric), len(categorical))
        self.n_features = int(self._ct.fit_transform(self._columns(X)).shape[1])
        if self.scale_target:
            Y = np.asarray(y, dtype=np.float64)
            std = Y.std(axis=0)
            self.target_scale = (Y.mean(axis=0), np.where(std > 0, std, 1.0))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The model's input: float32 features, in the training part's encoding."""
        out = self._ct.transform(self._columns(X))
        return np.ascontiguousarray(out, dtype=np.float32)

    def describe(self) -> str:
        """What the fitted steps do, for the study's notes."""
        n_num, n_text = self._counts
        parts = []
        if n_num:
            parts.append(f"{n_num} numeric column{'s' * (n_num != 1)} imputed (median) and standardized")
        if n_text:
            parts.append(
                f"{n_text} text column{'s' * (n_text != 1)} imputed (most frequent) and one-hot encoded"
            )
        words = (
            f"preprocess=True: {'; '.join(parts)}, {self.n_features} features, fitted on the training part"
        )
        if self.target_scale is not None:
            words += "; the target standardized for training (scores and predictions in its own units)"
        return words

    def _names(self, X: np.ndarray) -> list[str]:
        if self.table is not None and self.table.columns is not None:
            return list(self.table.columns)
        return [str(i) for i in range(np.asarray(X).reshape(len(X), -1).shape[1])]

    def _columns(self, X: np.ndarray) -> np.ndarray:
        """Rows as a 2-D object array the ColumnTransformer indexes by position (NaN for missing)."""
        rows = np.asarray(X).reshape(len(X), -1)
        if rows.dtype != object:
            return rows.astype(np.float64)
        out = rows.copy()
        out[np.equal(out, None)] = np.nan
        text = set(self.table.text) if self.table is not None else set()
        for i, name in enumerate(self._names(X)):
            if name not in text:
                out[:, i] = out[:, i].astype(np.float64)
            else:  # one type per column for the encoder: text, missing kept as NaN
                col = out[:, i]
                keep = np.array([isinstance(v, float) and v != v for v in col])
                out[~keep, i] = col[~keep].astype(str)
        return out

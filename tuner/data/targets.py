"""Task inference and label encoding for :func:`~tuner.data.prepare.prepare` (rules: its docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tuner.errors import DataError

MAX_INT_CLASSES = 100  # integer y with more distinct values is treated as a quantity
MAX_FLOAT_HINT = 20  # whole-number float y with at most this many values gets a classification hint


@dataclass
class _Target:
    kind: str  # binary | multiclass | regression
    classes: np.ndarray | None  # labels in encoded order (classification)
    onehot: int = 0  # width of a one-hot y, 0 otherwise
    n_outputs: int = 1
    numeric_labels: bool = False  # integer/float class labels (which might be a quantity)


def _name(value: Any) -> str:
    """repr of a label without numpy's scalar wrapper (np.str_('a') -> 'a')."""
    return repr(value.item() if isinstance(value, np.generic) else value)


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

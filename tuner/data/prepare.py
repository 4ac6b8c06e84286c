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
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuner.data.arrays import INPUT_KINDS, PART_KEYS, Arrays, is_pair, read_parts, read_x, resolve_input_kind
from tuner.data.splits import Pair, _count_in, _split
from tuner.data.tables import Preprocessor, Table, read_table, row_hashes
from tuner.data.targets import MAX_FLOAT_HINT as MAX_FLOAT_HINT
from tuner.data.targets import MAX_INT_CLASSES as MAX_INT_CLASSES
from tuner.data.targets import _encode_y, _resolve_task, _unseen_error
from tuner.errors import ConfigError, DataError
from tuner.records import TaskInfo

__all__ = ["prepare", "PreparedData", "check_split"]

TASKS = ("binary", "multiclass", "classification", "regression")


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
    table: Table | None = None  # X is a raw table the model gets as is (see tuner.data.tables)
    preprocessor: Preprocessor | None = None  # preprocess=True: what made numbers of X

    def inputs(self, X: Any) -> np.ndarray:
        """New rows ``X``, read as the study read its data: the model's input array."""
        pre, part = self.preprocessor, "new rows"
        table = pre.table if pre is not None else self.table
        raw = read_table(X, part, table) if table is not None or pre is not None else None
        arr = raw[0] if raw is not None else read_x(X, part)
        if pre is not None:
            arr = pre.transform(arr)
        if arr.shape[1:] != self.task.input_shape:
            raise DataError(
                f"X has rows of shape {arr.shape[1:]}, but the study's model takes {self.task.input_shape}; "
                "pass rows shaped as the data given to tune()."
            )
        return arr

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
    preprocess: bool = False,
) -> PreparedData:
    """Validate ``data``, infer the task and split it (rules in the module docstring).

    ``data`` is ``(X, y)`` (arrays, lists, pandas) or a mapping with ``train`` and optional
    ``validation`` / ``test`` pairs; explicit parts win over ``validation_split`` / ``test``
    fractions. ``test`` is a fraction, an ``(X, y)`` pair, or None for no test part. A map-style
    torch ``Dataset`` of ``(input, target)`` items may stand for any pair; it is read once into arrays.
    A 2-D X with text columns or missing values is kept raw (:mod:`tuner.data.tables`);
    ``preprocess=True`` imputes, encodes and standardizes X, fitted on the training part only.
    """
    test_pair = is_pair(test)
    check_split(task, validation_split, test, test_pair, cv, input_kind, seed)
    cv, seed = (None if cv is None else int(cv)), int(seed)  # numpy ints would change the fingerprint
    xs, ys, orders, table = read_parts(data, test if test_pair else None)
    notes = _check_parts(set(xs), validation_split, test, cv)
    kind = resolve_input_kind(xs, input_kind, notes)
    if preprocess and kind != "tabular":
        raise ConfigError(
            f"preprocess=True imputes, encodes and standardizes the columns of a table, but X has rows of "
            f"shape {xs['train'].shape[1:]} ({kind}); pass preprocess=False and scale {kind} inputs yourself."
        )
    n = len(xs["train"])
    g = _groups(groups, n)
    target = _resolve_task(ys["train"], orders["train"], task, notes)
    enc = {name: _encode_y(y, target, name) for name, y in ys.items()}
    _check_unseen(enc, target.classes)

    test_frac = float(test) if test is not None and not test_pair and "test" not in xs else None
    val_frac = float(validation_split) if cv is None and "validation" not in xs else None  # type: ignore[arg-type]
    if g is not None and cv is None and test_frac is None and val_frac is None:
        notes.append("groups unused: there is no split to make (explicit parts and no cv)")
    strat = enc["train"] if target.classes is not None else None
    tr, va, te, folds = _split(n, strat, g, test_frac, val_frac, cv, seed, target, notes)
    X0, y0 = xs["train"], enc["train"]
    parts: dict[str, Pair | None] = {p: (xs[p], enc[p]) if p in xs else None for p in PART_KEYS}
    for name, idx in (("train", tr), ("validation", va), ("test", te)):
        if idx is not None:
            parts[name] = (X0[idx], y0[idx])
    leakage = _leakage(parts, notes)
    if table is not None and not preprocess:
        notes.append(f"X kept as the raw table it is ({table.describe()}): the model gets it as a DataFrame")
    pre = None
    if preprocess:  # fitted on the training part only, then every part is numbers
        train_x, train_y = parts["train"]  # type: ignore[misc]
        pre = Preprocessor(table, scale_target=target.kind == "regression").fit(train_x, train_y)
        parts = {p: None if v is None else (pre.transform(v[0]), v[1]) for p, v in parts.items()}
        notes.append(pre.describe())
        table = None
    info = TaskInfo(
        kind=target.kind,  # type: ignore[arg-type]
        n_classes=0 if target.classes is None else len(target.classes),
        classes=() if target.classes is None else tuple(target.classes.tolist()),
        n_outputs=target.n_outputs,
        input_kind=kind,  # type: ignore[arg-type]
        input_shape=tuple(int(d) for d in parts["train"][0].shape[1:]),  # type: ignore[index]
    )
    settings = {"task": target.kind, "test": test_frac, "validation": val_frac, "cv": cv, "seed": seed}
    if preprocess:
        settings["preprocess"] = True
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
        table=table,
        preprocessor=pre,
    )


def _check_parts(given: set[str], validation_split: float | None, test: Any, cv: int | None) -> list[str]:
    """Refuse explicit parts that contradict the split settings; the notes on those it ignores."""
    if cv is not None and "validation" in given:
        raise ConfigError(
            f"cv={cv} makes its own validation folds, but the data has an explicit 'validation' part. "
            "Drop that part, or pass cv=None to use it."
        )
    if validation_split is None and cv is None and "validation" not in given:
        raise ConfigError("validation_split=None needs cv=k or an explicit 'validation' part; e.g. use 0.2.")
    if test is None and "test" in given:
        return ["test=None ignored: the data has an explicit 'test' part"]
    return []


def _groups(groups: Any, n: int) -> np.ndarray | None:
    g = None if groups is None else np.asarray(groups)
    if g is not None:
        if g.ndim != 1 or len(g) != n:
            raise DataError(f"groups has {g.size} entries but train has {n} rows; pass one group id per row.")
        g = g.astype(str) if g.dtype.kind == "O" else g
    return g


def _check_unseen(enc: Arrays, classes: np.ndarray | None) -> None:
    """Validation and test labels must be classes the train part has."""
    if classes is None:
        return
    seen = np.unique(enc["train"])  # a one-hot column never hot in train counts as unseen
    for part in ("validation", "test"):
        if part in enc and not np.isin(enc[part], seen).all():
            _unseen_error(classes[enc[part][~np.isin(enc[part], seen)]], part)


def _leakage(parts: dict[str, Pair | None], notes: list[str]) -> dict[str, int]:
    """Rows of validation and test that are exact copies of training rows (noted when any)."""
    leakage = {}
    for name in ("validation", "test"):
        pair = parts[name]
        leakage[f"{name}_in_train"] = count = 0 if pair is None else _count_in(parts["train"][0], pair[0])  # type: ignore[index]
        if count:
            notes.append(
                f"{count} {name} rows are exact copies of training rows: {name} scores are optimistic"
            )
    return leakage


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


def _fingerprint(xs: dict, ys: dict, info: TaskInfo, settings: dict, groups: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for name in (p for p in PART_KEYS if p in xs):
        for arr in (xs[name], ys[name]):
            h.update(f"{name}|{arr.shape}|{arr.dtype.str}|".encode())
            h.update((row_hashes(arr) if arr.dtype.kind == "O" else np.ascontiguousarray(arr)).data)
    h.update(repr((info.classes, info.input_kind, sorted(settings.items()))).encode())
    if groups is not None:
        h.update(np.unique(groups, return_inverse=True)[1].astype(np.int64).data)
    return h.hexdigest()[:16]

"""Split/fold making and exact-duplicate row counting for :func:`tuner.data.prepare.prepare`."""

from __future__ import annotations

import math
import warnings

import numpy as np

from tuner._imports import require
from tuner.data.tables import row_hashes
from tuner.data.targets import _name, _Target
from tuner.errors import DataError

_FIX = "use fewer folds, a smaller test split or test=None, explicit parts, or more data"

Pair = tuple[np.ndarray, np.ndarray]


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
    raw = train.dtype != np.float32 or other.dtype != np.float32  # a raw table (tuner.data.tables)
    ht, ho = (row_hashes(train), row_hashes(other)) if raw else (_row_hashes(train), _row_hashes(other))
    order = np.argsort(ht)
    pos = order[np.clip(np.searchsorted(ht, ho, sorter=order), 0, len(ht) - 1)]
    cand = np.flatnonzero(ht[pos] == ho)
    if raw:  # compared as text, so that a missing value equals a missing value
        other, train = other.astype(str), train.astype(str)
    same = other.reshape(len(other), -1)[cand] == train.reshape(len(train), -1)[pos[cand]]
    return int(same.all(axis=1).sum())

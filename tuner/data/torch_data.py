"""User ``torch.utils.data.Dataset`` objects as data.

A map-style ``torch.utils.data.Dataset`` given as data (or as a part of the data mapping)
is read once into arrays by :func:`dataset_arrays`, so that splits, fingerprints, the
leakage check and the per-epoch evaluation work exactly as for arrays. It must therefore
fit in memory, and random transforms inside its ``__getitem__`` are applied once: use the
``augmentation`` knob for augmentation the tuner can search.

Nothing here imports torch at module level; :func:`is_torch_dataset` only looks at classes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tuner.errors import DataError

__all__ = ["is_torch_dataset", "dataset_arrays"]


def is_torch_dataset(obj: object) -> bool:
    """True for a ``torch.utils.data.Dataset`` (map-style or iterable); never imports torch."""
    return any(
        c.__module__.startswith("torch.utils.data") and c.__name__ in ("Dataset", "IterableDataset")
        for c in type(obj).__mro__
    )


def _item_array(value: Any, what: str, index: int) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"item {index} of the Dataset has a {what} that is not an array ({exc}).") from exc
    if arr.dtype.kind not in "biuf":
        raise DataError(
            f"item {index} of the Dataset has a {what} of dtype {arr.dtype}; it must be numeric "
            f"(a tensor, an array or a number)."
        )
    return arr


def dataset_arrays(ds: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a map-style Dataset of ``(input, target)`` items into ``(X, y)`` arrays.

    Raises :class:`DataError` naming the first item whose structure or shape differs.
    """
    label = f"{name} (a {type(ds).__name__})"
    if not (hasattr(ds, "__len__") and hasattr(ds, "__getitem__")):
        raise DataError(
            f"{label} is an IterableDataset; regtuner needs a map-style Dataset (with __len__ and "
            "__getitem__) or (X, y) arrays, because it splits and re-reads the rows."
        )
    n = len(ds)
    if n == 0:
        raise DataError(f"{label} is empty; it needs at least one (input, target) item.")
    X = y = None
    first_x = first_y = None
    for i in range(n):
        item = ds[i]
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            got = (
                f"a {type(item).__name__} of length {len(item)}"
                if isinstance(item, (tuple, list))
                else f"a {type(item).__name__}"
            )
            raise DataError(
                f"{label}: item {i} is {got}; each item must be an (input, target) pair, e.g. "
                "`return self.x[i], self.y[i]` in __getitem__."
            )
        xi, yi = _item_array(item[0], "input", i), _item_array(item[1], "target", i)
        if X is None:
            first_x, first_y = xi.shape, yi.shape
            if yi.ndim > 1:
                raise DataError(
                    f"{label}: item 0 has a target of shape {yi.shape}; a target must be a number "
                    "(class index or value) or a 1-D vector of regression targets."
                )
            X = np.empty((n, *first_x), dtype=np.float32)
            y = np.empty((n, *first_y), dtype=yi.dtype if yi.dtype.kind in "biu" else np.float32)
        if xi.shape != first_x:
            raise DataError(
                f"{label}: item {i} has an input of shape {xi.shape} but item 0 has {first_x}; every "
                "input must have the same shape (resize or pad them in the Dataset)."
            )
        if yi.shape != first_y:
            raise DataError(
                f"{label}: item {i} has a target of shape {yi.shape} but item 0 has {first_y}; every "
                "target must have the same shape."
            )
        X[i] = xi
        y[i] = yi
    return X, y

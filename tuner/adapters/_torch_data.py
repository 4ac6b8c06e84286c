"""Data plumbing of the torch adapter: devices, DataLoaders, and user ``Dataset`` objects.

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

from tuner._imports import require
from tuner.errors import ConfigError, DataError

__all__ = ["is_torch_dataset", "dataset_arrays", "resolve_device", "make_loader", "IndexedBatches"]


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


def resolve_device(requested: str | None) -> Any:
    """The ``torch.device`` to train on: ``requested``, else CUDA when present, else CPU.

    A device that does not exist is a :class:`ConfigError` (raised before any trial runs).
    """
    torch = require("torch", "torch")
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(requested)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"device={requested!r} is not a torch device ({exc}); use 'cpu', 'cuda', 'cuda:N' or None "
            "(CUDA when present, else CPU)."
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ConfigError(
                f"device={requested!r} asks for a GPU, but torch sees none (torch {torch.__version__}, "
                f"{build}). Pass device=None or device='cpu' to train on the CPU, or run on a machine "
                "with a CUDA GPU and a CUDA build of torch."
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(
                f"device={requested!r} does not exist: this machine has {count} CUDA GPU(s), "
                f"cuda:0 to cuda:{count - 1}."
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={requested!r} asks for Apple MPS, which is not available here.")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device={requested!r}: regtuner trains on 'cpu', 'cuda' or 'mps' devices.")
    return dev


class IndexedBatches:
    """A map-style dataset over in-memory tensors that a DataLoader fetches a batch at a time.

    ``__getitems__`` takes the sampler's whole batch of indices, so a batch costs one
    indexing operation instead of one ``__getitem__`` call per row plus a collate.
    """

    def __init__(self, X: Any, y: Any) -> None:
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.X[i], self.y[i]

    def __getitems__(self, indices: list[int]) -> tuple[Any, Any]:
        torch = require("torch")
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.X.device)
        return self.X.index_select(0, idx), self.y.index_select(0, idx)


def _keep(batch: Any) -> Any:  # collate_fn: __getitems__ already returns the stacked batch
    return batch


def _seed_worker(worker_id: int) -> None:
    import random

    torch = require("torch")
    seed = torch.initial_seed() % 2**32  # DataLoader gives each worker base_seed + worker_id
    np.random.seed(seed)
    random.seed(seed)


def make_loader(X: Any, y: Any, batch_size: int, seed: int, device: Any) -> Any:
    """A shuffling DataLoader of batches of ``(X, y)`` tensors, seeded with ``seed``.

    Tensors already on the GPU are indexed in place; CPU tensors bound for a GPU are pinned.
    Workers are not used: indexing in-memory tensors is faster than shipping them to processes.
    """
    torch = require("torch")
    data = torch.utils.data
    generator = torch.Generator().manual_seed(int(seed))
    return data.DataLoader(
        IndexedBatches(X, y),
        batch_size=int(batch_size),
        shuffle=True,
        generator=generator,
        collate_fn=_keep,
        num_workers=0,
        worker_init_fn=_seed_worker,
        pin_memory=device.type == "cuda" and X.device.type == "cpu",
    )

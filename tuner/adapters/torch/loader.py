"""Devices and DataLoaders of the torch adapter.

Nothing here imports torch at module level.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from tuner._imports import require
from tuner.errors import ConfigError

__all__ = ["resolve_device", "make_loader", "IndexedBatches", "host_tensor"]


def host_tensor(torch: Any, X: np.ndarray) -> Any:
    """``X`` as a CPU tensor sharing its memory. Arrays from Ray's object store are read-only and torch
    warns about those; training only reads its inputs, so that warning is silenced here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(X))


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

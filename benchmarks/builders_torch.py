"""User-style torch models per task: what a practitioner writes first, not tuned.

``model(split)`` is the plain model (no Dropout: the overfitting-prone version people post about);
with ``BENCH_MODEL_STYLE=subclass`` the same layers come as an ``nn.Module`` subclass that wires them
in its ``forward`` (the style most PyTorch code has), so regtuner's dropout goes in by forward hooks;
``model(split, dropout=p)`` the same net with ``nn.Dropout(p)`` after every hidden layer (what an
``hp`` builder and the peers' objective functions build). Outputs are logits (1 for binary, K for
multiclass) or one value (regression).
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from benchmarks.tasks import Split

__all__ = ["model"]


def _drop(dropout: float | None) -> list[Any]:
    return [nn.Dropout(dropout)] if dropout is not None else []


def model(split: Split, dropout: float | None = None) -> Any:
    """The task's user-style model: ``nn.Sequential``, or an ``nn.Module`` subclass (see above)."""
    net = _sequential(split, dropout)
    return _Wired(net) if os.environ.get("BENCH_MODEL_STYLE") == "subclass" else net


class _Wired(nn.Module):
    """The layers as a subclass's attributes, called in order in ``forward``."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        self.layers = nn.ModuleList(list(net))

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x


def _sequential(split: Split, dropout: float | None) -> Any:
    out = split.n_out
    if split.input_kind == "image":  # (n, 1, 8, 8)
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), *_drop(dropout),
            nn.Linear(64 * 4 * 4, 128), nn.ReLU(), *_drop(dropout),
            nn.Linear(128, out),
        )  # fmt: skip
    if split.input_kind == "sequence":  # (n, steps, features)
        steps, feats = split.train[0].shape[1:]
        return nn.Sequential(
            _ChannelsFirst(),
            nn.Conv1d(feats, 32, 5), nn.ReLU(),
            nn.Flatten(), *_drop(dropout),
            nn.Linear(32 * (steps - 4), 64), nn.ReLU(), *_drop(dropout),
            nn.Linear(64, out),
        )  # fmt: skip
    return nn.Sequential(
        nn.Linear(split.n_features, 256), nn.ReLU(), *_drop(dropout),
        nn.Linear(256, 128), nn.ReLU(), *_drop(dropout),
        nn.Linear(128, out),
    )  # fmt: skip


class _ChannelsFirst(nn.Module):
    """(n, steps, features) -> (n, features, steps) for Conv1d."""

    def forward(self, x: Any) -> Any:
        return x.transpose(1, 2)

"""The torch training loop a peer tool's user writes in their objective function.

As in Optuna's and Ray Tune's PyTorch examples: build the model, ``Adam(lr, weight_decay=l2)``,
a shuffling ``DataLoader`` with the sampled batch size, train ``max_epochs`` epochs, and after
every epoch compute the validation loss and metric and hand them to ``report`` (the tool's
pruning / reporting call; it may raise to stop the trial). The trial's value is the last epoch's
validation loss, as in those examples. The test metric of the final model is computed at the end
for the benchmark's bookkeeping only; no tool ever selects on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.tasks import Split

__all__ = ["PEER_SPACE", "Epoch", "train_torch", "evaluate_torch", "metric_value"]

#: the knobs every tuning peer searches, as a practitioner writes them (dropout, L2, LR, batch size)
PEER_SPACE: dict[str, Any] = {
    "dropout": (0.0, 0.5),
    "l2": (1e-6, 1e-2),  # log scale
    "learning_rate": (1e-4, 1e-2),  # log scale
    "batch_size": (16, 32, 64, 128),
}


@dataclass
class Epoch:
    epoch: int
    val_loss: float
    val_metric: float


def metric_value(split: Split, y: np.ndarray, out: np.ndarray) -> float:
    """Accuracy from logits, or R² from predictions."""
    if split.kind == "regression":
        pred = out.reshape(-1)
        return float(1.0 - np.sum((y - pred) ** 2) / max(np.sum((y - y.mean()) ** 2), 1e-12))
    labels = (out.reshape(-1) > 0).astype(np.int64) if split.kind == "binary" else out.argmax(1)
    return float(np.mean(labels == y))


def _loss_fn(split: Split) -> Callable[[Any, Any], Any]:
    import torch.nn.functional as F

    if split.kind == "binary":
        return lambda out, y: F.binary_cross_entropy_with_logits(out.reshape(-1), y.float())
    if split.kind == "multiclass":
        return lambda out, y: F.cross_entropy(out, y)
    return lambda out, y: F.mse_loss(out.reshape(-1), y)


def evaluate_torch(model: Any, split: Split, X: Any, y: np.ndarray) -> tuple[float, float]:
    """(loss, metric) of ``model`` in eval mode on tensors ``X`` and numpy ``y``."""
    import torch

    model.eval()
    with torch.no_grad():
        out = model(X)
        loss = float(_loss_fn(split)(out, torch.from_numpy(y)))
    return loss, metric_value(split, y, out.numpy())


def train_torch(
    build: Callable[[float], Any],
    split: Split,
    params: dict[str, Any],
    max_epochs: int,
    seed: int,
    report: Callable[[Epoch], None] | None = None,
) -> dict[str, float]:
    """Train one configuration; returns the last epoch's validation numbers, epochs run, test metric.

    ``report`` may raise (a pruned trial): the exception propagates after the epoch count is kept
    in ``params["_epochs"]`` so that the caller can count epochs of stopped trials too.
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    (Xt, yt), (Xv, yv), (Xs, ys) = split.arrays("torch")
    Xt_, Xv_, Xs_ = (torch.from_numpy(a) for a in (Xt, Xv, Xs))
    model = build(float(params["dropout"]))
    opt = torch.optim.Adam(model.parameters(), lr=params["learning_rate"], weight_decay=params["l2"])
    loader = DataLoader(
        TensorDataset(Xt_, torch.from_numpy(yt)),
        batch_size=int(params["batch_size"]),
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    loss_fn = _loss_fn(split)
    params["_epochs"] = 0
    val_loss = val_metric = float("nan")
    for epoch in range(max_epochs):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        val_loss, val_metric = evaluate_torch(model, split, Xv_, yv)
        params["_epochs"] = epoch + 1
        if not np.isfinite(val_loss):
            break  # diverged; the value says so
        if report is not None:
            report(Epoch(epoch, val_loss, val_metric))
    _, test_metric = evaluate_torch(model, split, Xs_, ys)
    return {
        "val_loss": val_loss if np.isfinite(val_loss) else 1e9,
        "val_metric": val_metric,
        "epochs": params["_epochs"],
        "test_metric": test_metric,
    }

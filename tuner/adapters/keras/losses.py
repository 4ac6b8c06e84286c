"""Losses, targets and outputs for the Keras adapter: which loss to compile, how to encode labels for it,
and how raw outputs become probabilities.

Functions that need Keras take the imported ``keras`` module, so this file imports no framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tuner.records import TaskInfo

__all__ = [
    "logits_from_outputs",
    "LossPlan",
    "plan_loss",
    "onehot_metrics",
    "loss_kind",
    "describe_loss",
    "output_problem",
    "encode_targets",
    "probabilities",
    "raw_outputs",
]

_LOSS_NAMES = {
    "binary_crossentropy": "bce",
    "bce": "bce",
    "binarycrossentropy": "bce",
    "categorical_crossentropy": "cce",
    "categoricalcrossentropy": "cce",
    "sparse_categorical_crossentropy": "scce",
    "sparsecategoricalcrossentropy": "scce",
    "mse": "mse",
    "mean_squared_error": "mse",
    "meansquarederror": "mse",
    "mae": "mae",
    "mean_absolute_error": "mae",
    "meanabsoluteerror": "mae",
    "huber": "huber",
    "huber_loss": "huber",
}


@dataclass
class LossPlan:
    """How the adapter compiles the loss and encodes targets for it.

    ``target``: "onehot" (float one-hot), "binary" (float column), "float" (regression values)
    or "raw" (the encoded targets unchanged, for a custom loss).
    """

    loss: Any
    target: str
    kind: str  # bce / cce / scce / mse / mae / huber / custom
    from_logits: bool | None
    label_smoothing: float
    words: str


def loss_kind(loss: Any) -> str:
    if isinstance(loss, str):
        key = loss
    elif isinstance(loss, type):
        key = loss.__name__
    elif hasattr(loss, "get_config"):  # a keras.losses.Loss instance
        key = type(loss).__name__
    else:  # a function such as keras.losses.mean_squared_error
        key = getattr(loss, "__name__", "")
    return _LOSS_NAMES.get(key.lower(), "custom")


def plan_loss(
    keras: Any,
    task: TaskInfo,
    source: Any,
    units: int | None,
    from_logits: bool | None,
    smoothing: float | None,
) -> LossPlan:
    """Resolve the loss: ``source`` is the user's (``loss=`` or compiled) loss, None to infer it.

    ``smoothing`` None keeps the user's label smoothing.
    """
    L = keras.losses
    cls_target = "binary" if task.kind == "binary" and units == 1 else "onehot"
    if source is None:
        if not task.is_classification:
            return LossPlan(L.MeanSquaredError(), "float", "mse", None, 0.0, "MSE (inferred for regression)")
        ls = float(smoothing or 0.0)
        fl = bool(from_logits)
        if cls_target == "binary":
            loss, kind = L.BinaryCrossentropy(from_logits=fl, label_smoothing=ls), "bce"
        else:
            loss, kind = L.CategoricalCrossentropy(from_logits=fl, label_smoothing=ls), "cce"
        words = f"{type(loss).__name__}(from_logits={fl}) inferred from the task and the output layer"
        return LossPlan(loss, cls_target, kind, fl, ls, words)
    kind = loss_kind(source)
    if isinstance(source, type) and kind != "custom":
        source = source()
    if kind in ("mse", "mae", "huber"):
        target = "float" if not task.is_classification else cls_target
        return LossPlan(source, target, kind, None, 0.0, f"the model's loss {describe_loss(source)} kept")
    if kind == "custom":
        words = f"custom loss {describe_loss(source)} kept as is"
        return LossPlan(source, "raw", kind, from_logits, 0.0, words)
    fl = bool(getattr(source, "from_logits", False))
    user_ls = float(getattr(source, "label_smoothing", 0.0) or 0.0)
    ls = user_ls if smoothing is None else float(smoothing)
    if kind == "bce" or cls_target == "binary":  # a crossentropy on one sigmoid unit is binary
        loss = L.BinaryCrossentropy(from_logits=fl, label_smoothing=ls)
        target = cls_target
    else:
        loss = L.CategoricalCrossentropy(from_logits=fl, label_smoothing=ls)
        target = "onehot"
    words = f"the model's loss {describe_loss(source)} kept as {type(loss).__name__}(from_logits={fl})"
    if target == "onehot":
        words += " on one-hot targets"
    return LossPlan(loss, target, kind, fl, ls, words)


def describe_loss(loss: Any) -> str:
    if isinstance(loss, str):
        return repr(loss)
    return getattr(loss, "__name__", None) or type(loss).__name__


def onehot_metrics(keras: Any, metrics: Any) -> Any:
    """The user's compiled metrics, with sparse ones swapped for their one-hot versions."""
    if metrics is None or isinstance(metrics, dict):
        return metrics
    M = keras.metrics
    out = []
    for m in metrics if isinstance(metrics, (list, tuple)) else [metrics]:
        if isinstance(m, str):
            out.append(
                {
                    "sparse_categorical_accuracy": "categorical_accuracy",
                    "sparse_top_k_categorical_accuracy": "top_k_categorical_accuracy",
                    "sparse_categorical_crossentropy": "categorical_crossentropy",
                }.get(m, m)
            )
        elif isinstance(m, M.SparseCategoricalAccuracy):
            out.append(M.CategoricalAccuracy(name=m.name))
        elif isinstance(m, M.SparseTopKCategoricalAccuracy):
            out.append(M.TopKCategoricalAccuracy(k=m.k, name=m.name))
        elif isinstance(m, M.SparseCategoricalCrossentropy):
            out.append(M.CategoricalCrossentropy(name=m.name, from_logits=getattr(m, "from_logits", False)))
        else:
            out.append(m)
    return out


def output_problem(task: TaskInfo, out: np.ndarray) -> str | None:
    """Why a dry-run output ``out`` (one batch) cannot fit the task, or None when it can."""
    units = int(out.shape[-1]) if out.ndim > 1 else 1
    if out.ndim > 2:
        return (
            f"the model outputs shape {out.shape[1:]} per row; it must output one vector per row. "
            "Add Flatten() or GlobalAveragePooling before the last Dense layer."
        )
    if task.kind == "binary" and units not in (1, 2):
        return (
            f"the model outputs {units} values per row but y has 2 classes; make the last layer "
            "Dense(1, activation='sigmoid') or Dense(2, activation='softmax')"
        )
    if task.kind == "multiclass" and units != task.n_classes:
        return (
            f"the model outputs {units} values per row but y has {task.n_classes} classes; make the last "
            f"layer Dense({task.n_classes}, activation='softmax')"
        )
    if task.kind == "regression" and units != task.n_outputs:
        return (
            f"the model outputs {units} values per row but y has {task.n_outputs} target columns; make "
            f"the last layer Dense({task.n_outputs})"
        )
    return None


def encode_targets(target: str, task: TaskInfo, units: int, y: np.ndarray) -> np.ndarray:
    """Encoded targets (class indices or values) in the form ``target`` of a :class:`LossPlan`."""
    y = np.asarray(y)
    if target == "onehot":
        return np.eye(units, dtype=np.float32)[y.astype(np.int64).ravel()]
    if target == "binary":
        return y.astype(np.float32).reshape(-1, 1)
    if target == "float" or not task.is_classification:
        y = y.astype(np.float32)
        return y.reshape(-1, 1) if y.ndim == 1 and units == 1 else y
    return y


def probabilities(raw: np.ndarray, logits: bool) -> np.ndarray:
    """Class probabilities ``(n, K)`` from raw classifier outputs (one unit: binary, ``K == 2``)."""
    raw = raw.reshape(len(raw), -1).astype(np.float64)
    if raw.shape[1] == 1:
        p = 0.5 * (1.0 + np.tanh(0.5 * raw[:, 0])) if logits else np.clip(raw[:, 0], 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)
    if logits:
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return raw


def raw_outputs(proba: np.ndarray, units: int, logits: bool) -> np.ndarray:
    """The inverse of :func:`probabilities`: what the model outputs (logits up to a constant)."""
    p = np.clip(np.asarray(proba, dtype=np.float32), 1e-7, 1 - 1e-7)
    if units == 1:
        p = p[:, 1:2]
        return np.log(p / (1 - p)) if logits else p
    return np.log(p) if logits else p


def logits_from_outputs(out: np.ndarray) -> bool:
    """Whether a model's outputs on a batch are logits (False: they are probabilities)."""
    p = out.reshape(len(out), -1)
    in_range = bool(np.all((p >= 0) & (p <= 1)))
    sums_to_one = p.shape[1] == 1 or bool(np.allclose(p.sum(axis=1), 1.0, atol=1e-3))
    return not (in_range and sums_to_one)

"""Model surgery for the Keras adapter (dropout, L2, optimizer, loss, metrics) and output handling.

Each function takes the imported ``keras`` module so that this file imports no
framework at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tuner.errors import ConfigError
from tuner.records import TaskInfo

__all__ = [
    "walk",
    "dropout_layers",
    "set_dropout_rate",
    "insert_dropout",
    "kernel_layers",
    "add_l2",
    "output_layer",
    "output_activation",
    "make_optimizer",
    "LossPlan",
    "plan_loss",
    "onehot_metrics",
    "loss_kind",
    "describe_loss",
    "OPTIMIZERS",
    "output_problem",
    "encode_targets",
    "probabilities",
    "raw_outputs",
]

OPTIMIZERS = ("keep", "adam", "adamw", "sgd", "rmsprop")

# kernel variable name -> the layer attribute holding its regularizer
_KERNELS = {
    "kernel": "kernel_regularizer",
    "depthwise_kernel": "depthwise_regularizer",
    "pointwise_kernel": "pointwise_regularizer",
}


def _dense_conv_types(keras: Any) -> tuple[type, ...]:
    L = keras.layers
    names = (
        "Dense",
        "EinsumDense",
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "Conv1DTranspose",
        "Conv2DTranspose",
        "Conv3DTranspose",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "SeparableConv1D",
        "SeparableConv2D",
    )
    return tuple(getattr(L, n) for n in names if hasattr(L, n))


def _weighted_types(keras: Any) -> tuple[type, ...]:
    L = keras.layers
    return _dense_conv_types(keras) + (L.RNN, L.Embedding, L.LSTM, L.GRU, L.SimpleRNN)


def walk(model: Any) -> list[Any]:
    """Every layer inside ``model``, recursively (nested models and sublayers), without ``model``."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=False, recursive=True))
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        out.extend(walk(layer))
    return out


def dropout_layers(keras: Any, model: Any) -> list[Any]:
    """``Dropout`` and ``SpatialDropout*`` layers found anywhere in ``model``."""
    return [layer for layer in walk(model) if isinstance(layer, keras.layers.Dropout)]


def set_dropout_rate(keras: Any, layer: Any, rate: float) -> None:
    if rate > 0 and getattr(layer, "seed_generator", None) is None:
        # Dropout(0.0) creates no seed generator; adding state to a built layer needs the lock off
        layer._tracker.unlock()
        try:
            layer.seed_generator = keras.random.SeedGenerator(layer.seed)
        finally:
            layer._tracker.lock()
    layer.rate = float(rate)


def insert_dropout(keras: Any, model: Any, rate: float) -> tuple[Any, int]:
    """A new Sequential of the same layer objects with Dropout(rate) before every Dense/Conv layer
    that follows a weighted layer (so after each hidden block, past its activation, norm and pooling).
    """
    dense_conv, weighted = _dense_conv_types(keras), _weighted_types(keras)
    layers, seen, inserted = [], False, 0
    for layer in model.layers:
        if seen and isinstance(layer, dense_conv):
            layers.append(keras.layers.Dropout(rate))
            inserted += 1
        seen = seen or isinstance(layer, weighted)
        layers.append(layer)
    if not inserted:
        return model, 0
    try:
        spec = model.inputs[0]
    except (AttributeError, IndexError, TypeError, ValueError):
        spec = None  # not built yet: the new model builds on its first call
    head = [] if spec is None else [keras.Input(batch_shape=tuple(spec.shape), dtype=spec.dtype)]
    return keras.Sequential(head + layers, name=model.name), inserted


def kernel_layers(keras: Any, model: Any) -> list[Any]:
    """Dense/Conv layers anywhere in ``model``."""
    types = _dense_conv_types(keras)
    return [layer for layer in walk(model) if isinstance(layer, types)]


def add_l2(keras: Any, model: Any, l2: float) -> tuple[int, int]:
    """Put ``L2(l2)`` on every Dense/Conv kernel; returns (kernels regularized, regularizers replaced).

    Keras 3 collects weight penalties from ``variable.regularizer`` of trainable weights, so a
    built layer needs the variable's attribute; the layer attribute covers layers built later.
    """
    count = replaced = 0
    for layer in kernel_layers(keras, model):
        reg = keras.regularizers.L2(float(l2))
        for var_name, attr in _KERNELS.items():
            if not hasattr(layer, attr):
                continue
            replaced += getattr(layer, attr) is not None
            setattr(layer, attr, reg)
            for v in layer.weights:
                if v.name == var_name:
                    v.regularizer = reg
            count += 1
    return count, replaced


def output_layer(keras: Any, model: Any) -> Any | None:
    """The layer producing the (first) model output, looking inside nested models; None if unknown.

    A subclassed model's ``layers`` are in assignment order, not call order, so only a graph
    (functional or built Sequential) or a Sequential's last layer is trusted.
    """
    try:
        layer = model.outputs[0]._keras_history.operation
    except (AttributeError, IndexError, TypeError, ValueError):
        layers = model.layers if isinstance(model, keras.Sequential) else None
        layer = layers[-1] if layers else None
    if layer is not None and layer is not model and isinstance(layer, keras.Model):
        return output_layer(keras, layer)
    return layer


def output_activation(keras: Any, model: Any) -> str | None:
    """Name of the output activation ("softmax", "sigmoid", "linear", ...) or None when unknown."""
    layer = output_layer(keras, model)
    if layer is None:
        return None
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    return getattr(act, "__name__", type(act).__name__).lower()


def make_optimizer(
    keras: Any, current: Any, name: str | None, lr: float, weight_decay: float | None, clipnorm: float | None
) -> tuple[Any, str]:
    """A fresh optimizer: class ``name``, or (None or "keep") the class and settings of ``current``,
    else Adam; with learning rate ``lr``, decoupled ``weight_decay`` and global-norm clipping ``clipnorm``.
    """
    opts = keras.optimizers
    cfg: dict[str, Any] = {}
    if name is not None and str(name).lower() != "keep":
        key = str(name).lower()
        classes = {"adam": opts.Adam, "adamw": opts.AdamW, "sgd": opts.SGD, "rmsprop": opts.RMSprop}
        if key not in classes:
            raise ConfigError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}.")
        cls = classes[key]
        if key == "sgd":
            cfg["momentum"] = 0.9
        origin = f"{cls.__name__} (optimizer={key!r})"
    elif current is not None:
        current = getattr(current, "inner_optimizer", current)  # unwrap LossScaleOptimizer
        cls = type(current)
        cfg = {k: v for k, v in current.get_config().items() if k != "name"}
        origin = f"the model's {cls.__name__}"
    else:
        cls = opts.Adam
        origin = "Adam (the model was not compiled)"
    if weight_decay is not None:
        if cls is opts.Adam:
            cls = opts.AdamW
            origin += ", as AdamW"
        cfg["weight_decay"] = float(weight_decay)
    if clipnorm:  # one norm over all gradients, as torch's clip_grad_norm_
        cfg.update(global_clipnorm=float(clipnorm), clipnorm=None, clipvalue=None)
    cfg["learning_rate"] = float(lr)
    opt = cls.from_config(cfg)
    if weight_decay is not None:
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return opt, origin


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

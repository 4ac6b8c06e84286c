"""Model surgery for the Keras adapter: dropout, L2, the optimizer (losses and outputs: ``losses``).

Each function takes the imported ``keras`` module so that this file imports no
framework at module level.
"""

from __future__ import annotations

from typing import Any

from tuner.errors import ConfigError
from tuner.records import Injection

__all__ = [
    "l2_injection",
    "is_functional",
    "insert_dropout_functional",
    "walk",
    "dropout_layers",
    "set_dropout_rate",
    "insert_dropout",
    "kernel_layers",
    "add_l2",
    "output_layer",
    "output_activation",
    "make_optimizer",
    "OPTIMIZERS",
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


def is_functional(model: Any) -> bool:
    """A model built by calling layers on ``keras.Input`` (``keras.Model(inputs, outputs)``)."""
    return type(model).__name__ == "Functional"


def insert_dropout_functional(keras: Any, model: Any, rate: float) -> tuple[Any, int]:
    """The functional graph rebuilt with ``Dropout(rate)`` on the input of every Dense/Conv layer that
    has a weighted layer upstream (the rule of :func:`insert_dropout`, on any graph: branches, ``Add``).

    The clone reuses the user's layer objects, so their weights stay as the builder made them.
    """
    dense_conv, weighted = _dense_conv_types(keras), _weighted_types(keras)
    downstream: dict[int, Any] = {}  # id -> tensor (kept alive so ids stay unique)
    inserted = 0

    def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal inserted
        after = any(id(t) in downstream for t in keras.tree.flatten((args, kwargs)))
        if after and isinstance(layer, dense_conv):
            args = (keras.layers.Dropout(rate)(args[0]), *args[1:])
            inserted += 1
        out = layer(*args, **kwargs)
        if after or isinstance(layer, weighted):
            downstream.update((id(t), t) for t in keras.tree.flatten(out))
        return out

    new = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    return (new, inserted) if inserted else (model, 0)


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


def l2_injection(keras: Any, model: Any, l2: float, mode: str) -> tuple[Injection, float | None]:
    """L2 as ``mode`` asks: kernel regularizers on the model (the record), or the decoupled weight
    decay the optimizer must take (the float)."""
    if not (l2 >= 0.0):
        raise ConfigError(f"l2 must be >= 0, got {l2!r}.")
    if mode not in ("auto", "coupled", "decoupled"):
        raise ConfigError(f"l2_mode must be 'auto', 'coupled' or 'decoupled', got {mode!r}.")
    if mode == "decoupled":
        msg = f"decoupled weight decay {l2:g} on the optimizer (biases and normalization excluded)"
        return Injection("l2", True, msg), l2
    if l2 == 0.0:
        return Injection("l2", True, "0: no penalty added"), None
    count, replaced = add_l2(keras, model, l2)
    if not count:
        msg = (
            "not applied: the model has no Dense/Conv layers to put a kernel regularizer on; use "
            "l2_mode='decoupled' (optimizer weight decay) or apply hp.l2 in build_model"
        )
        return Injection("l2", False, msg), None
    extra = f", replacing {replaced} existing regularizers" if replaced else ""
    return Injection("l2", True, f"L2({l2:g}) on {count} Dense/Conv kernels{extra}"), None

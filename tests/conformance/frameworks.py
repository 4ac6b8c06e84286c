"""One description per framework for the conformance suite: tiny builders and read-backs.

Read-backs look at what the built model and its optimizer hold (layer rates, regularizers,
optimizer learning rates, the batches the model saw), never at the adapter's own records.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuner.records import TaskInfo

HIDDEN = 16


def _out(task: TaskInfo) -> int:
    return task.n_classes if task.is_classification else task.n_outputs


@dataclass(frozen=True)
class Framework:
    """What the suite needs to know about one framework."""

    name: str
    requires: str  # importorskip this module
    model: Callable[[TaskInfo, int], Any]  # a fresh tiny model without dropout
    hp_model: Callable[[Any, TaskInfo, int], Any]  # reads hp.units and its regularization knob
    hp_reads: str  # the knob hp_model applies itself
    wrong_output: Callable[[TaskInfo, int], Any]  # a model whose output cannot fit the task
    wrong_output_words: str  # part of the dry run's message
    dropout_rates: Callable[[Any], list[float] | None]  # None: the framework has no dropout
    penalty: Callable[[Any], list[float]]  # the L2 strength stored per weight tensor or layer
    expected_penalty: Callable[[float, int], float]  # (l2, batch_size) -> that stored value
    learning_rate: Callable[[Any], float]  # the optimizer's current rate
    units: Callable[[Any], int]  # hidden units of the first layer
    batches: Callable[[Any, Any, int], int]  # (adapter, monitor, rows) -> batches in the first epoch


# ----------------------------------------------------------------------------- keras


def _keras() -> Any:
    import keras

    return keras


def keras_model(task: TaskInfo, n_in: int, out: int | None = None) -> Any:
    keras = _keras()
    L = keras.layers
    out = _out(task) if out is None else out
    head = L.Dense(out, activation="softmax") if task.is_classification else L.Dense(out)
    model = keras.Sequential(
        [keras.Input((n_in,)), L.Dense(HIDDEN, activation="relu"), L.Dense(HIDDEN, activation="relu"), head]
    )
    loss = "sparse_categorical_crossentropy" if task.is_classification else "mse"
    model.compile(optimizer="adam", loss=loss)
    return model


def keras_hp_model(hp: Any, task: TaskInfo, n_in: int) -> Any:
    keras = _keras()
    L = keras.layers
    head = L.Dense(_out(task), activation="softmax" if task.is_classification else None)
    return keras.Sequential(
        [keras.Input((n_in,)), L.Dense(hp.units, activation="relu"), L.Dropout(hp.dropout), head]
    )


def _keras_layers(ad: Any, kind: str) -> list[Any]:
    cls = getattr(_keras().layers, kind)
    return [layer for layer in ad.model.layers if isinstance(layer, cls)]


KERAS = Framework(
    name="keras",
    requires="keras",
    model=keras_model,
    hp_model=keras_hp_model,
    hp_reads="dropout",
    wrong_output=lambda task, n_in: keras_model(task, n_in, out=_out(task) + 2),
    wrong_output_words="values per row",
    dropout_rates=lambda ad: [float(layer.rate) for layer in _keras_layers(ad, "Dropout")],
    penalty=lambda ad: [float(layer.kernel_regularizer.l2) for layer in _keras_layers(ad, "Dense")],
    expected_penalty=lambda l2, batch: l2,
    learning_rate=lambda ad: float(_keras().ops.convert_to_numpy(ad.model.optimizer.learning_rate)),
    units=lambda ad: int(_keras_layers(ad, "Dense")[0].units),
    batches=lambda ad, monitor, n: monitor.batch_calls[0],
)


# ----------------------------------------------------------------------------- torch


def torch_model(task: TaskInfo, n_in: int, out: int | None = None) -> Any:
    from torch import nn

    out = _out(task) if out is None else out
    model = nn.Sequential(
        nn.Linear(n_in, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, out)
    )
    model.seen = []  # batch sizes of the training-mode forward passes

    def record(module: Any, inputs: tuple[Any, ...]) -> None:
        if module.training:
            module.seen.append(int(inputs[0].shape[0]))

    model.register_forward_pre_hook(record)
    return model


def torch_hp_model(hp: Any, task: TaskInfo, n_in: int) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Linear(n_in, hp.units), nn.ReLU(), nn.Dropout(hp.dropout), nn.Linear(hp.units, _out(task))
    )


def _torch_penalty(ad: Any) -> list[float]:
    """Weight decay per weight matrix; biases must be in a group without decay."""
    decays = []
    for group in ad.optimizer.param_groups:
        for p in group["params"]:
            if p.ndim > 1:
                decays.append(float(group["weight_decay"]))
            elif group["weight_decay"] != 0.0:
                raise AssertionError(f"a 1-D parameter (bias) has weight decay {group['weight_decay']}")
    return decays


def _torch_batches(ad: Any, monitor: Any, n: int) -> int:
    seen = ad.model.seen
    first = seen[: math.ceil(n / max(seen))]  # the first epoch's passes
    assert sum(first) == n, (seen, n)
    return len(first)


TORCH = Framework(
    name="torch",
    requires="torch",
    model=torch_model,
    hp_model=torch_hp_model,
    hp_reads="dropout",
    wrong_output=lambda task, n_in: torch_model(task, n_in, out=_out(task) + 2),
    wrong_output_words="value(s) per row",
    dropout_rates=lambda ad: [float(m.p) for m in ad.model.modules() if type(m).__name__.endswith("Dropout")],
    penalty=_torch_penalty,
    expected_penalty=lambda l2, batch: l2,  # AdamW's decoupled decay
    learning_rate=lambda ad: float(ad.optimizer.param_groups[0]["lr"]),
    units=lambda ad: int(ad.model[0].out_features),
    batches=_torch_batches,
)


# ----------------------------------------------------------------------------- scikit-learn


def sklearn_model(task: TaskInfo, n_in: int, wrong: bool = False) -> Any:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    classify = task.is_classification != wrong
    return (
        MLPClassifier(hidden_layer_sizes=(HIDDEN,))
        if classify
        else MLPRegressor(hidden_layer_sizes=(HIDDEN,))
    )


def sklearn_hp_model(hp: Any, task: TaskInfo, n_in: int) -> Any:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    cls = MLPClassifier if task.is_classification else MLPRegressor
    return cls(hidden_layer_sizes=(hp.units,), alpha=hp.l2)


def _final(ad: Any) -> Any:
    model = ad.model
    return model.steps[-1][1] if hasattr(model, "steps") else model


SKLEARN = Framework(
    name="sklearn",
    requires="sklearn",
    model=sklearn_model,
    hp_model=sklearn_hp_model,
    hp_reads="l2",
    wrong_output=lambda task, n_in: sklearn_model(task, n_in, wrong=True),
    wrong_output_words="classes",
    dropout_rates=lambda ad: None,
    penalty=lambda ad: [float(_final(ad).alpha)],
    expected_penalty=lambda l2, batch: 2.0 * l2 * batch,  # MLPClassifier divides alpha by 2 * batch
    learning_rate=lambda ad: float(_final(ad)._optimizer.learning_rate_init),
    units=lambda ad: int(_final(ad).hidden_layer_sizes[0]),
    batches=lambda ad, monitor, n: math.ceil(n / _final(ad).batch_size),
)

FRAMEWORKS: dict[str, Framework] = {f.name: f for f in (KERAS, TORCH, SKLEARN)}

"""User-style Keras models per task, the same architectures as :mod:`benchmarks.builders_torch`.

``model(split)`` is the plain compiled model (Adam, the task's loss, no Dropout, no L2); with
``BENCH_MODEL_STYLE=functional`` the same layers as a functional ``keras.Model(inputs, outputs)``;
``model(split, dropout=p, l2=a, learning_rate=r)`` the version a tuner's builder writes. With
``BENCH_OPTIMIZER=sgd`` the model is compiled with ``SGD(0.01, momentum=0.9)`` instead of Adam (the
user's own optimizer, which regtuner keeps and centres its learning-rate range on).
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks.tasks import Split

__all__ = ["model", "loss_for"]


def loss_for(split: Split) -> str:
    return {
        "binary": "binary_crossentropy",
        "multiclass": "sparse_categorical_crossentropy",
        "regression": "mse",
    }[split.kind]


def model(
    split: Split, dropout: float | None = None, l2: float | None = None, learning_rate: float = 1e-3
) -> Any:
    """The task's user-style ``keras.Sequential``, compiled."""
    import keras
    from keras import layers

    reg = keras.regularizers.l2(l2) if l2 else None
    drop = [layers.Dropout(dropout)] if dropout is not None else []
    out_act = {"binary": "sigmoid", "multiclass": "softmax", "regression": None}[split.kind]
    shape = split.train[0].shape[1:]
    if split.input_kind == "image":
        body = [
            layers.Conv2D(32, 3, padding="same", activation="relu", kernel_regularizer=reg),
            layers.Conv2D(64, 3, padding="same", activation="relu", kernel_regularizer=reg),
            layers.MaxPooling2D(2), layers.Flatten(), *drop,
            layers.Dense(128, activation="relu", kernel_regularizer=reg), *drop,
        ]  # fmt: skip
    elif split.input_kind == "sequence":
        body = [
            layers.Conv1D(32, 5, activation="relu", kernel_regularizer=reg), layers.Flatten(), *drop,
            layers.Dense(64, activation="relu", kernel_regularizer=reg), *drop,
        ]  # fmt: skip
    else:
        body = [
            layers.Dense(256, activation="relu", kernel_regularizer=reg),
            *drop,
            layers.Dense(128, activation="relu", kernel_regularizer=reg),
            *drop,
        ]
    stack = [*body, layers.Dense(split.n_out, activation=out_act, kernel_regularizer=reg)]
    if os.environ.get("BENCH_MODEL_STYLE") == "functional":
        inputs = x = keras.Input(shape)
        for layer in stack:
            x = layer(x)
        net = keras.Model(inputs, x)
    else:
        net = keras.Sequential([keras.Input(shape), *stack])
    if os.environ.get("BENCH_OPTIMIZER") == "sgd":
        optimizer = keras.optimizers.SGD(10 * learning_rate, momentum=0.9)
    else:
        optimizer = keras.optimizers.Adam(learning_rate)
    net.compile(optimizer=optimizer, loss=loss_for(split))
    return net

"""``regtuner demo``: a real study on scikit-learn's digits with an overfitting Keras MLP."""

from __future__ import annotations

from typing import Any

from tuner._imports import require

__all__ = ["digits_data", "build_digits_mlp", "run_demo"]


def digits_data(n_train: int = 600, seed: int = 0) -> dict[str, tuple[Any, Any]]:
    """Digits (8x8, 10 classes) with a small training part, so regularization matters."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, train_size=n_train, stratify=y_rest, random_state=seed
    )
    return {"train": (X_train, y_train), "validation": (X_val, y_val), "test": (X_test, y_test)}


def build_digits_mlp() -> Any:
    """What a practitioner writes first: a wide MLP with no regularization."""
    keras = require("keras")
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def run_demo(
    n_trials: int = 8, max_epochs: int = 30, tracking: str | bool | None = None, progress: bool | str = True
) -> Any:
    from tuner.api import tune

    return tune(
        build_digits_mlp,
        digits_data(),
        space="quick",
        objective="val_loss",
        n_trials=n_trials,
        max_epochs=max_epochs,
        tracking=tracking,
        experiment="regtuner-demo",
        progress=progress,
    )

"""Builder and data loader for the example job specs (``digits_local.yaml``, ``digits_ray.yaml``).

A spec names them as ``digits_job:build_model`` and ``digits_job:load_data``; ``regtuner run`` imports
this module from the current folder, and ``regtuner submit --working-dir examples`` uploads it.
"""

from __future__ import annotations

from typing import Any


def load_data(n_train: int = 600, seed: int = 0) -> dict[str, tuple[Any, Any]]:
    """scikit-learn's digits (8x8 images as 64 features, 10 classes), a small training part."""
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


def build_model(hp: Any) -> Any:
    """An MLP that overfits 600 rows; ``hp.units`` is a hyperparameter the spec's space declares."""
    import keras

    units = int(hp.get("units", 128))
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(units // 2, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

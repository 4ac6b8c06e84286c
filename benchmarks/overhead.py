"""Orchestration overhead of ``tune()`` against plain ``model.fit`` (Keras).

Both sides train the same fixed configurations for the same number of epochs (no early
stopping), the plain side with ``model.fit(..., validation_data=...)`` as a user would,
regtuner through ``tune()`` with those configurations as the study's start points. Targets:
ratio <= 1.10 without tracking and <= 1.15 with MLflow's local store.

    python -m benchmarks.overhead [--epochs 20] [--repeats 2]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

CONFIGS = [
    {"dropout": 0.1, "l2": 1e-5, "learning_rate": 1e-3, "batch_size": 32},
    {"dropout": 0.3, "l2": 1e-4, "learning_rate": 3e-3, "batch_size": 64},
    {"dropout": 0.5, "l2": 1e-3, "learning_rate": 1e-3, "batch_size": 32},
    {"dropout": 0.2, "l2": 1e-6, "learning_rate": 3e-4, "batch_size": 128},
    {"dropout": 0.4, "l2": 3e-4, "learning_rate": 2e-3, "batch_size": 64},
    {"dropout": 0.0, "l2": 1e-5, "learning_rate": 5e-3, "batch_size": 32},
]


def make_data(n: int = 3000, d: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, 4))
    y = np.argmax(X @ w + rng.normal(scale=2.0, size=(n, 4)), axis=1)
    cut = int(0.8 * n)
    return (X[:cut], y[:cut]), (X[cut:], y[cut:])


def keras_model(dropout: float | None = None, l2: float | None = None, lr: float = 1e-3):
    import keras

    reg = keras.regularizers.L2(l2) if l2 else None
    layers = [keras.Input((30,))]
    for units in (128, 64):
        layers.append(keras.layers.Dense(units, activation="relu", kernel_regularizer=reg))
        if dropout is not None:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(4, activation="softmax", kernel_regularizer=reg))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    return model


def user_builder():
    """The zero-arg builder regtuner regularizes by injection."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def plain(train, val, epochs: int) -> float:
    import keras

    start = time.perf_counter()
    for cfg in CONFIGS:
        keras.utils.set_random_seed(0)
        model = keras_model(cfg["dropout"], cfg["l2"], cfg["learning_rate"])
        model.fit(*train, validation_data=val, epochs=epochs, batch_size=cfg["batch_size"], verbose=0)
        keras.backend.clear_session()
    return time.perf_counter() - start


def fixed_space() -> dict:
    """A space whose trials are exactly CONFIGS, in order (enqueued as start points)."""
    knobs = {k: sorted({c[k] for c in CONFIGS}) for k in ("dropout", "l2", "learning_rate", "batch_size")}
    return {"knobs": {**knobs, "patience": 0}, "start": CONFIGS}


def with_tuner(train, val, epochs: int, tracking) -> float:
    from tuner import tune

    space = fixed_space()
    extra = {"baselines": False} if "baselines" in inspect.signature(tune).parameters else {}
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db" if tracking else False
        start = time.perf_counter()
        tune(
            user_builder,
            {"train": train, "validation": val},
            space=space,
            n_trials=len(CONFIGS),
            max_epochs=epochs,
            test=None,
            tracking=uri,
            progress=False,
            storage=f"{tmp}/studies.db",
            **extra,
        )
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "overhead_keras.json"))
    args = ap.parse_args()
    train, val = make_data()
    # warm the import and the first graph build outside the timings
    keras_model().fit(*train, epochs=1, verbose=0)
    times: dict[str, list[float]] = {"plain": [], "tune": [], "tune+mlflow": []}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits all three
        times["plain"].append(plain(train, val, args.epochs))
        times["tune"].append(with_tuner(train, val, args.epochs, tracking=False))
        times["tune+mlflow"].append(with_tuner(train, val, args.epochs, tracking=True))
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "configs": len(CONFIGS),
        "epochs": args.epochs,
        "seconds": times,
        "ratio_no_tracking": med["tune"] / med["plain"],
        "ratio_mlflow": med["tune+mlflow"] / med["plain"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"plain model.fit: {med['plain']:.1f} s for {len(CONFIGS)} configs x {args.epochs} epochs")
    print(f"tune(), no tracking: {med['tune']:.1f} s  ratio {out['ratio_no_tracking']:.3f} (target <= 1.10)")
    print(
        f"tune(), MLflow local: {med['tune+mlflow']:.1f} s  ratio {out['ratio_mlflow']:.3f} (target <= 1.15)"
    )


if __name__ == "__main__":
    main()

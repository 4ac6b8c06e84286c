"""Keras Tuner Hyperband over the same knobs, written the way its Hyperband tutorial shows.

``build(hp)`` reads ``hp.Float("dropout")``, ``hp.Float("l2", sampling="log")`` and
``hp.Float("learning_rate", sampling="log")``; the batch size is an ``hp.Choice`` in
``HyperModel.fit`` (the documented way to tune it). ``Hyperband(objective="val_loss",
max_epochs=budget.max_epochs, factor=3)``, ``search(..., callbacks=[EarlyStopping(patience=5)])``
as in the tutorial. The total epoch cap (``n_trials * max_epochs``) is enforced by ending the
search once it is reached; Hyperband's own schedule decides how many configurations that is.
The chosen model is ``get_best_models()[0]``; its reported validation score is the best trial's.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import numpy as np

from benchmarks.methods import Budget, Row
from benchmarks.methods.peer_loop import PEER_SPACE
from benchmarks.tasks import Split

__all__ = ["keras_tuner_hyperband"]

_EPOCHS = [0]  # a module global: Keras Tuner deep-copies callbacks per trial


def _metric(split: Split, model: Any, X: np.ndarray, y: np.ndarray) -> float:
    out = np.asarray(model.predict(X, verbose=0))
    if split.kind == "regression":
        pred = out.reshape(-1)
        return float(1.0 - np.sum((y - pred) ** 2) / max(np.sum((y - y.mean()) ** 2), 1e-12))
    labels = (out.reshape(-1) > 0.5).astype(np.int64) if split.kind == "binary" else out.argmax(1)
    return float(np.mean(labels == y))


def keras_tuner_hyperband(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    import keras
    import keras_tuner as kt

    from benchmarks import builders_keras

    class Counter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            _EPOCHS[0] += 1

    class HyperModel(kt.HyperModel):
        def build(self, hp: Any) -> Any:
            return builders_keras.model(
                split,
                dropout=hp.Float("dropout", *PEER_SPACE["dropout"]),
                l2=hp.Float("l2", *PEER_SPACE["l2"], sampling="log"),
                learning_rate=hp.Float("learning_rate", *PEER_SPACE["learning_rate"], sampling="log"),
            )

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            return model.fit(
                *args, batch_size=hp.Choice("batch_size", list(PEER_SPACE["batch_size"])), **kwargs
            )

    class CappedHyperband(kt.Hyperband):
        def _configure_tensorboard_dir(self, callbacks: Any, trial: Any, execution: int = 0) -> None:
            pass  # only for a TensorBoard callback (none here); upstream imports tensorboard regardless

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            if _EPOCHS[0] >= budget.epoch_cap:  # no new trial once the epoch budget is spent
                self.oracle.max_trials = len(self.oracle.trials)

    keras.utils.set_random_seed(seed)
    _EPOCHS[0] = 0
    (Xt, yt), (Xv, yv), (Xs, ys) = split.arrays("keras")
    with tempfile.TemporaryDirectory(prefix="kt-bench-") as tmp:
        start = time.perf_counter()
        tuner = CappedHyperband(
            HyperModel(),
            objective="val_loss",
            max_epochs=budget.max_epochs,
            factor=3,
            seed=seed,
            directory=tmp,
            project_name="bench",
            overwrite=True,
        )
        stop_early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=5)
        tuner.search(Xt, yt, validation_data=(Xv, yv), callbacks=[stop_early, Counter()], verbose=0)
        best_model = tuner.get_best_models(1)[0]
        wall = time.perf_counter() - start
        test, val = _metric(split, best_model, Xs, ys), _metric(split, best_model, Xv, yv)
        best_hp = tuner.get_best_hyperparameters(1)[0].values
        trials = len(tuner.oracle.trials)
    keras.backend.clear_session()
    return Row(
        task=split.task,
        method="keras_tuner",
        seed=seed,
        framework="keras",
        metric=split.metric,
        test_metric=test,
        reported_val=val,
        wall_s=wall,
        epochs_trained=_EPOCHS[0],
        trials=trials,
        extra={"best_params": {k: v for k, v in best_hp.items() if not k.startswith("tuner/")}},
    )

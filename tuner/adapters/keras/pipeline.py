"""The Keras adapter's training path: the augmented ``tf.data`` pipeline, the hook callback,
and the cleanup of traced graphs after a trial.

Rows are shuffled by index (no second copy of X in a shuffle buffer), batched, augmented
as batch ops in parallel with training, and prefetched. Magnitudes come from
:mod:`tuner.adapters.augment`, so a policy means the same here as in the other adapters.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from tuner._imports import require
from tuner.adapters import augment

__all__ = [
    "augmented_dataset",
    "batch_augmenter",
    "hook_callback",
    "gradient_keys",
    "purge_custom_gradients",
    "predict_padded",
]

BatchFn = Callable[[Any, Any], tuple[Any, Any]]


def _image_layers(
    keras: Any, names: tuple[str, ...], mag: dict[str, float], X: np.ndarray, seed: int
) -> list:
    L = keras.layers
    out = []
    if "flip" in names and mag["flip"] > 0:
        out.append(L.RandomFlip("horizontal", seed=seed))
    if "translate" in names and mag["translate"] > 0:
        out.append(L.RandomTranslation(mag["translate"], mag["translate"], seed=seed + 1))
    if "rotate" in names and mag["rotate"] > 0:
        out.append(L.RandomRotation(mag["rotate"], seed=seed + 2))
    if "zoom" in names and mag["zoom"] > 0:
        out.append(L.RandomZoom(mag["zoom"], mag["zoom"], seed=seed + 3))
    if "contrast" in names and mag["contrast"] > 0:
        # the layer clips to value_range: use the data's own range, not the (0, 255) default
        lo, hi = float(np.min(X)), float(np.max(X))
        out.append(
            L.RandomContrast(mag["contrast"], value_range=(lo, hi if hi > lo else lo + 1.0), seed=seed + 4)
        )
    return out


def _cutout(tf: Any, x: Any, side: float) -> Any:
    """Zero one square of ``side`` (fraction of the shorter side) per image, at a random centre."""
    shape = tf.shape(x)
    b, h, w = shape[0], shape[1], shape[2]
    size = tf.maximum(1, tf.cast(side * tf.cast(tf.minimum(h, w), tf.float32), tf.int32))
    cy = tf.random.uniform([b, 1, 1], 0, h, dtype=tf.int32)
    cx = tf.random.uniform([b, 1, 1], 0, w, dtype=tf.int32)
    rows = tf.range(h)[None, :, None]
    cols = tf.range(w)[None, None, :]
    half = size // 2
    inside = (tf.abs(rows - cy) <= half) & (tf.abs(cols - cx) <= half)
    keep = tf.cast(tf.logical_not(inside), x.dtype)[..., None]
    return x * keep


def _mixup(tf: Any, x: Any, y: Any, alpha: float) -> tuple[Any, Any]:
    b = tf.shape(x)[0]
    g1 = tf.random.gamma([b], alpha)
    g2 = tf.random.gamma([b], alpha)
    lam = g1 / tf.maximum(g1 + g2, 1e-12)
    partner = tf.random.shuffle(tf.range(b))

    def mix(t: Any) -> Any:
        lt = tf.reshape(tf.cast(lam, t.dtype), tf.concat([[b], tf.ones([tf.rank(t) - 1], tf.int32)], 0))
        return lt * t + (1.0 - lt) * tf.gather(t, partner)

    return mix(x), mix(y)


def _spread(X: np.ndarray, input_kind: str) -> np.ndarray:
    """Std of X per feature (tabular), per feature over rows and steps (sequence), per channel (image)."""
    if input_kind == "sequence":
        axes: tuple[int, ...] | None = (0, 1)
    elif input_kind == "image":
        axes = tuple(range(X.ndim - 1)) if X.ndim == 4 else None  # (n, H, W): one grey channel
    else:
        axes = (0,)
    return X.astype(np.float64).std(axis=axes)


def batch_augmenter(
    X: np.ndarray, names: tuple[str, ...], strength: float, input_kind: str, seed: int = 0
) -> BatchFn:
    """A ``(x, y) -> (x, y)`` function of tf ops applying ``names`` to a batch.

    ``X`` (the training inputs) fixes the per-feature noise scale and the contrast range.
    Targets must already be float when ``mixup`` is among ``names``.
    """
    tf = require("tensorflow")
    keras = require("keras")
    mag = augment.magnitudes(strength)
    X = np.asarray(X)
    steps: list[Callable[[Any], Any]] = []

    if input_kind == "image":
        layers = _image_layers(keras, names, mag, X, seed)
        squeeze = X.ndim == 3  # grayscale without a channel axis

        def images(x: Any) -> Any:
            x = x[..., None] if squeeze else x
            for layer in layers:
                x = layer(x, training=True)
            if "cutout" in names and mag["cutout"] > 0:
                x = _cutout(tf, x, mag["cutout"])
            return x[..., 0] if squeeze else x

        steps.append(images)
    if "noise" in names and mag["noise"] > 0:
        scale = tf.constant(mag["noise"] * _spread(X, input_kind), dtype=tf.float32)
        steps.append(lambda x: x + tf.random.normal(tf.shape(x), dtype=x.dtype) * tf.cast(scale, x.dtype))
    if input_kind == "sequence" and "shift" in names and mag["shift"] > 0:
        max_shift = max(1, round(mag["shift"] * X.shape[1]))

        def shift(x: Any) -> Any:  # a nonzero offset in [-max_shift, max_shift]
            size = tf.random.uniform([], 1, max_shift + 1, tf.int32)
            sign = 2 * tf.random.uniform([], 0, 2, tf.int32) - 1
            return tf.roll(x, size * sign, axis=1)

        steps.append(shift)
    if input_kind == "sequence" and "mask" in names and mag["mask"] > 0:
        p = mag["mask"]

        def mask(x: Any) -> Any:
            keep = tf.cast(tf.random.uniform(tf.shape(x)[:2]) >= p, x.dtype)
            return x * tf.reshape(keep, tf.concat([tf.shape(x)[:2], tf.ones([tf.rank(x) - 2], tf.int32)], 0))

        steps.append(mask)
    alpha = mag["mixup"] if "mixup" in names else 0.0

    def apply(x: Any, y: Any) -> tuple[Any, Any]:
        for step in steps:
            x = step(x)
        if alpha > 0:
            x, y = _mixup(tf, x, y, alpha)
        return x, y

    return apply


def augmented_dataset(
    X: np.ndarray,
    y: np.ndarray,
    names: tuple[str, ...],
    strength: float,
    input_kind: str,
    batch_size: int,
    seed: int = 0,
) -> Any:
    """A shuffled (every epoch), batched, augmented and prefetched ``tf.data.Dataset`` of ``(X, y)``."""
    tf = require("tensorflow")
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.floating):  # token ids: adding noise or mixing them means nothing
        dropped = [n for n in names if n in ("noise", "mixup")]
        if dropped:
            warnings.warn(f"{'+'.join(dropped)} skipped: X holds integers ({X.dtype})", stacklevel=2)
        names = tuple(n for n in names if n not in dropped)
    else:
        X = X.astype(np.float32, copy=False)
    fn = batch_augmenter(X, names, strength, input_kind, seed)
    Xt = tf.convert_to_tensor(X)
    yt = tf.convert_to_tensor(y)
    ds = tf.data.Dataset.range(len(X))
    ds = ds.shuffle(len(X), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    ds = ds.map(lambda idx: (tf.gather(Xt, idx), tf.gather(yt, idx)), num_parallel_calls=tf.data.AUTOTUNE)
    # One batch at a time (still ahead of training, through the prefetch): stateful random ops drawn
    # in parallel calls would go to batches in thread order, and the same seed would train differently.
    ds = ds.map(fn)
    return ds.prefetch(tf.data.AUTOTUNE)


def hook_callback(keras: Any, hooks: Any) -> Any:
    """A Keras callback that sets the LR and runs the tuner's per-epoch evaluation from ``hooks``.

    Whatever the hooks raise (TrialPruned, TrialDiverged) leaves ``model.fit`` unchanged.
    """
    batch_loss = getattr(hooks, "batch_loss", None)

    class TunerHooks(keras.callbacks.Callback):
        # Batch ends then run on Keras' callback thread: no device sync per step, and what the
        # hooks raise there is re-raised by fit at the next batch or at the epoch's end.
        async_safe = True

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.model.optimizer.learning_rate = float(hooks.learning_rate(epoch))

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch_loss is not None and logs and "loss" in logs:
                batch_loss(float(logs["loss"]))

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if hooks.epoch_end(epoch):
                self.model.stop_training = True

    return TunerHooks()


def _gradient_registry() -> dict | None:
    ops = sys.modules.get("tensorflow.python.framework.ops")
    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


def gradient_keys() -> frozenset[str]:
    registry = _gradient_registry()
    return frozenset(registry) if registry is not None else frozenset()


def purge_custom_gradients(before: frozenset[str] | None) -> None:
    """Drop the ``CustomGradient-N`` entries that tracing this trial's train step registered.

    TensorFlow keeps every ``tf.custom_gradient`` closure (Keras' optimizer all-reduce makes one
    per trace) in a global registry, and each pins a whole traced graph: without this, memory
    grows with every trial (tensorflow/tensorflow#97697). An entry is only read while its graph
    is being traced, so dropping it after the trial is safe.
    """
    registry = _gradient_registry()
    if registry is None or before is None:
        return
    for key in [k for k in registry if k.startswith("CustomGradient-") and k not in before]:
        registry.pop(key, None)


def predict_padded(model: Any, X: np.ndarray, chunk: int) -> np.ndarray:
    """``model``'s raw outputs on ``X`` in chunks padded to a power of two rows (at least 32): a few
    input shapes per model. Every trial's model traces its predict function anew, which TensorFlow
    reports as excessive retracing; that warning is held back here, the user's own are not."""
    parts = []
    tf_log = logging.getLogger("tensorflow")
    tf_log.addFilter(_quiet_retracing)
    try:
        for i in range(0, len(X), chunk):
            rows = X[i : i + chunk]
            n, size = len(rows), min(chunk, max(32, 1 << (len(rows) - 1).bit_length()))
            padded = np.concatenate([rows, np.zeros((size - n, *rows.shape[1:]), rows.dtype)])
            parts.append(np.asarray(model.predict_on_batch(padded))[:n])
    finally:
        tf_log.removeFilter(_quiet_retracing)
    return np.concatenate(parts) if parts else np.empty((0,))


def _quiet_retracing(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()

"""Keras 3 adapter: inject regularization into a built model, train under the tuner's hooks, predict.

Keras is imported lazily; :meth:`KerasAdapter.accepts` only looks at class modules.
The model surgery lives in :mod:`tuner.adapters.keras.inject`, the augmented input
pipeline in :mod:`tuner.adapters.keras.pipeline`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from tuner._imports import require
from tuner.adapters import augment
from tuner.adapters.base import Adapter, EpochHooks, FitSettings, builder_applied, mro_modules
from tuner.adapters.keras import inject as inj
from tuner.adapters.keras import losses
from tuner.adapters.keras.pipeline import (
    augmented_dataset,
    gradient_keys,
    hook_callback,
    predict_padded,
    purge_custom_gradients,
)
from tuner.errors import ConfigError, ModelError
from tuner.records import Injection

__all__ = ["KerasAdapter"]

PREDICT_CHUNK = 4096
_CE = ("bce", "cce", "scce")


class KerasAdapter(Adapter):
    """Regularize, train and predict with a ``keras.Model`` (TensorFlow backend)."""

    framework = "keras"
    extra = "keras"

    def __init__(self, model: Any, settings: FitSettings) -> None:
        super().__init__(model, settings)
        self.base_lr: float | None = None
        self._plan: losses.LossPlan | None = None
        self._loss_source: Any = None
        self._smoothing: float | None = None
        self._optimizer: Any = None
        self._metrics: Any = None
        self._logits: bool | None = None
        self._probe: np.ndarray | None = None
        self._aug: tuple[str, ...] = ()
        self._strength = 0.0
        self._grad_keys: frozenset[str] | None = None

    @property
    def keras(self) -> Any:
        return require("keras", self.extra)

    @property
    def loss_description(self) -> str | None:
        """The loss this adapter trains with, in words (None before it is chosen)."""
        return self._plan.words if self._plan is not None else None

    @classmethod
    def accepts(cls, model: object) -> bool:
        return "keras" in mro_modules(model) and all(hasattr(model, a) for a in ("fit", "compile", "layers"))

    # ----------------------------------------------------------------- regularize
    def regularize(self, params: Mapping[str, Any], builder_read: frozenset[str]) -> list[Injection]:
        keras, model = self.keras, self.model  # the model as built: dropout insertion may replace self.model
        params = {k: v for k, v in params.items() if v is not None}  # None: the knob is not set
        compiled = bool(getattr(model, "compiled", False))
        out: list[Injection] = []
        if "dropout" in params:
            by_builder = "dropout" in builder_read
            out.append(builder_applied("dropout") if by_builder else self._dropout(params["dropout"]))
        weight_decay = None
        if "l2" in params:
            if "l2" in builder_read:
                out.append(builder_applied("l2"))
            else:
                mode = params.get("l2_mode", "auto")
                injection, weight_decay = inj.l2_injection(keras, self.model, float(params["l2"]), mode)
                out.append(injection)
        current = model.optimizer if compiled else None
        lr = params.get("learning_rate")
        compiled_lr = _float_or_none(getattr(current, "learning_rate", None)) if current is not None else None
        self.base_lr = float(lr) if lr is not None else (compiled_lr or 1e-3)
        name = params.get("optimizer") if "optimizer" not in builder_read else None
        clip = params.get("gradient_clip") if "gradient_clip" not in builder_read else None
        self._optimizer, origin = inj.make_optimizer(keras, current, name, self.base_lr, weight_decay, clip)
        if "optimizer" in params:
            by_builder = "optimizer" in builder_read
            out.append(builder_applied("optimizer") if by_builder else Injection("optimizer", True, origin))
        if "learning_rate" in params or "lr_schedule" in params:
            source = "sampled" if lr is not None else ("compiled" if compiled_lr else "default")
            schedule = params.get("lr_schedule", "constant")
            detail = (
                f"base {self.base_lr:g} ({source}) on {origin}, set each epoch by the {schedule!r} schedule"
            )
            out.append(Injection("learning_rate", True, detail))
        if "gradient_clip" in params:
            if "gradient_clip" in builder_read:
                out.append(builder_applied("gradient_clip"))
            elif clip:
                detail = f"global_clipnorm={float(clip):g} on the optimizer (one norm over all gradients)"
                out.append(Injection("gradient_clip", True, detail))
            else:
                out.append(Injection("gradient_clip", True, "0: no gradient clipping"))
        self._loss_source = (
            self.settings.loss if self.settings.loss is not None else (model.loss if compiled else None)
        )
        ls = params.get("label_smoothing")
        self._smoothing = float(ls) if ls is not None and "label_smoothing" not in builder_read else None
        if "label_smoothing" in params:
            out.append(self._label_smoothing_record(float(ls or 0.0), "label_smoothing" in builder_read))
        if compiled:
            config = getattr(model, "_compile_config", None)
            self._metrics = config.config.get("metrics") if config is not None else None
        self._resolve(final=False)
        if augment.POLICY_KEY in params:
            out.append(self._augmentation(params, augment.POLICY_KEY in builder_read))
        if "batch_size" in params:
            detail = f"batch size {int(params['batch_size'])} passed to model.fit"
            out.append(Injection("batch_size", True, detail))
        return out

    def _dropout(self, rate: Any) -> Injection:
        rate = float(rate)
        if not 0.0 <= rate < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {rate!r}.")
        keras = self.keras
        found = inj.dropout_layers(keras, self.model)
        if found:
            for layer in found:
                inj.set_dropout_rate(keras, layer, rate)
            names = ", ".join(layer.name for layer in found)
            return Injection("dropout", True, f"rate {rate:g} set on {len(found)} Dropout layers ({names})")
        if rate == 0.0:
            return Injection("dropout", True, "rate 0: the model has no Dropout layers and none are needed")
        why = (
            "add Dropout layers in build_model (regtuner then tunes their rate) "
            "or build them with rate=hp.dropout"
        )
        kind = "Sequential" if type(self.model) is keras.Sequential else "functional"
        if kind == "functional" and not inj.is_functional(self.model):
            msg = (
                f"not applied: the {type(self.model).__name__} model (a keras.Model subclass) has no "
                f"Dropout layers, and regtuner inserts them only into Sequential and functional models; {why}"
            )
            return Injection("dropout", False, msg)
        insert = inj.insert_dropout if kind == "Sequential" else inj.insert_dropout_functional
        new, count = insert(keras, self.model, rate)
        if not count:
            msg = f"not applied: the {kind} model has no hidden Dense/Conv block to follow; {why}"
            return Injection("dropout", False, msg)
        self.model = new
        msg = (
            f"inserted {count} Dropout({rate:g}) layers into the {kind} model, one before each "
            "Dense/Conv layer that follows a hidden block"
        )
        return Injection("dropout", True, msg)

    def _label_smoothing_record(self, value: float, by_builder: bool) -> Injection:
        if not self.task.is_classification:
            return Injection("label_smoothing", False, "not applied: it is for classification only")
        if by_builder:
            return builder_applied("label_smoothing")
        if self._loss_source is not None and losses.loss_kind(self._loss_source) not in _CE:
            msg = (
                f"not applied: the loss {losses.describe_loss(self._loss_source)} is not a built-in "
                "crossentropy, so regtuner cannot smooth its targets; use a Keras crossentropy "
                "loss or read hp.label_smoothing in your loss"
            )
            return Injection("label_smoothing", False, msg)
        return Injection("label_smoothing", True, f"label_smoothing={value:g} in the crossentropy loss")

    def _augmentation(self, params: Mapping[str, Any], by_builder: bool) -> Injection:
        if by_builder:
            return builder_applied(augment.POLICY_KEY)
        drops = []
        if self.task.is_classification and self._target_kind() == "raw":
            drops.append((("mixup",), "the custom loss takes class indices, which cannot be mixed"))
        self._aug, self._strength, record = augment.plan(
            params, self.task.input_kind, drops, "as batch ops in a tf.data pipeline"
        )
        return record

    def _target_kind(self) -> str:
        src = self._loss_source
        return "raw" if src is not None and losses.loss_kind(src) == "custom" else "encoded"

    # ----------------------------------------------------------------- compile
    def _units(self) -> int | None:
        if self._probe is not None:
            return int(self._probe.shape[-1]) if self._probe.ndim > 1 else 1
        try:
            shape = self.model.output_shape
            return int(shape[-1]) if len(shape) > 1 and shape[-1] is not None else 1
        except (AttributeError, ValueError, TypeError, IndexError):
            units = getattr(inj.output_layer(self.keras, self.model), "units", None)
            return int(units) if units else None

    def _run_probe(self, X: np.ndarray | None = None) -> None:
        if X is None:
            try:
                spec = self.model.inputs[0]
            except (AttributeError, IndexError, TypeError, ValueError):
                return
            shape = (8, *spec.shape[1:])
            if any(d is None for d in shape):
                return
            floating = "float" in str(spec.dtype)
            X = (
                np.random.default_rng(0).standard_normal(shape).astype("float32")
                if floating
                else np.zeros(shape)
            )
            try:
                out = self.model(X, training=False)
            except Exception:  # noqa: BLE001 - a guess at the input failed; check_output runs on real X
                return
        else:
            out = self.model(X[:8], training=False)
        if isinstance(out, (list, tuple)) and len(out) == 1:
            out = out[0]
        if isinstance(out, (list, tuple, dict)):
            raise ModelError(f"the model has {len(out)} outputs; regtuner tunes models with one output.")
        self._probe = np.asarray(out)

    def _detect_logits(self) -> bool | None:
        """False when the output is probabilities (softmax/sigmoid), True for logits, None if unknown."""
        act = inj.output_activation(self.keras, self.model)
        if act in ("softmax", "sigmoid"):
            return False
        if act == "linear":
            return True
        if self._probe is None:
            self._run_probe()
        return None if self._probe is None else losses.logits_from_outputs(self._probe)

    def _resolve(self, final: bool) -> None:
        """Choose the loss and compile, once the output's units and logits are known."""
        if self._plan is not None or self._optimizer is None:  # done, or regularize has not run
            return
        units = logits = None
        if self.task.is_classification:
            units, logits = self._units(), self._detect_logits()
            if (units is None or logits is None) and self._loss_source is None and not final:
                return  # decided by the dry run in check_output or fit
        units = units or (1 if self.task.kind == "binary" else self.task.n_classes)
        plan = losses.plan_loss(self.keras, self.task, self._loss_source, units, logits, self._smoothing)
        self._logits = plan.from_logits if plan.kind in _CE else bool(logits)
        metrics = (
            losses.onehot_metrics(self.keras, self._metrics) if plan.target == "onehot" else self._metrics
        )
        self.model.compile(optimizer=self._optimizer, loss=plan.loss, metrics=metrics, jit_compile=False)
        self._plan = plan

    def _ensure_ready(self, X: np.ndarray, params: Mapping[str, Any]) -> None:
        if self._optimizer is None:
            self.regularize(params, frozenset())
        if self._plan is None:
            if self._probe is None:
                self._run_probe(X)
            self._resolve(final=True)

    def _encode(self, y: np.ndarray) -> np.ndarray:
        units = self._units() or (self.task.n_classes if self.task.is_classification else self.task.n_outputs)
        return losses.encode_targets(self._plan.target, self.task, units, y)

    # ----------------------------------------------------------------- contract
    def check_output(self, X: np.ndarray, y: np.ndarray) -> None:
        try:
            self._run_probe(np.asarray(X[:8]))
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - any framework error on the forward pass
            try:
                expected = str(tuple(self.model.input_shape[1:]))
            except (AttributeError, ValueError, TypeError):
                expected = "unknown (the model is not built)"
            raise ModelError(
                f"the model could not run on X: each row of X has shape {tuple(np.shape(X)[1:])} but the "
                f"model expects inputs of shape {expected}; make build_model's keras.Input(shape=...) match "
                f"X.shape[1:] ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from exc
        problem = losses.output_problem(self.task, self._probe)
        if problem:
            raise ModelError(problem)
        self._resolve(final=True)

    def fit(self, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any], hooks: EpochHooks) -> None:
        keras = self.keras
        keras.utils.set_random_seed(self.settings.seed % (2**32))
        if self._grad_keys is None:
            self._grad_keys = gradient_keys()
        self._ensure_ready(X, params)
        y_enc = self._encode(y)
        batch_size = int(params.get("batch_size") or 32)
        callback = hook_callback(keras, hooks)
        if self._aug:
            ds = augmented_dataset(
                X, y_enc, self._aug, self._strength, self.task.input_kind, batch_size, seed=self.settings.seed
            )
            self.model.fit(
                ds,
                epochs=hooks.max_epochs,
                shuffle=False,  # the pipeline shuffles each epoch
                verbose=self.settings.verbose,
                callbacks=[callback],
            )
        else:
            self.model.fit(
                X,
                y_enc,
                batch_size=batch_size,
                epochs=hooks.max_epochs,
                shuffle=True,
                verbose=self.settings.verbose,
                callbacks=[callback],
            )

    def _raw_predict(self, X: np.ndarray) -> np.ndarray:
        out = predict_padded(self.model, X, PREDICT_CHUNK)
        return out if len(out) else np.empty((0, self._units() or 1), dtype=np.float32)

    def predict(self, X: np.ndarray) -> np.ndarray:
        raw = self._raw_predict(X).astype(np.float64)
        raw = raw.reshape(len(raw), -1)
        if not self.task.is_classification:
            return raw
        if self._logits is None:
            self._logits = bool(self._detect_logits())
        return losses.probabilities(raw, self._logits)

    def get_state(self) -> list[np.ndarray]:
        return [np.array(w, copy=True) for w in self.model.get_weights()]

    def set_state(self, state: Any) -> None:
        self.model.set_weights([np.array(w, copy=True) for w in state])

    def loss_value(self, y: np.ndarray, pred: np.ndarray) -> float | None:
        plan = self._plan
        if plan is None or plan.kind in (*_CE, "mse"):
            return None
        keras = self.keras
        fn = keras.losses.get(plan.loss) if isinstance(plan.loss, str) else plan.loss
        pred = np.asarray(pred, dtype=np.float32)
        if self.task.is_classification:  # back to what the model outputs
            out = losses.raw_outputs(pred, self._units() or 2, bool(self._logits))
            y_true = np.asarray(y) if plan.target == "raw" else self._encode(y)
        else:
            out = pred
            y_true = np.asarray(y, dtype=np.float32).reshape(pred.shape)
        value = keras.ops.mean(fn(keras.ops.convert_to_tensor(y_true), keras.ops.convert_to_tensor(out)))
        return float(keras.ops.convert_to_numpy(value))

    def user_learning_rate(self) -> tuple[float, str, bool] | None:
        opt = getattr(self.model, "optimizer", None) if getattr(self.model, "compiled", False) else None
        opt = getattr(opt, "inner_optimizer", opt)
        lr = _float_or_none(getattr(opt, "learning_rate", None))  # None: no optimizer, or a schedule
        adaptive = not isinstance(opt, self.keras.optimizers.SGD)
        return None if lr is None else (lr, type(opt).__name__, adaptive)

    def for_user(self) -> Any:
        """The model compiled with the user's own loss and metrics (an inferred loss in its sparse form),
        for the labels they gave: training used one-hot targets. The tuned optimizer stays."""
        plan = self._plan
        if plan is None or plan.target != "onehot":
            return self.model  # binary, regression and custom losses take the user's targets already
        loss = self._loss_source
        if loss is None:
            loss = self.keras.losses.SparseCategoricalCrossentropy(from_logits=bool(plan.from_logits))
        self.model.compile(
            optimizer=self.model.optimizer, loss=loss, metrics=self._metrics, jit_compile=False
        )
        return self.model

    def release(self) -> None:
        self.model = None
        self._optimizer = self._plan = self._loss_source = self._metrics = self._probe = None
        keras = sys.modules.get("keras")
        if keras is not None:
            purge_custom_gradients(self._grad_keys)
            policy = keras.config.dtype_policy()  # clear_session resets a user's mixed precision
            keras.backend.clear_session()
            keras.config.set_dtype_policy(policy)


def _float_or_none(value: Any) -> float | None:
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError):
        return None

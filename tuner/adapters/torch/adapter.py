"""PyTorch adapter: inject regularization into an ``nn.Module``, train it in the tuner's loop, predict.

What the model must output, per task (checked by the one-batch dry run, :meth:`check_output`):

==========  ===========================================  =====================================
task        output of ``model(x)`` for a batch of n rows  loss inferred (``loss=None``)
==========  ===========================================  =====================================
binary      ``(n, 1)`` or ``(n,)`` logits                 BCEWithLogits
binary      ``(n, 2)`` logits                             cross-entropy
multiclass  ``(n, K)`` logits, K = number of classes      cross-entropy
regression  ``(n, d)``, or ``(n,)`` when d == 1           MSE
==========  ===========================================  =====================================

Logits means no softmax/sigmoid at the end. An ``nn.Sequential`` ending in ``nn.Softmax`` or
``nn.Sigmoid`` (probabilities) or ``nn.LogSoftmax`` is recognised and trained with the
matching loss. ``loss=`` takes "mse", "mae"/"l1", "huber"/"smooth_l1" (regression) or a
callable ``loss(output, target)``; a callable gets int64 class indices for classification
(float ``(n, 1)`` for a binary model with one output) and float targets shaped like the
output for regression. Label smoothing applies to the built-in classification losses.

The loop: the device is CUDA when present, else CPU (``device=`` overrides; a GPU asked for
where there is none is a :class:`~tuner.errors.ConfigError` before any trial). Mixed precision
(bfloat16, or float16 with a GradScaler) on CUDA only. Batches come from a seeded shuffling
DataLoader that fetches a whole batch per index operation (the training set sits on the GPU
when it takes under a quarter of the free memory, else in pinned memory); augmentation runs
as tensor ops on the device (:mod:`tuner.adapters.torch.augment`). Inputs are fed in the dtype of the
model's parameters, or as int64 token ids when its first layer is an ``nn.Embedding``. The
optimizer is AdamW unless the ``optimizer`` knob says otherwise, with weight decay on weights
only (never biases or normalization parameters); ``l2_mode: coupled`` gives L2 in the gradient
instead. ``model.train()`` while training, ``model.eval()`` and ``torch.inference_mode()`` to
predict. torch itself is imported lazily; :meth:`TorchAdapter.accepts` only looks at classes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from tuner._imports import require
from tuner.adapters import augment
from tuner.adapters.base import Adapter, EpochHooks, FitSettings, builder_applied, mro_modules
from tuner.adapters.torch import inject as inj
from tuner.adapters.torch.augment import batch_augmenter
from tuner.adapters.torch.dropout import apply_dropout
from tuner.adapters.torch.loader import host_tensor, make_loader, resolve_device
from tuner.adapters.torch.loop import run_epochs
from tuner.errors import ConfigError, ModelError
from tuner.records import Injection

__all__ = ["TorchAdapter", "DEFAULT_LR"]

DEFAULT_LR = 1e-3
PREDICT_CHUNK = 4096
GPU_RESIDENT_FRACTION = 0.25  # keep the training set on the GPU when it needs less of the free memory


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


class TorchAdapter(Adapter):
    """Regularize, train and predict with a ``torch.nn.Module``."""

    framework = "torch"
    extra = "torch"

    def __init__(self, model: Any, settings: FitSettings) -> None:
        super().__init__(model, settings)
        self.device = resolve_device(settings.device)
        self.base_lr: float | None = None
        self.optimizer: Any = None
        self.loss: inj.LossPlan | None = None
        self.grad_clip = 0.0
        self._decay: inj.OptimizerPlan | None = None
        self._smoothing = 0.0
        self._aug: tuple[str, ...] = ()
        self._strength = 0.0
        self._units: int | None = None
        self._flat = False  # the model outputs (n,) instead of (n, 1)
        self._kind: str | None = None  # logits / probs / log_probs
        self._cache: dict[int, tuple[np.ndarray, Any]] = {}
        self._last_raw: tuple[int, Any] | None = None

    @property
    def torch(self) -> Any:
        return require("torch", self.extra)

    @classmethod
    def accepts(cls, model: object) -> bool:
        if "torch" not in mro_modules(model):
            return False
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(model, torch.nn.Module)

    # ----------------------------------------------------------------- regularize
    def regularize(self, params: Mapping[str, Any], builder_read: frozenset[str]) -> list[Injection]:
        torch = self.torch
        out: list[Injection] = []
        if "dropout" in params:
            out.append(
                builder_applied("dropout")
                if "dropout" in builder_read
                else apply_dropout(
                    torch, self.model, params["dropout"], self.task.input_shape, self._input_dtype()
                )
            )
        self.model.to(self.device)
        lr = params.get("learning_rate")
        self.base_lr = float(lr) if lr is not None else DEFAULT_LR
        l2 = float(params.get("l2") or 0.0)
        if not l2 >= 0.0:
            raise ConfigError(f"l2 must be >= 0, got {params.get('l2')!r}.")
        plan = inj.make_optimizer(
            torch, self.model, params.get("optimizer"), self.base_lr, l2, params.get("l2_mode", "auto")
        )
        self.optimizer, self._decay = plan.optimizer, plan
        opt_name = type(self.optimizer).__name__
        if "l2" in params:
            note = (
                " (build_model read hp.l2, but a torch module cannot carry weight decay, so it is "
                "applied here, once)"
                if "l2" in builder_read
                else ""
            )
            out.append(Injection("l2", True, plan.words + note))
        if "optimizer" in params:
            out.append(Injection("optimizer", True, f"{opt_name} over {self._count_params()} parameters"))
        if "learning_rate" in params or "lr_schedule" in params:
            source = "sampled" if lr is not None else "default"
            schedule = params.get("lr_schedule", "constant")
            words = (
                f"base {self.base_lr:g} ({source}) on {opt_name}, set at each epoch start by the "
                f"{schedule!r} schedule"
            )
            out.append(Injection("learning_rate", True, words))
        self.grad_clip = float(params.get("gradient_clip") or 0.0)
        if not self.grad_clip >= 0.0:
            raise ConfigError(f"gradient_clip must be >= 0, got {params.get('gradient_clip')!r}.")
        if "gradient_clip" in params:
            words = (
                f"clip_grad_norm_ to {self.grad_clip:g} before each optimizer step"
                if self.grad_clip
                else "0: no gradient clipping"
            )
            out.append(Injection("gradient_clip", True, words))
        self._smoothing = float(params.get("label_smoothing") or 0.0)
        if "label_smoothing" in params:
            out.append(self._label_smoothing_record())
        if augment.POLICY_KEY in params:
            out.append(self._augmentation(params, augment.POLICY_KEY in builder_read))
        if "batch_size" in params:
            words = f"batch size {int(params['batch_size'])} in a shuffling DataLoader on {self.device}"
            out.append(Injection("batch_size", True, words))
        return out

    def _count_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def _custom_loss(self) -> bool:
        loss = self.settings.loss
        return loss is not None and not isinstance(loss, str) and inj._canonical(loss) == "custom"

    def _label_smoothing_record(self) -> Injection:
        if not self.task.is_classification:
            return Injection(
                "label_smoothing", False, "not applied: label smoothing is for classification only"
            )
        if self._custom_loss():
            return Injection(
                "label_smoothing",
                False,
                "not applied: the custom loss gets class indices; read hp.label_smoothing in your loss",
            )
        return Injection(
            "label_smoothing", True, f"label_smoothing={self._smoothing:g} in the classification loss"
        )

    def _augmentation(self, params: Mapping[str, Any], by_builder: bool) -> Injection:
        if by_builder:
            return builder_applied(augment.POLICY_KEY)
        drops = []
        if self._takes_ids():
            drops.append((("noise", "mixup"), "the model starts with an embedding, X holds token ids"))
        if self.task.is_classification and self._custom_loss():
            drops.append((("mixup",), "the custom loss takes class indices, which cannot be mixed"))
        self._aug, self._strength, record = augment.plan(
            params, self.task.input_kind, drops, f"as batch tensor ops on {self.device}"
        )
        return record

    # ----------------------------------------------------------------- dry run
    def _takes_ids(self) -> bool:
        """True when the model's first layer is an embedding: X holds token ids, fed as int64."""
        nn = self.torch.nn
        for module in self.model.modules():
            if not any(True for _ in module.children()):
                return isinstance(module, (nn.Embedding, nn.EmbeddingBag))
        return False

    def _input_dtype(self) -> Any:
        torch = self.torch
        if self._takes_ids():
            return torch.long
        for p in self.model.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    def _tensor(self, X: np.ndarray, cache: bool = False) -> Any:
        """``X`` as a tensor on the device; CUDA copies of arrays seen before are reused."""
        torch = self.torch
        key = id(X)
        if cache and key in self._cache and self._cache[key][0] is X:
            return self._cache[key][1]
        t = host_tensor(torch, X).to(self.device, self._input_dtype())
        if cache and self.device.type == "cuda" and X.nbytes <= 2**28:
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (X, t)
        return t

    def check_output(self, X: np.ndarray, y: np.ndarray) -> None:
        torch, model = self.torch, self.model
        X = np.asarray(X)[:8]
        model.eval()
        try:
            with torch.no_grad():
                out = model(self._tensor(X))
        except Exception as exc:  # noqa: BLE001 - any error of the user's forward
            raise ModelError(
                f"the model could not run on a batch of X: each row of X has shape {tuple(X.shape[1:])}, "
                f"and model(x) raised {_first_line(exc)}. Make build_model's first layer accept rows of "
                f"shape {tuple(X.shape[1:])}."
            ) from exc
        if not torch.is_tensor(out):
            raise ModelError(
                f"the model returned a {type(out).__name__}; it must return one tensor of shape (n, outputs)."
            )
        shape = tuple(out.shape)
        if out.ndim == 0 or shape[0] != len(X):
            raise ModelError(
                f"the model returned shape {shape} for a batch of {len(X)} rows; "
                "its first axis must be the batch."
            )
        if out.ndim > 2:
            raise ModelError(
                f"the model outputs shape {shape[1:]} per row; it must output one vector per row. "
                "Add nn.Flatten() (or pooling) before the last nn.Linear."
            )
        if not out.is_floating_point():
            raise ModelError(
                f"the model outputs {out.dtype} values; it must output floats (logits or values)."
            )
        units = 1 if out.ndim == 1 else shape[1]
        inj.check_units(self.task, units, shape)
        self._units, self._flat = units, out.ndim == 1
        self._resolve()
        try:
            with torch.no_grad():
                self.loss.fn(out.float(), self._targets(np.asarray(y)[: len(X)]))
        except Exception as exc:  # noqa: BLE001 - the loss on the user's output
            raise ModelError(
                f"the loss ({self.loss.words}) could not be computed on the model's output of shape {shape} "
                f"and the targets of shape {tuple(np.shape(y[: len(X)]))}: {_first_line(exc)}."
            ) from exc

    def _resolve(self) -> None:
        if self.loss is not None:
            return
        self._kind = inj.output_kind(self.torch, self.model)
        units = self._units or (
            1 if self.task.kind == "binary" else max(self.task.n_classes, self.task.n_outputs)
        )
        self.loss = inj.plan_loss(
            self.torch, self.task, self.settings.loss, units, self._kind, self._smoothing
        )

    def _targets(self, y: np.ndarray, device: Any = None) -> Any:
        """Encoded targets as the tensor the loss takes (on ``device``, default the training device).

        Class indices (int64) for cross-entropy and for a custom classification loss on K >= 2
        outputs; otherwise floats shaped like the model's output.
        """
        torch = self.torch
        device = self.device if device is None else device
        target = self.loss.target
        if target == "index" or (target == "raw" and self.task.is_classification and self._units != 1):
            return torch.as_tensor(np.asarray(y).reshape(-1), dtype=torch.long, device=device)
        t = torch.as_tensor(np.asarray(y, dtype=np.float32), device=device)
        return t.reshape(len(t)) if self._flat else t.reshape(len(t), -1)

    def _ensure_ready(self, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any]) -> None:
        if self.optimizer is None:
            self.regularize(params, frozenset())
        if self.loss is None:
            self.check_output(X[:8], y[:8])

    # ----------------------------------------------------------------- training
    def _train_tensors(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        torch = self.torch
        Xt = host_tensor(torch, X).to(dtype=self._input_dtype())
        yt = self._targets(y, device="cpu")
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if Xt.nbytes + yt.nbytes < GPU_RESIDENT_FRACTION * free:
                return Xt.to(self.device), yt.to(self.device)
        return Xt, yt

    def fit(self, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any], hooks: EpochHooks) -> None:
        torch = self.torch
        self._ensure_ready(X, y, params)
        model, dev = self.model, self.device
        loader = make_loader(
            *self._train_tensors(X, y), int(params.get("batch_size") or 32), self.settings.seed, dev
        )
        aug = None
        if self._aug:
            aug = batch_augmenter(X, self._aug, self._strength, self.task.input_kind, dev)
        one_hot = aug is not None and "mixup" in self._aug and self.loss.target == "index"
        run_epochs(
            torch,
            model,
            self.optimizer,
            self.loss.fn,
            loader,
            hooks,
            device=dev,
            augment=aug,
            one_hot=self._units if one_hot else 0,
            grad_clip=self.grad_clip,
            decay=self._decay,
        )

    # ----------------------------------------------------------------- inference
    def _raw(self, X: np.ndarray) -> Any:
        torch, model = self.torch, self.model
        model.eval()
        X = np.asarray(X)
        chunk = 1024 if X.ndim > 3 else PREDICT_CHUNK
        whole = self._tensor(X, cache=True) if X.nbytes <= 2**28 else None
        outs = []
        with torch.inference_mode():
            for i in range(0, len(X), chunk):
                xb = whole[i : i + chunk] if whole is not None else self._tensor(X[i : i + chunk])
                outs.append(model(xb).float())
        if not outs:
            return torch.empty((0, self._units or 1))
        return torch.cat(outs).reshape(len(X), -1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        torch = self.torch
        raw = self._raw(X)
        if not self.task.is_classification:
            pred = raw.cpu().numpy().astype(np.float64)
        else:
            kind = self._kind or inj.output_kind(torch, self.model)
            if raw.shape[1] == 1:
                p = torch.sigmoid(raw[:, 0]) if kind == "logits" else raw[:, 0].clamp(0.0, 1.0)
                prob = torch.stack([1.0 - p, p], dim=1)
            elif kind == "logits":
                prob = torch.softmax(raw, dim=1)
            elif kind == "log_probs":
                prob = raw.exp()
            else:
                prob = raw
            pred = prob.cpu().numpy().astype(np.float64)
        self._last_raw = (id(pred), raw) if self.loss is not None and self.loss.kind == "custom" else None
        return pred

    def loss_value(self, y: np.ndarray, pred: np.ndarray) -> float | None:
        """The custom loss on the outputs behind ``pred``; None (standard loss) for built-in losses."""
        if self.loss is None or self.loss.kind != "custom" or self._last_raw is None:
            return None
        key, raw = self._last_raw
        if key != id(pred):
            return None
        torch = self.torch
        out = raw.reshape(len(raw)) if self._flat else raw
        with torch.inference_mode():
            return float(self.loss.fn(out, self._targets(np.asarray(y))))

    def get_state(self) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def set_state(self, state: Any) -> None:
        self.model.load_state_dict(state)

    def release(self) -> None:
        self.model = self.optimizer = self.loss = self._decay = self._last_raw = None
        self._cache.clear()
        torch = sys.modules.get("torch")
        if torch is not None and self.device.type == "cuda":
            torch.cuda.empty_cache()

"""Model surgery, optimizer and loss construction for the torch adapter.

Every function takes the ``torch`` module as an argument, so importing this module
imports no framework.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuner.errors import ConfigError, ModelError
from tuner.records import TaskInfo

__all__ = [
    "OPTIMIZERS",
    "decay_groups",
    "make_optimizer",
    "output_kind",
    "LossPlan",
    "plan_loss",
    "check_units",
]

OPTIMIZERS = ("keep", "adam", "adamw", "sgd", "rmsprop")
SGD_MOMENTUM = 0.9  # as the Keras adapter, so that optimizer="sgd" means the same in both

_REGRESSION_LOSSES = {
    "mse": "mse",
    "mean_squared_error": "mse",
    "mseloss": "mse",
    "mae": "mae",
    "l1": "mae",
    "mean_absolute_error": "mae",
    "l1loss": "mae",
    "huber": "huber",
    "huber_loss": "huber",
    "huberloss": "huber",
    "smooth_l1": "huber",
    "smoothl1loss": "huber",
}
_CLASSIFICATION_LOSSES = {
    "bce",
    "binary_crossentropy",
    "bcewithlogitsloss",
    "cross_entropy",
    "crossentropy",
    "crossentropyloss",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "nll",
    "log_loss",
}


# ----------------------------------------------------------------------------- optimizer


def _norm_types(torch: Any) -> tuple[type, ...]:
    nn = torch.nn
    types: list[type] = [nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm]
    if hasattr(nn, "RMSNorm"):
        types.append(nn.RMSNorm)
    return tuple(types)


def decay_groups(torch: Any, model: Any) -> tuple[list[Any], list[Any]]:
    """``(decay, no_decay)`` trainable parameters: biases, 1-D parameters and normalization
    parameters get no weight decay."""
    norms = _norm_types(torch)
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if isinstance(module, norms) or name.endswith("bias") or p.ndim <= 1:
                no_decay.append(p)
            else:
                decay.append(p)
    return decay, no_decay


@dataclass
class OptimizerPlan:
    """The optimizer and how weight decay is applied: ``decoupled`` is the decay the training
    loop applies itself after each step (for SGD/RMSprop, which have no decoupled option)."""

    optimizer: Any
    words: str
    decoupled: float = 0.0
    decay_params: list[Any] | None = None


def make_optimizer(
    torch: Any, model: Any, name: str | None, lr: float, l2: float | None, mode: str
) -> OptimizerPlan:
    """A fresh optimizer over ``model``'s trainable parameters.

    ``name`` None or "keep": AdamW. ``l2`` with ``mode`` "auto"/"decoupled": decoupled weight
    decay ``l2`` (AdamW's own; for SGD/RMSprop applied by the loop); "coupled": L2 added to
    the gradient with ``weight_decay = 2 * l2`` (the gradient of ``l2 * ||w||^2``, the penalty
    Keras' ``L2(l2)`` adds). Biases and normalization parameters are never decayed.
    """
    key = "keep" if name is None else str(name).lower()
    if key not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}.")
    if mode not in ("auto", "coupled", "decoupled"):
        raise ConfigError(f"l2_mode must be 'auto', 'coupled' or 'decoupled', got {mode!r}.")
    decay, no_decay = decay_groups(torch, model)
    if not decay and not no_decay:
        raise ModelError(
            "the torch model has no trainable parameters, so there is nothing to train; "
            "check that build_model registers its layers as submodules (nn.ModuleList, not a list)."
        )
    optim = torch.optim
    l2 = float(l2 or 0.0)
    coupled = mode == "coupled"
    kwargs: dict[str, Any] = {}
    if key in ("keep", "adamw", "adam"):
        cls = optim.Adam if coupled or (key == "adam" and not l2) else optim.AdamW
    elif key == "sgd":
        cls, kwargs = optim.SGD, {"momentum": SGD_MOMENTUM}
    else:
        cls = optim.RMSprop
    wd = 2.0 * l2 if coupled else (l2 if cls is optim.AdamW else 0.0)
    groups = [{"params": p, "weight_decay": w} for p, w in ((decay, wd), (no_decay, 0.0)) if p]
    opt = _fastest(cls, groups, float(lr), kwargs)
    origin = "AdamW (the default)" if key == "keep" else f"{cls.__name__} (optimizer={key!r})"
    if key == "adam" and cls is optim.AdamW:
        origin = "AdamW (optimizer='adam', as AdamW for decoupled decay)"
    manual = l2 if (l2 and not coupled and cls is not optim.AdamW) else 0.0
    if l2 == 0.0:
        words = "0: no weight decay"
    elif coupled:
        words = (
            f"coupled L2: weight_decay={wd:g} (= 2 * l2, the gradient of l2 * ||w||^2) on {origin}, "
            f"{len(decay)} weight tensors; biases and normalization parameters excluded"
        )
    elif manual:
        words = (
            f"decoupled weight decay {l2:g} applied after each {cls.__name__} step (torch's {cls.__name__} "
            f"has no decoupled option) to {len(decay)} weight tensors; biases and normalization excluded"
        )
    else:
        words = (
            f"decoupled weight decay {l2:g} on {origin}, {len(decay)} weight tensors; biases and "
            "normalization parameters excluded"
        )
    return OptimizerPlan(opt, words, manual, decay)


def _fastest(cls: type, groups: list[dict[str, Any]], lr: float, kwargs: dict[str, Any]) -> Any:
    """``cls`` with its fused kernel where the parameters' device and dtype have one (a third
    faster than the default on small CPU models), else the multi-tensor ``foreach`` one."""
    for extra in ({"fused": True}, {"foreach": True}):
        try:
            return cls(groups, lr=lr, **kwargs, **extra)
        except (RuntimeError, TypeError, ValueError):
            continue
    return cls(groups, lr=lr, **kwargs)


# ----------------------------------------------------------------------------- outputs and loss


def _last_module(torch: Any, model: Any) -> Any:
    """The last module of an ``nn.Sequential`` (recursively), or None for other models."""
    while isinstance(model, torch.nn.Sequential) and len(model):
        model = model[-1]
    return model if model is not None else None


def output_kind(torch: Any, model: Any) -> str:
    """What the model outputs: "probs" (ends in Softmax/Sigmoid), "log_probs" (LogSoftmax) or "logits"."""
    nn = torch.nn
    last = _last_module(torch, model)
    if isinstance(last, nn.LogSoftmax):
        return "log_probs"
    if isinstance(last, (nn.Softmax, nn.Sigmoid)):
        return "probs"
    return "logits"


@dataclass
class LossPlan:
    """The training loss: ``fn(output, target)`` on float32 outputs.

    ``target``: "index" (int64 class indices, or soft (n, K) rows for mixup), "binary" (float
    (n, 1)), "float" (regression values shaped like the output) or "raw" (a custom loss gets
    the encoded targets: class indices, or float values).
    """

    fn: Callable[[Any, Any], Any]
    target: str
    kind: str  # ce / bce / mse / mae / huber / custom
    label_smoothing: float
    words: str


def _canonical(loss: Any) -> str:
    if isinstance(loss, str):
        key = loss.strip().lower()
    elif isinstance(loss, type):
        key = loss.__name__.lower()
    else:
        key = "custom"
    if key in _REGRESSION_LOSSES:
        return _REGRESSION_LOSSES[key]
    if key in _CLASSIFICATION_LOSSES:
        return "classification"
    if isinstance(loss, str):
        raise ConfigError(
            f"loss={loss!r} is not a loss regtuner knows for torch; use one of "
            f"{sorted(set(_REGRESSION_LOSSES) | _CLASSIFICATION_LOSSES)} or a callable loss(output, target)."
        )
    return "custom"


def plan_loss(
    torch: Any, task: TaskInfo, user_loss: Any, units: int, kind: str, smoothing: float
) -> LossPlan:
    """Resolve the training loss from the task, the output (``units``, ``kind``) and ``loss=``."""
    F = torch.nn.functional
    canon = None if user_loss is None else _canonical(user_loss)
    if canon == "custom":
        fn = user_loss() if isinstance(user_loss, type) else user_loss
        return LossPlan(fn, "raw", "custom", 0.0, f"custom loss {_describe(user_loss)} kept as is")
    if not task.is_classification:
        if canon == "classification":
            raise ConfigError(f"loss={user_loss!r} is a classification loss but the task is regression.")
        name = canon or "mse"
        fns = {"mse": F.mse_loss, "mae": F.l1_loss, "huber": F.huber_loss}
        words = "MSE (inferred for regression)" if canon is None else f"{name} (loss={user_loss!r})"
        return LossPlan(fns[name], "float", name, 0.0, words)
    if canon not in (None, "classification"):
        raise ConfigError(
            f"loss={user_loss!r} is a regression loss but the task is {task.kind}; leave loss=None "
            "(cross-entropy) or pass a callable loss(output, target)."
        )
    ls = float(smoothing or 0.0)
    if units == 1:
        if kind == "logits":

            def bce(out: Any, t: Any) -> Any:
                return F.binary_cross_entropy_with_logits(out, t * (1.0 - ls) + 0.5 * ls)

            return LossPlan(bce, "binary", "bce", ls, "BCEWithLogits (binary task, 1 output)")

        def bce_probs(out: Any, t: Any) -> Any:
            return F.binary_cross_entropy(out.clamp(1e-7, 1 - 1e-7), t * (1.0 - ls) + 0.5 * ls)

        return LossPlan(bce_probs, "binary", "bce", ls, "BCE on the sigmoid output (binary task, 1 output)")
    if kind == "logits":

        def ce(out: Any, t: Any) -> Any:
            return F.cross_entropy(out, t, label_smoothing=ls)

        return LossPlan(ce, "index", "ce", ls, f"CrossEntropy ({task.kind} task, {units} outputs)")

    def nll(out: Any, t: Any) -> Any:
        logp = out if kind == "log_probs" else out.clamp_min(1e-7).log()
        if t.ndim == 1:
            t = F.one_hot(t, logp.shape[1]).to(logp.dtype)
        t = t * (1.0 - ls) + ls / logp.shape[1]
        return -(t * logp).sum(dim=1).mean()

    src = "LogSoftmax" if kind == "log_probs" else "Softmax"
    return LossPlan(nll, "index", "ce", ls, f"cross-entropy on the {src} output ({units} outputs)")


def check_units(task: TaskInfo, units: int, shape: tuple[int, ...]) -> None:
    """Raise :class:`ModelError` when ``units`` outputs per row cannot fit ``task``."""
    got = f"the model outputs shape {shape} for a batch of {shape[0]} rows, {units} value(s) per row"
    if task.kind == "binary" and units not in (1, 2):
        raise ModelError(
            f"{got}, but y has 2 classes; end the model with nn.Linear(hidden, 1) (one logit, "
            "BCEWithLogits) or nn.Linear(hidden, 2) (two logits, cross-entropy)."
        )
    if task.kind == "multiclass" and units != task.n_classes:
        raise ModelError(
            f"{got}, but y has {task.n_classes} classes; end the model with "
            f"nn.Linear(hidden, {task.n_classes}) producing one logit per class."
        )
    if task.kind == "regression" and units != task.n_outputs:
        raise ModelError(
            f"{got}, but y has {task.n_outputs} target column(s); end the model with "
            f"nn.Linear(hidden, {task.n_outputs})."
        )


def _describe(loss: Any) -> str:
    if isinstance(loss, str):
        return repr(loss)
    return getattr(loss, "__name__", None) or type(loss).__name__

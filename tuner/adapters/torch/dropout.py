"""Dropout for any torch model: existing ``nn.Dropout*`` modules get their ``p``; an
``nn.Sequential`` without any gets ``nn.Dropout`` modules after each hidden block; any other
``nn.Module`` gets dropout on the outputs of its hidden ``Linear``/``Conv`` modules through forward
hooks, active in training mode only.

The hidden modules are found by a dry run on a zero batch: every ``Linear``/``Conv`` module that ran,
except the one that ran last (the output layer). Dropout on a layer's output before its activation
equals dropout after it for ReLU-like activations (both are positively homogeneous).

Every function takes the ``torch`` module as an argument, so importing this module imports no
framework.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from tuner.errors import ConfigError
from tuner.records import Injection

__all__ = ["dropout_modules", "insert_dropout", "apply_dropout", "OutputDropout", "HOOKS_ATTR"]

#: attribute of a model that holds the handles of the dropout hooks (``handle.remove()`` drops one)
HOOKS_ATTR = "regtuner_dropout_hooks"


def dropout_modules(torch: Any, model: Any) -> list[tuple[str, Any]]:
    """``(qualified name, module)`` of every ``nn.Dropout*`` (incl. alpha and 1d/2d/3d) in ``model``."""
    base = torch.nn.modules.dropout._DropoutNd
    return [(name or type(m).__name__, m) for name, m in model.named_modules() if isinstance(m, base)]


def _weighted_types(torch: Any) -> tuple[type, ...]:
    nn = torch.nn
    return (nn.Linear, nn.Bilinear, nn.LazyLinear, nn.modules.conv._ConvNd, nn.RNNBase)


def insert_dropout(torch: Any, model: Any, rate: float) -> int:
    """Insert ``nn.Dropout(rate)`` into an ``nn.Sequential`` in place; returns how many.

    One Dropout goes before every weighted layer (Linear/Conv/RNN) that follows an earlier
    weighted layer, that is after each hidden block's activation (and normalization), never
    after the output layer. Existing module names are kept, so the user's ``state_dict``
    keys still load.
    """
    weighted = _weighted_types(torch)
    items = list(model._modules.items())
    out: OrderedDict[str, Any] = OrderedDict()
    seen = False
    count = 0
    for name, module in items:
        if isinstance(module, weighted) and seen:
            key = f"dropout_{count}"
            while key in model._modules or key in out:
                key += "_"
            out[key] = torch.nn.Dropout(rate)
            count += 1
        seen = seen or isinstance(module, weighted)
        out[name] = module
    if count:
        model._modules = out
    return count


class OutputDropout:
    """A forward hook: inverted dropout on a module's output tensor while the module trains.

    A class at module level (not a closure), so a model carrying it still pickles.
    """

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, module: Any, inputs: Any, output: Any) -> Any:
        import torch

        if not module.training or self.p == 0.0 or not torch.is_tensor(output):
            return None  # None: the output is left as it is
        return torch.nn.functional.dropout(output, self.p, training=True)


def hidden_modules(torch: Any, model: Any, dry_input: Any) -> list[tuple[str, Any]] | str:
    """The Linear/Conv modules that ran on ``dry_input``, in call order, without the last one (the
    output layer); a sentence saying why when the dry run fails."""
    types = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)
    names = {id(m): name for name, m in model.named_modules()}
    called: list[Any] = []
    handles = [
        m.register_forward_hook(lambda mod, i, o: called.append(mod))
        for m in model.modules()
        if isinstance(m, types)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(dry_input)
    except Exception as exc:  # noqa: BLE001 - check_output reports the user's forward error
        return f"the model could not run on a zero batch ({type(exc).__name__})"
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    order = list(dict.fromkeys(called))  # a module called twice counts once, at its first call
    if called:
        order.remove(called[-1])
    return [(names[id(m)], m) for m in order]


def apply_dropout(torch: Any, model: Any, rate: Any, input_shape: Any = None, dtype: Any = None) -> Injection:
    """Set ``p`` of every dropout module, or insert dropout (module or hooks); say what was done.

    ``input_shape`` (one row) and ``dtype`` make the zero batch that finds a model's hidden modules:
    without them a model that is neither an ``nn.Sequential`` nor has dropout modules gets none.
    """
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {rate!r}.")
    found = dropout_modules(torch, model)
    if found:
        for _, module in found:
            module.p = rate
        names = ", ".join(name for name, _ in found)
        return Injection(
            "dropout", True, f"p={rate:g} set on {len(found)} existing dropout modules ({names})"
        )
    if rate == 0.0:
        return Injection("dropout", True, "rate 0: the model has no dropout modules and none are needed")
    why = (
        "add nn.Dropout modules in build_model (regtuner then tunes their p) or build them with p=hp.dropout"
    )
    if not isinstance(model, torch.nn.Sequential):
        return _hook_dropout(torch, model, rate, _zeros(torch, model, input_shape, dtype), why)
    count = insert_dropout(torch, model, rate)
    if not count:
        return Injection(
            "dropout",
            False,
            f"not applied: the nn.Sequential has no hidden Linear/Conv block to put dropout after; {why}",
        )
    return Injection(
        "dropout",
        True,
        f"inserted {count} nn.Dropout({rate:g}) modules into the nn.Sequential, after each hidden block",
    )


def _zeros(torch: Any, model: Any, input_shape: Any, dtype: Any) -> Any:
    """Two rows of zeros of ``input_shape``, where the model's parameters are (None without a shape)."""
    if not input_shape:
        return None
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else "cpu"
    return torch.zeros((2, *input_shape), dtype=dtype, device=device)


def _hook_dropout(torch: Any, model: Any, rate: float, dry_input: Any, why: str) -> Injection:
    hidden = "no batch to find them with" if dry_input is None else hidden_modules(torch, model, dry_input)
    if isinstance(hidden, str) or not hidden:
        reason = hidden if isinstance(hidden, str) else "it has no hidden Linear/Conv module"
        return Injection(
            "dropout", False, f"not applied to the {type(model).__name__} model: {reason}; {why}"
        )
    handles = [module.register_forward_hook(OutputDropout(rate)) for _, module in hidden]
    setattr(model, HOOKS_ATTR, handles)
    names = ", ".join(name for name, _ in hidden)
    return Injection(
        "dropout",
        True,
        f"dropout {rate:g} on the outputs of {len(hidden)} hidden modules ({names}) of the "
        f"{type(model).__name__}, by forward hooks active in training mode only (the output layer "
        f"left alone; the handles are in model.{HOOKS_ATTR})",
    )

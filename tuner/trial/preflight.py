"""The build before the study: one model built and dry-run on a batch, and the space fitted to it.

Run once by ``tune()`` before any trial: it finds the framework, the parameters a builder declares
(``hp.Int``, ``hp.suggest_float``...), the knobs the model cannot take (not searched then), and the
learning rate of the user's own optimizer (the preset's range is moved around it).
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from tuner.adapters.wrap import make_adapter
from tuner.errors import ModelError, TunerError
from tuner.space.hp import HyperParameters, declared_params
from tuner.space.presets import PRESETS
from tuner.space.searchspace import SearchSpace
from tuner.trial.runner import TrialContext, build, seed_everything

__all__ = ["Preflight", "preflight", "fitted", "PROBED"]

#: knobs whose fit to the model the preflight probes, at a non-zero value (a rate of 0 always fits)
PROBED = ("dropout", "l2", "label_smoothing")


class Preflight(NamedTuple):
    """What the build before the study found: the framework, the parameters the builder declares
    (``hp.Int``, ``hp.suggest_float``...), the searched knobs of :data:`PROBED` the model cannot take
    (knob -> the adapter's reason), and the learning rate the user's model carries."""

    framework: str
    declared: dict[str, Any]
    unfit: dict[str, str]
    anchor: tuple[float, str, bool] | None


def preflight(ctx: TrialContext, space: SearchSpace, preprocessed: bool = False) -> Preflight:
    """Build once with the first start point and dry-run one batch, before any trial; ``preprocessed``:
    X was encoded by ``preprocess=True`` (a shape error then says how wide it became)."""
    import optuna

    start = space.start_points[0] if space.start_points else {}
    dists = space.distributions
    defaults = {n: _midpoint(d) for n, d in dists.items() if n not in start}
    probed = (*PROBED, "augmentation") if ctx.settings.table is not None else PROBED  # none for tables
    probes = {n: _largest(dists[n]) for n in probed if n in dists}
    params = space.sample(optuna.trial.FixedTrial({**defaults, **start, **probes}))
    seed_everything(ctx.settings.seed)
    hp = HyperParameters(params)
    try:
        model = build(ctx.build_model, hp)
    except TunerError:
        raise
    except Exception as exc:
        raise ModelError(
            f"build_model raised {type(exc).__name__}: {exc} (while checking it before the study "
            f"with {params}). Fix the builder; the traceback is chained below."
        ) from exc
    adapter = make_adapter(model, ctx.settings)
    anchor = adapter.user_learning_rate()  # before regularize gives the model its trial optimizer
    try:
        injected = adapter.regularize(params, hp.read)
        X, y = ctx.train
        adapter.check_output(X[:8], y[:8])
    except ModelError as exc:
        if not preprocessed:
            raise
        raise ModelError(
            f"{exc} (preprocess=True encodes X as {X.shape[1]} features: build the model's first layer for "
            f"{X.shape[1]} inputs, or leave its size open: no keras.Input, or torch.nn.LazyLinear.)"
        ) from exc
    finally:
        adapter.release()
    # a knob the builder reads stays, whatever the adapter did with it: the builder needs its value
    unfit = [i for i in injected if not i.applied and i.knob in probes and i.knob not in hp.read]
    reasons = {i.knob: re.sub(r"^not (applied|applicable): ", "", i.detail) for i in unfit}
    if "augmentation" in reasons and "augment_strength" in dists:  # no strength without a policy
        reasons["augment_strength"] = reasons["augmentation"]
    return Preflight(adapter.framework, declared_params(hp), reasons, anchor)


def fitted(space: SearchSpace, check: Preflight) -> SearchSpace:
    """The space as the model takes it: the builder's declarations added, the learning rate around
    the user's own, and the knobs the model cannot take removed (not sampled, not in best_params)."""
    space = space.with_params(check.declared, _declared_note(check.declared, space))
    space = _anchored(space, check.anchor, "learning_rate" in check.declared)
    return space.without(check.unfit)


def _anchored(space: SearchSpace, anchor: tuple[float, str, bool] | None, declared: bool) -> SearchSpace:
    """A preset's learning-rate range (pitched for Adam at 1e-3) moved around the rate of the user's
    own optimizer, when that optimizer is SGD or its rate lies outside the range; not when the
    space is the user's own or the builder declares the rate."""
    if anchor is None or declared or space.name not in PRESETS or "learning_rate" not in space.distributions:
        return space
    lr, name, adaptive = anchor
    dist = space.distributions["learning_rate"]
    if adaptive and dist.low <= lr <= dist.high:
        return space
    return space.around_learning_rate(lr, f"your {name}'s {lr:g}")


def _declared_note(declared: dict[str, Any], space: SearchSpace) -> str:
    replaced = [n for n in declared if n in space.knob_names or n in space.hyperparameter_names]
    note = f"build_model declares {', '.join(declared)}: searched as it declares them"
    return note + (f" (instead of the space's {', '.join(replaced)})" if replaced else "")


def _largest(dist: Any) -> Any:
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        numbers = [c for c in dist.choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        return max(numbers) if numbers else dist.choices[0]
    return dist.high


def _midpoint(dist: Any) -> Any:
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        return dist.choices[0]
    if isinstance(dist, od.IntDistribution):
        return dist.low
    if dist.log:
        return math.sqrt(dist.low * dist.high)
    return (dist.low + dist.high) / 2

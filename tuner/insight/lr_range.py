"""Learning-rate range test (Smith 2017, 2018): find the learning rates worth searching.

The rule, after Smith, "A disciplined approach to neural network hyper-parameters" (2018):

1. Build the model once and train it for ``steps`` mini-batches while the learning rate grows
   geometrically from ``min_lr`` to ``max_lr`` in ``levels`` equal ratios, each rate held for
   ``steps / levels`` mini-batches (Smith raises it every batch; a short staircase gives the same
   curve and needs one ``fit`` call per level instead of per batch, which matters for Keras).
   After each level the training loss is measured in inference mode on a fixed sample of at most
   512 training rows.
2. The curve is smoothed by a centered moving average over 3 levels (no lag).
3. The test stops early once the loss is non-finite, or above 4x its minimum for two levels
   in a row: larger rates diverge.
4. ``lr_at_min`` is the rate at the smoothed loss's minimum: Smith's largest usable rate,
   beyond which the loss climbs. The suggested search bounds are ``[high / 100, high]`` with
   ``high = lr_at_min / 3`` (a constant-rate search needs a margin below the edge; 3 is
   Smith's own factor between the bounds of a cycle), clipped to ``[min_lr, max_lr]``.
5. When the smoothed loss never falls 3 % below its start, there is no suggestion.

``tune(lr_range=True)`` runs the test on the training part (never validation or test) with the
space's first start point and intersects the space's learning-rate bounds with the suggestion.
The test uses only the :class:`~tuner.adapters.base.Adapter` contract, so it works for every
framework with an adapter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.adapters.base import FitSettings
from tuner.adapters.wrap import make_adapter
from tuner.data.prepare import prepare
from tuner.errors import ConfigError, TrialFailed
from tuner.insight.baselines import _middle
from tuner.insight.plots import lr_range_figure
from tuner.space.hp import HyperParameters
from tuner.space.searchspace import resolve
from tuner.trial.metrics import standard_loss
from tuner.trial.runner import build, seed_everything

if TYPE_CHECKING:
    from tuner.space.searchspace import SearchSpace

__all__ = ["LRRangeResult", "lr_range_test", "run_range_test", "narrow_space"]

EVAL_ROWS = 512
WINDOW = 3
DIVERGE = 4.0
HIGH_DIVISOR = 3.0
DECADES = 2.0
MIN_FALL = 0.03


@dataclass
class LRRangeResult:
    """Loss over learning rate, and the bounds the rule suggests (None when the loss never fell)."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggested: tuple[float, float] | None
    lr_at_min: float | None
    steepest: float | None
    diverged_at: float | None
    framework: str
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One paragraph: what the test measured and what it suggests."""
        span = f"{len(self.lrs)} rates from {self.lrs[0]:.2g} to {self.lrs[-1]:.2g}"
        head = f"LR range test ({self.framework}, {span})"
        if self.suggested is None:
            text = f"{head}: the loss did not fall, no bounds suggested."
        else:
            lo, hi = self.suggested
            text = (
                f"{head}: lowest loss at lr {self.lr_at_min:.3g}, steepest descent at {self.steepest:.3g}; "
                f"suggested learning-rate bounds {lo:.3g} to {hi:.3g}."
            )
        if self.diverged_at is not None:
            text += f" The loss diverged at lr {self.diverged_at:.3g}."
        return " ".join([text, *self.notes])

    __str__ = describe

    def plot(self, path: str | Path) -> Path:
        """Write the loss-over-learning-rate plot as a PNG file."""

        path = Path(path)
        fig = lr_range_figure(self)
        assert fig is not None  # a test always has at least one step
        fig.savefig(path, format="png")
        return path


class _OneStep:
    """Hooks for one fit call of one batch at a fixed rate."""

    max_epochs = 1

    def __init__(self, lr: float) -> None:
        self.lr = lr

    def learning_rate(self, epoch: int) -> float:
        return self.lr

    def batch_loss(self, value: float) -> None:
        if not math.isfinite(value):
            raise TrialFailed(f"loss became {value}")

    def epoch_end(self, epoch: int) -> bool:
        return True


def _smooth(x: np.ndarray, window: int = WINDOW) -> np.ndarray:
    half = window // 2
    return np.array([np.mean(x[max(0, i - half) : i + half + 1]) for i in range(len(x))])


def lr_range_test(
    build_model: Callable[..., Any],
    data: Any,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    levels: int = 25,
    batch_size: int = 32,
    params: Mapping[str, Any] | None = None,
    task: str | None = None,
    loss: str | Callable[..., Any] | None = None,
    seed: int = 0,
) -> LRRangeResult:
    """Run the LR range test of ``build_model`` on ``data`` (the rule is in the module doc).

    ``data`` is anything ``tune`` accepts; the test trains on its training part only (80 %, or the
    explicit ``train`` part). ``params`` are knob values to apply first (e.g. ``{"dropout": 0.2}``).
    """

    prepared = prepare(data, task=task, validation_split=0.2, test=None, seed=seed)
    settings = FitSettings(task=prepared.task, max_epochs=1, loss=loss, seed=seed)
    return run_range_test(
        build_model, prepared.train, settings, params=params, min_lr=min_lr, max_lr=max_lr, steps=steps,
        levels=levels, batch_size=batch_size,
    )  # fmt: skip


def _check(min_lr: float, max_lr: float, steps: int, levels: int, batch_size: int) -> None:
    numbers = isinstance(min_lr, (int, float)) and isinstance(max_lr, (int, float))
    if not (numbers and 0 < min_lr < max_lr < math.inf):
        raise ConfigError(
            f"the LR range needs 0 < min_lr < max_lr (finite), got min_lr={min_lr!r}, max_lr={max_lr!r}."
        )
    if not isinstance(levels, int) or levels < 5:
        raise ConfigError(f"levels must be an int >= 5 (learning rates tried), got {levels!r}.")
    if not isinstance(steps, int) or steps < levels:
        raise ConfigError(
            f"steps must be an int >= levels ({levels}) (mini-batches of the test), got {steps!r}."
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}.")


def run_range_test(
    build_model: Callable[..., Any],
    train: tuple[np.ndarray, np.ndarray],
    settings: FitSettings,
    *,
    params: Mapping[str, Any] | None = None,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    levels: int = 25,
    batch_size: int = 32,
) -> LRRangeResult:
    """The test on prepared training arrays (what :func:`lr_range_test` and ``tune`` call)."""
    _check(min_lr, max_lr, steps, levels, batch_size)
    X, y = train
    rng = np.random.default_rng(settings.seed)
    n = len(X)
    eval_idx = np.sort(rng.choice(n, size=min(n, EVAL_ROWS), replace=False))
    values = {**(params or {}), "learning_rate": min_lr, "patience": 0, "lr_schedule": "constant"}
    seed_everything(settings.seed)
    hp = HyperParameters(values)
    model = build(build_model, hp)
    adapter = make_adapter(model, replace(settings, max_epochs=1))
    lrs: list[float] = []
    losses: list[float] = []
    diverged = None
    try:
        adapter.regularize(values, hp.read)
        adapter.check_output(X[:8], y[:8])
        factor = (max_lr / min_lr) ** (1.0 / (levels - 1))
        bs = min(batch_size, n)
        per = max(1, round(steps / levels))
        stream = np.concatenate([rng.permutation(n) for _ in range(-(-per * bs * levels // n))])
        for i in range(levels):
            lr = min_lr * factor**i
            idx = stream[i * per * bs : (i + 1) * per * bs]
            try:
                adapter.fit(X[idx], y[idx], {**values, "batch_size": bs}, _OneStep(lr))
                pred = adapter.predict(X[eval_idx])
                value = adapter.loss_value(y[eval_idx], pred)
                if value is None:
                    name = settings.loss if isinstance(settings.loss, str) else None
                    with np.errstate(all="ignore"):
                        value = standard_loss(settings.task, y[eval_idx], pred, name)
            except TrialFailed:
                value = float("nan")
            lrs.append(lr)
            losses.append(float(value))
            if not math.isfinite(value):
                diverged = lr
                break
            low = min(losses)
            if len(losses) > 2 and losses[-1] > DIVERGE * low and losses[-2] > DIVERGE * low:
                diverged = lr
                break
    finally:
        adapter.release()
    return _summarize(np.asarray(lrs), np.asarray(losses), diverged, adapter.framework, min_lr, max_lr)


def _summarize(
    lrs: np.ndarray, losses: np.ndarray, diverged: float | None, framework: str, min_lr: float, max_lr: float
) -> LRRangeResult:
    finite = np.isfinite(losses)
    smoothed = np.full(len(losses), np.nan)
    if finite.any():
        smoothed[finite] = _smooth(losses[finite])
    notes: list[str] = []
    suggested = lr_at_min = steepest = None
    if finite.sum() >= 3:
        fl, fs = lrs[finite], smoothed[finite]
        i_min = int(np.argmin(fs))
        if fs[i_min] <= (1 - MIN_FALL) * fs[0]:
            lr_at_min = float(fl[i_min])
            slopes = (
                np.diff(fs[: i_min + 1]) / np.diff(np.log10(fl[: i_min + 1]))
                if i_min > 0
                else np.array([0.0])
            )
            steepest = float(fl[int(np.argmin(slopes))]) if i_min > 0 else lr_at_min
            high = max(min_lr, min(max_lr, lr_at_min / HIGH_DIVISOR))
            suggested = (max(min_lr, high / 10**DECADES), high)
            if i_min == len(fs) - 1 and diverged is None:
                notes.append("The loss was still falling at max_lr: raise max_lr to see where it turns.")
        else:
            notes.append("The loss never fell 3% below its start: check the model, or widen min_lr/max_lr.")
    return LRRangeResult(lrs, losses, smoothed, suggested, lr_at_min, steepest, diverged, framework, notes)


def narrow_space(space: SearchSpace, result: LRRangeResult) -> tuple[SearchSpace, str]:
    """The space with its learning-rate bounds intersected with the suggestion, and a note on the change."""
    import optuna.distributions as od

    dist = space.distributions.get("learning_rate")
    if not isinstance(dist, od.FloatDistribution):
        return space, "lr_range: the space does not search learning_rate, nothing narrowed."
    if result.suggested is None:
        return space, "lr_range: the LR range test suggested no bounds; the space is unchanged."
    lo, hi = float(dist.low), float(dist.high)
    slo, shi = result.suggested
    nlo, nhi = max(lo, slo), min(hi, shi)
    if nlo >= nhi:
        return space, (
            f"lr_range: the LR range test suggests {slo:.3g}-{shi:.3g}, outside the space's "
            f"{lo:.3g}-{hi:.3g}; "
            "bounds kept (consider moving them)."
        )
    doc = space.to_dict()
    doc["knobs"]["learning_rate"] = {"low": nlo, "high": nhi, "log": bool(dist.log)}
    doc["start"] = [
        {**p, "learning_rate": min(max(p["learning_rate"], nlo), nhi)} if "learning_rate" in p else p
        for p in doc["start"]
    ]
    doc["description"] = f"{space.name} with learning_rate narrowed by an LR range test"
    note = f"lr_range: learning_rate bounds narrowed from {lo:.3g}-{hi:.3g} to {nlo:.3g}-{nhi:.3g}."
    return resolve(doc), note


def start_params(space: SearchSpace) -> dict[str, Any]:
    """The space's first start point, completed with middle values: what the range test trains with."""
    import optuna

    start = space.start_points[0] if space.start_points else {}
    values = {n: _middle(d) for n, d in space.distributions.items() if n not in start}
    return space.sample(optuna.trial.FixedTrial({**values, **start}))


def narrow_for_study(ctx: Any, space: SearchSpace) -> tuple[SearchSpace, LRRangeResult, list[str]]:
    """``tune(lr_range=True)``: test on the training part, narrow the space; returns the notes to report."""
    train = ctx.train
    result = run_range_test(ctx.build_model, train, ctx.settings, params=start_params(space))
    narrowed, note = narrow_space(space, result)
    result.notes.append(note)
    if narrowed is space:
        return space, result, []
    return narrowed.for_task(ctx.settings.task), result, [*space.notes, note]

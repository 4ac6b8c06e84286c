"""regtuner's methods: ``tune()`` with a zero-arg and an ``hp`` builder, the same with pruning and
early stopping off (to measure what they save), and regtuner's own untuned and textbook baselines.

``tune()`` gets the split as a mapping with an explicit test pair, ``baselines=False`` (the
baselines are separate rows here), no tracking, a throwaway Optuna storage, and the preset the
task names (what a user picks from the README for such data). Its wall time includes the final
refit of the chosen configuration, which re-trains that trial once; its epochs count it too.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.methods import Budget, Row
from benchmarks.tasks import Split

__all__ = [
    "regtuner_zero_arg",
    "regtuner_hp",
    "regtuner_kt",
    "regtuner_noprune",
    "untuned",
    "textbook",
    "builders",
    "start_space",
    "rung_pruner",
]


def builders(framework: str) -> Any:
    if framework == "keras":
        from benchmarks import builders_keras as mod
    else:
        from benchmarks import builders_torch as mod
    return mod


def zero_arg_builder(split: Split, framework: str) -> Callable[[], Any]:
    """``build_model()``: the plain model; regtuner injects dropout, L2, the LR and its schedule."""
    model = builders(framework).model

    def build_model() -> Any:
        return model(split)

    return build_model


def hp_builder(split: Split, framework: str) -> Callable[[Any], Any]:
    """``build_model(hp)``: reads ``hp.dropout`` itself; the other knobs are injected."""
    model = builders(framework).model

    def build_model(hp: Any) -> Any:
        return model(split, dropout=float(hp.dropout))

    return build_model


def _tune(
    split: Split,
    budget: Budget,
    seed: int,
    framework: str,
    builder: Any,
    name: str,
    space: Any,
    keep: dict[str, Any] | None = None,
    baselines: bool = False,
) -> Row:
    """One study; ``keep``, when given, receives the chosen (refit) model under ``"model"``.

    ``baselines=True`` is the product's default: the untuned model and the textbook recipe are
    trained too and returned unless a trial beats them on validation by more than the bar of
    ``tuner/insight/selection.py`` (2 % and one standard error); their
    epochs count, and their seconds are reported apart (``extra["baselines_s"]``)."""
    from tuner import tune

    with tempfile.TemporaryDirectory(prefix="regtuner-bench-") as tmp:
        start = time.perf_counter()
        result = tune(
            builder,
            split.data(framework),
            space=space,
            n_trials=budget.n_trials,
            max_epochs=budget.max_epochs,
            baselines=baselines,
            tracking=False,
            progress=False,
            seed=seed,
            storage=str(Path(tmp) / "studies.db"),
            study_name=f"{split.task}-{name}-{seed}",
        )
        wall = time.perf_counter() - start
    if keep is not None:
        keep["model"] = result.best_model
    chosen = next(r for r in result.records if r.number == result.best_trial)
    refit = next((b.record for b in result.baselines if b.name == result.chosen), None) or chosen
    epochs = sum(r.epochs_run for r in result.records) + refit.epochs_run  # + the final refit
    if result.selection is not None and result.selection.reason == "noise":
        epochs += chosen.epochs_run  # the trial was refit too, for its standard error, then dropped
    epochs += sum(b.record.epochs_run for b in result.baselines if b.record is not None)
    return Row(
        task=split.task,
        method=name,
        seed=seed,
        framework=framework,
        metric=split.metric,
        test_metric=result.test_scores.get(split.metric),
        reported_val=result.validation_scores.get(split.metric),
        wall_s=wall,
        epochs_trained=epochs,
        trials=len(result.records),
        extra={
            "best_params": {k: v for k, v in result.best_params.items()},
            "counts": result.counts,
            "test_loss": result.test_scores.get("loss"),
            "val_loss": result.validation_scores.get("loss"),
            "chosen": result.chosen,
            "baselines_s": sum(b.duration for b in result.baselines),
            "selection": result.selection.as_dict() if result.selection is not None else None,
            "baseline_tests": {b.name: b.test.get(split.metric) for b in result.baselines if b.ok},
        },
    )


def regtuner_zero_arg(
    split: Split,
    budget: Budget,
    seed: int,
    framework: str,
    space: str | None = None,
    keep: dict[str, Any] | None = None,
) -> Row:
    """``tune(build_model, data)`` with the user's plain zero-argument builder (injection)."""
    b = zero_arg_builder(split, framework)
    return _tune(split, budget, seed, framework, b, "regtuner", space or _space(split), keep, baselines=True)


def regtuner_auto(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """``tune(..., max_epochs="auto")``: each trial trains until early stopping ends it."""
    b = zero_arg_builder(split, framework)
    auto = Budget(n_trials=budget.n_trials, max_epochs="auto")  # type: ignore[arg-type]
    return _tune(split, auto, seed, framework, b, "regtuner_auto", _space(split), baselines=True)


def regtuner_hp(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """``tune(build_model, data)`` with a builder that reads ``hp.dropout``."""
    b = hp_builder(split, framework)
    return _tune(split, budget, seed, framework, b, "regtuner_hp", _space(split))


def regtuner_kt(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """``tune(build_model, data)`` with a builder written for Keras Tuner, run unchanged: it declares
    its own dropout, L2 and learning rate (``hp.Float``, ``hp.Choice``) and compiles its own Adam."""
    model = builders(framework).model

    def build_model(hp: Any) -> Any:
        return model(
            split,
            dropout=hp.Float("dropout", 0.0, 0.5, step=0.1),
            l2=hp.Float("l2", 1e-6, 1e-2, sampling="log"),
            learning_rate=hp.Choice("learning_rate", [1e-2, 1e-3, 1e-4]),
        )

    return _tune(split, budget, seed, framework, build_model, "regtuner_kt", _space(split))


def regtuner_open(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """Experiment: ``regtuner`` with no bar (``BASELINE_MARGIN = 0``, ``BASELINE_SE = 0``): a trial
    better than the best baseline on validation is returned. The standard error of its gain is
    measured and kept in ``extra["selection"]``, so every stricter bar replays offline
    (``python -m benchmarks.select_replay``)."""
    import tuner.insight.selection as selection

    with _patched(selection, "BASELINE_MARGIN", 0.0), _patched(selection, "BASELINE_SE", 0.0):
        b = zero_arg_builder(split, framework)
        return _tune(split, budget, seed, framework, b, "regtuner_open", _space(split), baselines=True)


def _variant(
    split: Split, budget: Budget, seed: int, framework: str, name: str, space: Any = None, **factories: Any
) -> Row:
    """The zero-arg study under ``name``; ``factories`` replace the local executor's
    ``make_sampler`` / ``make_pruner`` for this study only."""
    import tuner.executors.local as local

    with contextlib.ExitStack() as stack:
        for attr, factory in factories.items():
            stack.enter_context(_patched(local, attr, factory))
        b = zero_arg_builder(split, framework)
        return _tune(split, budget, seed, framework, b, name, space or _space(split))


def regtuner_noprune(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """The zero-arg study with no pruner and no early stopping: every trial runs ``max_epochs``."""
    space = {"extends": _space(split), "knobs": {"patience": 0}}
    return _variant(split, budget, seed, framework, "regtuner_noprune", space, make_pruner=_no_pruner)


def regtuner_nopruner(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """Experiment: no pruner; early stopping as the preset sets it."""
    return _variant(split, budget, seed, framework, "regtuner_nopruner", make_pruner=_no_pruner)


def _no_pruner(max_epochs: int, multi: bool, n_trials: int) -> Any:
    import optuna

    return optuna.pruners.NopPruner()


def regtuner_patient(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """Experiment: the median pruner wrapped in Optuna's ``PatientPruner`` (prune only a trial that has
    not improved for the warm-up's number of epochs): a slow learner that still improves is kept."""
    import optuna

    from tuner.study.search import prunes, warmup_epochs

    def pruner(max_epochs: int, multi: bool, n_trials: int) -> optuna.pruners.BasePruner:
        if not prunes(n_trials, multi):
            return optuna.pruners.NopPruner()
        warmup = warmup_epochs(max_epochs)
        median = optuna.pruners.MedianPruner(
            n_startup_trials=3, n_warmup_steps=warmup, interval_steps=1, n_min_trials=3
        )
        return optuna.pruners.PatientPruner(median, patience=warmup)

    return _variant(split, budget, seed, framework, "regtuner_patient", make_pruner=pruner)


def regtuner_hyperband(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """Experiment: Optuna's ``HyperbandPruner`` with rungs relative to ``max_epochs`` (the smallest
    rung is the median pruner's warm-up, reduction factor 3), where the study prunes."""
    return _variant(
        split, budget, seed, framework, "regtuner_hyperband", make_pruner=rung_pruner("hyperband")
    )


def regtuner_halving(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """Experiment: Optuna's ``SuccessiveHalvingPruner`` (asynchronous successive halving), its first
    rung at the median pruner's warm-up, reduction factor 3."""
    return _variant(split, budget, seed, framework, "regtuner_halving", make_pruner=rung_pruner("halving"))


def rung_pruner(kind: str) -> Any:
    """A ``make_pruner`` replacement: ``"hyperband"`` or ``"halving"`` (successive halving), first rung
    at the median pruner's warm-up, reduction factor 3; no pruning where the product does not prune."""
    import optuna

    from tuner.study.search import prunes, warmup_epochs

    def pruner(max_epochs: int, multi: bool, n_trials: int) -> optuna.pruners.BasePruner:
        if not prunes(n_trials, multi):
            return optuna.pruners.NopPruner()
        if kind == "hyperband":
            return optuna.pruners.HyperbandPruner(
                min_resource=warmup_epochs(max_epochs), max_resource=max_epochs, reduction_factor=3
            )
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=warmup_epochs(max_epochs), reduction_factor=3
        )

    return pruner


def regtuner_prune5(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """The pruner's defaults before the pruning benchmark: 5 start-up trials, ``max_epochs // 5`` warm-up."""
    import optuna

    def pruner(max_epochs: int, multi: bool, n_trials: int) -> optuna.pruners.BasePruner:
        warmup = max(2, min(10, max_epochs // 5))
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup, interval_steps=1)

    return _variant(split, budget, seed, framework, "regtuner_prune5", make_pruner=pruner)


def regtuner_user_start(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """Experiment: the user's model as written (no dropout, the least L2) as a second start point."""
    from tuner.space.searchspace import resolve

    preset = resolve(_space(split))
    low_l2 = preset.distributions["l2"].low
    plain = {"dropout": 0.0, "l2": low_l2, "label_smoothing": 0.0, "augmentation": "none"}
    start = [*preset.start_points, {**preset.start_points[0], **plain}]
    space = {"extends": _space(split), "start": start}
    return _variant(split, budget, seed, framework, "regtuner_user_start", space)


def start_space(preset: str, **values: Any) -> dict[str, Any]:
    """``preset`` with its start point changed to ``values`` (no values: no start point)."""
    from tuner.space.searchspace import resolve

    starts = resolve(preset).start_points
    return {"extends": preset, "start": [{**starts[0], **values}] if values else []}


def _start_variant(split: Split, budget: Budget, seed: int, framework: str, name: str, **values: Any) -> Row:
    return _variant(split, budget, seed, framework, name, start_space(_space(split), **values))


def regtuner_start_d02(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """Experiment: the start point with dropout 0.2 instead of 0.5."""
    return _start_variant(split, budget, seed, framework, "regtuner_start_d02", dropout=0.2)


def regtuner_start_fast(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """Experiment: the start point with dropout 0.2, L2 1e-5 and learning rate 3e-3."""
    values = {"dropout": 0.2, "l2": 1e-5, "learning_rate": 3e-3}
    return _start_variant(split, budget, seed, framework, "regtuner_start_fast", **values)


def regtuner_no_start(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """Experiment: no start point; every start-up trial is sampled."""
    return _start_variant(split, budget, seed, framework, "regtuner_no_start")


def regtuner_pat10(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """Experiment: the task's preset with early-stopping patience 10 instead of its own (15 or 20)."""
    space = {"extends": _space(split), "knobs": {"patience": 10}}
    return _variant(split, budget, seed, framework, "regtuner_pat10", space)


def regtuner_smooth_select(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """Experiment: choose the trial by its objective averaged over the best epoch and its two
    neighbours, not at the best epoch alone (the minimum of a noisy curve flatters lucky trials)."""
    import tuner.insight.evaluation as evaluation

    plain = evaluation._choose

    def smoothed(study: Any, complete: list, obj: Any) -> Any:
        if obj.is_multi:
            return plain(study, complete, obj)

        def key(record: Any) -> float:
            b = record.best_epoch
            near = record.epochs[max(0, b - 1) : b + 2]
            return sum(obj.values(m)[0] for m in near) / len(near)

        pick = min if obj.directions[0] == "minimize" else max
        return pick(complete, key=key), None

    with _patched(evaluation, "_choose", smoothed):
        return _variant(split, budget, seed, framework, "regtuner_smooth_select")


@contextlib.contextmanager
def _patched(module: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def _space(split: Split) -> str:
    from benchmarks.tasks import get_task

    return get_task(split.task).space


# ----------------------------------------------------------------------------- regtuner's baselines


def _baseline(split: Split, budget: Budget, seed: int, framework: str, name: str) -> Row:
    """Train one fixed configuration the way ``tune()``'s baselines do (tuner.insight.baselines), with
    the same seed."""
    from tuner.adapters.base import FitSettings
    from tuner.data.prepare import prepare
    from tuner.insight.baselines import BASELINE_NUMBERS, textbook_params
    from tuner.insight.refit import evaluate
    from tuner.trial.metrics import resolve_metrics
    from tuner.trial.objectives import parse_objective
    from tuner.trial.runner import TrialContext

    start = time.perf_counter()
    prepared = prepare(split.data(framework), seed=seed)
    settings = FitSettings(task=prepared.task, max_epochs=budget.max_epochs, seed=seed)
    ctx = TrialContext.create(
        zero_arg_builder(split, framework),
        prepared.train,
        prepared.validation,
        parse_objective("val_loss", prepared.task),
        resolve_metrics(prepared.task, None),
        settings,
    )
    params = {} if name == "untuned" else textbook_params(prepared.task)
    # the seed tune()'s own baseline of that name trains with: a study that returns its untuned (or
    # textbook) baseline returns this very model, not a retrain that differs by seed noise alone
    ev = evaluate(ctx, params, BASELINE_NUMBERS[name], prepared.test)
    wall = time.perf_counter() - start
    test = ev.tests[0] if ev.tests else {}
    return Row(
        task=split.task,
        method=name,
        seed=seed,
        framework=framework,
        metric=split.metric,
        test_metric=test.get(split.metric),
        reported_val=ev.validation.get(split.metric),
        wall_s=wall,
        epochs_trained=ev.record.epochs_run if ev.record else 0,
        trials=1,
        error="; ".join(ev.errors) or None,
        extra={"params": params, "val_loss": ev.validation.get("loss"), "test_loss": test.get("loss")},
    )


def untuned(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """The user's model as written: ``max_epochs`` epochs, the best validation epoch kept."""
    return _baseline(split, budget, seed, framework, "untuned")


def textbook(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    """The blog recipe (dropout 0.5/0.3, L2 0.01, Adam 1e-3, batch 32, early stopping patience 10)."""
    return _baseline(split, budget, seed, framework, "textbook")

"""``tune()``: wire data, space, executor, tracking and the final honest evaluation."""

from __future__ import annotations

import datetime as _dt
import logging
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

from tuner import __version__
from tuner.adapters.base import FitSettings, adapter_for
from tuner.data import PreparedData, prepare
from tuner.errors import ConfigError, ModelError, StudyAborted, TunerError
from tuner.executors.base import Executor, StudyJob, get_executor
from tuner.hp import HyperParameters
from tuner.metrics import compute, resolve_metrics, standard_loss
from tuner.objectives import Objective, choose_pareto, parse_objective
from tuner.progress import Progress, ProgressMode
from tuner.result import Result, scores_from, trials_frame
from tuner.runner import FailurePolicy, TrialContext, build, run_trial, seed_everything, takes_hp
from tuner.space import SearchSpace, resolve
from tuner.study import check_resumable, record_from_trial, storage_url

__all__ = ["tune"]

log = logging.getLogger("tuner")


def tune(
    build_model: Callable[..., Any],
    data: Any,
    *,
    space: str | dict[str, Any] | SearchSpace = "default",
    objective: str | Sequence[str] = "val_loss",
    n_trials: int = 20,
    timeout: float | None = None,
    max_epochs: int = 50,
    validation_split: float = 0.2,
    cv: int | None = None,
    test: Any = 0.2,
    task: str | None = None,
    loss: str | Callable[..., Any] | None = None,
    metrics: Sequence[str] | None = None,
    executor: str | Executor = "local",
    tracking: str | bool | None = None,
    experiment: str | None = None,
    seed: int = 0,
    resume: bool = False,
    study_name: str | None = None,
    progress: ProgressMode = True,
    storage: str | None = None,
    max_consecutive_failures: int = 3,
    executor_options: dict[str, Any] | None = None,
) -> Result:
    """Search the regularization settings of ``build_model`` on ``data``; see the README.

    ``build_model()`` or ``build_model(hp)`` returns a fresh model. The best configuration
    is refit and scored once on the held-out test part. ``storage`` is the Optuna RDB URL
    or SQLite path of the study (default ``./.regtuner/studies.db``).
    """
    _check_settings(n_trials, timeout, max_epochs, seed, progress, study_name, experiment)
    if cv is not None:
        raise ConfigError("cv= (k-fold objectives) is not available yet; use validation_split=.")
    prepared = prepare(data, task=task, validation_split=validation_split, test=test, cv=cv, seed=seed)
    search_space = resolve(space).for_task(prepared.task)
    obj = parse_objective(objective, prepared.task)
    names = resolve_metrics(prepared.task, metrics)
    settings = FitSettings(task=prepared.task, max_epochs=max_epochs, loss=loss, seed=seed)
    takes_hp(build_model)
    ctx = TrialContext.create(build_model, prepared.train, prepared.validation, obj, names, settings)
    framework = _preflight(ctx, search_space)

    url = storage_url(storage)
    base_name = _default_name(build_model, prepared)
    name = study_name or base_name
    if study_name is None and not resume and _exists(url, name):
        name = f"{base_name}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    runner = get_executor(executor, **(executor_options or {}))

    from tuner.tracking import StudyInfo, StudySummary, make_tracker

    attrs = {
        "fingerprint": prepared.fingerprint,
        "objective": list(obj.names),
        "space": search_space.name,
        "regtuner_version": __version__,
    }
    prior = _study_attrs(url, name) if resume else {}
    check_resumable(name, prior, attrs)
    tracker = make_tracker(
        tracking, experiment or study_name or base_name, parent_run_id=prior.get("mlflow_run_id")
    )
    tracker.start_study(
        StudyInfo(
            study_name=name,
            experiment=experiment or study_name or base_name,
            executor=getattr(runner, "name", type(runner).__name__),
            objective=obj.names,
            directions=obj.directions,
            task=prepared.task.kind,
            fingerprint=prepared.fingerprint,
            space_name=search_space.name,
            space_yaml=search_space.to_yaml(),
            settings={
                "n_trials": n_trials,
                "timeout": timeout,
                "max_epochs": max_epochs,
                "validation_split": validation_split,
                "test": test if isinstance(test, (float, type(None))) else "given",
                "seed": seed,
                "metrics": ",".join(names),
                "rows": prepared.n_rows,
            },
            framework=framework,
            version=__version__,
        )
    )
    bar = Progress(progress, n_trials, obj.directions[0])
    job = StudyJob(
        ctx=ctx,
        space=search_space,
        n_trials=n_trials,
        timeout=timeout,
        study_name=name,
        storage=url,
        resume=resume,
        explicit_name=study_name is not None,
        seed=seed,
        tracker=tracker,
        policy=FailurePolicy(max_consecutive_failures),
        study_attrs={**attrs, "mlflow_run_id": tracker.run_id},
        on_trial=bar.update,
    )
    status = "FAILED"
    try:
        study = runner.run(job)
        bar.close()
        result = _finish(study, ctx, prepared, search_space, obj, tracker.run_id)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        bar.close()
        summary = (
            StudySummary(
                result.best_params,
                _as_tuple(result.best_value),
                result.best_trial,
                result.test_scores,
                result.counts,
                result.report(),
            )
            if status == "FINISHED"
            else StudySummary({}, None, None, {}, {}, "")
        )
        tracker.end_study(summary, status=status)
    return result


def _check_settings(n_trials, timeout, max_epochs, seed, progress, study_name, experiment) -> None:
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise ConfigError(f"n_trials must be a positive int, got {n_trials!r}.")
    if not isinstance(max_epochs, int) or isinstance(max_epochs, bool) or max_epochs < 1:
        raise ConfigError(f"max_epochs must be a positive int, got {max_epochs!r}.")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError(f"timeout must be None or seconds > 0, got {timeout!r}.")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be an int >= 0, got {seed!r}.")
    if progress not in (True, False, "always"):
        raise ConfigError(f"progress must be True, False or 'always', got {progress!r}.")
    for label, value in (("study_name", study_name), ("experiment", experiment)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{label} must be a non-empty string, got {value!r}.")


def _default_name(build_model: Callable[..., Any], prepared: PreparedData) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", getattr(build_model, "__name__", "model")).strip("-")
    return f"{stem or 'model'}-{prepared.fingerprint[:8]}"


def _exists(url: str, name: str) -> bool:
    import optuna

    storage = optuna.storages.RDBStorage(url)
    return name in {s.study_name for s in optuna.study.get_all_study_summaries(storage)}


def _study_attrs(url: str, name: str) -> dict[str, Any]:
    """User attributes of an existing study (empty when there is none yet)."""
    import optuna

    storage = optuna.storages.RDBStorage(url)
    for summary in optuna.study.get_all_study_summaries(storage):
        if summary.study_name == name:
            return dict(summary.user_attrs)
    return {}


def _preflight(ctx: TrialContext, space: SearchSpace) -> str:
    """Build once with the first start point and dry-run one batch, before any trial."""
    import optuna

    start = space.start_points[0] if space.start_points else {}
    defaults = {n: _midpoint(d) for n, d in space.distributions.items() if n not in start}
    params = space.sample(optuna.trial.FixedTrial({**defaults, **start}))
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
    cls = adapter_for(model)
    adapter = cls(model, ctx.settings)
    try:
        adapter.regularize(params, hp.read)
        X, y = ctx.train
        adapter.check_output(X[:8], y[:8])
    finally:
        adapter.release()
    return cls.framework


def _midpoint(dist: Any) -> Any:
    import optuna.distributions as od

    if isinstance(dist, od.CategoricalDistribution):
        return dist.choices[0]
    if isinstance(dist, od.IntDistribution):
        return dist.low
    if dist.log:
        return math.sqrt(dist.low * dist.high)
    return (dist.low + dist.high) / 2


def _finish(
    study, ctx: TrialContext, prepared: PreparedData, space: SearchSpace, obj: Objective, run_id: str | None
) -> Result:
    from optuna.trial import TrialState

    records = [record_from_trial(t) for t in study.trials if t.state != TrialState.WAITING]
    complete = [r for r in records if r.state == "complete" and r.values]
    if not complete:
        failed = [r for r in records if r.state == "failed"]
        first = f" First error: {failed[0].error}" if failed else ""
        raise StudyAborted(
            f"no trial completed ({len(records)} ran: {len(failed)} failed, "
            f"{len(records) - len(failed)} pruned).{first}",
            first_traceback=failed[0].traceback if failed else None,
        )
    front = None
    if obj.is_multi:
        import pandas as pd

        best_numbers = {t.number for t in study.best_trials}
        members = [r for r in complete if r.number in best_numbers] or complete
        chosen = members[choose_pareto([r.values for r in members], obj.directions)]
        front = pd.DataFrame(
            [{"number": r.number, **dict(zip(obj.names, r.values, strict=True))} for r in members]
        )
    else:
        pick = min if obj.directions[0] == "minimize" else max
        chosen = pick(complete, key=lambda r: r.values[0])
    refit = run_trial(ctx, chosen.number, chosen.params, keep_model=True)
    model, test_scores = None, {}
    if refit.adapter is not None:
        model = refit.adapter.model
        if prepared.test is not None:
            test_scores = _score(refit.adapter, ctx, *prepared.test)
    else:
        log.warning("refit of trial %d failed: %s", chosen.number, refit.record.error)
    value = chosen.values[0] if not obj.is_multi else tuple(chosen.values)
    return Result(
        best_params=dict(chosen.params),
        best_value=value,
        best_model=model,
        test_scores=test_scores,
        validation_scores=scores_from(chosen.best_metrics, "val_"),
        trials=trials_frame(records, obj),
        study=study,
        mlflow_run_id=run_id,
        objective=obj,
        task=prepared.task,
        best_trial=chosen.number,
        records=records,
        pareto_front=front,
        notes=list(prepared.notes) + list(getattr(space, "notes", []) or []),
    )


def _score(adapter: Any, ctx: TrialContext, X: Any, y: Any) -> dict[str, float]:
    pred = adapter.predict(X)
    loss = adapter.loss_value(y, pred)
    if loss is None:
        loss = standard_loss(
            ctx.settings.task, y, pred, ctx.settings.loss if isinstance(ctx.settings.loss, str) else None
        )
    return {"loss": float(loss), **compute(ctx.settings.task, y, pred, ctx.metrics)}


def _as_tuple(value: Any) -> tuple[float, ...]:
    return tuple(value) if isinstance(value, tuple) else (float(value),)

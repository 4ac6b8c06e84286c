"""``tune()``: wire data, space, executor, tracking and the final honest evaluation."""

from __future__ import annotations

import datetime as _dt
import gc
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from tuner import __version__
from tuner.adapters.base import FitSettings
from tuner.config import SETTINGS, check_settings
from tuner.data.prepare import PreparedData, prepare
from tuner.executors import Executor, StudyJob, get_executor
from tuner.insight.evaluation import EvalOptions, finish, summary_for
from tuner.insight.lr_range import narrow_for_study
from tuner.insight.result import Result
from tuner.progress import Progress, ProgressMode
from tuner.space.searchspace import SearchSpace, resolve
from tuner.study.owner import check_owner
from tuner.study.storage import (
    check_resumable,
    open_rdb,
    refuse_existing,
    storage_url,
    stored_records,
    study_exists,
)
from tuner.tracking import StudyInfo, Tracker, make_tracker
from tuner.trial.metrics import resolve_metrics
from tuner.trial.objectives import parse_objective
from tuner.trial.preflight import fitted, preflight
from tuner.trial.runner import FailurePolicy, TrialContext, takes_hp

__all__ = ["tune"]

log = logging.getLogger("tuner")

#: data-shaped settings, checked with the others before the data is split
DATA_SETTINGS = ("task", "validation_split", "test", "cv")
AUTO_MAX_EPOCHS = 200  # max_epochs="auto": the cap; early stopping ends trials well before it
AUTO_PATIENCE = 10  # its early-stopping patience where the space sets none


def tune(
    build_model: Callable[..., Any],
    data: Any,
    *,
    space: str | dict[str, Any] | SearchSpace = "default",
    objective: str | Sequence[str] = "val_loss",
    n_trials: int = 20,
    timeout: float | None = None,
    trial_timeout: float | None = None,
    max_epochs: int | Literal["auto"] = 50,
    validation_split: float = 0.2,
    cv: int | None = None,
    groups: Any = None,
    repeats: int = 1,
    baselines: bool = True,
    lr_range: bool = False,
    test: Any = 0.2,
    task: str | None = None,
    preprocess: bool = False,
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
    device: str | None = None,
) -> Result:
    """Search the regularization settings of ``build_model`` on ``data``; see the README.

    ``build_model()`` or ``build_model(hp)`` returns a fresh model. The best configuration is refit
    and scored once on the held-out test part. ``executor`` is ``"local"``, ``"ray"`` or an
    :class:`~tuner.executors.Executor` such as ``RayExecutor(resources_per_trial={"gpu": 0.5})``.
    ``storage`` is the Optuna RDB URL or SQLite path of the study (default ``./.regtuner/studies.db``).
    ``device`` is torch's training device ("cpu", "cuda", "cuda:1"; None: CUDA when present).
    ``max_epochs="auto"`` trains each trial until early stopping ends it (at most
    :data:`AUTO_MAX_EPOCHS`), with the schedules that need no last epoch. ``preprocess=True`` imputes,
    one-hot encodes and standardizes a table (and a regression target), fitted on the training part.
    Settings are checked (:mod:`tuner.config`) before any data is split or model built.
    """
    args = dict(locals())
    check_settings({k: v for k, v in args.items() if k in SETTINGS or k in DATA_SETTINGS})
    runner = get_executor(executor)
    url = storage_url(storage)  # an unwritable storage fails before any model is built
    if study_name and not resume:
        refuse_existing(study_name, url)  # before the data is split or a model built
    prepared = prepare(
        data, task=task, validation_split=validation_split, test=test, cv=cv, groups=groups, seed=seed,
        preprocess=preprocess,
    )  # fmt: skip
    search_space = resolve(space).for_task(prepared.task)
    search_space, max_epochs, patience = _epoch_budget(search_space, max_epochs)
    args["max_epochs"] = max_epochs
    device = None if device is None else str(device)  # a torch.device; the torch adapter checks it
    settings = FitSettings(
        task=prepared.task, max_epochs=max_epochs, loss=loss, seed=seed, device=device, table=prepared.table,
        target_scale=prepared.preprocessor.target_scale if prepared.preprocessor is not None else None,
    )  # fmt: skip
    ctx = _trial_context(build_model, prepared, objective, metrics, settings)
    check = preflight(ctx, search_space, prepared.preprocessor is not None)
    framework, search_space = check.framework, fitted(search_space, check)
    lr_test, lr_notes = None, []
    if lr_range:  # narrow the space's learning-rate bounds first (tuner.insight.lr_range)
        search_space, lr_test, lr_notes = narrow_for_study(ctx, search_space)
    base_name = _default_name(build_model, prepared)
    name = study_name or _fresh_name(url, base_name, resume)
    attrs = {
        "fingerprint": prepared.fingerprint,
        "objective": list(ctx.objective.names),
        "space": search_space.name,
        "regtuner_version": __version__,
    }
    prior = _prior_study(url, name, attrs, resume)
    experiment = experiment or study_name or base_name
    tracker = make_tracker(
        tracking,
        experiment,
        parent_run_id=prior.get("mlflow_run_id"),
        study_uid=prior.get("mlflow_study_uid"),
    )
    tracker.start_study(_study_info(args, name, experiment, runner, ctx, prepared, search_space, framework))
    if resume:  # trial runs a killed process left missing or unfinished, rebuilt from the Optuna storage
        tracker.restore_trials(stored_records(url, name))
    job, bar = _study_job(args, ctx, search_space, name, url, tracker, attrs)
    evaluation = EvalOptions(repeats, baselines, lr_test, tuple(lr_notes), untuned_patience=patience)
    return _run(runner, job, prepared, evaluation, framework, bar)


def _epoch_budget(space: SearchSpace, max_epochs: int | str) -> tuple[SearchSpace, int, int]:
    """The space, epochs per trial and the untuned baseline's patience: ``"auto"`` opens the budget
    (early stopping ends every trial and the untuned baseline, up to :data:`AUTO_MAX_EPOCHS`)."""
    if max_epochs == "auto":
        return space.for_open_budget(AUTO_PATIENCE), AUTO_MAX_EPOCHS, AUTO_PATIENCE
    return space, int(max_epochs), 0


def _study_job(
    args: dict[str, Any],
    ctx: TrialContext,
    space: SearchSpace,
    name: str,
    url: str,
    tracker: Tracker,
    attrs: dict[str, Any],
) -> tuple[StudyJob, Progress]:
    """The study an executor runs, and the progress display it feeds; ``args`` are ``tune()``'s."""
    obj = ctx.objective
    bar = Progress(args["progress"], args["n_trials"], obj.directions[0], metric=obj.names[0],
                   max_epochs=args["max_epochs"])  # fmt: skip
    trial_timeout = args["trial_timeout"]
    job = StudyJob(
        ctx=ctx,
        space=space,
        n_trials=args["n_trials"],
        timeout=args["timeout"],
        study_name=name,
        storage=url,
        resume=args["resume"],
        explicit_name=args["study_name"] is not None,
        seed=args["seed"],
        tracker=tracker,
        policy=FailurePolicy(args["max_consecutive_failures"]),
        study_attrs={**attrs, "mlflow_study_uid": tracker.study_uid},  # finds the MLflow run on resume
        on_trial=bar.update,
        on_epoch=bar.epoch,
        trial_timeout=None if trial_timeout is None else float(trial_timeout),
    )
    return job, bar


def _trial_context(
    build_model: Callable[..., Any],
    prepared: PreparedData,
    objective: str | Sequence[str],
    metrics: Sequence[str] | None,
    settings: FitSettings,
) -> TrialContext:
    """What every trial needs: the builder (checked for its signature), the parts, objective, metrics."""
    obj = parse_objective(objective, prepared.task)
    names = resolve_metrics(prepared.task, metrics)
    takes_hp(build_model)
    return TrialContext.create(
        build_model, prepared.train, prepared.validation, obj, names, settings, folds=prepared.folds
    )


def _prior_study(url: str, name: str, attrs: dict[str, Any], resume: bool) -> dict[str, Any]:
    """The attributes of the study resumed (empty for a new one), once it is known to fit ``attrs``
    and no live process owns it (checked before tracking reopens its MLflow run)."""
    prior = _study_attrs(url, name) if resume else {}
    check_resumable(name, prior, attrs)
    check_owner(name, prior)
    return prior


#: the settings a study's MLflow run records as params
RECORDED = ("n_trials", "timeout", "trial_timeout", "max_epochs", "validation_split", "cv", "repeats",
            "baselines", "test", "seed", "preprocess")  # fmt: skip


def _study_info(
    args: dict[str, Any],
    name: str,
    experiment: str,
    runner: Executor,
    ctx: TrialContext,
    prepared: PreparedData,
    space: SearchSpace,
    framework: str,
) -> StudyInfo:
    """What the tracker records of the study; ``args`` are ``tune()``'s arguments."""
    recorded = {key: args[key] for key in RECORDED}
    if recorded["trial_timeout"] is not None:
        recorded["trial_timeout"] = float(recorded["trial_timeout"])
    if not isinstance(recorded["test"], (float, type(None))):
        recorded["test"] = "given"
    return StudyInfo(
        study_name=name,
        experiment=experiment,
        executor=getattr(runner, "name", type(runner).__name__),
        objective=ctx.objective.names,
        directions=ctx.objective.directions,
        task=prepared.task.kind,
        fingerprint=prepared.fingerprint,
        space_name=space.name,
        space_yaml=space.to_yaml(),
        settings={**recorded, "metrics": ",".join(ctx.metrics), "rows": prepared.n_rows},
        framework=framework,
        version=__version__,
    )


def _run(
    runner: Executor,
    job: StudyJob,
    prepared: PreparedData,
    evaluation: EvalOptions,
    framework: str,
    bar: Progress,
) -> Result:
    """Run the study, then the honest evaluation; the study's MLflow run ends whatever happens."""
    status, result = "FAILED", None
    # Everything alive now (frameworks, data) lives for the whole study: freezing it keeps the
    # per-trial gc.collect() that frees each model from rescanning millions of objects.
    gc.collect()
    gc.freeze()
    try:
        study = runner.run(job)
        steps = "baselines, then the refit" if evaluation.baselines else "the refit"
        bar.phase(f"trials done: {steps} of the chosen trial")
        ctx, tracker = job.ctx, job.tracker
        result = finish(study, ctx, prepared, job.space, ctx.objective, tracker.run_id, evaluation)
        if result.best_model is not None:  # with its framework's MLflow flavour, signature, example
            rows = ctx.train[0][:5]
            tracker.log_model(
                result.best_model, framework, prepared.table.frame(rows) if prepared.table else rows
            )
        status = "FINISHED"
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM as Ray's handler turns it: sys.exit
        status = "KILLED"
        raise
    finally:
        gc.unfreeze()
        bar.close()
        with summary_for(result if status == "FINISHED" else None, job.tracker) as summary:
            job.tracker.end_study(summary, status=status)
    return result


def _fresh_name(url: str, base_name: str, resume: bool) -> str:
    """``base_name``, stamped with the time when a study of that name exists (and this is no resume)."""
    if resume or not study_exists(url, base_name):
        return base_name
    name = stamped = f"{base_name}-{_dt.datetime.now():%Y%m%d-%H%M%S}"
    for n in range(2, 1000):  # a second study of the same builder and data within the second
        if not study_exists(url, name):
            break
        name = f"{stamped}-{n}"
    return name


def _default_name(build_model: Callable[..., Any], prepared: PreparedData) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", getattr(build_model, "__name__", "model")).strip("-")
    return f"{stem or 'model'}-{prepared.fingerprint[:8]}"


def _study_attrs(url: str, name: str) -> dict[str, Any]:
    """User attributes of an existing study (empty when there is none yet)."""
    import optuna

    storage = open_rdb(url)
    for summary in optuna.study.get_all_study_summaries(storage):
        if summary.study_name == name:
            return dict(summary.user_attrs)
    return {}

"""The end of a study: choose, run the baselines, refit, score the test part once, diagnose.

Order matters for honesty and memory: the chosen configuration is picked from the trials'
validation numbers only; the baselines run next (outside the trial budget); then the chosen
configuration is refit (``repeats`` times, seeds differ) and each refit is scored once on the
held-out test part. ``Result.test_scores`` is the mean over repeats, ``test_std`` their spread,
``test_se`` the standard error of repeat 0's scores from resampling the test rows, and
``optimism`` the validation estimate minus the test score (positive: validation looked better).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.errors import StudyAborted
from tuner.insight.baselines import Baseline, run_baselines
from tuner.insight.diagnostics import Evidence, diagnose, duplicate_rows, parameter_importances
from tuner.insight.refit import Evaluated, bootstrap_se, evaluate, scorer, validation_scores
from tuner.insight.report import write_files
from tuner.insight.result import Result, trials_frame
from tuner.insight.selection import Selection, best_baseline, fold_se, note, paired_se, select
from tuner.records import TrialRecord
from tuner.study.storage import record_from_trial
from tuner.tracking.base import NullTracker, StudySummary
from tuner.trial.folds import CV_KEY
from tuner.trial.objectives import Objective, choose_pareto
from tuner.trial.runner import TrialContext

if TYPE_CHECKING:
    import optuna

    from tuner.data.prepare import PreparedData
    from tuner.space.searchspace import SearchSpace
    from tuner.tracking.base import Tracker

__all__ = ["EvalOptions", "finish", "summary_for", "summary_metrics"]

log = logging.getLogger("tuner")


@dataclass(frozen=True)
class EvalOptions:
    """How the end of the study measures: test repeats, baselines, and an LR range test to attach."""

    repeats: int = 1
    baselines: bool = True
    lr_range: Any = None  # tuner.insight.lr_range.LRRangeResult when tune(lr_range=True) ran one
    notes: tuple[str, ...] = ()  # more notes for the report (e.g. what the LR range test changed)
    untuned_patience: int = 0  # max_epochs="auto": early stopping ends the untuned baseline too


def _choose(study: optuna.Study, complete: list[TrialRecord], obj: Objective) -> tuple[TrialRecord, Any]:
    if not obj.is_multi:
        pick = min if obj.directions[0] == "minimize" else max
        return pick(complete, key=lambda r: r.values[0]), None
    import pandas as pd

    best_numbers = {t.number for t in study.best_trials}
    members = [r for r in complete if r.number in best_numbers] or complete
    chosen = members[choose_pareto([r.values for r in members], obj.directions)]
    front = pd.DataFrame(
        [{"number": r.number, **dict(zip(obj.names, r.values, strict=True))} for r in members]
    )
    return chosen, front


def finish(
    study: optuna.Study,
    ctx: TrialContext,
    prepared: PreparedData,
    space: SearchSpace,
    obj: Objective,
    run_id: str | None,
    options: EvalOptions | None = None,
) -> Result:
    """Build the study's :class:`Result` (see the module doc for the order of things)."""
    from optuna.trial import TrialState

    options = options or EvalOptions()
    records = [record_from_trial(t) for t in study.trials if t.state != TrialState.WAITING]
    chosen, front = _choose(study, _completed(records), obj)
    baselines = run_baselines(ctx, prepared, space, options.untuned_patience) if options.baselines else []
    ev, selection = _select_and_refit(ctx, prepared, chosen, baselines, obj, options.repeats)
    better = next((b for b in baselines if b.name == selection.returned), None)
    target = better.record if better is not None and better.record is not None else chosen
    params = better.params if better is not None else chosen.params
    notes = [text] if (text := note(selection, obj)) else []
    if ev.model is None:
        what = f"the {better.name} baseline" if better is not None else f"trial {chosen.number}"
        log.warning("refit of %s failed: %s", what, "; ".join(ev.errors))
    tests = ev.tests
    test_scores, test_std, test_se = _test_summary(ctx, prepared, ev)
    validation = validation_scores(target)
    duplicates = {k: int(v) for k, v in prepared.leakage.items()}
    if ctx.folds:
        duplicates["train_duplicates"] = duplicate_rows(prepared.train[0])
    importances = parameter_importances(study, obj)
    evidence = Evidence(
        task=prepared.task,
        objective=obj,
        records=records,
        chosen=chosen,
        validation=validation,
        test=test_scores,
        test_se=test_se,
        baselines=baselines,
        duplicates=duplicates,
        importances=importances,
        bounds=_float_bounds(study),
        y_train=prepared.train[1],
        y_test=prepared.test[1] if prepared.test is not None else None,
        standard_loss=ctx.settings.loss is None or isinstance(ctx.settings.loss, str),
        cv=len(ctx.folds) or None,
        max_epochs=ctx.settings.max_epochs,
    )
    value = target.values[0] if not obj.is_multi else tuple(chosen.values)
    cv = target.user_attrs.get(CV_KEY) if target.user_attrs else None
    return Result(
        best_params=dict(params),
        best_value=value,
        best_model=ev.model,
        test_scores=test_scores,
        validation_scores=validation,
        trials=trials_frame(records, obj),
        study=study,
        mlflow_run_id=run_id,
        objective=obj,
        task=prepared.task,
        best_trial=chosen.number,
        records=records,
        pareto_front=front,
        notes=[*prepared.notes, *(getattr(space, "notes", []) or []), *options.notes, *notes],
        baselines=baselines,
        diagnosis=diagnose(evidence),
        importances=importances,
        test_std=test_std,
        test_se=test_se,
        test_repeats=list(tests),
        cv=dict(cv) if cv else None,
        lr_range=options.lr_range,
        chosen=better.name if better is not None else "trial",
        selection=selection,
        predictor=ev.adapter,
        data=prepared,
    )


def _select_and_refit(
    ctx: TrialContext,
    prepared: PreparedData,
    chosen: TrialRecord,
    baselines: list[Baseline],
    obj: Objective,
    repeats: int,
) -> tuple[Evaluated, Selection]:
    """Choose between the trial and the best neural baseline (:mod:`tuner.insight.selection`) and
    refit what is returned. Without cv the gain's standard error needs the trial's validation
    predictions: a trial past the fixed margin is refit first, and the baseline only if it then loses."""
    baseline, value = best_baseline(baselines, obj)
    selection = select(chosen, baseline, value, obj)

    def refit(params: dict[str, Any], record: TrialRecord, keep_val_pred: bool = False) -> Evaluated:
        return evaluate(
            ctx,
            params,
            record.number,
            prepared.test,
            repeats=repeats,
            keep_model=True,
            record=record,
            keep_val_pred=keep_val_pred,
        )

    if baseline is None or baseline.record is None:
        return refit(chosen.params, chosen), selection
    if selection.returned == "trial" and ctx.folds:
        selection = select(chosen, baseline, value, obj, fold_se(chosen, baseline.record))
    if selection.returned != "trial":
        return refit(baseline.params, baseline.record), selection
    ev = refit(chosen.params, chosen, keep_val_pred=baseline.val_pred is not None)
    mine, theirs = ev.val_pred, baseline.val_pred
    if ctx.folds or ctx.validation is None or ev.adapter is None or mine is None or theirs is None:
        return ev, selection  # cv (decided above), or nothing to pair: the margin alone
    # gap_penalized: the loss's standard error (the gap term is not per row)
    name = "loss" if obj.primary in ("val_loss", "gap_penalized") else obj.primary.removeprefix("val_")
    se = paired_se(scorer(ctx, ev.adapter, name), ctx.validation[1], mine, theirs)
    selection = select(chosen, baseline, value, obj, se)
    if selection.returned == "trial":
        return ev, selection
    ev.adapter.release()
    return refit(baseline.params, baseline.record), selection


def _completed(records: list[TrialRecord]) -> list[TrialRecord]:
    """The complete trials with values; :class:`StudyAborted` with the first error when there are none."""
    complete = [r for r in records if r.state == "complete" and r.values]
    if not complete:
        failed = [r for r in records if r.state == "failed"]
        first = f" First error: {failed[0].error}" if failed else ""
        raise StudyAborted(
            f"no trial completed ({len(records)} ran: {len(failed)} failed, "
            f"{len(records) - len(failed)} pruned).{first}",
            first_traceback=failed[0].traceback if failed else None,
        )
    return complete


def _test_summary(
    ctx: TrialContext, prepared: PreparedData, ev: Evaluated
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Mean test scores over the refits, their spread (several refits) and bootstrap standard errors."""
    tests = ev.tests
    test_scores = {k: float(np.mean([t[k] for t in tests])) for k in tests[0]} if tests else {}
    test_std = {k: float(np.std([t[k] for t in tests], ddof=1)) for k in tests[0]} if len(tests) > 1 else {}
    test_se: dict[str, float] = {}
    if ev.test_pred is not None and prepared.test is not None:
        test_se = bootstrap_se(ctx, prepared.test[1], np.asarray(ev.test_pred), with_loss=not ev.adapter_loss)
    return test_scores, test_std, test_se


def _float_bounds(study: optuna.Study) -> dict[str, tuple[float, float]]:
    import optuna

    out: dict[str, tuple[float, float]] = {}
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        for name, dist in t.distributions.items():
            if isinstance(dist, optuna.distributions.FloatDistribution) and dist.high > dist.low:
                out.setdefault(name, (float(dist.low), float(dist.high)))
    return out


def summary_metrics(result: Result) -> dict[str, float]:
    """Numbers for the parent MLflow run beside the test scores: validation, optimism, spread, cv."""
    twins = _twins(result.validation_scores) | _twins(result.test_scores)
    out: dict[str, float] = {f"val_{k}": v for k, v in result.validation_scores.items() if k not in twins}
    out.update({f"optimism_{k}": v for k, v in result.optimism.items() if k not in twins})
    out.update({f"test_{k}_std": v for k, v in result.test_std.items() if k not in twins})
    out.update({f"test_{k}_se": v for k, v in result.test_se.items() if k not in twins})
    if result.cv:
        out.update({"cv_folds": float(result.cv["k"]), "cv_std": float(result.cv["std"])})
    sel = result.selection
    if sel is not None and sel.baseline is not None:  # the trial's validation gain over the best baseline
        out["selection_gain"] = sel.gain
        if sel.se is not None:
            out["selection_gain_se"] = sel.se
    out["diagnosis_findings"] = float(len(result.diagnosis))
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def _twins(scores: dict[str, float]) -> set[str]:
    """``log_loss`` or ``mse`` where it is the ``loss`` itself (a standard loss): logged once, as loss."""
    loss = scores.get("loss")
    return {
        k for k in ("log_loss", "mse") if loss is not None and k in scores and np.isclose(scores[k], loss)
    }


def baseline_scores(result: Result) -> dict[str, dict[str, float]]:
    """Per baseline its headline: the test accuracy (R² for regression), or the validation one without
    a test part (tags ``baseline.<name>.test_accuracy``); every score is in ``baselines.csv``."""
    metric = "accuracy" if result.task.is_classification else "r2"
    out: dict[str, dict[str, float]] = {}
    for b in result.baselines:
        part, scores = ("test", b.test) if b.test else ("val", b.validation)
        if metric in scores and np.isfinite(scores[metric]):
            out[b.name] = {f"{part}_{metric}": float(scores[metric])}
    return out


@contextlib.contextmanager
def summary_for(result: Result | None, tracker: Tracker) -> Iterator[StudySummary]:
    """The study summary for ``tracker.end_study``: numbers, baselines, and the report files as artifacts
    (``report.md``, ``report.html``, ``diagnosis.json``, ``plots/``), written to a temporary folder."""

    if result is None:
        yield StudySummary({}, None, None, {}, {}, "")
        return
    value = result.best_value
    base = dict(
        best_params=result.best_params,
        best_values=tuple(value) if isinstance(value, tuple) else (float(value),),
        best_trial=result.best_trial,
        test_scores={k: v for k, v in result.test_scores.items() if k not in _twins(result.test_scores)},
        counts=result.counts,
        report=result.report(),
        extra_metrics=summary_metrics(result),
        baseline_scores=baseline_scores(result),
        chosen=result.chosen,
    )
    if isinstance(tracker, NullTracker):
        yield StudySummary(**base)
        return
    with tempfile.TemporaryDirectory(prefix="regtuner-report-") as tmp:
        artifacts: dict[str, Any] = {}
        try:
            for path in write_files(result, Path(tmp)):
                artifacts[path.relative_to(tmp).as_posix()] = path
        except Exception as exc:  # noqa: BLE001 - a report that cannot be drawn never fails the study
            log.warning("could not write the report files: %s", exc)
        yield StudySummary(**base, artifacts=artifacts)

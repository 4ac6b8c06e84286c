"""Rules on how well the model fits: underfitting, no gain over the linear baseline, and training cut
short by the epoch budget."""

from __future__ import annotations

from tuner.insight.findings.common import fmt, loss_key, main_metric, prior_loss
from tuner.insight.findings.types import Evidence, Finding
from tuner.insight.refit import validation_scores

POOR = 0.8  # loss at least this fraction of the prior's loss
MARGIN = 0.02  # a trial must beat the linear baseline's loss by this fraction


def underfitting(ev: Evidence) -> list[Finding]:
    if ev.y_train is None or not ev.validation:
        return []
    key = loss_key(ev.task, ev.validation)
    if key == "loss" and not ev.standard_loss:
        return []
    train = ev.chosen.best_metrics.get(f"train_{key}")
    val = ev.validation.get(key)
    if train is None or val is None:
        return []
    prior = prior_loss(ev.task, ev.y_train, ev.y_train)
    if prior <= 0:
        return []
    r_train, r_val = train / prior, val / prior
    if r_train < POOR or r_val < POOR:
        return []
    what = "the class prior" if ev.task.is_classification else "the training mean"
    evidence = {
        "loss": key,
        "train": fmt(train),
        "validation": fmt(val),
        "prior_loss": fmt(prior),
        "train_vs_prior": f"{r_train:.0%}",
        "validation_vs_prior": f"{r_val:.0%}",
    }
    summary = (
        f"Underfitting: the chosen model's {key} is {train:.3g} on training and {val:.3g} on validation, "
        f"{r_train:.0%} and {r_val:.0%} of what predicting {what} gives ({prior:.3g}): it barely learned."
    )
    advice = (
        "Give the model more capacity or more epochs, lower dropout and L2 (narrow the space toward weaker "
        "regularization), check the learning rate (lr_range=True), and check that the features carry "
        "signal about the labels."
    )
    return [Finding("underfitting", summary, evidence, advice)]


def no_gain_over_linear(ev: Evidence) -> list[Finding]:
    linear = ev.baseline("linear")
    if linear is None or not ev.complete:
        return []
    key = loss_key(ev.task, linear.validation)
    if key == "loss" and not ev.standard_loss:
        return []
    trials = [(validation_scores(r).get(key), r.number) for r in ev.complete]
    trials = [(v, n) for v, n in trials if v is not None]
    if not trials or key not in linear.validation:
        return []
    best, number = min(trials)
    ref = linear.validation[key]
    if best < ref * (1 - MARGIN):
        return []
    metric = main_metric(ev.task)
    evidence = {
        "loss": key,
        "best_trial": number,
        "best_trial_validation": fmt(best),
        "linear_validation": fmt(ref),
        "improvement": f"{(ref - best) / abs(ref) if ref else 0.0:.1%}",
        "linear_model": linear.description,
    }
    if metric in linear.validation and metric in ev.validation:
        evidence[f"linear_{metric}"] = fmt(linear.validation[metric])
        evidence[f"chosen_{metric}"] = fmt(ev.validation[metric])
    boosting = ev.baseline("boosting")
    if boosting is not None and key in boosting.validation:
        evidence["boosting_validation"] = fmt(boosting.validation[key])
    summary = (
        f"No trial beats the linear baseline by a meaningful margin: the best validation {key} is "
        f"{best:.4g} (trial #{number}) against {ref:.4g} for {linear.description} "
        f"(needed: {MARGIN:.0%} lower)."
    )
    advice = (
        "A neural network may not be the right tool here: keep the linear model, or engineer features; "
        "if the network must stay, check the input scaling and give it more capacity or data."
    )
    return [Finding("no_gain_over_linear", summary, evidence, advice)]


def epoch_budget(ev: Evidence) -> list[Finding]:
    """The leading trials still improved in their last epochs: ``max_epochs`` cut training short."""
    if not ev.max_epochs or ev.max_epochs < 3 or ev.objective.is_multi:
        return []
    sign = 1 if ev.objective.directions[0] == "minimize" else -1
    leaders = sorted(ev.complete, key=lambda r: sign * r.values[0])[:3]
    near = ev.max_epochs - max(1, ev.max_epochs // 10)  # within the last tenth of the budget
    capped = [r for r in leaders if r.epochs_run >= ev.max_epochs and (r.best_epoch or 0) + 1 > near]
    if ev.chosen not in capped and len(capped) < 2:
        return []
    suggested = 2 * ev.max_epochs
    evidence = {
        "max_epochs": ev.max_epochs,
        "leading_trials": [r.number for r in leaders],
        "best_epoch_of_each": [None if r.best_epoch is None else r.best_epoch + 1 for r in leaders],
        "suggested_max_epochs": suggested,
    }
    listed = ", ".join(f"#{r.number} at epoch {(r.best_epoch or 0) + 1}" for r in capped)
    summary = (
        f"Training was cut short: the best epoch of {len(capped)} of the {len(leaders)} leading trials "
        f"fell in the last tenth of max_epochs={ev.max_epochs} ({listed}); their validation score was "
        "still improving when the budget ended, so the chosen model is likely under-trained."
    )
    advice = (
        f"Run again with max_epochs={suggested}, or max_epochs='auto' (each trial trains until early "
        "stopping ends it), or raise the learning rate range if each epoch should do more."
    )
    return [Finding("epoch_budget", summary, evidence, advice)]

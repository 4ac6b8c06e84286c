"""What a study returns: a trial only when it beats the baselines it trained by more than the noise."""

import numpy as np
import pytest
from sklearn.metrics import log_loss
from threadpoolctl import threadpool_limits

import tuner.insight.selection as selection
from tests import planted as P
from tuner import tune
from tuner.insight.baselines import Baseline
from tuner.insight.evaluation import summary_metrics
from tuner.insight.selection import best_baseline, fold_se, note, paired_se, select, why
from tuner.records import TrialRecord
from tuner.trial.folds import CV_KEY
from tuner.trial.objectives import BASELINE_MARGIN, BASELINE_SE, Objective

pytestmark = pytest.mark.usefixtures("planted_adapters")  # conftest.py


def _candidate(name, value):
    record = TrialRecord(number=-1, params={}, state="complete", values=(value,))
    return Baseline(name, "", {"loss": value}, {}, {}, record=record)


def _trial(value):
    return TrialRecord(number=3, params={"dropout": 0.1}, state="complete", values=(value,))


@pytest.mark.parametrize(
    ("direction", "trial", "untuned", "textbook", "returned"),
    [
        ("minimize", 0.50, 0.505, 0.60, "untuned"),  # the trial is better by 1 %: within the margin
        ("minimize", 0.48, 0.50, 0.60, "trial"),  # better by 4 %: the search is returned
        ("minimize", 0.55, 0.60, 0.50, "textbook"),  # the better baseline of the two beats the trial
        ("minimize", -1.01, -1.0, 0.0, "untuned"),  # a negative loss: the margin is of its size
        ("minimize", -1.05, -1.0, 0.0, "trial"),
        ("maximize", 0.905, 0.90, 0.50, "untuned"),  # a maximized objective: higher must win by 2 %
        ("maximize", 0.95, 0.90, 0.50, "trial"),
        ("minimize", 0.50, float("nan"), 0.50, "textbook"),  # a tie returns the baseline; NaN never
    ],
)
def test_a_trial_replaces_a_baseline_only_when_better_on_validation_by_the_margin(
    direction, trial, untuned, textbook, returned
):
    obj = Objective(("val_loss",), (direction,))
    baselines = [_candidate("untuned", untuned), _candidate("textbook", textbook), _candidate("linear", -9.0)]
    sel = select(_trial(trial), *best_baseline(baselines, obj), obj)
    assert sel.returned == returned
    if returned != "trial":
        text = note(sel, obj)
        strictly = obj.improves(sel.baseline_value, trial)
        assert (sel.reason == "beaten") is strictly and ("beat the best searched trial" in text) is strictly
        assert (f"within {BASELINE_MARGIN:.0%}" in text) is not strictly and "trial #3" in text


@pytest.mark.parametrize(("se", "returned"), [(0.06, "untuned"), (0.04, "trial"), (None, "trial")])
def test_a_gain_past_the_margin_must_also_clear_one_standard_error(se, returned):
    obj = Objective(("val_loss",), ("minimize",))
    sel = select(_trial(0.45), _candidate("untuned", 0.50), 0.50, obj, se)  # better by 0.05: 10 %
    assert sel.gain == pytest.approx(0.05) and sel.returned == returned
    assert sel.margin == pytest.approx(max(BASELINE_MARGIN * 0.50, BASELINE_SE * (se or 0.0)))
    text = note(sel, obj)
    if returned == "trial":
        said = "0.04 (1.2 standard errors): more than the 2% and the 1 standard error" if se else "measured)."
        assert "trial #3" in text and said in text
    else:
        assert sel.reason == "noise" and f"within {BASELINE_SE:g} standard error (0.06) of" in text
        assert (
            why(sel, 3)
            == f"trial #3 was not better by more than {BASELINE_SE:g} standard error on validation"
        )
    assert note(select(_trial(0.45), None, float("nan"), obj), obj) is None  # no baseline: nothing to say


def test_fold_se_is_the_standard_error_of_the_per_fold_differences():
    def cv(values):
        return TrialRecord(number=0, params={}, state="complete", values=(np.mean(values),),
                           user_attrs={CV_KEY: {"values": values}})  # fmt: skip

    d = np.array([0.4, 0.5, 0.45]) - np.array([0.5, 0.52, 0.5])
    assert fold_se(cv([0.4, 0.5, 0.45]), cv([0.5, 0.52, 0.5])) == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert fold_se(cv([0.4, 0.5]), cv([0.5, 0.52, 0.5])) is None  # not the same folds
    assert fold_se(_trial(0.4), cv([0.5, 0.52, 0.5])) is None  # no folds


def test_paired_se_is_the_noise_of_the_difference_not_of_each_score():
    rng = np.random.default_rng(0)

    def mse(y, p):
        return float(np.mean((y - p) ** 2))

    y = rng.normal(size=400)
    shared = y + rng.normal(size=400)  # two models with the same large errors, and small own ones
    a, b = shared + 0.1 * rng.normal(size=400), shared + 0.1 * rng.normal(size=400)
    assert paired_se(mse, y, a, a) == 0.0
    per_row = (y - a) ** 2 - (y - b) ** 2
    expected = per_row.std(ddof=1) / np.sqrt(len(y))
    se = paired_se(mse, y, a, b)
    assert 0.8 * expected < se < 1.2 * expected
    unpaired = np.sqrt(((y - a) ** 2).var() / len(y))
    assert se < unpaired / 5  # paired: the shared errors cancel
    assert paired_se(mse, y[:100], a[:100], b[:100]) > se  # fewer rows, more noise


def search_wins():
    """A study whose best trial beats the baselines by far: the user's learning rate is far too small."""
    with threadpool_limits(limits=1):
        return tune(lambda: P.PlantedModel(5, 3, lr=1e-4), P.blobs(), space=P.SPACE, n_trials=3,
                    max_epochs=8, tracking=False, progress=False)  # fmt: skip


def test_the_returned_trials_gain_has_the_paired_standard_error_of_its_validation_rows():
    """A real study whose search wins: the standard error is the paired bootstrap of the log loss over
    the validation rows, from the returned model's predictions and the best baseline's."""
    r = search_wins()
    sel = r.selection
    assert sel.returned == r.chosen == "trial" and sel.gain > sel.margin
    baseline = next(b for b in r.baselines if b.name == sel.baseline)
    Xv, yv = r.data.validation
    mine = r.predictor.predict(Xv)
    assert sel.se == pytest.approx(
        paired_se(lambda t, p: log_loss(t, p, labels=[0, 1, 2]), yv, mine, baseline.val_pred)
    )
    assert 0 < BASELINE_SE * sel.se < sel.gain
    logged = summary_metrics(r)  # the parent MLflow run's numbers
    assert logged["selection_gain"] == sel.gain and logged["selection_gain_se"] == sel.se
    assert (
        any(f"standard error {sel.se:.2g}" in n for n in r.notes)
        and f"standard error {sel.se:.2g}" in r.report()
    )


def test_a_gain_within_the_noise_returns_the_baseline_refit_and_the_report_says_why(monkeypatch):
    """The same study with a bar of a million standard errors: the trial cleared the margin, its refit
    is dropped, and the best baseline is refit and returned: its settings, its model, its test score."""
    monkeypatch.setattr(selection, "BASELINE_SE", 1e6)
    r = search_wins()
    sel = r.selection
    assert sel.reason == "noise" and sel.gain > BASELINE_MARGIN * abs(sel.baseline_value) and sel.se > 0
    baseline = next(b for b in r.baselines if b.name == sel.returned)
    assert r.chosen == sel.returned and r.best_params == baseline.params
    assert r.test_scores["loss"] == pytest.approx(baseline.test["loss"])  # the baseline's refit, scored
    Xs, ys = r.data.test
    assert float(np.mean(r.predict(Xs) == ys)) == pytest.approx(r.test_scores["accuracy"])
    assert "was not better by more than 1e+06 standard error on validation" in r.report()
    assert any("within 1e+06 standard error" in n for n in r.notes)

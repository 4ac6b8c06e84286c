"""Each diagnosis on a planted dataset where it must appear, and absent on one built not to show it.

The studies run on the numpy models of ``tests/planted.py`` (seconds each); what is tested is the
diagnosis logic on real study outcomes, not a framework.
"""

import numpy as np
import pytest

from tests import planted as P
from tuner import tune
from tuner.insight.diagnostics import KINDS, Finding

pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.usefixtures("planted_adapters"),  # conftest.py
]


def fixed(lr=0.3, patience=5, **knobs):
    return {"knobs": {"learning_rate": lr, "l2": {"low": 1e-9, "high": 2e-9, "log": True},
                      "batch_size": 32, "patience": patience, **knobs}}  # fmt: skip


def run(builder, data, space, **kw):
    args = dict(n_trials=2, max_epochs=20, tracking=False, progress=False, seed=0)
    args.update(kw)
    return tune(builder, data, space=space, **args)


def kinds(result):
    return {f.kind for f in result.diagnosis}


def finding(result, kind) -> Finding:
    return next(f for f in result.diagnosis if f.kind == kind)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Separable blobs, a linear model: generalizes, no leakage, no augmentation, honest numbers."""
    with P.installed():
        storage = str(tmp_path_factory.mktemp("clean") / "studies.db")
        return run(lambda: P.PlantedModel(5, 3), P.blobs(), fixed(), storage=storage, n_trials=4)


@pytest.mark.parametrize(
    "kind",
    ["overfitting", "underfitting", "loss_metric_divergence", "leakage", "high_optimism", "at_chance",
     "augmentation_hurt", "lr_sensitivity"],
)  # fmt: skip
def test_absent_on_the_clean_study(clean, kind):
    assert kind not in kinds(clean), [str(f) for f in clean.diagnosis]


def test_findings_carry_numbers_and_a_suggestion(clean):
    assert clean.diagnosis, "the linear model ties the linear baseline: at least no_gain_over_linear"
    for f in clean.diagnosis:
        assert f.kind in KINDS and f.severity in ("warning", "info")
        assert f.evidence and any(isinstance(v, (int, float)) for v in f.evidence.values())
        assert len(f.suggestion) > 20 and f.to_dict()["kind"] == f.kind


def test_no_gain_over_linear_present_with_a_linear_model(clean):
    f = finding(clean, "no_gain_over_linear")
    assert f.evidence["linear_validation"] <= f.evidence["best_trial_validation"] / 0.98


def test_no_gain_over_linear_absent_when_the_net_can_model_what_linear_cannot():
    r = run(lambda: P.PlantedModel(2, 2, quadratic=True, lr=0.5), P.xor(), fixed(lr=0.5))
    linear = next(b for b in r.baselines if b.name == "linear")
    assert r.validation_scores["log_loss"] < 0.5 * linear.validation["log_loss"]
    assert "no_gain_over_linear" not in kinds(r) and "underfitting" not in kinds(r)


def test_overfitting_present_when_the_model_memorizes():
    r = run(lambda: P.PlantedModel(60, 2, lr=0.5), P.wide(n=200), fixed(lr=0.5), max_epochs=25)
    f = finding(r, "overfitting")
    assert f.evidence["best_epoch"] < f.evidence["epochs_run"] - 2
    assert (
        f.evidence["gap_last"] > f.evidence["gap_at_best"]
        and f.evidence["train_loss_last"] < f.evidence["train_loss_best"]
    )


def test_underfitting_present_on_xor_with_a_linear_model():
    r = run(lambda: P.PlantedModel(2, 2), P.xor(), fixed(), baselines=False)
    f = finding(r, "underfitting")
    assert f.evidence["train"] >= 0.8 * f.evidence["prior_loss"]


def test_loss_metric_divergence_present_when_validation_has_label_noise():
    Xtr, ytr = P.separable(300, 0)
    Xv, yv = P.separable(100, 1, flip=0.15)
    Xt, yt = P.separable(200, 2, flip=0.15)
    data = {"train": (Xtr, ytr), "validation": (Xv, yv), "test": (Xt, yt)}
    r = run(lambda: P.PlantedModel(4, 2, lr=1.0), data, fixed(lr=1.0), max_epochs=25)
    f = finding(r, "loss_metric_divergence")
    assert f.evidence["val_loss_last"] > 1.1 * f.evidence["val_loss_min"]
    assert f.evidence["val_accuracy_last"] >= f.evidence["val_accuracy_at_min"] - 0.005


def test_leakage_present_with_rows_copied_into_validation():
    X, y = P.blobs(n=400)
    val = (np.vstack([X[300:340], X[:40]]), np.concatenate([y[300:340], y[:40]]))
    data = {"train": (X[:300], y[:300]), "validation": val, "test": (X[340:], y[340:])}
    r = run(lambda: P.PlantedModel(5, 3), data, fixed(), baselines=False)
    assert finding(r, "leakage").evidence["validation_in_train"] == 40


def test_leakage_present_when_curves_match_but_test_disagrees():
    X, y = P.wide(n=600, d=60, flip=0.0)
    jittered = X[:100] + np.random.default_rng(5).normal(0, 1e-3, (100, 60)).astype(np.float32)
    data = {"train": (X[:100], y[:100]), "validation": (jittered, y[:100]), "test": (X[100:], y[100:])}
    r = run(lambda: P.PlantedModel(60, 2, lr=0.5), data, fixed(lr=0.5), baselines=False)
    f = finding(r, "leakage")
    assert "validation_in_train" not in f.evidence  # no exact copies: found by the curves
    assert f.evidence["test_loss"] > 2 * f.evidence["validation_loss"]


def test_cv_counts_duplicates_that_straddle_folds():
    X, y = P.blobs(n=300)
    X[150:180], y[150:180] = X[:30], y[:30]
    r = run(lambda: P.PlantedModel(5, 3), (X, y), fixed(), cv=3, max_epochs=5, baselines=False)
    assert (
        finding(r, "leakage").evidence["train_duplicates"] >= 15
    )  # those left in train after the test split


def lr_space(low, high):
    lr = {"low": low, "high": high, "log": True}
    return {"knobs": {"learning_rate": lr, "l2": {"low": 1e-8, "high": 1e-7, "log": True}, "batch_size": 32}}


def test_lr_sensitivity_and_important_knobs_present_over_a_wide_lr_range():
    r = run(
        lambda: P.PlantedModel(5, 3),
        P.blobs(),
        lr_space(1e-4, 1.0),
        n_trials=8,
        max_epochs=4,
        baselines=False,
    )
    f = finding(r, "lr_sensitivity")
    assert f.evidence["importance"] >= 0.3
    assert max(r.importances, key=r.importances.get) == "learning_rate"
    assert "learning_rate" in finding(r, "important_knobs").summary


def test_lr_sensitivity_and_important_knobs_absent_when_nothing_searched_matters():
    r = run(
        lambda: P.PlantedModel(5, 3),
        P.blobs(),
        lr_space(0.1, 0.105),
        n_trials=8,
        max_epochs=4,
        baselines=False,
    )
    assert r.importances  # computed, but the objective barely moves
    assert not {"lr_sensitivity", "important_knobs"} & kinds(r)


def aug_space(strength):
    return {"knobs": {"learning_rate": 0.3, "augmentation": ["none", "noise"], "augment_strength": strength,
                      "batch_size": 32, "patience": 3}}  # fmt: skip


def test_augmentation_hurt_present_when_noise_drowns_the_signal():
    r = run(
        lambda: P.PlantedModel(5, 3), P.blobs(), aug_space(1.0), n_trials=8, max_epochs=10, baselines=False
    )
    f = finding(r, "augmentation_hurt")
    assert f.evidence["noise.trials"] >= 2 and f.evidence["none.trials"] >= 2
    assert f.evidence["noise.median_val_loss"] > 1.05 * f.evidence["none.median_val_loss"]


def test_augmentation_hurt_absent_when_it_is_harmless():
    r = run(
        lambda: P.PlantedModel(5, 3), P.blobs(), aug_space(0.001), n_trials=8, max_epochs=10, baselines=False
    )
    assert "augmentation_hurt" not in kinds(r)


def test_selection_bias_on_noise_labels_is_reported_as_optimism_and_chance():
    """Many trials on pure noise: validation looks good by luck, the test part is at chance."""
    X, y = P.noise_labels()
    data = {"train": (X[:200], y[:200]), "validation": (X[200:260], y[200:260]), "test": (X[260:], y[260:])}
    lr, l2 = {"low": 1e-3, "high": 1.0, "log": True}, {"low": 1e-6, "high": 1e-1, "log": True}
    space = {"knobs": {"learning_rate": lr, "l2": l2, "batch_size": [16, 32], "patience": 0}}
    r = run(lambda: P.PlantedModel(10, 2), data, space, objective="val_accuracy", n_trials=12, max_epochs=8,
            baselines=False)  # fmt: skip
    assert r.validation_scores["accuracy"] > 0.6 and abs(r.test_scores["accuracy"] - 0.5) < 0.05
    assert r.optimism["accuracy"] > 2 * r.test_se["accuracy"]
    assert finding(r, "high_optimism").evidence["accuracy.optimism"] > 0.1
    assert "at_chance" in kinds(r)
    text = r.report()
    assert "optimistic" in text and "at chance" in text


def _evidence(task, validation, test, test_se, y_train, y_test, objective="val_loss"):
    from tuner.insight.findings.types import Evidence
    from tuner.records import TrialRecord
    from tuner.trial.objectives import parse_objective

    chosen = TrialRecord(number=0, params={}, state="complete", values=(1.0,))
    obj = parse_objective(objective, task)
    return Evidence(task=task, objective=obj, records=[chosen], chosen=chosen, validation=validation,
                    test=test, test_se=test_se, y_train=y_train, y_test=y_test)  # fmt: skip


def test_at_chance_says_below_chance_when_the_score_is_far_under_it():
    from tuner.insight.findings.honesty import at_chance
    from tuner.records import TaskInfo

    task = TaskInfo("binary", 2, (0, 1))
    y_train, y_test = np.array([0] * 60 + [1] * 40), np.array([0] * 60 + [1] * 40)
    below = at_chance(
        _evidence(task, {"accuracy": 0.5}, {"accuracy": 0.30}, {"accuracy": 0.03}, y_train, y_test)
    )
    assert (
        below
        and "below chance" in below[0].summary
        and "worse than predicting the majority class" in (below[0].summary)
    )
    assert "within" not in below[0].summary
    near = at_chance(
        _evidence(task, {"accuracy": 0.6}, {"accuracy": 0.61}, {"accuracy": 0.03}, y_train, y_test)
    )
    assert near and "at chance" in near[0].summary and "within 2 standard errors" in near[0].summary


def test_high_optimism_ignores_r2_when_the_test_loss_is_no_worse():
    from tuner.insight.findings.honesty import high_optimism
    from tuner.records import TaskInfo

    task = TaskInfo("regression", 0, n_outputs=1)
    y = np.linspace(0, 1, 50)
    # a test part with less target variance: R² drops although the squared error improved
    ok = _evidence(task, {"r2": 0.80, "mse": 0.20, "loss": 0.20}, {"r2": 0.55, "mse": 0.15, "loss": 0.15},
                   {"r2": 0.02, "mse": 0.01, "loss": 0.01}, y, y)  # fmt: skip
    assert high_optimism(ok) == []
    worse = _evidence(task, {"r2": 0.80, "mse": 0.20, "loss": 0.20}, {"r2": 0.55, "mse": 0.45, "loss": 0.45},
                      {"r2": 0.02, "mse": 0.01, "loss": 0.01}, y, y)  # fmt: skip
    assert [f.kind for f in high_optimism(worse)] == ["high_optimism"]


def test_worse_than_untuned_says_when_tuning_lost_to_the_users_own_model():
    from tuner.insight.baselines import Baseline
    from tuner.insight.findings.honesty import worse_than_untuned
    from tuner.records import TaskInfo

    task = TaskInfo("multiclass", 3, (0, 1, 2))
    y = np.arange(90) % 3

    def with_untuned(own, tuned, se=0.02):
        ev = _evidence(task, {"accuracy": 0.9}, {"accuracy": tuned}, {"accuracy": se}, y, y)
        ev.baselines.append(Baseline("untuned", "build_model as given", {"loss": 0.3}, {"accuracy": own}, {}))
        return worse_than_untuned(ev)

    found = with_untuned(own=0.91, tuned=0.82)
    assert [f.kind for f in found] == ["worse_than_untuned"]
    assert "Tuning did worse than your own model: test accuracy 0.820" in found[0].summary
    assert found[0].evidence["untuned_test_accuracy"] == 0.91
    assert with_untuned(own=0.91, tuned=0.89) == []  # within noise
    assert with_untuned(own=0.80, tuned=0.90) == []  # tuning helped


def test_epoch_budget_says_when_the_leading_trials_were_cut_short():
    from tuner.insight.findings.fit import epoch_budget
    from tuner.records import TaskInfo, TrialRecord

    task = TaskInfo("regression", 0, n_outputs=1)
    y = np.linspace(0, 1, 30)

    def trial(number, value, best, ran=30):
        return TrialRecord(number=number, params={}, state="complete", values=(value,),
                           epochs=tuple({"val_loss": 1.0} for _ in range(ran)), best_epoch=best)  # fmt: skip

    def study(records, chosen):
        ev = _evidence(task, {"loss": 0.3}, {}, {}, y, y)
        ev.records[:] = records
        ev.chosen = chosen
        ev.max_epochs = 30
        return epoch_budget(ev)

    cut = [trial(0, 0.3, 29), trial(1, 0.4, 28), trial(2, 0.5, 10), trial(3, 0.9, 29)]
    found = study(cut, cut[0])
    assert [f.kind for f in found] == ["epoch_budget"]
    assert "max_epochs=30" in found[0].summary and "#0 at epoch 30, #1 at epoch 29" in found[0].summary
    assert found[0].evidence["suggested_max_epochs"] == 60
    settled = [trial(0, 0.3, 12, ran=22), trial(1, 0.4, 15, ran=25), trial(2, 0.5, 29)]
    assert study(settled, settled[0]) == []  # early stopping ended the leaders well inside the budget

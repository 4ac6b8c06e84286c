"""Real scikit-learn tests of the scikit-learn adapter."""

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import ElasticNet, LogisticRegression, Ridge, RidgeClassifier
from sklearn.naive_bayes import BernoulliNB
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR, LinearSVC

from tests.fakes import Hooks
from tuner import tune
from tuner.adapters.base import FitSettings, adapter_for
from tuner.adapters.sklearn.adapter import SklearnAdapter
from tuner.errors import ModelError
from tuner.records import TaskInfo
from tuner.trial.dispatch import run_trial
from tuner.trial.objectives import parse_objective
from tuner.trial.runner import TrialContext

BINARY = TaskInfo("binary", 2, (0, 1))
MULTI = TaskInfo("multiclass", 3, (0, 1, 2))
REG = TaskInfo("regression", 0, n_outputs=1)
REG2 = TaskInfo("regression", 0, n_outputs=2)


def data(n=120, task=MULTI, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    if not task.is_classification:
        y = X[:, : task.n_outputs] * 2.0 + 1.0
        return X, (y[:, 0] if task.n_outputs == 1 else y).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    return X, (y + (X[:, 1] > 0.5) if task.n_classes == 3 else y)


def context(builder, task=MULTI, max_epochs=4, seed=1):
    X, y = data(task=task)
    return TrialContext.create(
        builder,
        (X[:80], y[:80]),
        (X[80:], y[80:]),
        parse_objective("val_loss", task),
        ("accuracy",) if task.is_classification else ("mse",),
        FitSettings(task=task, max_epochs=max_epochs, seed=seed),
    )


def regularized(est, params, task=MULTI, read=frozenset()):
    ad = SklearnAdapter(est, FitSettings(task=task, max_epochs=3))
    return ad, {i.knob: i for i in ad.regularize(params, read)}


def test_detection():
    assert adapter_for(MLPClassifier()) is SklearnAdapter
    assert adapter_for(make_pipeline(StandardScaler(), Ridge())) is SklearnAdapter
    assert not SklearnAdapter.accepts(object()) and not SklearnAdapter.accepts(StandardScaler)


def test_mlp_trains_epoch_by_epoch_with_the_tuners_schedule():
    est = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, learning_rate_init=0.5)
    params = {"l2": 1e-3, "batch_size": 16, "learning_rate": 0.02, "dropout": 0.3, "patience": 3}
    ad, rec = regularized(est, params)
    assert est.early_stopping and est.learning_rate_init == 0.5  # the user's object is untouched
    X, y = data()
    ad.check_output(X[:8], y[:8])
    hooks = Hooks(ad, max_epochs=3, lr=lambda e: 0.02 / (e + 1))
    ad.fit(X, y, {"batch_size": 16}, hooks)
    final = ad.model
    assert hooks.ends == 3 and len(final.loss_curve_) == 3 and final.t_ == 3 * len(X)
    assert hooks.seen_lr == pytest.approx([0.02, 0.01, 0.02 / 3])
    assert len(hooks.batch_losses) == 3 and hooks.batch_losses == pytest.approx(final.loss_curve_)
    assert final.alpha == pytest.approx(2 * 1e-3 * 16) and final.batch_size == 16
    assert not final.early_stopping and "turned off" in rec["patience"].detail
    assert not rec["dropout"].applied and "not applicable" in rec["dropout"].detail
    assert final.learning_rate_init == 0.02 and final.random_state is None  # shown as the user set them


def test_mlp_state_round_trip_and_restore():
    ad, _ = regularized(MLPRegressor(hidden_layer_sizes=(8,)), {"learning_rate": 0.01}, task=REG)
    X, y = data(task=REG)
    ad.fit(X, y, {}, Hooks(ad, max_epochs=1))
    state, before = ad.get_state(), ad.predict(X)
    ad.fit(X, y, {}, Hooks(ad, max_epochs=2))
    assert not np.allclose(ad.predict(X), before)
    ad.set_state(state)
    assert np.allclose(ad.predict(X), before) and before.shape == (len(X), 1)


def test_lbfgs_mlp_is_fit_once_and_optimizer_knob_switches_solver():
    ad, rec = regularized(MLPClassifier(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=50), {"l2": 1e-3})
    X, y = data()
    hooks = Hooks(ad)
    ad.fit(X, y, {}, hooks)
    assert hooks.ends == 1 and ad.model.solver == "lbfgs"
    ad, rec = regularized(MLPClassifier(solver="lbfgs"), {"optimizer": "sgd", "learning_rate": 0.05})
    assert ad.model.solver == "sgd" and rec["optimizer"].applied
    ad, rec = regularized(MLPClassifier(), {"optimizer": "rmsprop"})
    assert not rec["optimizer"].applied and ad.model.solver == "adam"


@pytest.mark.parametrize(
    "est, task, param, expected",
    [
        (Ridge(), REG, "alpha", 1e-3 * 120),  # sums its loss over the rows
        (LogisticRegression(), MULTI, "C", 1 / (2 * 1e-3 * 120)),
        (LinearSVC(), MULTI, "C", 1 / (2 * 1e-3 * 120)),
        (ElasticNet(), REG, "alpha", 0.5 * 1e-3),
        (BernoulliNB(), MULTI, "alpha", 1e-3),  # unknown scaling: as is
    ],
)
def test_l2_converts_to_each_estimators_own_parameter(est, task, param, expected):
    ad, rec = regularized(est, {"l2": 1e-3}, task=task)
    X, y = data(task=task)
    ad.fit(X, y, {}, Hooks(ad))
    assert ad.model.get_params()[param] == pytest.approx(expected)
    assert rec["l2"].applied and param in rec["l2"].detail
    assert ("as is" in rec["l2"].detail) == isinstance(est, BernoulliNB)


def test_pipeline_routes_to_the_final_step_and_fits_preprocessing_once():
    est = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,)))
    ad, rec = regularized(est, {"l2": 1e-4, "batch_size": 32, "augmentation": "noise"})
    assert (
        rec["l2"].detail.startswith("mlpclassifier__alpha")
        and "before the pipeline" in rec["augmentation"].detail
    )
    X, y = data()
    X = X * 10 + 5
    ad.fit(X, y, {}, Hooks(ad, max_epochs=2))
    scaler = ad.model.steps[0][1]
    assert np.allclose(scaler.mean_, X.mean(axis=0), rtol=1e-4)  # fit on the clean rows
    assert len(ad.model.steps[1][1].loss_curve_) == 2
    pred = ad.predict(X)
    assert pred.shape == (len(X), 3) and np.allclose(pred.sum(axis=1), 1.0)


def test_declared_hyperparameters_are_set_by_name_or_path():
    est = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5))
    params = {"l2": 1e-3, "max_depth": 3, "standardscaler__with_mean": False, "units": 4}
    ad, rec = regularized(est, params)
    assert ad.model.get_params()["randomforestclassifier__max_depth"] == 3
    assert ad.model.get_params()["standardscaler__with_mean"] is False
    assert not rec["l2"].applied and not rec["units"].applied
    X, y = data()
    ad.fit(X, y, {}, Hooks(ad))
    assert ad.model.steps[-1][1].max_depth == 3


def test_an_estimator_with_nothing_to_tune_is_refused_before_any_trial():
    calls = []

    def build():
        calls.append(1)
        return RandomForestClassifier(n_estimators=5)

    X, y = data()
    with pytest.raises(ModelError, match="nothing to tune: RandomForestClassifier"):
        tune(build, (X, y), space="quick", n_trials=2, tracking=False, progress=False)
    assert len(calls) == 1
    result = tune(
        build,
        (X, y),
        space={"knobs": {"patience": 0}, "hyperparameters": {"max_depth": {"low": 2, "high": 4}}},
        n_trials=2,
        tracking=False,
        progress=False,
        baselines=False,
    )
    assert result.best_model.max_depth in (2, 3, 4) and "accuracy" in result.test_scores


@pytest.mark.parametrize(
    "est, task, match",
    [
        (MLPRegressor(), MULTI, "MLPRegressor is a regressor\\), but y has 3 classes"),
        (LogisticRegression(), REG, "not a regressor"),
        (SVR(), REG2, "wrap it in sklearn.multioutput.MultiOutputRegressor"),
    ],
)
def test_dry_run_rejects_an_estimator_that_does_not_fit_the_task(est, task, match):
    ad, _ = regularized(est, {"l2": 1e-3}, task=task)
    X, y = data(task=task)
    with pytest.raises(ModelError, match=match):
        ad.check_output(X[:8], y[:8])


def test_probabilities_without_predict_proba_and_for_missing_classes():
    ad, _ = regularized(RidgeClassifier(), {"l2": 1e-3})
    X, y = data()
    ad.fit(X, y, {}, Hooks(ad))
    pred = ad.predict(X)
    assert pred.shape == (len(X), 3) and np.allclose(pred.sum(axis=1), 1.0)
    assert (pred.argmax(axis=1) == ad.model.predict(X)).all()
    ad, _ = regularized(LogisticRegression(), {"l2": 1e-3})
    ad.fit(X[y < 2], y[y < 2], {}, Hooks(ad))  # class 2 absent in training
    pred = ad.predict(X)
    assert pred.shape == (len(X), 3) and np.all(pred[:, 2] == 0.0)


def test_mixup_for_regressors_only():
    _, rec = regularized(Ridge(), {"l2": 1e-3, "augmentation": "mixup"}, task=REG)
    assert rec["augmentation"].applied and "once, before the fit" in rec["augmentation"].detail
    _, rec = regularized(MLPClassifier(), {"augmentation": "noise+mixup"})
    assert rec["augmentation"].applied and "mixup skipped" in rec["augmentation"].detail


def test_same_seed_same_mlp_trial():
    ctx = context(lambda: MLPClassifier(hidden_layer_sizes=(8,), random_state=0))
    params = {"l2": 1e-4, "batch_size": 16, "learning_rate": 0.01, "augmentation": "noise", "patience": 0}
    first, second = (run_trial(ctx, 1, params).record for _ in range(2))
    assert first.state == "complete" and first.epochs_run == 4 and first.epochs == second.epochs
    assert first.framework == "sklearn"


def test_divergence_is_a_diverged_trial():
    ctx = context(lambda: MLPRegressor(hidden_layer_sizes=(8,), solver="sgd"), task=REG)
    r = run_trial(ctx, 0, {"learning_rate": 1e5, "batch_size": 16}).record
    assert r.state == "failed" and r.error.startswith("diverged") and r.epochs_run == 0


def test_knobs_the_model_cannot_take_are_not_searched_nor_returned():
    X, y = data()
    space = {"knobs": {"dropout": {"low": 0.1, "high": 0.5}, "l2": {"low": 1e-4, "high": 1e-1, "log": True}}}
    result = tune(lambda: LogisticRegression(max_iter=200), (X, y), space=space, n_trials=3,
                  tracking=False, progress=False, baselines=False)  # fmt: skip
    assert "dropout" not in result.best_params and "l2" in result.best_params
    assert "params_dropout" not in result.trials.columns
    assert all(
        "dropout" not in r.params and "dropout" not in [i.knob for i in r.injected] for r in result.records
    )
    note = [n for n in result.notes if n.startswith("dropout: not searched")]
    assert len(note) == 1 and "not applicable to this model" in note[0]
    assert "dropout: not searched" in result.report()


def test_the_untuned_baseline_of_a_plain_estimator_runs():
    X, y = data()
    result = tune(lambda: LogisticRegression(max_iter=200), (X, y), space="quick", n_trials=2,
                  tracking=False, progress=False)  # fmt: skip
    untuned = next(b for b in result.baselines if b.name == "untuned")
    assert untuned.ok and 0.0 <= untuned.test["accuracy"] <= 1.0, untuned.error


def test_a_knob_the_builder_reads_stays_searched_even_where_the_model_cannot_take_it():
    X, y = data()

    def build(hp):  # reads dropout for a decision of its own; a LogisticRegression has no dropout
        return LogisticRegression(max_iter=100 if hp["dropout"] > 0.25 else 200)

    space = {"knobs": {"dropout": {"low": 0.1, "high": 0.5}, "l2": {"low": 1e-4, "high": 1e-1, "log": True}}}
    result = tune(build, (X, y), space=space, n_trials=2, tracking=False, progress=False, baselines=False)
    assert "dropout" in result.best_params and all(r.state == "complete" for r in result.records)


def test_the_returned_estimator_predicts_and_scores_with_the_users_own_labels():
    X, codes = data()
    names = np.array(["ant", "bee", "cat"])[codes]
    result = tune(lambda: LogisticRegression(max_iter=200), (X, names), space="quick", n_trials=2,
                  tracking=False, progress=False, baselines=False)  # fmt: skip
    model = result.best_model
    assert set(model.classes_) == {"ant", "bee", "cat"}
    assert model.score(X, names) > 0.8  # the user's next line of code, on the labels they gave
    assert list(result.predict(X[:5])) == list(model.predict(X[:5]))
    assert np.allclose(result.predict_proba(X[:5]), model.predict_proba(X[:5]))

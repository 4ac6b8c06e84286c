"""Baselines on the same split as the trials: the same rows, outside the budget, and each as documented."""

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from tests import planted as P
from tuner import tune
from tuner.data.prepare import prepare
from tuner.insight.baselines import NAMES, textbook_params
from tuner.insight.selection import fold_se
from tuner.trial.objectives import BASELINE_MARGIN, BASELINE_SE

SPACE = P.SPACE


pytestmark = pytest.mark.usefixtures("planted_adapters")  # conftest.py


@pytest.fixture(autouse=True)
def one_thread():
    with threadpool_limits(limits=1):  # the reference fits below, like the baselines, on one thread
        yield


def run(builder, data, **kw):
    args = dict(space=SPACE, n_trials=3, max_epochs=8, tracking=False, progress=False)
    args.update(kw)
    return tune(builder, data, **args)


def by_name(result):
    return {b.name: b for b in result.baselines}


def test_sklearn_baselines_are_fit_on_the_trials_split():
    X, y = P.blobs(n=300, spread=2.5)
    r = run(lambda: P.PlantedModel(5, 3), (X, y))
    p = prepare((X, y), test=0.2, validation_split=0.2, seed=0)
    (Xt, yt), (Xv, yv), (Xs, ys) = p.train, p.validation, p.test
    b = by_name(r)
    assert list(b) == list(NAMES) and all(x.ok for x in b.values())
    assert b["dummy"].rows == {"train": len(Xt), "validation": len(Xv), "test": len(Xs)}
    prior = DummyClassifier(strategy="prior").fit(Xt, yt)
    assert b["dummy"].validation["loss"] == pytest.approx(log_loss(yv, prior.predict_proba(Xv)), rel=1e-6)
    C = float(b["linear"].description.split("C=")[1].split(")")[0])

    def linear(c):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(Xt, yt)

    losses = {c: log_loss(yv, linear(c).predict_proba(Xv)) for c in (0.01, 0.1, 1.0, 10.0, 100.0)}
    assert C == min(losses, key=losses.get)  # regularization picked on the validation part
    assert b["linear"].validation["loss"] == pytest.approx(losses[C], rel=1e-6)
    hgb = HistGradientBoostingClassifier(early_stopping=True, random_state=0).fit(Xt, yt, X_val=Xv, y_val=yv)
    assert b["boosting"].test["loss"] == pytest.approx(log_loss(ys, hgb.predict_proba(Xs)), rel=1e-6)
    assert len(r.trials) == 3  # the baselines never count against the budget


def test_neural_baselines_train_on_the_trials_rows_with_their_recipes():
    X, y = P.blobs(n=300)
    r = run(lambda: P.PlantedModel(5, 3), (X, y))
    train_rows = frozenset(map(bytes, prepare((X, y), seed=0).train[0]))
    fits = P.PlantedModel.log
    assert len(fits) == 3 + 2 + 1  # trials, untuned + textbook, the chosen refit
    assert all(f["rows"] == train_rows for f in fits)
    untuned, textbook = fits[3]["params"], fits[4]["params"]
    assert untuned == {}  # the builder as given: nothing injected, no early stopping
    assert textbook == textbook_params(r.task) and textbook["dropout"] == 0.5 and textbook["l2"] == 0.01
    b = by_name(r)
    assert b["untuned"].record.injected == () and b["untuned"].record.epochs_run == 8
    assert [i.knob for i in b["textbook"].record.injected] == ["l2", "dropout"]
    assert b["textbook"].test and b["untuned"].test


def test_regression_baselines():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(0, 0.3, 300)).astype(np.float32)
    r = run(lambda: P.PlantedModel(4, 1, lr=0.05), (X, y))
    b = by_name(r)
    assert b["dummy"].description == "mean of the training targets"
    assert b["dummy"].validation["r2"] < 0.05 < 0.9 < b["linear"].validation["r2"]
    p = prepare((X, y), seed=0)
    alpha = float(b["linear"].description.split("alpha=")[1].split(")")[0])
    ridge = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(*p.train)
    assert b["linear"].test["mse"] == pytest.approx(
        mean_squared_error(p.test[1], ridge.predict(p.test[0])), rel=1e-5
    )
    assert b["boosting"].ok and "r2" in b["boosting"].test


@pytest.mark.slow
def test_baselines_switch_off_and_a_failing_one_never_stops_the_study():
    X, y = P.blobs(n=200)
    assert run(lambda: P.PlantedModel(5, 3), (X, y), baselines=False).baselines == []
    space = {**SPACE, "hyperparameters": {"width": [4, 8]}}

    def reads_a_knob(hp):  # no untuned form: the builder needs hp.l2 from the tuner
        assert hp.l2 >= 0 and hp.width in (4, 8)
        return P.PlantedModel(5, 3)

    r = run(reads_a_knob, (X, y), space=space)
    b = by_name(r)
    assert not b["untuned"].ok and "hp has no 'l2'" in b["untuned"].error
    assert b["textbook"].ok and b["linear"].ok and r.test_scores
    assert "untuned" in r.report() and "failed" in r.report()


@pytest.mark.slow
def test_cv_baselines_use_the_same_folds():
    X, y = P.blobs(n=300, spread=2.5)
    r = run(lambda: P.PlantedModel(5, 3), (X, y), cv=3)
    p = prepare((X, y), cv=3, seed=0)
    Xt, yt = p.train
    losses = []
    for a, v in p.folds:
        prior = DummyClassifier(strategy="prior").fit(Xt[a], yt[a])
        losses.append(log_loss(yt[v], prior.predict_proba(Xt[v]), labels=[0, 1, 2]))
    b = by_name(r)
    assert b["dummy"].validation["loss"] == pytest.approx(np.mean(losses), rel=1e-6)
    assert b["dummy"].rows["folds"] == 3 and "refit with" in b["boosting"].description
    assert b["untuned"].record.user_attrs["cv"]["k"] == 3
    sel = r.selection  # with cv, the gain's standard error is over the folds (once past the margin)
    trial = next(t for t in r.records if t.number == sel.trial)
    if sel.gain > BASELINE_MARGIN * abs(sel.baseline_value):
        assert sel.se == pytest.approx(fold_se(trial, b[sel.baseline].record))
    else:
        assert sel.se is None


@pytest.mark.slow
def test_keras_baselines_and_the_kept_model_survive_each_other():
    """Real Keras: the textbook recipe is injected, the untuned model is not, and the chosen model
    (refit after the baselines released their Keras state) still predicts what was scored."""
    keras = pytest.importorskip("keras")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = (X[:300] / 16.0).astype(np.float32), y[:300]

    def mlp():
        model = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    r = tune(mlp, (X, y), space="quick", n_trials=1, max_epochs=2, tracking=False, progress=False)
    b = by_name(r)
    assert all(x.ok for x in b.values()), [x.error for x in b.values()]
    assert b["untuned"].record.injected == ()
    textbook = {i.knob: i.detail for i in b["textbook"].record.injected}
    assert (
        "inserted" in textbook["dropout"]
        and "Dropout(0.5)" in textbook["dropout"]
        and "L2(0.01)" in textbook["l2"]
    )
    Xs, ys = prepare((X, y), seed=0).test
    accuracy = float(np.mean(r.best_model.predict(Xs, verbose=0).argmax(axis=1) == ys))
    assert accuracy == pytest.approx(r.test_scores["accuracy"])


def test_a_baseline_that_beats_every_trial_on_validation_is_what_the_study_returns():
    """Never less than the study trained: a space whose learning rates are far too small loses to the
    user's own model (its own rate), which is returned, scored once on the test part, and said so."""
    X, y = P.blobs()
    slow = {"knobs": {**SPACE["knobs"], "learning_rate": {"low": 1e-6, "high": 2e-6, "log": True}}}
    r = run(lambda: P.PlantedModel(5, 3, lr=0.3), (X, y), space=slow, max_epochs=5)
    untuned = by_name(r)["untuned"]
    assert r.chosen == "untuned" and r.best_params == {}
    assert r.validation_scores["loss"] == pytest.approx(untuned.validation["loss"])
    assert r.best_value < min(t.values[0] for t in r.records if t.values)
    assert r.test_scores["accuracy"] > 0.5 and isinstance(r.best_model, P.PlantedModel)
    text = r.report()
    assert "Chosen configuration: the untuned baseline" in text and "Returned: the untuned baseline" in text


def test_the_search_is_returned_when_it_beats_the_baselines():
    X, y = P.blobs()
    r = run(lambda: P.PlantedModel(5, 3, lr=1e-4), (X, y), max_epochs=8)  # the user's rate: far too small
    assert r.chosen == "trial" and "learning_rate" in r.best_params
    assert f"Chosen configuration: trial #{r.best_trial}" in r.report()
    sel = r.selection  # past the margin, and past one standard error of its gain
    assert (
        sel.returned == "trial" and sel.se is not None and sel.gain > sel.margin >= BASELINE_SE * sel.se > 0
    )


def test_a_search_within_the_margin_returns_the_users_model_and_the_report_says_why():
    """The space is the user's own settings, so the best trial is better than the untuned model on
    validation by seed noise only (under the margin): the user's model is returned, and said why."""
    X, y = P.blobs()
    same = {"knobs": {**SPACE["knobs"], "learning_rate": 0.3, "l2": 1e-6, "patience": 50}}
    r = run(lambda: P.PlantedModel(5, 3, lr=0.3), (X, y), space=same, max_epochs=20, n_trials=2)
    trial = min(t.values[0] for t in r.records if t.values)
    untuned = by_name(r)["untuned"].record.values[0]
    assert untuned * (1 - BASELINE_MARGIN) < trial < untuned  # the premise: better, not by the margin
    assert r.chosen == "untuned" and r.best_params == {} and r.best_value == pytest.approx(untuned)
    assert r.selection.reason == "margin" and r.selection.se is None  # no refit of the trial was needed
    text = r.report()
    assert f"trial #{r.best_trial} was not better by more than {BASELINE_MARGIN:.0%} on validation" in text
    assert any(f"was within {BASELINE_MARGIN:.0%} of the best searched trial" in n for n in r.notes)

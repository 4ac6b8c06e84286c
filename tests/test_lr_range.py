"""The LR range test: the rule on a model with a known divergence point, tune(lr_range=True), Keras, torch."""

import numpy as np
import pytest

from tests import planted as P
from tuner import lr_range_test, tune
from tuner.adapters.base import FitSettings
from tuner.data.prepare import prepare
from tuner.errors import ConfigError
from tuner.insight.lr_range import DECADES, HIGH_DIVISOR, narrow_space
from tuner.space.searchspace import resolve
from tuner.trial.dispatch import run_trial
from tuner.trial.objectives import parse_objective
from tuner.trial.runner import TrialContext

pytestmark = [
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),  # overflow in the diverging steps
    pytest.mark.usefixtures("planted_adapters"),  # conftest.py
]


def test_rule_on_a_model_that_learns_then_diverges():
    X, y = P.blobs(n=600)
    r = lr_range_test(lambda: P.PlantedModel(5, 3), (X, y), min_lr=1e-5, max_lr=1e3, steps=50, levels=25)
    assert r.framework == "numpy" and len(r.lrs) == len(r.losses) == len(r.smoothed) <= 25
    assert r.losses[0] == pytest.approx(np.log(3), abs=0.01)  # near-zero weights: the uniform prediction
    assert r.diverged_at is not None and r.diverged_at < 1e3  # stopped early, before max_lr
    lo, hi = r.suggested
    assert hi == pytest.approx(r.lr_at_min / HIGH_DIVISOR) and lo == pytest.approx(hi / 10**DECADES)
    assert r.steepest <= r.lr_at_min < r.diverged_at
    assert np.all(np.diff(r.lrs) > 0)

    # the suggestion means something: the upper bound trains well, the divergence rate does not
    p = prepare((X, y), seed=0)
    obj, settings = parse_objective("val_loss", p.task), FitSettings(task=p.task, max_epochs=5, seed=0)
    ctx = TrialContext.create(
        lambda: P.PlantedModel(5, 3), p.train, p.validation, obj, ("accuracy",), settings
    )
    good = run_trial(ctx, 0, {"learning_rate": hi, "batch_size": 32}).record
    bad = run_trial(ctx, 0, {"learning_rate": r.diverged_at * 10, "batch_size": 32}).record
    assert good.state == "complete" and good.values[0] < 0.5
    assert bad.state == "failed" or bad.values[0] > 2 * good.values[0]
    assert "suggested learning-rate bounds" in r.describe()


def test_no_suggestion_when_the_loss_never_falls():
    X, y = P.blobs(n=200)
    r = lr_range_test(lambda: P.PriorModel(3), (X, y), steps=20, levels=10)
    assert r.suggested is None and "never fell" in r.describe()


def test_tune_narrows_the_learning_rate_bounds_first(tmp_path):
    space = {
        "knobs": {"learning_rate": {"low": 1e-4, "high": 1.0, "log": True}, "batch_size": 32, "patience": 2}
    }
    kw = dict(n_trials=3, max_epochs=4, tracking=False, progress=False, baselines=False)
    r = tune(lambda: P.PlantedModel(5, 3), P.blobs(n=300), space=space, lr_range=True, **kw)
    lo, hi = r.lr_range.suggested
    lrs = r.trials["params_learning_rate"]
    assert ((lrs >= max(lo, 1e-4) * (1 - 1e-9)) & (lrs <= min(hi, 1.0) * (1 + 1e-9))).all()
    assert any("narrowed" in n for n in r.notes)
    assert "Learning-rate range test" in r.report()
    plot = r.plots(tmp_path)["lr_range"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000


def test_narrowing_keeps_spaces_it_cannot_narrow():
    X, y = P.blobs(n=200)
    r = lr_range_test(lambda: P.PlantedModel(5, 3), (X, y), min_lr=1e-4, max_lr=100, steps=20, levels=10)
    fixed = resolve({"knobs": {"learning_rate": 0.1, "l2": {"low": 1e-6, "high": 1e-3, "log": True}}})
    same, note = narrow_space(fixed, r)
    assert same is fixed and "does not search learning_rate" in note
    far = resolve({"knobs": {"learning_rate": {"low": 50.0, "high": 90.0, "log": True}}})
    same, note = narrow_space(far, r)
    assert same is far and "outside" in note
    wide = resolve("quick")
    narrowed, note = narrow_space(wide, r)
    d = narrowed.distributions["learning_rate"]
    assert (
        wide.distributions["learning_rate"].low <= d.low < d.high <= wide.distributions["learning_rate"].high
    )
    assert all(d.low <= p["learning_rate"] <= d.high for p in narrowed.start_points)


@pytest.mark.parametrize(
    "kw, match",
    [({"min_lr": 1.0, "max_lr": 0.1}, "min_lr"), ({"levels": 2}, "levels"), ({"steps": 3}, "steps")],
)
def test_bad_settings(kw, match):
    with pytest.raises(ConfigError, match=match):
        lr_range_test(lambda: P.PlantedModel(5, 3), P.blobs(n=100), **kw)


def digits(n=400):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X[:n] / 16.0).astype(np.float32), y[:n]


@pytest.mark.slow
def test_keras_model():
    keras = pytest.importorskip("keras")

    def build():
        model = keras.Sequential(
            [
                keras.Input((64,)),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    r = lr_range_test(build, digits(), min_lr=1e-4, max_lr=10.0, steps=12, levels=12)
    assert r.framework == "keras" and np.isfinite(r.losses[0])
    assert r.suggested is not None and 1e-4 <= r.suggested[0] < r.suggested[1] <= 10.0 / HIGH_DIVISOR
    assert r.losses.min() < 0.8 * r.losses[0]


def test_torch_model():
    torch = pytest.importorskip("torch")

    def build():
        return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))

    r = lr_range_test(build, digits(), min_lr=1e-5, max_lr=10.0, steps=40, levels=20)
    assert r.framework == "torch"
    assert r.suggested is not None and r.losses.min() < 0.8 * r.losses[0]

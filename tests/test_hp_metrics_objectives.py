import numpy as np
import pytest
from sklearn import metrics as skm

from tuner.errors import ConfigError
from tuner.records import TaskInfo
from tuner.space.hp import HyperParameters
from tuner.trial.metrics import compute, resolve_metrics, standard_loss
from tuner.trial.objectives import GAP_PENALTY, choose_pareto, parse_objective

BIN = TaskInfo("binary", 2, (0, 1))
MULTI = TaskInfo("multiclass", 4, (0, 1, 2, 3))
REG = TaskInfo("regression")


def test_hp_is_read_only_and_tracks_reads():
    hp = HyperParameters({"dropout": 0.2, "units": 64})
    assert hp.dropout == 0.2 and hp["units"] == 64
    assert hp.read == {"dropout", "units"}
    with pytest.raises(TypeError):
        hp.dropout = 0.3
    with pytest.raises(TypeError):
        hp["units"] = 3
    with pytest.raises(KeyError, match="hyperparameters:"):
        hp["nope"]
    with pytest.raises(AttributeError):
        _ = hp.nope


def test_keras_tuner_and_optuna_declarations_give_defaults_then_the_trials_values():
    from tuner.space.hp import declared_params

    hp = HyperParameters({"dropout": 0.3})
    assert hp.Int("units", 32, 256, step=32) == 32  # not in the space yet: Keras Tuner's default
    assert hp.Int("filters", 8, 64, step=2, sampling="log") == 8
    assert hp.Float("lr", 1e-4, 1e-2, sampling="log", default=1e-3) == 1e-3
    assert hp.Choice("act", ["relu", "tanh"]) == "relu" and hp.Boolean("deep") is False
    assert hp.Fixed("width", 7) == 7 and hp.suggest_int("depth", 1, 3) == 1
    assert hp.suggest_categorical("opt", ["a", "b"]) == "a"
    assert hp.Float("dropout", 0.0, 0.5) == 0.3 and "dropout" in hp.read  # the space's value
    with hp.conditional_scope("deep", [True]):
        hp.Int("extra", 1, 4)
    params = declared_params(hp)
    assert params["units"].spec() == {"type": "int", "low": 32, "high": 256, "step": 32}
    assert params["filters"].spec() == [8, 16, 32, 64]  # a factor on a log scale: its values
    assert params["lr"].spec() == {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
    assert params["act"].spec() == ["relu", "tanh"] and params["deep"].spec() == [False, True]
    assert params["width"].spec() == 7 and params["dropout"].spec() == {
        "type": "float",
        "low": 0.0,
        "high": 0.5,
    }
    assert HyperParameters({"units": 96}).Int("units", 32, 256, step=32) == 96
    bad = HyperParameters({})
    bad.Float("dropout", 0.0, 1.5)
    with pytest.raises(ConfigError, match=r"build_model's hp.Float\('dropout'"):
        declared_params(bad)


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = rng.dirichlet(np.ones(4), 200)
    got = compute(MULTI, y, p, ("accuracy", "log_loss", "f1"))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, p.argmax(1)))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=range(4)), rel=1e-6)
    assert got["f1"] == pytest.approx(skm.f1_score(y, p.argmax(1), average="macro"))
    yb = rng.integers(0, 2, 200)
    s = np.round(rng.random(200), 1)  # ties
    pb = np.stack([1 - s, s], 1)
    got = compute(BIN, yb, pb, ("roc_auc", "f1"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(yb, s))
    assert got["f1"] == pytest.approx(
        skm.f1_score(yb, (s > 0.5).astype(int) * 0 + pb.argmax(1), average="macro")
    )


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y, p = rng.normal(size=100), rng.normal(size=100)
    got = compute(REG, y, p, ("mse", "mae", "r2"))
    assert got["mse"] == pytest.approx(skm.mean_squared_error(y, p))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert got["r2"] == pytest.approx(skm.r2_score(y, p))
    assert standard_loss(REG, y, p, "mae") == pytest.approx(got["mae"])


def test_metric_and_objective_validation():
    assert resolve_metrics(REG, None) == ("mse", "mae", "r2")
    with pytest.raises(ConfigError, match="roc_auc.*multiclass"):
        resolve_metrics(MULTI, ["roc_auc"])
    with pytest.raises(ConfigError, match="val_accuracy"):
        parse_objective("val_accuracy", REG)
    obj = parse_objective(["val_loss", "val_accuracy"], BIN)
    assert obj.directions == ("minimize", "maximize") and obj.is_multi
    gp = parse_objective("gap_penalized", BIN)
    assert gp.values({"val_loss": 1.0, "gap": 0.4}) == (1.0 + GAP_PENALTY * 0.4,)
    assert gp.values({"val_loss": 1.0, "gap": -0.4}) == (1.0,)


def test_choose_pareto_prefers_balanced_point():
    values = [(0.1, 0.5), (0.3, 0.9), (1.0, 0.95)]
    assert choose_pareto(values, ("minimize", "maximize")) == 1

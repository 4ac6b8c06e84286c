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

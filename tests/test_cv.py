"""k-fold objectives, the cv refit rule, test repeats, and the held-out test scored once."""

import re

import numpy as np
import pytest
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from tests import planted as P
from tuner import tune
from tuner.adapters.base import FitSettings
from tuner.data.prepare import prepare
from tuner.errors import ConfigError, DataError
from tuner.trial.dispatch import run_trial
from tuner.trial.folds import refit_epochs, run_folds
from tuner.trial.objectives import parse_objective
from tuner.trial.runner import TrialContext

SPACE = P.SPACE


pytestmark = pytest.mark.usefixtures("planted_adapters")  # conftest.py


def run(builder, data, **kw):
    args = dict(space=SPACE, n_trials=4, max_epochs=8, tracking=False, progress=False, baselines=False)
    args.update(kw)
    return tune(builder, data, **args)


def test_cv_objective_agrees_with_a_hand_computation():
    """A model that predicts its training rows' class frequencies: each fold's log loss by hand."""
    rng = np.random.default_rng(3)
    y = rng.choice(3, size=60, p=[0.5, 0.3, 0.2])
    X = rng.normal(size=(60, 2)).astype(np.float32)
    r = run(lambda: P.PriorModel(3), (X, y), cv=3, test=None, n_trials=2, max_epochs=2)
    by_hand = []
    for a, b in StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(np.arange(60), y):
        p = np.bincount(y[a], minlength=3) / len(a)
        by_hand.append(log_loss(y[b], np.tile(p, (len(b), 1)), labels=[0, 1, 2]))
    assert r.cv["values"] == pytest.approx(by_hand, rel=1e-6)
    assert r.best_value == pytest.approx(np.mean(by_hand), rel=1e-6)
    assert r.cv["std"] == pytest.approx(np.std(by_hand, ddof=1), rel=1e-6)
    assert r.validation_scores["loss"] == pytest.approx(np.mean(by_hand), rel=1e-6)
    assert r.cv["k"] == 3 and r.cv["refit_epochs"] == 1  # every fold is best at its first epoch
    assert r.test_scores == {} and "test=None" in r.report()


def test_each_fold_is_an_ordinary_trial_on_its_part():
    X, y = P.blobs(n=300)
    prepared = prepare((X, y), cv=3, test=0.2, seed=0)
    obj = parse_objective("val_loss", prepared.task)
    settings = FitSettings(task=prepared.task, max_epochs=6, seed=0)
    ctx = TrialContext.create(
        lambda: P.PlantedModel(5, 3), prepared.train, None, obj, ("accuracy",), settings, folds=prepared.folds
    )
    params = {"learning_rate": 0.1, "batch_size": 32, "patience": 2, "l2": 1e-3}
    record = run_trial(ctx, 7, params).record
    Xt, yt = prepared.train
    singles = []
    for a, b in prepared.folds:
        fold = TrialContext.create(
            ctx.build_model, (Xt[a], yt[a]), (Xt[b], yt[b]), obj, ("accuracy",), settings
        )
        singles.append(run_trial(fold, 7, params).record)
    cv = record.user_attrs["cv"]
    assert cv["values"] == [s.values[0] for s in singles]
    assert record.values[0] == pytest.approx(np.mean(cv["values"]))
    assert cv["best_epochs"] == [s.best_epoch for s in singles]
    assert cv["refit_epochs"] == refit_epochs(cv["best_epochs"])
    assert record.user_attrs["metrics"]["cv_std"] == pytest.approx(np.std(cv["values"], ddof=1))
    longest = max(len(s.epochs) for s in singles)
    assert len(record.epochs) == longest
    assert record.epochs[0]["val_loss"] == pytest.approx(np.mean([s.epochs[0]["val_loss"] for s in singles]))


def test_refit_epoch_rule_is_the_median_best_epoch_plus_one():
    assert refit_epochs([0]) == 1
    assert refit_epochs([3, 5, 9]) == 6
    assert refit_epochs([2, 3]) == 4  # median 3.5 rounds half up
    assert refit_epochs([0, 0, 0, 40]) == 1


def test_pruning_sees_the_running_mean_at_matched_epochs():
    X, y = P.blobs(n=300)
    prepared = prepare((X, y), cv=2, test=None, seed=0)
    obj = parse_objective("val_loss", prepared.task)
    ctx = TrialContext.create(
        lambda: P.PlantedModel(5, 3), prepared.train, None, obj, ("accuracy",),
        FitSettings(task=prepared.task, max_epochs=4, seed=0), folds=prepared.folds,
    )  # fmt: skip

    class Recorder:
        reports: list = []

        def report(self, step, value):
            self.reports.append((step, value))

    rec = Recorder()
    live = []
    run_folds(ctx, 0, {"learning_rate": 0.1, "batch_size": 32, "patience": 0}, reporter=rec,
              on_epoch=lambda e, m: live.append((e, m)))  # fmt: skip
    steps = [s for s, _ in rec.reports]
    assert steps == [0, 1, 2, 3, 4, 5, 6, 7]
    fold0 = [v for s, v in rec.reports[:4]]
    fold1_alone = [m["fold1_val_loss"] for e, m in live if "fold1_val_loss" in m]
    for e in range(4):
        assert rec.reports[4 + e][1] == pytest.approx((fold0[e] + fold1_alone[e]) / 2)
    means = [m for e, m in live if "val_loss" in m]
    assert len(means) == 4 and means[1]["val_loss"] == pytest.approx(rec.reports[5][1])


def test_cv_refit_trains_on_all_non_test_rows_for_the_learned_epochs():
    X, y = P.blobs(n=300)
    r = run(lambda: P.PlantedModel(5, 3), (X, y), cv=3, n_trials=2)
    prepared = prepare((X, y), cv=3, test=0.2, seed=0)
    train_rows = frozenset(map(bytes, prepared.train[0]))
    test_rows = frozenset(map(bytes, prepared.test[0]))
    fits = P.PlantedModel.log
    assert all(not (f["rows"] & test_rows) for f in fits)  # the search and the refit never train on test
    refit = fits[-1]
    assert refit["rows"] == train_rows and refit["params"]["patience"] == 0
    assert len(r.trials) == 2 and r.cv["refit_epochs"] == refit_epochs(r.cv["best_epochs"])
    assert set(r.test_scores) >= {"loss", "accuracy"} and r.test_se["accuracy"] > 0
    assert "cv_fold_0" in r.records[0].user_attrs["metrics"]


def test_groups_keep_each_group_on_one_side_of_every_fold():
    X, y = P.blobs(n=240)
    groups = np.repeat(np.arange(48), 5)
    X = np.hstack([X, groups[:, None].astype(np.float32)])  # the group id travels with the row
    run(lambda: P.PlantedModel(6, 3), (X, y), cv=3, groups=groups, n_trials=1, max_epochs=3)
    prepared = prepare((X, y), cv=3, groups=groups, test=0.2, seed=0)
    all_ids = set(prepared.train[0][:, -1].tolist())
    per_group = {g: int((prepared.train[0][:, -1] == g).sum()) for g in all_ids}
    for fit in P.PlantedModel.log:
        ids = [np.frombuffer(row, dtype=np.float32)[-1] for row in fit["rows"]]
        counts = {g: ids.count(g) for g in set(ids)}
        assert all(counts[g] == per_group[g] for g in counts)  # whole groups only
    with pytest.raises(DataError, match="groups"):
        run(lambda: P.PlantedModel(6, 3), (X, y), cv=3, groups=groups[:10])


def test_repeats_report_mean_and_spread_of_the_test_score():
    X, y = P.blobs(n=300, spread=2.5)
    r = run(lambda: P.PlantedModel(5, 3), (X, y), repeats=3, n_trials=2)
    assert len(r.test_repeats) == 3
    for k in r.test_scores:
        values = [t[k] for t in r.test_repeats]
        assert r.test_scores[k] == pytest.approx(np.mean(values))
        assert r.test_std[k] == pytest.approx(np.std(values, ddof=1))
    assert r.test_std["loss"] > 0  # the seeds differ
    assert len({f["seed"] for f in P.PlantedModel.log[-3:]}) == 3
    assert re.search(r"3\s+refits", r.report()) and "test ± std" in r.report()


def test_test_part_is_scored_once_for_the_chosen_configuration_only():
    X, y = P.blobs(n=300)
    r = run(lambda: P.PlantedModel(5, 3), (X, y), n_trials=3)
    test_rows = frozenset(map(bytes, prepare((X, y), test=0.2, seed=0).test[0]))
    assert all(not (f["rows"] & test_rows) for f in P.PlantedModel.log)
    assert len(P.PlantedModel.log) == 3 + 1  # 3 trials + 1 refit (baselines are off)
    assert r.optimism == pytest.approx(
        {
            k: (r.validation_scores[k] - r.test_scores[k]) * (1 if k in ("accuracy", "f1") else -1)
            for k in r.optimism
        }
    )


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"repeats": 0}, "repeats"),
        ({"repeats": 2, "test": None}, "test=None"),
        ({"baselines": "yes"}, "baselines"),
        ({"lr_range": 1}, "lr_range"),
    ],
)  # fmt: skip
def test_bad_evaluation_settings_are_refused_up_front(kw, match):
    with pytest.raises(ConfigError, match=match):
        run(lambda: P.PlantedModel(5, 3), P.blobs(n=100), **kw)

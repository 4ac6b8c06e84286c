"""The conformance suite: every adapter (Keras, torch, scikit-learn) passes these, on real training.

Each test runs once per framework (the ``fw`` fixture) with tiny data and tiny models.
"""

import gc
import math
import os

import numpy as np
import pytest

from tests.fakes import Hooks
from tuner import tune
from tuner.adapters.base import FitSettings, adapter_for
from tuner.adapters.schedules import make_schedule
from tuner.errors import ModelError, TrialPruned
from tuner.records import TaskInfo
from tuner.space.hp import HyperParameters
from tuner.trial.dispatch import run_trial
from tuner.trial.metrics import resolve_metrics, standard_loss
from tuner.trial.objectives import parse_objective
from tuner.trial.runner import EpochMonitor, FailurePolicy, NullReporter, TrialContext, build

MULTI = TaskInfo("multiclass", 3, (0, 1, 2))
REG = TaskInfo("regression", 0, n_outputs=1)
N_TRAIN, N_VAL, N_IN = 96, 48, 5
#: the per-epoch names every framework records for a multiclass task
EPOCH_KEYS = {"train_loss", "val_loss", "gap", "lr"} | {
    f"{part}_{m}" for part in ("train", "val") for m in ("accuracy", "log_loss", "f1")
}
BASE = {"learning_rate": 0.01, "batch_size": 16, "patience": 0, "lr_schedule": "constant"}


def rows(n, seed, task=MULTI, noisy=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, N_IN)).astype(np.float32)
    if not task.is_classification:
        return X, (X @ rng.standard_normal(N_IN)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    return X, (rng.integers(0, 3, n) if noisy else y).astype(np.int64)


def context(builder, task=MULTI, max_epochs=3, noisy=False):
    return TrialContext.create(
        builder,
        rows(N_TRAIN, 0, task, noisy),
        rows(N_VAL, 1, task, noisy),
        parse_objective("val_loss", task),
        resolve_metrics(task, None),
        FitSettings(task=task, max_epochs=max_epochs, seed=3),
    )


class Probe(EpochMonitor):
    """The runner's monitor, also reading the optimizer's rate and counting batches each epoch."""

    def __init__(self, ctx, adapter, params, fw):
        super().__init__(ctx, adapter, params, NullReporter())
        self.fw, self.rates, self.batch_calls = fw, [], [0]

    def batch_loss(self, value):
        self.batch_calls[-1] += 1
        super().batch_loss(value)

    def epoch_end(self, epoch):
        self.rates.append(self.fw.learning_rate(self.adapter))
        self.batch_calls.append(0)
        return super().epoch_end(epoch)


def knob(record, name):
    found = [i for i in record.injected if i.knob == name]
    assert found, f"no record for {name}: {record.injected}"
    return found[0]


def test_zero_arg_builder_records_every_epoch_with_the_shared_names(fw):
    params = {**BASE, "dropout": 0.2, "l2": 1e-4, "label_smoothing": 0.05, "augmentation": "noise"}
    r = run_trial(context(lambda: fw.model(MULTI, N_IN)), 0, params).record
    assert r.state == "complete", r.error
    assert r.framework == fw.name and r.epochs_run == 3
    for epoch in r.epochs:
        assert set(epoch) == EPOCH_KEYS
        assert all(math.isfinite(v) for v in epoch.values())
        assert epoch["gap"] == pytest.approx(epoch["val_loss"] - epoch["train_loss"])
    assert {i.knob for i in r.injected} >= {"dropout", "l2", "learning_rate", "batch_size", "augmentation"}
    assert r.values == (r.epochs[r.best_epoch]["val_loss"],)


def test_knobs_are_applied_to_the_built_model_and_optimizer(fw):
    params = {"dropout": 0.25, "l2": 1e-3, "learning_rate": 0.02, "lr_schedule": "step", "batch_size": 16}
    ctx = context(lambda: fw.model(MULTI, N_IN))
    hp = HyperParameters(params)
    model = build(ctx.build_model, hp)
    ad = adapter_for(model)(model, ctx.settings)
    injected = {i.knob: i for i in ad.regularize(params, hp.read)}
    X, y = ctx.train
    ad.check_output(X[:8], y[:8])
    probe = Probe(ctx, ad, params, fw)
    ad.fit(X, y, params, probe)

    rates = fw.dropout_rates(ad)
    if rates is None:
        assert not injected["dropout"].applied and "not applicable" in injected["dropout"].detail
    else:
        assert rates and rates == pytest.approx([0.25] * len(rates)) and injected["dropout"].applied
    stored = fw.penalty(ad)
    assert stored and stored == pytest.approx([fw.expected_penalty(1e-3, 16)] * len(stored))
    schedule = make_schedule("step", 0.02, 3)
    assert probe.rates == pytest.approx([schedule.lr(e) for e in range(3)])
    assert fw.batches(ad, probe, N_TRAIN) == math.ceil(N_TRAIN / 16)
    assert all(injected[k].applied for k in ("l2", "learning_rate", "batch_size"))
    ad.release()


def ready(fw):
    """A built, regularized and checked adapter of ``fw``'s tiny model, with the training rows."""
    ctx = context(lambda: fw.model(MULTI, N_IN), max_epochs=5)
    hp = HyperParameters(BASE)
    model = build(ctx.build_model, hp)
    ad = adapter_for(model)(model, ctx.settings)
    ad.regularize(BASE, hp.read)
    X, y = ctx.train
    ad.check_output(X[:8], y[:8])
    return ad, X, y


def test_fit_calls_the_hooks_each_epoch_sets_their_rate_and_honours_a_stop(fw):
    ad, X, y = ready(fw)
    hooks = Hooks(ad, max_epochs=5, lr=lambda e: 0.1 / (e + 1), stop_after=2, X=X)
    ad.fit(X, y, {"batch_size": 16}, hooks)
    assert hooks.events == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1), ("begin", 2), ("end", 2)]
    assert hooks.seen_lr == pytest.approx([0.1, 0.05, 0.1 / 3])
    # three epochs' losses, per batch (Keras, torch) or per epoch (scikit-learn's loss curve)
    assert len(hooks.batch_losses) in (3, 3 * math.ceil(N_TRAIN / 16)), len(hooks.batch_losses)
    assert all(np.isfinite(hooks.batch_losses))
    assert not np.allclose(hooks.preds[0], hooks.preds[-1])  # it trained
    ad.release()


def test_an_exception_raised_by_a_hook_ends_fit_unchanged(fw):
    ad, X, y = ready(fw)
    hooks = Hooks(ad, max_epochs=4, raise_at=1)
    with pytest.raises(TrialPruned, match="fake hooks"):
        ad.fit(X, y, {"batch_size": 16}, hooks)
    assert hooks.events[-1] == ("end", 1)
    ad.release()


def test_a_saved_state_brings_back_the_predictions(fw):
    ad, X, y = ready(fw)
    ad.fit(X, y, {"batch_size": 16}, Hooks(ad, max_epochs=1))
    state, before = ad.get_state(), ad.predict(X)
    ad.fit(X, y, {"batch_size": 16}, Hooks(ad, max_epochs=2, lr=lambda e: 0.05))
    assert not np.allclose(ad.predict(X), before)
    ad.set_state(state)
    assert np.allclose(ad.predict(X), before, atol=1e-6)
    assert before.shape == (N_TRAIN, 3) and np.allclose(before.sum(axis=1), 1.0, atol=1e-5)
    ad.release()


def test_hp_builder_applies_its_values_and_nothing_is_injected_twice(fw):
    params = {**BASE, "dropout": 0.3, "l2": 1e-3, "units": 12}
    out = run_trial(context(lambda hp: fw.hp_model(hp, MULTI, N_IN)), 0, params, keep_model=True)
    r, ad = out.record, out.adapter
    assert r.state == "complete", r.error
    assert fw.units(ad) == 12
    applied = knob(r, fw.hp_reads)
    assert applied.applied and "build_model" in applied.detail
    if fw.hp_reads == "dropout":
        assert fw.dropout_rates(ad) == pytest.approx([0.3])
    else:  # the builder's own alpha, not converted from l2 again
        assert fw.penalty(ad) == pytest.approx([1e-3])
    ad.release()


@pytest.mark.slow
def test_tune_runs_an_hp_builder_end_to_end(fw):
    X, y = rows(160, 5)
    space = {
        "knobs": {"learning_rate": 0.01, "batch_size": 32, "patience": 0, "l2": 1e-4, "dropout": 0.1},
        "hyperparameters": {"units": [8, 12]},
    }
    result = tune(
        lambda hp: fw.hp_model(hp, MULTI, N_IN),
        (X, y),
        space=space,
        n_trials=2,
        max_epochs=1,
        tracking=False,
        progress=False,
        baselines=False,
    )
    assert len(result.trials) == 2 and set(result.trials["state"]) == {"complete"}
    assert result.best_model is not None and result.best_params["units"] in (8, 12)
    assert set(result.test_scores) >= {"loss", "accuracy"}


def test_early_stopping_restores_the_best_epochs_weights(fw):
    # random labels: the model memorizes train and the validation loss rises after a few epochs
    params = {"learning_rate": 0.05, "batch_size": 16, "patience": 2, "lr_schedule": "constant"}
    ctx = context(lambda: fw.model(MULTI, N_IN), max_epochs=20, noisy=True)
    out = run_trial(ctx, 0, params, keep_model=True)
    r, ad = out.record, out.adapter
    assert r.state == "complete", r.error
    assert r.epochs_run == r.best_epoch + 3 < 20  # stopped 2 epochs after the best one
    Xv, yv = ctx.validation
    pred = ad.predict(Xv)
    loss = ad.loss_value(yv, pred)
    loss = standard_loss(MULTI, yv, pred) if loss is None else loss
    assert loss == pytest.approx(r.epochs[r.best_epoch]["val_loss"], rel=1e-5)
    assert loss != pytest.approx(r.epochs[-1]["val_loss"], rel=1e-5)
    ad.release()


def test_nan_loss_stops_the_trial_at_once_as_diverged(fw):
    params = {"optimizer": "sgd", "learning_rate": 1e4, "batch_size": 16, "patience": 0}
    r = run_trial(context(lambda: fw.model(REG, N_IN), task=REG, max_epochs=5), 0, params).record
    assert r.state == "failed" and r.error.startswith("diverged"), r.error
    assert r.epochs_run <= 1
    policy = FailurePolicy(limit=2)
    for _ in range(3):
        policy.observe(r)  # diverged trials never stop the study


def test_dry_run_rejects_an_output_that_does_not_fit_the_labels(fw):
    calls = []

    def builder():
        calls.append(1)
        return fw.wrong_output(MULTI, N_IN)

    X, y = rows(120, 7)
    with pytest.raises(ModelError, match="3 classes") as info:
        tune(builder, (X, y), space="quick", n_trials=2, max_epochs=1, tracking=False, progress=False)
    assert fw.wrong_output_words in str(info.value)
    assert len(calls) == 1  # the preflight build: no trial started


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow  # 30 trials of each framework
def test_memory_does_not_grow_across_30_trials(fw):
    ctx = context(lambda: fw.model(MULTI, N_IN), max_epochs=1)
    params = {**BASE, "dropout": 0.1, "l2": 1e-4}
    objects, rss = [], []
    gc.collect()
    gc.freeze()  # the frameworks' own objects: this keeps the runner's gc.collect() per trial fast
    try:
        for number in range(30):
            r = run_trial(ctx, number, params).record
            assert r.state == "complete", r.error
            if number in (9, 29):
                gc.collect()
                objects.append(len(gc.get_objects()))
                rss.append(_rss())
    finally:
        gc.unfreeze()
    # the last 20 trials leave no models, graphs or tensors behind
    assert objects[1] - objects[0] < 2000, objects
    assert rss[1] - rss[0] < 64 * 2**20, rss

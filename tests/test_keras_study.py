"""tune() end to end with real (tiny) Keras models."""

import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from tuner import tune  # noqa: E402
from tuner.errors import ModelError  # noqa: E402
from tuner.study.search import warmup_epochs  # noqa: E402

pytestmark = pytest.mark.slow  # real Keras studies

SCHEDULES = ["constant", "step", "exponential", "cosine", "one_cycle", "plateau"]
IMAGE_AUGS = ["none", "noise", "mixup", "flip", "translate", "rotate", "zoom", "contrast", "cutout"]


def tabular(n=240, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(int)
    return X, y


def images(n=160, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(scale=0.3, size=(n, 8, 8, 1)).astype(np.float32)
    for k in range(3):
        X[y == k, k * 2 : k * 2 + 3, :, 0] += 1.0
    return X, y


def mlp():
    m = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    m.compile(optimizer="adam", loss="binary_crossentropy")
    return m


def small_cnn():
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


QUIET = {"tracking": False, "progress": False, "baselines": False}


def test_zero_arg_builder_is_regularized_by_injection():
    r = tune(mlp, tabular(), space="quick", n_trials=3, max_epochs=4, **QUIET)
    assert isinstance(r.best_model, keras.Model)
    assert {"loss", "accuracy", "roc_auc"} <= set(r.test_scores)
    best = next(x for x in r.records if x.number == r.best_trial)
    knobs = {i.knob: i for i in best.injected}
    assert knobs["dropout"].applied and knobs["l2"].applied
    rates = [layer.rate for layer in r.best_model.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [pytest.approx(r.best_params["dropout"])]
    assert {"train_loss", "val_loss", "gap", "val_roc_auc", "lr"} <= set(best.epochs[0])


def test_hp_builder_with_own_hyperparameter():
    seen = []

    def build(hp):
        seen.append(hp.units)
        m = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(hp.units, activation="relu"),
                keras.layers.Dropout(hp.dropout),
                keras.layers.Dense(1, activation="sigmoid"),
            ]
        )
        return m

    space = {"extends": "quick", "hyperparameters": {"units": {"type": "int", "low": 4, "high": 32}}}
    r = tune(build, tabular(), space=space, n_trials=3, max_epochs=3, **QUIET)
    assert "units" in r.best_params and all(4 <= u <= 32 for u in seen)
    best = next(x for x in r.records if x.number == r.best_trial)
    knobs = {i.knob: i for i in best.injected}
    assert "hp.dropout" in knobs["dropout"].detail and "hp.l2" not in knobs["l2"].detail  # l2: injected


def test_every_schedule_trains():
    space = {
        "knobs": {"lr_schedule": SCHEDULES, "learning_rate": 0.01, "patience": 0},
        "start": [{"lr_schedule": s} for s in SCHEDULES],
    }
    r = tune(mlp, tabular(), space=space, n_trials=len(SCHEDULES), max_epochs=4, test=None, **QUIET)
    assert sorted(r.trials["params_lr_schedule"]) == sorted(SCHEDULES)
    # the median pruner may stop the last three after its warm-up: every schedule still trains
    assert r.trials["state"].isin(["complete", "pruned"]).all()
    assert all(x.epochs_run >= warmup_epochs(4) for x in r.records)
    lrs = {x.params["lr_schedule"]: [e["lr"] for e in x.epochs] for x in r.records}
    assert len(set(lrs["constant"])) == 1 and lrs["step"] != lrs["constant"] and lrs["cosine"][-1] < 0.01


def test_every_image_augmentation_trains():
    space = {
        "knobs": {"augmentation": IMAGE_AUGS, "augment_strength": 0.5, "patience": 0, "learning_rate": 0.01},
        "start": [{"augmentation": a} for a in IMAGE_AUGS],
    }
    r = tune(small_cnn, images(), space=space, n_trials=len(IMAGE_AUGS), max_epochs=2, test=None, **QUIET)
    assert sorted(r.trials["params_augmentation"]) == sorted(IMAGE_AUGS)
    assert (r.trials["state"] == "complete").all(), r.trials[["params_augmentation", "error"]]


def test_divergence_is_a_failed_trial_not_a_crash():
    space = {
        "knobs": {"learning_rate": [1e6, 1e-3], "patience": 0, "optimizer": "sgd"},
        "start": [{"learning_rate": 1e6}, {"learning_rate": 1e-3}],
    }
    r = tune(_regressor, _reg_data(), space=space, n_trials=2, max_epochs=3, **QUIET)
    states = dict(zip(r.trials["params_learning_rate"], r.trials["state"], strict=True))
    assert states[1e6] == "failed" and states[1e-3] == "complete"
    assert r.trials.set_index("params_learning_rate").loc[1e6, "error"].startswith("diverged")


def _regressor():
    m = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )
    m.compile(optimizer="sgd", loss="mse")
    return m


def _reg_data():
    X, _ = tabular()
    return X, (X @ np.arange(8) * 10).astype(np.float32)


def test_output_that_does_not_fit_y_is_refused_before_any_trial():
    def wrong():
        return keras.Sequential(
            [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(5, activation="softmax")]
        )

    with pytest.raises(ModelError, match="3 classes"):
        tune(wrong, images(), n_trials=2, **QUIET)


def _multiclass_mlp(compiled_with=None, logits=False):
    def build():
        m = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(3, activation=None if logits else "softmax"),
            ]
        )
        if compiled_with is not None:
            m.compile(optimizer="adam", loss=compiled_with, metrics=["accuracy"])
        return m

    return build


def three_classes(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    return X, np.argmax(X[:, :3] + rng.normal(scale=0.3, size=(n, 3)), axis=1)


@pytest.mark.parametrize(
    "compiled_with, logits",
    [
        ("sparse_categorical_crossentropy", False),
        (keras.losses.SparseCategoricalCrossentropy(from_logits=True), True),
        (None, False),  # not compiled: regtuner infers the loss
    ],
)
def test_best_model_takes_the_users_own_integer_labels(compiled_with, logits):
    X, y = three_classes()
    space = {"knobs": {"label_smoothing": {"low": 0.05, "high": 0.2}, "dropout": 0.1}}
    result = tune(
        _multiclass_mlp(compiled_with, logits), (X, y), space=space, n_trials=2, max_epochs=2, **QUIET
    )
    assert result.best_params["label_smoothing"] > 0  # trained on smoothed one-hot targets
    model = result.best_model
    scores = model.evaluate(X, y, verbose=0, return_dict=True)  # the user's next line
    assert np.isfinite(scores["loss"])
    if compiled_with is not None:
        assert 0.0 <= scores["accuracy"] <= 1.0
    model.fit(X, y, epochs=1, verbose=0)
    assert model.predict(X[:4], verbose=0).shape == (4, 3)


def test_best_model_keeps_the_users_loss_on_binary_and_regression():
    X, y = tabular()
    result = tune(mlp, (X, y), space="quick", n_trials=1, max_epochs=1, **QUIET)
    assert np.isfinite(result.best_model.evaluate(X, y, verbose=0))
    Xr = X.copy()
    yr = (X[:, 0] * 2.0).astype(np.float32)

    def reg():
        m = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
        )
        m.compile(optimizer="adam", loss="mae", metrics=["mse"])
        return m

    model = tune(reg, (Xr, yr), space="quick", n_trials=1, max_epochs=1, **QUIET).best_model
    scores = model.evaluate(Xr, yr, verbose=0, return_dict=True)
    assert set(scores) >= {"loss", "mse"}


def test_functional_model_with_a_residual_add_gets_its_dropout_searched():
    def build():
        inp = keras.Input((8,))
        h = keras.layers.Dense(16, activation="relu")(inp)
        h2 = keras.layers.Dense(16, activation="relu")(h)
        out = keras.layers.Dense(3, activation="softmax")(keras.layers.Add()([h, h2]))
        model = keras.Model(inp, out)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    X, y = three_classes()
    space = {"knobs": {"dropout": {"low": 0.1, "high": 0.4}}}
    result = tune(build, (X, y), space=space, n_trials=2, max_epochs=2, **QUIET)
    assert all(r.injected[0].applied and "functional" in r.injected[0].detail for r in result.records)
    assert "dropout" in result.best_params
    scores = result.best_model.evaluate(X, y, verbose=0, return_dict=True)
    assert 0.0 <= scores["accuracy"] <= 1.0


def test_a_subclassed_model_without_dropout_layers_has_no_dropout_searched():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(16, activation="relu")
            self.out = keras.layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.out(self.hidden(x))

    X, y = three_classes()
    space = {"knobs": {"dropout": {"low": 0.1, "high": 0.4}, "learning_rate": {"low": 1e-3, "high": 1e-2}}}
    result = tune(Net, (X, y), space=space, n_trials=2, max_epochs=2, **QUIET)
    assert set(result.best_params) >= {"learning_rate"} and "dropout" not in result.best_params
    assert any("dropout: not searched" in n and "keras.Model subclass" in n for n in result.notes)
    assert np.isfinite(result.best_model.evaluate(X, y, verbose=0))


def test_a_keras_tuner_builder_runs_unchanged_and_its_names_come_back():
    def build_model(hp):  # as written for keras_tuner.RandomSearch
        model = keras.Sequential([keras.Input((8,))])
        model.add(
            keras.layers.Dense(hp.Int("units", 8, 32, step=8), activation=hp.Choice("act", ["relu", "tanh"]))
        )
        if hp.Boolean("second"):
            model.add(keras.layers.Dense(8, activation="relu"))
        model.add(keras.layers.Dropout(hp.Float("dropout", 0.0, 0.4, step=0.1)))
        model.add(keras.layers.Dense(3, activation="softmax"))
        lr = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
        model.compile(
            optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        return model

    X, y = three_classes()
    result = tune(build_model, (X, y), space="quick", n_trials=3, max_epochs=2, **QUIET)
    best = result.best_params
    assert (
        best["units"] in (8, 16, 24, 32)
        and best["act"] in ("relu", "tanh")
        and best["second"] in (False, True)
    )
    assert 0.0 <= best["dropout"] <= 0.4 and 1e-4 <= best["learning_rate"] <= 1e-2
    assert len({r.params["units"] for r in result.records} | {r.params["act"] for r in result.records}) > 2
    assert any("build_model declares units, act, second, dropout, learning_rate" in n for n in result.notes)
    for record in result.records:  # the builder applied dropout and learning rate itself: not injected again
        applied = {i.knob: i.detail for i in record.injected}
        assert "build_model" in applied.get("dropout", "build_model")
    assert 0.0 <= result.best_model.evaluate(X, y, verbose=0, return_dict=True)["accuracy"] <= 1.0


@pytest.mark.parametrize("optimizer, moved", [("sgd", True), ("adam", False)])
def test_the_users_optimizer_anchors_the_learning_rate_range(optimizer, moved):
    def build():
        model = _multiclass_mlp()()
        opt = keras.optimizers.SGD(0.05, momentum=0.9) if optimizer == "sgd" else keras.optimizers.Adam(1e-3)
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    X, y = three_classes()
    result = tune(build, (X, y), space="default", n_trials=2, max_epochs=1, **QUIET)
    notes = [n for n in result.notes if n.startswith("learning_rate: searched from")]
    rates = [r.params["learning_rate"] for r in result.records]
    if moved:
        assert len(notes) == 1 and "around your SGD's 0.05" in notes[0]
        assert all(0.05 / 18 <= lr <= 0.05 * 18 for lr in rates)  # the preset's width, centred on 0.05
        kept = [i.detail for r in result.records for i in r.injected if i.knob == "learning_rate"]
        assert all("SGD" in d for d in kept)  # the class (and its momentum) kept, not swapped for Adam
        assert result.best_model.optimizer.momentum == pytest.approx(0.9)
    else:
        assert notes == [] and all(1e-4 <= lr <= 3e-2 for lr in rates)


def test_predictions_on_arrays_of_many_sizes_trigger_no_retracing_warnings(caplog):
    import logging

    X, y = three_classes(n=301)  # odd sizes everywhere: train, validation, test and their chunks
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        tune(_multiclass_mlp("sparse_categorical_crossentropy"), (X, y), space="quick", n_trials=3,
             max_epochs=2, tracking=False, progress=False)  # fmt: skip
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


@pytest.mark.slow
def test_a_keras_study_from_the_command_line_prints_no_tensorflow_start_up_lines(tmp_path):
    """TensorFlow's C++ start-up lines (oneDNN, CPU features, absl) and retracing warnings stay off the
    terminal of ``regtuner`` commands, with no logging variable set by the user."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")}
    command = [sys.executable, "-c", "from tuner.cli.main import main; raise SystemExit(main())",
               "demo", "--trials", "1", "--epochs", "2", "--no-tracking"]  # fmt: skip
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Chosen configuration" in done.stdout
    for chatter in ("oneDNN", "cpu_feature_guard", "absl", "retracing", "I0000", "E0000", "TF-TRT"):
        assert chatter not in done.stderr + done.stdout, f"{chatter!r} printed:\n{done.stderr[-3000:]}"

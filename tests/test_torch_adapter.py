"""Real torch tests of the torch adapter on tiny models (CPU)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from tests.fakes import Hooks  # noqa: E402
from tuner import tune  # noqa: E402
from tuner.adapters.base import FitSettings, adapter_for  # noqa: E402
from tuner.adapters.torch.adapter import TorchAdapter  # noqa: E402
from tuner.adapters.torch.augment import batch_augmenter, channels_first  # noqa: E402
from tuner.data.torch_data import dataset_arrays  # noqa: E402
from tuner.errors import ConfigError, DataError, ModelError  # noqa: E402
from tuner.records import TaskInfo  # noqa: E402
from tuner.trial.dispatch import run_trial  # noqa: E402
from tuner.trial.objectives import parse_objective  # noqa: E402
from tuner.trial.runner import TrialContext  # noqa: E402

BINARY = TaskInfo("binary", 2, (0, 1))
MULTI = TaskInfo("multiclass", 3, (0, 1, 2))
REG = TaskInfo("regression", 0, n_outputs=1)
REG2 = TaskInfo("regression", 0, n_outputs=2)


def data(n=64, d=4, task=MULTI, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    if task.is_classification:
        y = (X[:, 0] > 0).astype(np.int64)
        if task.n_classes == 3:
            y += X[:, 1] > 0.5
        return X, y
    return X, X[:, : task.n_outputs].astype(np.float32) * 2.0 + 1.0


def mlp(d=4, out=3, dropout=None, tail=()):
    layers = [nn.Linear(d, 8), nn.ReLU()]
    if dropout is not None:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, out), *tail]
    return nn.Sequential(*layers)


def adapter(model, task=MULTI, **kw):
    return TorchAdapter(model, FitSettings(task=task, max_epochs=kw.pop("max_epochs", 3), **kw))


def ready(model, task=MULTI, params=None, **kw):
    ad = adapter(model, task, **kw)
    rec = ad.regularize(params or {}, frozenset())
    X, y = data(task=task, d=model[0].in_features if isinstance(model, nn.Sequential) else 4)
    ad.check_output(X[:8], y[:8])
    return ad, rec, X, y


# ----------------------------------------------------------------------------- detection and injection


def test_detection_by_class_only():
    assert TorchAdapter.accepts(mlp()) and adapter_for(mlp()) is TorchAdapter
    assert not TorchAdapter.accepts(object()) and not TorchAdapter.accepts(torch.zeros(2))


def test_dropout_p_set_on_every_existing_dropout_module_including_nested():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Dropout1d(0.1), nn.Flatten())
            self.head = nn.Sequential(nn.Linear(8, 8), nn.AlphaDropout(0.1), nn.Linear(8, 3))

        def forward(self, x):
            return self.head(self.body(x))

    ad = adapter(Net())
    rec = ad.regularize({"dropout": 0.35}, frozenset())[0]
    rates = [m.p for m in ad.model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    assert rates == [0.35, 0.35] and rec.applied and "2 existing" in rec.detail


def test_dropout_inserted_into_sequential_keeps_outputs_and_state_dict_keys():
    model = mlp()
    X, _ = data()
    keys = set(model.state_dict())
    with torch.no_grad():
        before = model.eval()(torch.from_numpy(X))
    ad = adapter(model)
    rec = ad.regularize({"dropout": 0.3}, frozenset())[0]
    assert rec.applied and "inserted 2" in rec.detail
    kinds = [type(m).__name__ for m in ad.model]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert set(ad.model.state_dict()) == keys  # the user's checkpoints still load
    with torch.no_grad():
        assert torch.allclose(ad.model.eval()(torch.from_numpy(X)), before)
        ad.model.train()
        assert not torch.allclose(ad.model(torch.from_numpy(X)), ad.model(torch.from_numpy(X)))


class SubclassMLP(nn.Module):
    """The usual PyTorch style: layers as attributes, the wiring in forward, the output layer
    defined first (so only the dry run can tell which module is the output)."""

    def __init__(self, d=4, out=3):
        super().__init__()
        self.out = nn.Linear(8, out)
        self.fc1, self.fc2 = nn.Linear(d, 8), nn.Linear(8, 8)

    def forward(self, x):
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class SubclassCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.head(torch.flatten(torch.relu(self.conv(x)), 1))


def test_dropout_reaches_an_nn_module_subclass_by_hooks_on_hidden_layers_only():
    import pickle

    model = SubclassMLP()
    X, _ = data()
    with torch.no_grad():
        before = model.eval()(torch.from_numpy(X))
    ad = adapter(model, TaskInfo("multiclass", 3, (0, 1, 2), input_shape=(4,)))
    rec = ad.regularize({"dropout": 0.4}, frozenset())[0]
    assert (
        rec.applied
        and "2 hidden modules (fc1, fc2)" in rec.detail
        and "output layer left alone" in rec.detail
    )
    assert [len(m._forward_hooks) for m in (model.fc1, model.fc2, model.out)] == [1, 1, 0]
    xt = torch.from_numpy(X).to(ad.device)
    with torch.no_grad():
        assert torch.allclose(model.eval()(xt).cpu(), before)  # inference is untouched
        model.train()
        assert not torch.allclose(model(xt), model(xt))  # training drops units
    copy = pickle.loads(pickle.dumps(model))  # the hooks are picklable (MLflow saves whole modules)
    assert len(copy.fc1._forward_hooks) == 1


def test_dropout_hooks_on_a_conv_subclass_and_refusals_that_say_why():
    task = TaskInfo("multiclass", 3, (0, 1, 2), input_shape=(1, 4, 4))
    rec = adapter(SubclassCNN(), task).regularize({"dropout": 0.2}, frozenset())[0]
    assert rec.applied and "1 hidden modules (conv)" in rec.detail

    class OneLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 3)

        def forward(self, x):
            return self.a(x)

    rec = adapter(OneLayer(), TaskInfo("multiclass", 3, (0, 1, 2), input_shape=(4,))).regularize(
        {"dropout": 0.3}, frozenset()
    )[0]
    assert not rec.applied and "no hidden Linear/Conv module" in rec.detail
    wrong = TaskInfo("multiclass", 3, (0, 1, 2), input_shape=(5,))  # the forward fails on the zero batch
    rec = adapter(SubclassMLP(), wrong).regularize({"dropout": 0.3}, frozenset())[0]
    assert not rec.applied and "could not run on a zero batch" in rec.detail
    assert adapter(SubclassMLP()).regularize({"dropout": 0.0}, frozenset())[0].applied


def test_tune_searches_dropout_of_an_nn_module_subclass_and_returns_it_in_eval_mode():
    X, y = data(n=120)
    space = {"knobs": {"dropout": {"low": 0.1, "high": 0.5}}}
    result = tune(lambda: SubclassMLP(), (X, y), space=space, n_trials=2, max_epochs=2,
                  tracking=False, progress=False, baselines=False)  # fmt: skip
    assert all(r.injected[0].applied for r in result.records)
    model = result.best_model
    assert not model.training and len(model.fc1._forward_hooks) == 1
    with torch.no_grad():
        assert model(torch.from_numpy(X[:4]).to(next(model.parameters()).device)).shape == (4, 3)


def test_weight_decay_skips_biases_and_normalization_parameters():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 3))
    ad = adapter(model)
    rec = ad.regularize({"l2": 1e-3}, frozenset())[0]
    decay, no_decay = ad.optimizer.param_groups
    assert type(ad.optimizer).__name__ == "AdamW" and "decoupled" in rec.detail
    assert decay["weight_decay"] == 1e-3 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[4].weight)}
    assert len(no_decay["params"]) == 6  # two biases, BatchNorm and LayerNorm weight and bias


def test_coupled_l2_on_sgd_and_decoupled_decay_shrinks_weights():
    ad = adapter(mlp())
    rec = ad.regularize({"l2": 1e-3, "l2_mode": "coupled", "optimizer": "sgd"}, frozenset())[0]
    assert type(ad.optimizer).__name__ == "SGD" and ad.optimizer.param_groups[0]["weight_decay"] == 2e-3
    assert "coupled" in rec.detail

    def weight_norm(l2):
        torch.manual_seed(0)
        ad, _, X, y = ready(mlp(), params={"l2": l2, "optimizer": "sgd", "learning_rate": 0.1})
        assert ad.optimizer.param_groups[0]["weight_decay"] == 0.0  # decoupled: applied by the loop
        ad.fit(X, y, {"batch_size": 16}, Hooks(ad, lr=lambda e: 0.1))
        return sum(float(p.detach().norm()) for p in ad.model.parameters() if p.ndim > 1)

    assert weight_norm(0.5) < 0.8 * weight_norm(0.0)


def test_optimizer_knob_learning_rate_and_gradient_clip():
    ad = adapter(mlp())
    rec = {r.knob: r for r in ad.regularize({"optimizer": "rmsprop", "learning_rate": 0.02,
                                              "gradient_clip": 0.5}, frozenset())}  # fmt: skip
    assert type(ad.optimizer).__name__ == "RMSprop" and ad.base_lr == 0.02
    assert rec["gradient_clip"].applied and ad.grad_clip == 0.5
    with pytest.raises(ConfigError, match="unknown optimizer"):
        adapter(mlp()).regularize({"optimizer": "lion"}, frozenset())


def test_gradient_clipping_bounds_the_first_step():
    def first_step(clip):
        torch.manual_seed(0)
        params = {"optimizer": "sgd", "gradient_clip": clip, "learning_rate": 1.0}
        ad, _, X, y = ready(mlp(out=1), task=REG, params=params)
        before = torch.cat([p.detach().flatten().clone() for p in ad.model.parameters()])
        ad.fit(X, y * 100, {"batch_size": len(X)}, Hooks(ad, max_epochs=1, lr=lambda e: 1.0))
        after = torch.cat([p.detach().flatten() for p in ad.model.parameters()])
        return float((after - before).norm())

    assert first_step(0.01) == pytest.approx(0.01, rel=1e-3)  # lr * clip: SGD's first step is lr * grad
    assert first_step(0.0) > 1.0


# ----------------------------------------------------------------------------- loss and outputs


@pytest.mark.parametrize(
    "task, out, tail, kind, target",
    [
        (BINARY, 1, (), "bce", "binary"),
        (BINARY, 2, (), "ce", "index"),
        (MULTI, 3, (), "ce", "index"),
        (MULTI, 3, (nn.Softmax(dim=1),), "ce", "index"),
        (MULTI, 3, (nn.LogSoftmax(dim=1),), "ce", "index"),
        (BINARY, 1, (nn.Sigmoid(),), "bce", "binary"),
        (REG, 1, (), "mse", "float"),
        (REG2, 2, (), "mse", "float"),
    ],
)
def test_loss_inferred_from_task_and_output_and_training_lowers_it(task, out, tail, kind, target):
    torch.manual_seed(0)
    ad, _, X, y = ready(mlp(out=out, tail=tail), task=task, params={"label_smoothing": 0.0})
    assert (ad.loss.kind, ad.loss.target) == (kind, target)
    pred = ad.predict(X)
    assert pred.shape == (len(X), 2 if task.kind == "binary" else out)
    if task.is_classification:
        assert np.allclose(pred.sum(axis=1), 1.0, atol=1e-5) and (pred >= 0).all()

    def loss():
        with torch.no_grad():
            return float(ad.loss.fn(ad.model.eval()(torch.from_numpy(X)).float(), ad._targets(y)))

    start = loss()
    ad.fit(X, y, {"batch_size": 16}, Hooks(ad, max_epochs=5, lr=lambda e: 0.02))
    assert loss() < start


def test_label_smoothing_is_in_the_loss_and_user_losses():
    ad, rec, X, y = ready(mlp(), params={"label_smoothing": 0.2})
    assert ad.loss.label_smoothing == 0.2 and rec[0].applied
    with torch.no_grad():
        out = ad.model(torch.from_numpy(X)).float()
    plain = torch.nn.functional.cross_entropy(out, ad._targets(y))
    assert float(ad.loss.fn(out, ad._targets(y))) != pytest.approx(float(plain))
    reg = adapter(mlp(out=1), REG).regularize({"label_smoothing": 0.1}, frozenset())[0]
    assert not reg.applied and "classification only" in reg.detail
    with pytest.raises(ConfigError, match="regression loss"):
        ready(mlp(), params={}, loss="mae")


def test_custom_loss_is_used_for_training_and_for_the_recorded_loss():
    seen = []

    def l1(out, target):
        seen.append((out.dtype, target.dtype, tuple(target.shape)))
        return (out - target).abs().mean()

    ad, _, X, y = ready(mlp(out=1), task=REG, loss=l1)
    assert ad.loss.kind == "custom"
    ad.fit(X, y, {"batch_size": 16}, Hooks(ad, max_epochs=1))
    pred = ad.predict(X)
    assert ad.loss_value(y, pred) == pytest.approx(float(np.mean(np.abs(pred[:, 0] - y[:, 0]))), rel=1e-5)
    assert seen[-1] == (torch.float32, torch.float32, (len(X), 1))
    ad, rec, *_ = ready(mlp(), params={"augmentation": "mixup"}, loss=nn.CrossEntropyLoss())
    assert ad.loss.kind == "custom" and not rec[0].applied and "class indices" in rec[0].detail


@pytest.mark.parametrize(
    "model, task, match",
    [
        (mlp(out=4), MULTI, "y has 3 classes; end the model with nn.Linear\\(hidden, 3\\)"),
        (mlp(out=3), BINARY, "y has 2 classes"),
        (mlp(out=3), REG, "1 target column"),
        (nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (2, 3))), MULTI, "one vector per row"),
        (mlp(d=7), MULTI, "rows of shape \\(4,\\)"),
    ],
)
def test_dry_run_rejects_outputs_that_do_not_fit(model, task, match):
    ad = adapter(model, task)
    ad.regularize({}, frozenset())
    X, y = data(task=task)
    with pytest.raises(ModelError, match=match):
        ad.check_output(X[:8], y[:8])


def test_dry_run_rejects_tuple_outputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 3)

        def forward(self, x):
            return self.a(x), x

    ad = adapter(Two())
    ad.regularize({}, frozenset())
    with pytest.raises(ModelError, match="returned a tuple"):
        ad.check_output(*data())


# ----------------------------------------------------------------------------- the loop
# (its hooks and a saved state are checked for every adapter in tests/conformance)


def test_fit_leaves_the_model_in_eval_mode():
    ad, _, X, y = ready(mlp())
    ad.fit(X, y, {"batch_size": 16}, Hooks(ad, max_epochs=1))
    assert not ad.model.training


def test_same_seed_same_trial_on_cpu():
    X, y = data(n=96)
    ctx = TrialContext.create(
        lambda: mlp(),
        (X[:64], y[:64]),
        (X[64:], y[64:]),
        parse_objective("val_loss", MULTI),
        ("accuracy",),
        FitSettings(task=MULTI, max_epochs=3, seed=4),
    )
    params = {"dropout": 0.2, "batch_size": 16, "learning_rate": 0.01, "augmentation": "noise+mixup"}
    first, second = (run_trial(ctx, 2, params).record for _ in range(2))
    assert first.state == "complete" and first.epochs == second.epochs
    assert run_trial(ctx, 3, params).record.epochs != first.epochs  # another trial, another seed


def test_a_model_starting_with_an_embedding_gets_token_ids():
    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.head = nn.Embedding(20, 4), nn.Linear(4, 3)

        def forward(self, x):
            return self.head(self.emb(x).mean(dim=1))

    rng = np.random.default_rng(0)
    X, y = (
        rng.integers(0, 20, (48, 6)).astype(np.float32),
        rng.integers(0, 3, 48),
    )  # ids as prepare gives them
    ad = adapter(Bag())
    rec = ad.regularize({"augmentation": "noise+mixup"}, frozenset())[0]
    assert not rec.applied and "token ids" in rec.detail
    ad.check_output(X[:8], y[:8])
    ad.fit(X, y, {"batch_size": 16}, Hooks(ad, max_epochs=1))
    assert ad.predict(X).shape == (48, 3)


# ----------------------------------------------------------------------------- augmentation


@pytest.mark.parametrize(
    "kind, shape, names",
    [
        ("image", (8, 3, 12, 12), ("flip", "translate", "rotate", "zoom", "contrast", "cutout", "noise")),
        ("image", (8, 12, 12, 1), ("flip", "rotate", "cutout", "noise")),
        ("sequence", (8, 10, 2), ("noise", "shift", "mask")),
        ("tabular", (8, 5), ("noise",)),
    ],
)
def test_each_augmentation_changes_the_batch_and_keeps_its_shape(kind, shape, names):
    rng = np.random.default_rng(0)
    X = rng.uniform(0.1, 1.0, shape).astype(np.float32)
    t = torch.zeros(len(X), 3)
    for name in names:
        torch.manual_seed(1)
        fn = batch_augmenter(X, (name,), 1.0, kind, torch.device("cpu"))
        x, t2 = fn(torch.from_numpy(X), t)
        assert tuple(x.shape) == shape and torch.equal(t2, t)
        assert not torch.allclose(x, torch.from_numpy(X)), name


def test_mixup_mixes_inputs_and_soft_targets():
    X = np.arange(16, dtype=np.float32).reshape(8, 2)
    t = torch.nn.functional.one_hot(torch.arange(8) % 3, 3).float()
    torch.manual_seed(0)
    x, tm = batch_augmenter(X, ("mixup",), 1.0, "tabular", torch.device("cpu"))(torch.from_numpy(X), t)
    assert torch.allclose(tm.sum(dim=1), torch.ones(8)) and not torch.equal(tm, t)
    assert not torch.equal(x, torch.from_numpy(X))


@pytest.mark.parametrize("first", [True, False])
def test_image_noise_is_scaled_per_channel_in_either_layout(first):
    X = np.ones((8, 2, 6, 6), dtype=np.float32)
    X[:, 0] = np.random.default_rng(0).standard_normal((8, 6, 6))  # channel 1 is constant
    X = X if first else X.transpose(0, 2, 3, 1).copy()
    x, _ = batch_augmenter(X, ("noise",), 1.0, "image", torch.device("cpu"))(torch.from_numpy(X), None)
    changed = (x != torch.from_numpy(X)).numpy()
    per_channel = changed.mean(axis=(0, 2, 3) if first else (0, 1, 2))
    assert per_channel[0] == 1.0 and per_channel[1] == 0.0


def test_image_layout_detection():
    assert channels_first((3, 32, 32)) and channels_first((1, 28, 28))
    assert not channels_first((32, 32, 3)) and not channels_first((8, 8, 1))


@pytest.mark.parametrize("policy", ["flip+rotate+cutout+mixup", "contrast+zoom"])
def test_cnn_trains_with_image_augmentation(policy):
    task = TaskInfo("multiclass", 3, (0, 1, 2), input_kind="image", input_shape=(1, 8, 8))
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (32, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    ad = adapter(model, task)
    rec = ad.regularize({"augmentation": policy, "augment_strength": 0.5}, frozenset())[0]
    assert rec.applied and "batch tensor ops" in rec.detail
    ad.check_output(X[:8], y[:8])
    hooks = Hooks(ad, max_epochs=1)
    ad.fit(X, y, {"batch_size": 8}, hooks)
    assert len(hooks.batch_losses) == 4 and np.isfinite(hooks.batch_losses).all()


# ----------------------------------------------------------------------------- data and devices


class Pairs(torch.utils.data.Dataset):
    def __init__(self, X, y, broken=None):
        self.X, self.y, self.broken = torch.from_numpy(X), torch.from_numpy(y), broken

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        if self.broken == "dict":
            return {"x": self.X[i], "y": self.y[i]}
        if self.broken == "shape" and i == 5:
            return self.X[i][:2], self.y[i]
        return self.X[i], self.y[i]


def test_a_torch_dataset_is_accepted_as_data():
    X, y = data(n=150)
    result = tune(
        lambda: mlp(),
        {"train": Pairs(X[:120], y[:120]), "validation": Pairs(X[120:], y[120:])},
        space={"knobs": {"learning_rate": 0.01, "batch_size": 32, "patience": 0}},
        n_trials=1,
        max_epochs=2,
        test=None,
        tracking=False,
        progress=False,
        baselines=False,
    )
    assert result.task.kind == "multiclass" and result.trials["state"].tolist() == ["complete"]


def test_a_dataset_with_the_wrong_structure_is_refused():
    X, y = data()
    Xa, ya = dataset_arrays(Pairs(X, y), "train")
    assert np.array_equal(Xa, X) and np.array_equal(ya, y)
    with pytest.raises(DataError, match="item 0 is a dict; each item must be an \\(input, target\\) pair"):
        tune(lambda: mlp(), Pairs(X, y, broken="dict"), n_trials=1, tracking=False, progress=False)
    with pytest.raises(DataError, match="item 5 has an input of shape \\(2,\\) but item 0 has \\(4,\\)"):
        dataset_arrays(Pairs(X, y, broken="shape"), "train")

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from zip(X, y)

    with pytest.raises(DataError, match="map-style Dataset"):
        dataset_arrays(Stream(), "train")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_requested_where_there_is_none_is_refused_before_any_trial():
    calls = []

    def build():
        calls.append(1)
        return mlp()

    X, y = data(n=100)
    with pytest.raises(ConfigError, match="asks for a GPU, but torch sees none"):
        tune(build, (X, y), device="cuda", n_trials=2, tracking=False, progress=False)
    assert len(calls) == 1
    with pytest.raises(ConfigError, match="not a torch device"):
        adapter(mlp(), device="gpu0")
    assert adapter(mlp(), device="cpu").device.type == "cpu"


def test_an_optuna_style_builder_declares_its_own_search():
    def build(hp):
        width = hp.suggest_int("width", 4, 16, step=4)
        act = hp.suggest_categorical("act", ["relu", "tanh"])
        return nn.Sequential(
            nn.Linear(4, width), nn.ReLU() if act == "relu" else nn.Tanh(), nn.Linear(width, 3)
        )

    X, y = data(n=120)
    result = tune(build, (X, y), space="quick", n_trials=3, max_epochs=2, tracking=False, progress=False,
                  baselines=False)  # fmt: skip
    assert result.best_params["width"] in (4, 8, 12, 16) and result.best_params["act"] in ("relu", "tanh")
    assert {"params_width", "params_act"} <= set(result.trials.columns)


def test_result_trials_say_what_each_knob_did_to_the_model():
    X, y = data(n=120)
    space = {"knobs": {"dropout": {"low": 0.1, "high": 0.5}, "l2": 1e-4}}
    result = tune(lambda: SubclassMLP(), (X, y), space=space, n_trials=2, max_epochs=1, tracking=False,
                  progress=False, baselines=False)  # fmt: skip
    applied = result.trials["applied"].tolist()
    assert all("dropout: dropout" in a and "hidden modules (fc1, fc2)" in a and "l2: " in a for a in applied)
    assert result.trials["not_applied"].isna().all()

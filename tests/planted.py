"""Planted datasets and small numpy models for the evaluation, baseline and diagnosis tests.

Each dataset is built so that one pattern is present (or absent) by construction; the models
extend the numpy fake adapter of ``tests/fakes.py`` (fast, no framework).
"""

from __future__ import annotations

import contextlib

import numpy as np

from tests.fakes import NumpyAdapter, NumpyModel
from tuner.records import Injection

ADAPTERS = ["tests.planted:PlantedAdapter", "tests.planted:PriorAdapter", "tests.fakes:NumpyAdapter"]

#: a small space for the planted models: the learning rate and L2 matter, the rest is fixed
SPACE = {
    "knobs": {
        "learning_rate": {"low": 0.05, "high": 0.5, "log": True},
        "l2": {"low": 1e-6, "high": 1e-2, "log": True},
        "batch_size": 32,
        "patience": 3,
    }
}


def install(monkeypatch) -> None:
    """Put the planted adapters first for one test, with an empty build log."""
    from tuner.adapters import base

    monkeypatch.setattr(base, "ADAPTERS", [*ADAPTERS, *base.ADAPTERS])
    PlantedModel.log = []


@contextlib.contextmanager
def installed():
    """The planted adapters first for a block: for module-scoped fixtures, which have no monkeypatch."""
    from tuner.adapters import base

    base.ADAPTERS[:0] = ADAPTERS
    try:
        yield
    finally:
        del base.ADAPTERS[: len(ADAPTERS)]


class PlantedModel(NumpyModel):
    """A NumpyModel with its own learning rate, optional quadratic features, and a fit log."""

    log: list[dict] = []  # class-level: every fit call, for "same rows" checks

    def __init__(self, n_in, n_out, *, lr=0.3, quadratic=False, noise_scale=3.0):
        self.quadratic = quadratic
        width = n_in + (n_in * (n_in + 1) // 2 if quadratic else 0)
        super().__init__(width, n_out)
        self.lr, self.noise_scale = lr, noise_scale


def expand(X, quadratic):
    if not quadratic:
        return X
    i, j = np.triu_indices(X.shape[1])
    return np.hstack([X, X[:, i] * X[:, j]])


class PlantedAdapter(NumpyAdapter):
    """Quadratic features when asked, noise augmentation (strength x noise_scale x std), a fit log."""

    @classmethod
    def accepts(cls, model):
        return isinstance(model, PlantedModel)

    @property
    def base_lr(self):
        return self.model.lr

    def regularize(self, params, builder_read):
        out = super().regularize(params, builder_read)
        if "augmentation" in params:
            out.append(Injection("augmentation", True, f"{params['augmentation']} on the inputs"))
        return out

    def fit(self, X, y, params, hooks):
        m = self.model
        PlantedModel.log.append({"rows": _rows(X), "params": dict(params), "seed": self.settings.seed})
        Xf = expand(X, m.quadratic)
        if params.get("augmentation") != "noise":
            return super().fit(Xf, y, params, hooks)
        rng = np.random.default_rng(self.settings.seed + 1)
        std = Xf.std(axis=0) * float(params.get("augment_strength", 0.5)) * m.noise_scale
        for epoch in range(hooks.max_epochs):  # fresh noise every epoch
            shim = _OneEpoch(hooks, epoch)
            super().fit(Xf + rng.normal(0, 1, Xf.shape) * std, y, params, shim)
            if shim.stop:
                break

    def predict(self, X):
        return super().predict(expand(X, self.model.quadratic))

    def check_output(self, X, y):
        return super().check_output(expand(X, self.model.quadratic), y)


class _OneEpoch:
    max_epochs = 1

    def __init__(self, hooks, epoch):
        self.hooks, self.epoch, self.stop = hooks, epoch, False

    def learning_rate(self, e):
        return self.hooks.learning_rate(self.epoch)

    def epoch_end(self, e):
        self.stop = self.hooks.epoch_end(self.epoch)
        return True


def _rows(X):
    return frozenset(map(bytes, np.ascontiguousarray(X.reshape(len(X), -1))))


class PriorModel:
    """Predicts the class frequencies of the rows it was fit on: a model computable by hand."""

    def __init__(self, k):
        self.k = k
        self.p = np.full(k, 1.0 / k)


class PriorAdapter(NumpyAdapter):
    @classmethod
    def accepts(cls, model):
        return isinstance(model, PriorModel)

    def regularize(self, params, builder_read):
        return []

    def check_output(self, X, y):
        return None

    def fit(self, X, y, params, hooks):
        for epoch in range(hooks.max_epochs):
            hooks.learning_rate(epoch)
            self.model.p = np.bincount(y, minlength=self.model.k) / len(y)
            if hooks.epoch_end(epoch):
                break

    def predict(self, X):
        return np.tile(self.model.p, (len(X), 1))

    def get_state(self):
        return self.model.p.copy()

    def set_state(self, state):
        self.model.p = state.copy()


# ----------------------------------------------------------------------------- datasets


def blobs(n=600, k=3, d=5, spread=1.2, seed=0):
    """Well separated Gaussian classes: a linear model does well, and generalizes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centers = rng.normal(0, 2.5, (k, d))
    return (centers[y] + rng.normal(0, spread, (n, d))).astype(np.float32), y


def xor(n=600, seed=0):
    """Labels from the sign of x0 * x1: no linear model can do better than chance."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    return X, (X[:, 0] * X[:, 1] > 0).astype(np.int64)


def wide(n=120, d=60, flip=0.15, seed=0):
    """More features than the model can use honestly: a linear model memorizes the training rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, d)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    flipped = rng.random(n) < flip
    y[flipped] = 1 - y[flipped]
    return X, y


def noise_labels(n=1260, d=10, seed=0):
    """Labels independent of the features: nothing is learnable."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, d)).astype(np.float32), rng.integers(0, 2, n)


def separable(n, seed, flip=0.0, margin=0.5):
    """Two classes split by a margin along x0; ``flip`` of the labels flipped."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(0, 1, (n, 4)).astype(np.float32)
    X[:, 0] = (np.abs(X[:, 0]) + margin) * np.where(y == 1, 1, -1)
    flipped = rng.random(n) < flip
    y = np.where(flipped, 1 - y, y)
    return X, y

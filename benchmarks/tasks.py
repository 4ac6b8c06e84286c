"""Benchmark tasks: small, overfitting-prone problems that ship with scikit-learn or are generated.

Every task gives, for a seed, one :class:`Split` (train / validation / test) that every method
sees unchanged, so all methods are judged on the same test rows. Features are standardized with
the training part's statistics (what a practitioner does before a neural net), regression targets
too (R² does not change). Images are ``(n, 8, 8, 1)``; the torch builders get them channels-first
through :meth:`Split.arrays`. Sequences are ``(n, steps, features)`` for both frameworks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Task", "Split", "TASKS", "CORE", "WIDE", "get_task", "task_names"]

Pair = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Split:
    """One seed's parts of a task; ``metric`` is ``accuracy`` (classification) or ``r2``."""

    task: str
    kind: str  # binary | multiclass | regression
    input_kind: str  # tabular | image | sequence
    train: Pair
    validation: Pair
    test: Pair
    n_classes: int = 0

    @property
    def metric(self) -> str:
        return "r2" if self.kind == "regression" else "accuracy"

    @property
    def n_features(self) -> int:
        return int(np.prod(self.train[0].shape[1:]))

    @property
    def n_out(self) -> int:
        """Output units of the user's model: 1 logit (binary), K logits, or 1 value."""
        return self.n_classes if self.kind == "multiclass" else 1

    def arrays(self, framework: str) -> tuple[Pair, Pair, Pair]:
        """The three parts in the layout ``framework`` expects (torch images channels-first)."""
        if framework == "torch" and self.input_kind == "image":
            return tuple((np.ascontiguousarray(X.transpose(0, 3, 1, 2)), y) for X, y in self.parts())
        return self.parts()

    def parts(self) -> tuple[Pair, Pair, Pair]:
        return self.train, self.validation, self.test

    def data(self, framework: str) -> dict[str, Pair]:
        """The mapping handed to ``tune()``: explicit train, validation and test pairs."""
        tr, va, te = self.arrays(framework)
        return {"train": tr, "validation": va, "test": te}


@dataclass(frozen=True)
class Task:
    """A named problem: how to load it, what it is, and the preset a user would pick for it."""

    name: str
    kind: str
    input_kind: str
    space: str  # the regtuner preset a reader of the README picks for such data
    load: Callable[[], tuple[np.ndarray, np.ndarray]]
    sizes: tuple[float | int, float | int]  # (train, validation): fractions or row counts; rest is test
    about: str

    def split(self, seed: int) -> Split:
        X, y = self.load()
        n = len(X)
        tr_n, va_n = (int(round(s * n)) if isinstance(s, float) else int(s) for s in self.sizes)
        order = _stratified_order(y, seed) if self.kind != "regression" else _shuffled(n, seed)
        tr, va, te = order[:tr_n], order[tr_n : tr_n + va_n], order[tr_n + va_n :]
        X = X.astype(np.float32)
        if self.input_kind == "image":
            X = X / 16.0  # digits' pixel range is 0..16
        else:
            axes = (0,) if X.ndim == 2 else (0, 1)
            mu, sd = X[tr].mean(axis=axes, keepdims=True), X[tr].std(axis=axes, keepdims=True) + 1e-8
            X = (X - mu) / sd
        if self.kind == "regression":
            y = ((y - y[tr].mean()) / (y[tr].std() + 1e-12)).astype(np.float32)
        else:
            y = y.astype(np.int64)
        n_classes = int(len(np.unique(y))) if self.kind != "regression" else 0
        return Split(
            self.name, self.kind, self.input_kind, (X[tr], y[tr]), (X[va], y[va]), (X[te], y[te]), n_classes
        )


def _shuffled(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(10_000 + seed).permutation(n)


def _stratified_order(y: np.ndarray, seed: int) -> np.ndarray:
    """A permutation in which every prefix has (about) the class proportions of ``y``."""
    rng = np.random.default_rng(10_000 + seed)
    keyed = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        keyed += [((i + rng.random()) / len(idx), j) for i, j in enumerate(idx)]
    keyed.sort()
    return np.array([j for _, j in keyed])


# ----------------------------------------------------------------------------- loaders


def _sk(name: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def load() -> tuple[np.ndarray, np.ndarray]:
        from sklearn import datasets

        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        return np.asarray(X, dtype=np.float64), np.asarray(y)

    return load


def _digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = _sk("digits")()
    return X.reshape(-1, 8, 8, 1), y


def _linear_plus() -> tuple[np.ndarray, np.ndarray]:
    """Mostly linear: 20 features, 10 informative; a small sin() part a linear model cannot fit."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(500, 20))
    w = np.zeros(20)
    w[:10] = rng.normal(size=10)
    y = X @ w + 0.8 * np.sin(2.0 * X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + rng.normal(scale=0.6, size=500)
    return X, y


def _noisy_labels() -> tuple[np.ndarray, np.ndarray]:
    """Binary, 20 features (6 informative), 20 % of labels flipped in every part."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=800,
        n_features=20,
        n_informative=6,
        n_redundant=4,
        flip_y=0.2,
        class_sep=1.0,
        random_state=3,
    )
    return X, y


def _motif() -> tuple[np.ndarray, np.ndarray]:
    """Noisy sequences of 40 steps; class 1 carries a 6-step motif at a random position."""
    rng = np.random.default_rng(11)
    n, steps = 700, 40
    X = rng.normal(size=(n, steps, 1))
    y = rng.integers(0, 2, size=n)
    motif = np.array([0.0, 1.0, 2.0, 1.0, -1.0, -2.0]) * 0.9
    for i in np.flatnonzero(y == 1):
        at = rng.integers(0, steps - len(motif))
        X[i, at : at + len(motif), 0] += motif
    return X, y


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("breast_cancer", "binary", "tabular", "small_data", _sk("breast_cancer"), (0.4, 0.2),
             "569 x 30, binary"),
        Task("wine", "multiclass", "tabular", "small_data", _sk("wine"), (0.4, 0.2), "178 x 13, 3 classes"),
        Task("digits", "multiclass", "image", "vision", _digits, (300, 200),
             "8x8 images, 10 classes, 300 training rows"),
        Task("diabetes", "regression", "tabular", "small_data", _sk("diabetes"), (0.4, 0.2),
             "442 x 10, regression"),
        Task("linear_plus", "regression", "tabular", "small_data", _linear_plus, (0.4, 0.2),
             "500 x 20, linear + small nonlinear part"),
        Task("noisy_labels", "binary", "tabular", "tabular", _noisy_labels, (0.4, 0.2),
             "800 x 20, 20 % flipped labels"),
        Task("motif", "binary", "sequence", "sequence", _motif, (0.4, 0.2),
             "700 x 40 steps, planted motif"),
    )
}  # fmt: skip


def _wide_tasks() -> dict[str, Task]:
    """R's classic data sets (:mod:`benchmarks.datasets`), searched with the ``default`` preset:
    what ``tune(build_model, data)`` does when the user names no preset."""
    from benchmarks.datasets import SOURCES, loader

    return {
        s.name: Task(s.name, s.kind, "tabular", "default", loader(s), (0.4, 0.2), f"{s.item}, {s.about}")
        for s in SOURCES
    }


CORE: tuple[str, ...] = tuple(TASKS)  # the first 7: the default of ``python -m benchmarks.run``
_REAL = _wide_tasks()
TASKS.update(_REAL)
# the wide benchmark (issue 18): every real data set, the image and the sequence task
WIDE: tuple[str, ...] = (
    *_REAL, "breast_cancer", "wine", "diabetes", "digits", "motif",
)  # fmt: skip


def task_names() -> list[str]:
    return list(CORE)


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise SystemExit(f"unknown task {name!r}; choose from {', '.join(TASKS)}") from None

"""A tiny numpy model and adapter for fast orchestration tests (no ML framework), and ``Hooks``:
the fake epoch hooks the adapter tests of the real frameworks pass to ``fit``.
"""

from __future__ import annotations

import time

import numpy as np

from tuner.adapters.base import Adapter
from tuner.errors import ModelError, TrialPruned
from tuner.records import Injection

#: how long a ``hang_at`` model sleeps: long enough to be a hang for any trial_timeout test
HANG = 60.0


#: a space for the fake model: L2, learning rate and batch size searched
SPACE = {
    "knobs": {
        "l2": {"type": "float", "low": 1e-6, "high": 1e-1, "log": True},
        "learning_rate": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
        "batch_size": [16, 32],
        "patience": 3,
    }
}


class NumpyModel:
    """Softmax or linear regression trained by minibatch gradient descent."""

    def __init__(self, n_in, n_out, *, fail_at=None, nan_at=None, sleep=0.0, hang_at=None):
        rng = np.random.default_rng(0)
        self.W = rng.normal(0, 0.01, (n_in, n_out))
        self.b = np.zeros(n_out)
        self.fail_at, self.nan_at, self.sleep = fail_at, nan_at, sleep
        self.hang_at = hang_at  # epoch at which fit hangs (sleeps HANG seconds)
        self.l2 = 0.0


class NumpyAdapter(Adapter):
    framework = "numpy"
    extra = "core"

    @classmethod
    def accepts(cls, model):
        return isinstance(model, NumpyModel)

    def regularize(self, params, builder_read):
        out = []
        if "l2" in params and "l2" not in builder_read:
            self.model.l2 = float(params["l2"])
            out.append(Injection("l2", True, f"L2 {self.model.l2:g} on W"))
        if "dropout" in params:
            out.append(Injection("dropout", False, "not applicable to a linear model"))
        return out

    def _k(self):
        return self.task.n_classes if self.task.is_classification else self.task.n_outputs

    def check_output(self, X, y):
        if self.model.W.shape[1] != self._k():
            raise ModelError(f"model outputs {self.model.W.shape[1]} values, task needs {self._k()}")

    def fit(self, X, y, params, hooks):
        m, bs = self.model, int(params.get("batch_size", 32))
        rng = np.random.default_rng(self.settings.seed)
        for epoch in range(hooks.max_epochs):
            lr = hooks.learning_rate(epoch)
            if m.fail_at == epoch:
                raise ValueError(f"shape error at epoch {epoch}")
            if m.sleep:
                time.sleep(m.sleep)
            if m.hang_at == epoch:
                time.sleep(HANG)
            order = rng.permutation(len(X))
            for i in range(0, len(X), bs):
                idx = order[i : i + bs]
                xb, yb = X[idx], y[idx]
                out = xb @ m.W + m.b
                if self.task.is_classification:
                    p = np.exp(out - out.max(1, keepdims=True))
                    p /= p.sum(1, keepdims=True)
                    p[np.arange(len(yb)), yb] -= 1
                    grad = p / len(yb)
                else:
                    grad = (out - yb.reshape(len(yb), -1)) * 2 / len(yb)
                m.W -= lr * (xb.T @ grad + 2 * m.l2 * m.W)
                m.b -= lr * grad.sum(0)
            if m.nan_at == epoch:
                m.W[:] = np.nan
            if hooks.epoch_end(epoch):
                break

    def predict(self, X):
        out = X @ self.model.W + self.model.b
        if not self.task.is_classification:
            return out
        p = np.exp(out - out.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    def get_state(self):
        return self.model.W.copy(), self.model.b.copy()

    def set_state(self, state):
        self.model.W, self.model.b = state[0].copy(), state[1].copy()


def blobs(n=300, k=3, d=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centers = rng.normal(0, 2, (k, d))
    X = (centers[y] + rng.normal(0, 1.5, (n, d))).astype(np.float32)
    return X, y


class Hooks:
    """A minimal stand-in for the runner's EpochMonitor, for the tests of a real framework's adapter.

    It records the calls (``events``), the rate the framework's optimizer holds at each epoch's end
    (``seen_lr``), the batch losses, and the predictions on ``X`` when given; it stops after epoch
    ``stop_after`` and raises TrialPruned at epoch ``raise_at``.
    """

    def __init__(self, ad, max_epochs=3, lr=lambda e: 0.01, stop_after=None, raise_at=None, X=None):
        self.ad, self.max_epochs, self.lr = ad, max_epochs, lr
        self.stop_after, self.raise_at, self.X = stop_after, raise_at, X
        self.events, self.seen_lr, self.batch_losses, self.preds = [], [], [], []

    @property
    def ends(self):
        """How many epochs ended."""
        return sum(kind == "end" for kind, _ in self.events)

    def learning_rate(self, epoch):
        self.events.append(("begin", epoch))
        return self.lr(epoch)

    def batch_loss(self, value):
        self.batch_losses.append(value)

    def epoch_end(self, epoch):
        self.events.append(("end", epoch))
        self.seen_lr.append(optimizer_lr(self.ad))
        if self.X is not None:
            self.preds.append(self.ad.predict(self.X))
        if self.raise_at == epoch:
            raise TrialPruned("pruned by the fake hooks")
        return self.stop_after is not None and epoch >= self.stop_after


def optimizer_lr(ad):
    """The learning rate the adapter's optimizer holds now; None for a scikit-learn model without one."""
    if ad.framework == "keras":
        return float(np.asarray(ad.model.optimizer.learning_rate))
    if ad.framework == "torch":
        return ad.optimizer.param_groups[0]["lr"]
    opt = getattr(ad._final, "_optimizer", None)  # scikit-learn: the MLPs' SGD/Adam only
    return None if opt is None else opt.learning_rate_init

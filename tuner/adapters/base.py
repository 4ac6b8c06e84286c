"""The adapter contract: one small base class per framework.

An adapter wraps the model a builder returned and does the framework's part of a
trial: inject the regularization knobs the builder did not apply, train epoch by
epoch under the tuner's :class:`EpochHooks`, and predict in inference mode. Every
number the study records is computed from :meth:`Adapter.predict`, framework-neutrally.

Adding a framework means writing one module with an ``Adapter`` subclass, listing it
in :data:`ADAPTERS`, and passing the conformance suite in ``tests/conformance``.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from tuner.data.tables import Table
from tuner.errors import ModelError
from tuner.records import Injection, TaskInfo

__all__ = [
    "Adapter",
    "EpochHooks",
    "FitSettings",
    "ADAPTERS",
    "adapter_for",
    "mro_modules",
    "builder_applied",
]

# "module:Class" of every adapter, tried in order. Modules are imported only when a
# model that may belong to them shows up, so no framework loads with ``import tuner``.
ADAPTERS: list[str] = [
    "tuner.adapters.keras.adapter:KerasAdapter",
    "tuner.adapters.torch.adapter:TorchAdapter",
    "tuner.adapters.sklearn.adapter:SklearnAdapter",
]


def builder_applied(knob: str) -> Injection:
    """The record of a knob the builder applied itself (it read ``hp.<knob>``)."""
    return Injection(knob, True, f"build_model applied it (it read hp.{knob}); nothing injected")


class EpochHooks(Protocol):
    """What the tuner gives :meth:`Adapter.fit`; the runner implements it."""

    max_epochs: int

    def learning_rate(self, epoch: int) -> float:
        """The learning rate to use during ``epoch`` (0-based); call at epoch start."""

    def epoch_end(self, epoch: int) -> bool:
        """Evaluate after ``epoch``; True means stop training now."""

    def batch_loss(self, value: float) -> None:
        """Optional: a training-batch loss, to stop at once when it turns NaN/inf."""


@dataclass(frozen=True)
class FitSettings:
    """Study-wide settings an adapter needs; picklable so Ray workers get them too."""

    task: TaskInfo
    max_epochs: int = 50
    loss: str | Callable[..., Any] | None = None  # user override of the inferred loss
    seed: int = 0
    device: str | None = None  # torch: "cpu", "cuda", "cuda:1"; None picks
    verbose: int = 0
    table: Table | None = None  # X is a raw table (text, missing values) the model gets as is
    target_scale: tuple[Any, Any] | None = None  # (mean, std) of a standardized regression target


def mro_modules(obj: object) -> frozenset[str]:
    """Top-level package names of every class in ``type(obj).__mro__``."""
    return frozenset(c.__module__.split(".")[0] for c in type(obj).__mro__)


class Adapter(abc.ABC):
    """One framework's way to regularize, train and predict with a built model.

    Targets handed to :meth:`fit` are encoded: class indices ``0..K-1`` (int) for
    classification, float32 of shape ``(n,)`` or ``(n, d)`` for regression.
    :meth:`predict` returns class probabilities ``(n, K)`` (binary: ``K == 2``) or
    regression values ``(n, d)``.
    """

    framework: ClassVar[str]
    extra: ClassVar[str]  # the pip extra that installs the framework
    takes_tables: ClassVar[bool] = False  # the model can take a raw table (FitSettings.table)

    def __init__(self, model: Any, settings: FitSettings) -> None:
        self.model = model
        self.settings = settings
        self.task = settings.task

    @classmethod
    @abc.abstractmethod
    def accepts(cls, model: object) -> bool:
        """True when ``model`` belongs to this framework. Must not import it."""

    @abc.abstractmethod
    def regularize(self, params: Mapping[str, Any], builder_read: frozenset[str]) -> list[Injection]:
        """Apply this trial's knobs; knobs in ``builder_read`` were applied by the builder.

        Returns one :class:`Injection` per knob saying what was done or why not.
        """

    @abc.abstractmethod
    def check_output(self, X: np.ndarray, y: np.ndarray) -> None:
        """One-batch dry run: raise :class:`ModelError` when the output cannot fit ``y``."""

    @abc.abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any], hooks: EpochHooks) -> None:
        """Train up to ``hooks.max_epochs`` epochs with ``params['batch_size']``.

        Calls ``hooks.learning_rate(e)`` before and ``hooks.epoch_end(e)`` after each
        epoch ``e``, and stops when it returns True.
        """

    @abc.abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Inference-mode predictions in the standard form above."""

    @abc.abstractmethod
    def get_state(self) -> Any:
        """A copy of the trainable state (weights), for restoring the best epoch."""

    @abc.abstractmethod
    def set_state(self, state: Any) -> None:
        """Restore a state returned by :meth:`get_state`."""

    def loss_value(self, y: np.ndarray, pred: np.ndarray) -> float | None:
        """The training loss on predictions, for losses the metrics module does not know.

        Return None to let the tuner compute the standard loss for the task.
        """
        return None

    def user_learning_rate(self) -> tuple[float, str, bool] | None:
        """The learning rate the user's model carries (a compiled optimizer), that optimizer's class
        name, and whether it adapts its steps (Adam, RMSprop...); None when the model carries none."""
        return None

    def for_user(self) -> Any:
        """The trained model as ``Result.best_model``: ready for the user's next line of code, on the
        inputs and labels they gave ``tune()`` (no tuning-only loss, target format or mode left)."""
        return self.model

    def release(self) -> None:
        """Free framework memory held by this trial (sessions, graphs, caches)."""
        self.model = None


def _load(path: str) -> type[Adapter]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def adapter_for(model: object) -> type[Adapter]:
    """The adapter class for what a builder returned, or a :class:`ModelError`."""
    for path in ADAPTERS:
        try:
            cls = _load(path)
        except ImportError:  # an adapter module that is not written or not importable
            continue
        if cls.accepts(model):
            return cls
    raise ModelError(
        f"build_model returned {type(model).__module__}.{type(model).__qualname__}, "
        "which is not a model regtuner can train. Return a keras.Model, a torch.nn.Module "
        "or a scikit-learn estimator from build_model."
    )

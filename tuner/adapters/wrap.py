"""The adapter a trial uses: the framework's own, refusing a raw table it cannot take, and wrapped in
:class:`ScaledTarget` when the study standardizes a regression target (``tune(preprocess=True)``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tuner.adapters.base import Adapter, EpochHooks, FitSettings, adapter_for
from tuner.errors import DataError
from tuner.records import Injection

__all__ = ["make_adapter", "ScaledTarget"]


def make_adapter(model: object, settings: FitSettings) -> Adapter:
    """The adapter of a built ``model`` under the study's ``settings``."""
    cls = adapter_for(model)
    if settings.table is not None and not cls.takes_tables:
        raise DataError(settings.table.problem)
    adapter = cls(model, settings)
    return adapter if settings.target_scale is None else ScaledTarget(adapter, settings.target_scale)


class ScaledTarget(Adapter):
    """Trains the wrapped adapter on ``(y - mean) / std`` and predicts in the target's own units, so
    every loss, metric and prediction the study records is in the user's units."""

    def __init__(self, inner: Adapter, scale: tuple[np.ndarray, np.ndarray]) -> None:
        self.inner = inner
        self.settings, self.task = inner.settings, inner.task
        self.framework = inner.framework  # type: ignore[misc]
        self.extra = inner.extra  # type: ignore[misc]
        self.mean, self.std = (np.asarray(v, dtype=np.float64) for v in scale)

    def __getattr__(self, name: str) -> Any:  # the wrapped adapter's own attributes (base_lr...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property  # type: ignore[override]
    def model(self) -> Any:
        return self.inner.model

    @classmethod
    def accepts(cls, model: object) -> bool:
        return False

    def _scaled(self, y: np.ndarray) -> np.ndarray:
        return ((np.asarray(y, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def _units(self, pred: np.ndarray) -> np.ndarray:
        return np.asarray(pred, dtype=np.float64) * self.std + self.mean

    def regularize(self, params: Mapping[str, Any], builder_read: frozenset[str]) -> list[Injection]:
        return self.inner.regularize(params, builder_read)

    def check_output(self, X: np.ndarray, y: np.ndarray) -> None:
        self.inner.check_output(X, self._scaled(y))

    def fit(self, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any], hooks: EpochHooks) -> None:
        self.inner.fit(X, self._scaled(y), params, hooks)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._units(self.inner.predict(X))

    def get_state(self) -> Any:
        return self.inner.get_state()

    def set_state(self, state: Any) -> None:
        self.inner.set_state(state)

    def loss_value(self, y: np.ndarray, pred: np.ndarray) -> float | None:
        return self.inner.loss_value(self._scaled(y), (np.asarray(pred) - self.mean) / self.std)

    def user_learning_rate(self) -> tuple[float, str, bool] | None:
        return self.inner.user_learning_rate()

    def for_user(self) -> Any:
        return self.inner.for_user()

    def release(self) -> None:
        self.inner.release()

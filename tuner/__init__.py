"""regtuner: find the regularization settings that make a neural network generalize.

``from tuner import tune``. Frameworks (Keras, torch, Ray) and MLflow load lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "tune",
    "lr_range_test",
    "Result",
    "HyperParameters",
    "SearchSpace",
    "TunerError",
    "ConfigError",
    "DataError",
    "ModelError",
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "Tracker",
    "__version__",
]

if TYPE_CHECKING:
    from tuner.api import tune
    from tuner.errors import ConfigError, DataError, ModelError, TunerError
    from tuner.executors import Executor, LocalExecutor, RayExecutor
    from tuner.insight.lr_range import lr_range_test
    from tuner.insight.result import Result
    from tuner.space.hp import HyperParameters
    from tuner.space.searchspace import SearchSpace
    from tuner.tracking import Tracker

_LAZY = {
    "tune": "tuner.api",
    "lr_range_test": "tuner.insight.lr_range",
    "Result": "tuner.insight.result",
    "HyperParameters": "tuner.space.hp",
    "SearchSpace": "tuner.space.searchspace",
    "TunerError": "tuner.errors",
    "ConfigError": "tuner.errors",
    "DataError": "tuner.errors",
    "ModelError": "tuner.errors",
    "Executor": "tuner.executors",
    "LocalExecutor": "tuner.executors",
    "RayExecutor": "tuner.executors",
    "Tracker": "tuner.tracking",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")

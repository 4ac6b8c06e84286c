"""Lazy imports of optional packages with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from tuner.errors import MissingDependencyError

# import name -> the extra that installs it
_EXTRAS = {
    "tensorflow": "keras",
    "keras": "keras",
    "torch": "torch",
    "ray": "ray",
    "mlflow": "core",
    "optuna": "core",
    "sklearn": "core",
    "matplotlib": "core",
}


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise an ImportError naming the pip command that fixes it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = extra or _EXTRAS.get(top, "all")
        hint = "pip install regtuner" if extra == "core" else f'pip install "regtuner[{extra}]"'
        raise MissingDependencyError(
            f"{module!r} is needed for this and is not installed ({exc}). Install it with: {hint}"
        ) from exc

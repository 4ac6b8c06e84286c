"""Executors run a study's trials: here, one after another (``local``), or on a Ray cluster (``ray``)."""

from __future__ import annotations

from tuner.errors import ConfigError
from tuner.executors.base import Executor, StudyJob
from tuner.executors.local import LocalExecutor
from tuner.executors.ray import RayExecutor

__all__ = ["Executor", "StudyJob", "LocalExecutor", "RayExecutor", "get_executor"]


def get_executor(executor: str | Executor) -> Executor:
    """``"local"``, ``"ray"`` (Ray on this machine, default settings) or an :class:`Executor` as given."""
    if isinstance(executor, Executor):
        return executor
    if executor == "local":
        return LocalExecutor()
    if executor == "ray":
        return RayExecutor()
    raise ConfigError(
        f"executor must be 'local', 'ray' or an Executor such as RayExecutor(resources_per_trial=...), "
        f"got {executor!r}."
    )

"""The Ray executor: Ray Tune spreads the trials, Optuna searches, ASHA stops poor trials.

Ray itself loads when a study runs, not when this package is imported.
"""

from tuner.executors.ray.executor import RayExecutor

__all__ = ["RayExecutor"]

"""scikit-learn: regularization routed to the estimator's parameters; MLPs epoch by epoch."""

from tuner.adapters.sklearn.adapter import SklearnAdapter

__all__ = ["SklearnAdapter"]

"""Data where it enters: validation, task inference, splits and folds, fingerprints, torch Datasets."""

from tuner.data.prepare import PreparedData, prepare

__all__ = ["PreparedData", "prepare"]

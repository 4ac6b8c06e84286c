"""Tracking: the study's trials written to MLflow, live and from the stored records.

:func:`make_tracker` picks the :class:`Tracker` for ``tune(tracking=...)``.
"""

from __future__ import annotations

import importlib.util

from tuner._imports import require
from tuner.errors import ConfigError
from tuner.redact import redact_uri
from tuner.tracking.base import (
    NullTracker,
    StudyInfo,
    StudySummary,
    Tracker,
    TrackingWarning,
    validate_tracking_uri,
)
from tuner.tracking.mlflow_tracker import MlflowTracker

__all__ = [
    "Tracker",
    "NullTracker",
    "MlflowTracker",
    "StudyInfo",
    "StudySummary",
    "TrackingWarning",
    "make_tracker",
    "redact_uri",
    "validate_tracking_uri",
]


def make_tracker(
    tracking: str | bool | None,
    experiment: str,
    *,
    parent_run_id: str | None = None,
    study_uid: str | None = None,
) -> Tracker:
    """Build the tracker for ``tune(tracking=...)``: False -> NullTracker, None/True -> MLflow default,
    a string -> that MLflow tracking URI (validated here, before any trial runs).

    ``parent_run_id`` or ``study_uid`` (a former ``tracker.study_uid``) reattach to the parent run of a
    resumed study."""
    if tracking is False:
        return NullTracker()
    if tracking is not None and tracking is not True and not isinstance(tracking, str):
        raise ConfigError(
            f"tracking must be a tracking URI string, True/None (MLflow's default store) or False "
            f"(no tracking), got {tracking!r} of type {type(tracking).__name__}."
        )
    if not isinstance(experiment, str) or not experiment.strip():
        raise ConfigError(f"experiment must be a non-empty name, got {experiment!r}.")
    uri = None if tracking is None or tracking is True else validate_tracking_uri(tracking)
    if importlib.util.find_spec("mlflow") is None:  # fail here, with the hint, not at every trial
        require("mlflow")
    return MlflowTracker(uri, experiment, parent_run_id=parent_run_id, study_uid=study_uid)

"""Exceptions raised by regtuner.

The failure policy is expressed as exception types: input problems are
``ValueError`` subclasses raised before any trial starts (the CLI exits 2 on
them); trial outcomes (:class:`TrialPruned`, :class:`TrialFailed`) are caught by
the runner and recorded; :class:`StudyAborted` stops a hopeless study.
"""

from __future__ import annotations

__all__ = [
    "TunerError",
    "ConfigError",
    "DataError",
    "ModelError",
    "MissingDependencyError",
    "TrialPruned",
    "TrialFailed",
    "TrialDiverged",
    "StudyAborted",
    "TrackingError",
]


class TunerError(Exception):
    """Base class of every error regtuner raises on purpose."""


class ConfigError(TunerError, ValueError):
    """A setting, search space, spec file or argument is invalid."""


class DataError(TunerError, ValueError):
    """The data cannot be used as given (shapes, values, classes, size)."""


class ModelError(TunerError, ValueError):
    """The builder did not return a usable model, or its output does not fit y."""


class MissingDependencyError(TunerError, ImportError):
    """An optional framework is not installed; the message names the extra."""


class TrialPruned(TunerError):
    """The pruner stopped this trial early (not a failure)."""


class TrialFailed(TunerError):
    """A trial could not finish; the study records it and goes on."""

    def __init__(self, message: str, *, traceback: str | None = None) -> None:
        super().__init__(message)
        self.traceback = traceback


class TrialDiverged(TrialFailed):
    """The loss became NaN or infinite; the trial stopped at once."""


class StudyAborted(TunerError):
    """Too many trials failed the same way; the first error is attached."""

    def __init__(self, message: str, *, first_traceback: str | None = None) -> None:
        if first_traceback:
            message = f"{message}\n\nTraceback of the first failed trial:\n{first_traceback}"
        super().__init__(message)
        self.first_traceback = first_traceback


class TrackingError(TunerError):
    """The tracking store could not be reached or refused a write."""

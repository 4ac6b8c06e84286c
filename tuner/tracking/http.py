"""How the sender calls MLflow: HTTP settings for one call, and which errors are the request's own fault."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

__all__ = ["HTTP", "HTTP_ONCE", "PERMANENT", "http_settings", "error_code", "short_message"]

PERMANENT = {
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_ALREADY_EXISTS",
    "RESOURCE_DOES_NOT_EXIST",
    "INVALID_STATE",
    "BAD_REQUEST",
    "PERMISSION_DENIED",
}

# MLflow retries a request up to 7 times with back-off and waits up to 120 s per attempt: a dead server
# would stall the sender for minutes. For variables the user has not set, we use these during our calls;
# creates are never retried by MLflow (a lost answer would make a second run), we look before retrying.
HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # no line per run on the user's terminal
}
HTTP_ONCE = {**HTTP, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
_ours: set[str] = set()


@contextlib.contextmanager
def http_settings(values: Mapping[str, str]) -> Iterator[None]:
    """Set the variables in ``values`` that the user has not set, for the duration of one call.

    In thread mode these are the user's process variables: MLflow calls of other threads see them meanwhile.
    """
    saved: dict[str, str | None] = {}
    for key, value in values.items():
        if key in os.environ and key not in _ours:
            continue  # the user's setting wins
        saved[key] = os.environ.get(key)
        os.environ[key] = value
        _ours.add(key)
    try:
        yield
    finally:
        for key, old in saved.items():
            _ours.discard(key)
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def error_code(exc: BaseException) -> str | None:
    """MLflow's error code of ``exc`` (None: unknown, or the server's own fault)."""
    code = getattr(exc, "error_code", None)
    if code in (None, "INTERNAL_ERROR"):
        return None
    return str(code)


def short_message(exc: BaseException) -> str:
    """``exc`` on one line, at most 600 characters."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:600]

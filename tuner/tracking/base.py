"""Tracking is an observer: the study tells a :class:`Tracker` what happened, the tracker writes it down.

``tuner.tracking.make_tracker(tracking, experiment)`` picks the tracker: ``False`` logs nothing,
``None`` (or ``True``) uses MLflow's own default store (``MLFLOW_TRACKING_URI``, else
``sqlite:///mlflow.db`` in the working directory), a string is a tracking URI. MLflow itself loads
in the tracking worker (a child process), not in the study's process; credentials come from
MLflow's own variables (``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``) and
are never written anywhere by regtuner.
"""

from __future__ import annotations

import abc
import importlib.util
import logging
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from tuner.errors import ConfigError
from tuner.redact import mask_secrets, redact_uri

if TYPE_CHECKING:
    from tuner.records import TrialRecord

__all__ = [
    "StudyInfo",
    "StudySummary",
    "Tracker",
    "NullTracker",
    "TrackingWarning",
    "validate_tracking_uri",
    "failure_warning",
    "log_unsent",
    "ui_url",
]

log = logging.getLogger("tuner")


class TrackingWarning(UserWarning):
    """The tracking store failed; the study goes on and the tracker keeps trying."""


@dataclass(frozen=True)
class StudyInfo:
    """What the study's parent run records when the study starts."""

    study_name: str
    experiment: str
    executor: str
    objective: tuple[str, ...]
    directions: tuple[str, ...]
    task: str
    fingerprint: str
    space_name: str
    space_yaml: str
    settings: Mapping[str, Any]  # budget and split: n_trials, max_epochs, timeout, seed, cv, test, ...
    framework: str | None = None
    version: str = ""


@dataclass(frozen=True)
class StudySummary:
    """What the study's parent run records when the study ends."""

    best_params: Mapping[str, Any]
    best_values: tuple[float, ...] | None
    best_trial: int | None
    test_scores: Mapping[str, float]
    counts: Mapping[str, int]  # complete / pruned / failed
    report: str = ""
    extra_metrics: Mapping[str, float] = field(default_factory=dict)
    # {"linear": {"accuracy": 0.91}} -> metric baseline_linear_accuracy
    baseline_scores: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # artifact path in the study run -> local file or folder, e.g. {"plots/curves.png": "/tmp/x.png"}
    artifacts: Mapping[str, str | os.PathLike[str]] = field(default_factory=dict)
    chosen: str = "trial"  # what the study returned: the best trial, or the untuned / textbook baseline


class Tracker(abc.ABC):
    """Observer of one study. No method may raise because the store failed."""

    failures: int = 0  # tracking calls that failed (the first one also warned)

    @property
    @abc.abstractmethod
    def run_id(self) -> str | None:
        """The study's parent run id, or None when there is none (yet)."""

    @property
    def study_uid(self) -> str | None:
        """An id of the study run known before the run exists (kept by the study to resume it)."""
        return None

    @abc.abstractmethod
    def start_study(self, info: StudyInfo) -> None:
        """Open the study's parent run."""

    @abc.abstractmethod
    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        """Open trial ``number``'s child run with its parameters."""

    @abc.abstractmethod
    def epoch_logged(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        """Record one epoch (0-based, the index into ``TrialRecord.epochs``) of trial ``number``."""

    @abc.abstractmethod
    def trial_finished(self, record: TrialRecord) -> None:
        """Write the trial's outcome and close its run; epochs not seen live are taken from the record."""

    @abc.abstractmethod
    def end_study(self, summary: StudySummary, status: str = "FINISHED") -> None:
        """Write the summary and close the parent run; ``status`` is FAILED or KILLED when the study died."""

    def restore_trials(self, records: Iterable[TrialRecord]) -> None:
        """Trials whose process died before their tracking was through (a resumed study's, read back from
        the Optuna storage): write each so that it ends as exactly one run. Trackers
        that cannot look at what they wrote before do nothing."""
        return None

    def log_model(self, model: Any, framework: str, input_example: Any = None) -> None:
        """Log the best model to the study run with ``framework``'s own MLflow flavour (keras, torch,
        sklearn), a signature and ``input_example`` (a few input rows). Other frameworks: nothing."""
        return None

    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy a file or folder into the study run's artifacts, under ``artifact_path``."""
        return None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything reported so far is sent (or spooled); False when ``timeout`` passed."""
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Finish sending and release the tracker's worker (``end_study`` does this)."""
        return True


class NullTracker(Tracker):
    """``tracking=False``: records nothing."""

    @property
    def run_id(self) -> str | None:
        return None

    def start_study(self, info: StudyInfo) -> None:
        return None

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        return None

    def epoch_logged(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        return None

    def trial_finished(self, record: TrialRecord) -> None:
        return None

    def end_study(self, summary: StudySummary, status: str = "FINISHED") -> None:
        return None


_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_KNOWN_SCHEMES = ("http", "https", "file", "databricks", "databricks-uc", "uc", *_DB_SCHEMES)
_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-]+:\d+(/.*)?$")


def validate_tracking_uri(uri: str) -> str:
    """Return ``uri`` stripped if it is a tracking URI MLflow can use, else raise ConfigError with a fix."""
    value = uri.strip()
    if not value:
        raise ConfigError(
            "tracking is an empty string; pass a tracking URI such as 'http://localhost:5000' or "
            "'sqlite:///mlflow.db', None for MLflow's default store, or False for no tracking."
        )
    if value in ("databricks", "databricks-uc", "uc") or value.startswith("databricks://"):
        return value
    if _HOST_PORT.match(value):
        raise ConfigError(
            f"tracking={uri!r} has no scheme; MLflow reads it as a file path, not a server. "
            f"For a tracking server write 'http://{value}'."
        )
    scheme = urllib.parse.urlsplit(value).scheme.lower()
    if len(scheme) <= 1:  # no scheme, or a Windows drive letter: a plain path
        path = value if value.endswith((".db", ".sqlite", ".sqlite3")) else f"{value.rstrip('/')}/mlflow.db"
        raise ConfigError(
            f"tracking={uri!r} is a path, not a tracking URI. For a local SQLite store write "
            f"'sqlite:///{path}' (an absolute path gives four slashes), or pass None for MLflow's "
            "default store."
        )
    base = scheme.split("+")[0]
    if base in ("http", "https"):
        parts = urllib.parse.urlsplit(value)
        if not parts.hostname:
            raise ConfigError(f"tracking={uri!r} names no host; write it as 'http://HOST:PORT'.")
        try:
            parts.port  # noqa: B018 - raises on a non-numeric or out-of-range port
        except ValueError:
            raise ConfigError(
                f"tracking={uri!r} has an invalid port; write it as 'http://HOST:PORT'."
            ) from None
        if parts.query:  # MLflow appends /api/2.0/... to the whole URI: every request would miss
            raise ConfigError(
                f"tracking={redact_uri(value)!r} has a query string, which breaks every MLflow request "
                "(MLflow appends its API paths to the URI). Write the URI without '?...' and pass a token "
                "as MLFLOW_TRACKING_TOKEN (user and password: MLFLOW_TRACKING_USERNAME, "
                "MLFLOW_TRACKING_PASSWORD)."
            )
    elif base == "sqlite":
        if value != "sqlite://" and not value.startswith("sqlite:///"):
            raise ConfigError(
                f"tracking={uri!r} is not a SQLite URI SQLAlchemy understands; write "
                "'sqlite:///relative/mlflow.db' or 'sqlite:////absolute/mlflow.db'."
            )
    elif base == "file":
        if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("true", "1"):
            raise ConfigError(
                f"tracking={uri!r} is a file store, which MLflow 3 refuses unless "
                "MLFLOW_ALLOW_FILE_STORE=true is set. Use a SQLite store instead, e.g. 'sqlite:///mlflow.db'."
            )
    elif base in _DB_SCHEMES:
        pass
    elif base not in _KNOWN_SCHEMES and base not in _plugin_schemes():
        known = ", ".join(_KNOWN_SCHEMES)
        raise ConfigError(
            f"tracking={uri!r} has the scheme {scheme!r}, which MLflow has no tracking store for "
            f"(known: {known}, or a scheme registered by an MLflow plugin)."
        )
    if base in _DB_SCHEMES and importlib.util.find_spec("sqlalchemy") is None:
        raise ConfigError(
            f"tracking={uri!r} needs SQLAlchemy, which is not installed: pip install sqlalchemy"
        )
    return value


def _plugin_schemes() -> set[str]:
    """Schemes that installed MLflow plugins register as tracking stores."""
    try:
        return {ep.name for ep in entry_points(group="mlflow.tracking_store")}
    except Exception:  # broken package metadata must not block a study
        return set()


# -- value formatting shared by trackers (MLflow's limits: keys 250 chars, param values 6000) --------

_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. :/]")


def metric_key(name: Any) -> str:
    """A metric/param key MLflow accepts: allowed characters only, at most 250 of them."""
    return _BAD_KEY_CHARS.sub("_", str(name))[:250] or "_"


def cut(value: Any, limit: int) -> str:
    """``str(value)``, shortened to ``limit`` characters with a trailing '...'."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def params_to_strings(values: Mapping[str, Any]) -> dict[str, str]:
    """Parameters as MLflow stores them: safe keys, string values of at most 6000 characters."""
    return {metric_key(k): cut(v, 6000) for k, v in values.items()}


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys: ``{"cv": {"k": 5}}`` -> ``{"cv.k": 5}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def objective_metrics(name: str, values: tuple[float, ...] | None) -> dict[str, Any]:
    """``name`` for one objective value, ``name_0``, ``name_1``... for several, nothing for None."""
    if not values:
        return {}
    if len(values) == 1:
        return {name: values[0]}
    return {f"{name}_{i}": v for i, v in enumerate(values)}


#: MLflow 3's UI opens an experiment on its GenAI overview unless the URL (or the user's "Model
#: training" switch, kept in the browser) asks for the model-training views; the experiment's kind tag
#: is not read while that switch exists
MODEL_TRAINING = "workflowType=machine_learning"


def ui_url(base: str, experiment_id: str | None = None, run_id: str | None = None) -> str:
    """A link into the MLflow UI at ``base`` that opens on the runs (of an experiment, or one run)."""
    root = base.rstrip("/")
    if experiment_id is None:
        return f"{root}/#/experiments?{MODEL_TRAINING}"
    page = f"runs/{run_id}" if run_id else "runs"
    return f"{root}/#/experiments/{experiment_id}/{page}?{MODEL_TRAINING}"


def absolute_sqlite(uri: str) -> str:
    """``sqlite:///rel.db`` -> ``sqlite:////abs/rel.db`` (``~`` expanded): workers in other folders
    find the same file."""
    if not uri.startswith("sqlite:///") or uri.startswith("sqlite:////"):
        return uri
    path, _, query = uri[len("sqlite:///") :].partition("?")
    if not path or path == ":memory:":
        return uri
    absolute = os.path.abspath(os.path.expanduser(urllib.parse.unquote(path)))
    return f"sqlite:///{absolute}" + (f"?{query}" if query else "")


def failure_warning(
    uri: str | None, what: str, message: str, spool: str | None, spool_dir: str, local: bool
) -> str:
    """The one warning a study gets when tracking fails: what failed, where the rest goes; no secret.

    Unsent operations went to the ``spool`` file when known, else under ``spool_dir``; ``local``: the
    failure was in this process, so nothing was spooled."""
    message = mask_secrets(message, uri)  # MLflow's own messages may repeat the URL with its secrets
    text = f"MLflow tracking at {redact_uri(uri)} failed to {what} ({message[:600]}). The study goes on"
    if local:
        text += "; this was not sent."
    else:
        where = f"spooled to {spool}" if spool else f"spooled under {spool_dir}"
        text += (
            f"; what could not be sent is {where} and sent when the store is back "
            "(while the study runs, at its end, or with `regtuner sync`)."
        )
    return text + " Further failures are only counted (tracker.failures)."


def log_unsent(finished: bool, spooled: bool, uri: str | None, spool: str | None) -> None:
    """Say, when a tracker closes, what it is still sending or could not send (and how to send it)."""
    if not finished:
        log.warning(
            "MLflow tracking was still sending when the study ended; what it had not sent is in %s. "
            "Run `regtuner sync` to send it.",
            spool,
        )
    elif spooled:
        log.warning(
            "Part of the study could not be sent to MLflow at %s; it is kept in %s. "
            "Run `regtuner sync` when the tracking server is back.",
            redact_uri(uri),
            spool,
        )

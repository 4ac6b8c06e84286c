"""Optuna study plumbing shared by executors: sampler, pruner, storage, resume, records."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import ConfigError
from tuner.records import INTERRUPTED, Injection, TrialRecord
from tuner.redact import redact_uri
from tuner.study.faults import create_tables
from tuner.study.owner import OWNER_ATTR, check_owner, owner_record

if TYPE_CHECKING:
    import optuna

__all__ = [
    "ATTR",
    "DEFAULT_STORAGE",
    "storage_url",
    "open_study",
    "open_rdb",
    "refuse_existing",
    "study_exists",
    "record_attrs",
    "record_from_trial",
    "finished_count",
    "stored_records",
    "check_resumable",
]

#: user-attr key under which a trial keeps its record
ATTR = "regtuner"
DEFAULT_STORAGE = ".regtuner/studies.db"


def storage_url(storage: str | os.PathLike[str] | None) -> str:
    """An RDB URL for ``storage`` (None: ``$REGTUNER_STORAGE`` or ``./.regtuner/studies.db``).

    A SQLite file's folder is created and checked for writing here, before any trial runs.
    """
    storage = storage or os.environ.get("REGTUNER_STORAGE") or DEFAULT_STORAGE
    if not isinstance(storage, (str, os.PathLike)):
        raise ConfigError(
            f"storage must be a SQLite file path or an RDB URL such as 'postgresql://user@host/db', "
            f"got {storage!r}."
        )
    url = str(storage)
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    elif not url.startswith("sqlite:///"):
        _check_rdb_url(url)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(path, timeout=30)
            con.execute("CREATE TABLE IF NOT EXISTS regtuner_probe (x INTEGER)")
            con.execute("DROP TABLE IF EXISTS regtuner_probe")  # another process may probe at once
            con.close()
            create_tables(path)  # once, even when several processes open a new file together
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"study storage {path} cannot be written ({exc}). Pass storage= a writable path "
                "or set REGTUNER_STORAGE, and check free disk space."
            ) from None
    return url


def _check_rdb_url(url: str) -> None:
    """A database URL that SQLAlchemy can parse, with its dialect and driver installed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    scheme = url.split("://", 1)[0]
    example = "'sqlite:///path/studies.db' or 'postgresql://user@host/db'"
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ConfigError(
            f"storage URL scheme {scheme!r} is not a database SQLAlchemy knows; write {example}, "
            "or a plain file path for SQLite."
        ) from None
    if parsed.get_backend_name() == "sqlite" and url.split("://", 1)[1][:1] not in ("/", ""):
        raise ConfigError(
            f"storage={url!r} is not a SQLite URL: write 'sqlite:///relative/studies.db' (three "
            "slashes) or 'sqlite:////absolute/studies.db', or a plain file path."
        )
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise ConfigError(
            f"storage URL {parsed.render_as_string(hide_password=True)!r} needs the database driver "
            f"module {exc.name!r}, which is not installed; pip install the package that provides it "
            "(e.g. psycopg2-binary for postgresql+psycopg2://)."
        ) from None


_CHECKED: set[str] = set()  # storages whose schema version this process has checked


def open_rdb(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage at ``url``; SQLite waits up to 30 s for a lock another process holds (the
    option is SQLite's own: other databases refuse it).

    The schema version is checked on the first open in a process only (Alembic's check reads its
    migration scripts: about 0.1 s per open)."""
    import optuna

    kwargs = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=url in _CHECKED)
    _CHECKED.add(url)
    return storage


def study_exists(storage: str | optuna.storages.RDBStorage, name: str) -> bool:
    """Whether the storage (a URL, or one opened with :func:`open_rdb`) holds a study ``name``."""
    import optuna

    rdb = open_rdb(storage) if isinstance(storage, str) else storage
    return name in {s.study_name for s in optuna.study.get_all_study_summaries(rdb)}


def refuse_existing(name: str, storage: str, how: str = "pass resume=True to continue it") -> None:
    """ConfigError when a study ``name`` exists in ``storage`` (checked before any data is loaded)."""
    if study_exists(storage, name):
        raise ConfigError(
            f"a study named {name!r} already exists in {redact_uri(storage)}; {how}, or choose another "
            "study_name."
        )


def open_study(
    name: str,
    storage: str,
    directions: tuple[str, ...],
    *,
    resume: bool,
    explicit_name: bool,
    sampler: Any,
    pruner: Any,
    attrs: Mapping[str, Any],
) -> optuna.Study:
    """Create the study, or load it with ``resume``; mark trials left RUNNING by a dead process failed."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures are reported by regtuner
    rdb = open_rdb(storage)
    exists = study_exists(rdb, name)
    if exists and not resume and explicit_name:
        raise ConfigError(
            f"a study named {name!r} already exists in {redact_uri(storage)}; pass resume=True to "
            "continue it, or choose another study_name."
        )
    if exists and resume:
        study = optuna.load_study(study_name=name, storage=rdb, sampler=sampler, pruner=pruner)
        check_resumable(name, study.user_attrs, attrs)
        check_owner(name, study.user_attrs)  # its RUNNING trials may be alive in another process
        study.set_user_attr(OWNER_ATTR, owner_record())
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            rdb.set_trial_user_attr(t._trial_id, "interrupted", True)
            rdb.set_trial_state_values(t._trial_id, TrialState.FAIL)
        return study
    try:
        study = optuna.create_study(
            study_name=name, storage=rdb, directions=list(directions), sampler=sampler, pruner=pruner
        )
    except optuna.exceptions.DuplicatedStudyError:  # another process created it since the check above
        if not resume:
            raise ConfigError(
                f"a study named {name!r} was just created in {storage} by another process; "
                "choose another study_name, or pass resume=True to continue it."
            ) from None
        kwargs = dict(explicit_name=explicit_name, sampler=sampler, pruner=pruner, attrs=attrs)
        return open_study(name, storage, directions, resume=True, **kwargs)
    study.set_user_attr(OWNER_ATTR, owner_record())
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study


def check_resumable(name: str, old_attrs: Mapping[str, Any], attrs: Mapping[str, Any]) -> None:
    """A resumed study must see the same data split, objective and space."""
    for key in ("fingerprint", "objective", "space"):
        old, new = old_attrs.get(key), attrs.get(key)
        if old is not None and new is not None and old != new:
            raise ConfigError(
                f"cannot resume study {name!r}: its {key} was {old!r} and is now {new!r}. "
                "Resume with the same data, objective and space, or start a new study_name."
            )


def record_attrs(record: TrialRecord) -> dict[str, Any]:
    """The JSON-able form of a record kept in the Optuna storage."""
    keys = sorted({k for epoch in record.epochs for k in epoch})
    return {
        "state": record.state,
        "params": {k: v for k, v in record.params.items()},
        "values": list(record.values) if record.values is not None else None,
        "history": {k: [e.get(k) for e in record.epochs] for k in keys},
        "best_epoch": record.best_epoch,
        "injected": [[i.knob, i.applied, i.detail] for i in record.injected],
        "error": record.error,
        "traceback": record.traceback,
        "duration": record.duration,
        "framework": record.framework,
        "user_attrs": dict(record.user_attrs),
    }


def record_from_trial(trial: optuna.trial.FrozenTrial) -> TrialRecord:
    """Rebuild a record from storage (works for trials run by any process or executor)."""
    data = trial.user_attrs.get(ATTR)
    if data is None:  # never reached the end of run_trial (killed, or failed before)
        error = INTERRUPTED if trial.user_attrs.get("interrupted") else "no record"
        return TrialRecord(number=trial.number, params=dict(trial.params), state="failed", error=error)
    history = data.get("history") or {}
    n = max((len(v) for v in history.values()), default=0)
    epochs = tuple({k: v[i] for k, v in history.items() if v[i] is not None} for i in range(n))
    return TrialRecord(
        number=trial.number,
        params=data.get("params") or dict(trial.params),
        state=data["state"],
        values=tuple(data["values"]) if data.get("values") is not None else None,
        epochs=epochs,
        best_epoch=data.get("best_epoch"),
        injected=tuple(Injection(*i) for i in data.get("injected") or ()),
        error=data.get("error"),
        traceback=data.get("traceback"),
        duration=float(data.get("duration") or 0.0),
        framework=data.get("framework"),
        user_attrs=data.get("user_attrs") or {},
    )


def finished_count(study: optuna.Study) -> int:
    """Trials that count against the budget: finished ones, not those a dead process left behind."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(
        1 for t in study.get_trials(deepcopy=False, states=done) if not t.user_attrs.get("interrupted")
    )


def stored_records(storage: str, name: str) -> list[TrialRecord]:
    """The records of study ``name``'s trials in ``storage`` (none when there is no such study), for
    :meth:`~tuner.tracking.base.Tracker.restore_trials` on resume. A trial without a record (left RUNNING, or
    stopped before its end by a dead process) is a failed, interrupted one; trials that never started
    are left out."""
    import optuna
    from optuna.trial import TrialState

    rdb = open_rdb(storage)
    if not study_exists(rdb, name):
        return []
    records = []
    for trial in optuna.load_study(study_name=name, storage=rdb).get_trials(deepcopy=False):
        if trial.state == TrialState.WAITING:
            continue
        if ATTR in trial.user_attrs:
            record = record_from_trial(trial)
            if not (record.error or "").startswith("not started"):
                records.append(record)
        else:
            records.append(TrialRecord(trial.number, dict(trial.params), "failed", error=INTERRUPTED))
    return records

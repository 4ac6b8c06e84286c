"""``regtuner report [EXPERIMENT or RUN_ID]``: print a finished study's report from MLflow alone.

The study's parent run holds ``report.txt`` (text), ``report.md``, ``report.html``, ``plots/`` and
``diagnosis.json``. The target is a study run id, a trial run id (its study is used), an experiment
name or a study name; without one, the most recent study in the store. A run without report files
(a study that died) gets a summary rebuilt from its metrics and parameters.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError

__all__ = ["register", "find_study_run", "report_text"]

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_STUDY = "tags.`regtuner.role` = 'study'"


def register(subparsers: Any) -> dict[str, Any]:
    p = subparsers.add_parser(
        "report",
        help="print the report of a finished study from MLflow",
        description="Print the report of a study logged to MLflow: the chosen settings, validation vs test, "
        "the baselines and the diagnosis. TARGET is an experiment name, a study name or a run id; "
        "without it, the most recent study.",
    )
    p.add_argument(
        "target", nargs="?", help="experiment name, study name or run id (default: the latest study)"
    )
    p.add_argument(
        "--tracking-uri", default=None, help="tracking store (default: $MLFLOW_TRACKING_URI or MLflow's)"
    )
    p.add_argument(
        "--format", choices=("text", "markdown"), default="text", help="output format (default text)"
    )
    p.add_argument(
        "--html", metavar="PATH", default=None, help="also save the HTML report (plots embedded) to PATH"
    )
    return {"report": _report}


def _client(uri: str | None) -> Any:
    from tuner._imports import require
    from tuner.cli.tracking import default_store

    require("mlflow")
    from mlflow.tracking import MlflowClient

    store = default_store(uri)
    if store.startswith("sqlite:///"):  # reading must not create an empty store (and print its tables)
        path = Path(urllib.parse.unquote(store[len("sqlite:///") :].partition("?")[0]))
        if not path.exists():
            raise ConfigError(
                f"there is no tracking store at {path}: run a study here first (it creates it), or pass "
                "--tracking-uri (or set MLFLOW_TRACKING_URI) to read the store your studies use."
            )
    return MlflowClient(tracking_uri=store)


def find_study_run(client: Any, target: str | None) -> Any:
    """The study's parent run for ``target`` (see the module doc), or a ConfigError naming what was tried."""
    from mlflow.exceptions import MlflowException

    order = ["attributes.start_time DESC"]
    if target and _RUN_ID.match(target):
        try:
            run = client.get_run(target)
        except MlflowException:
            run = None
        if run is not None:
            parent = run.data.tags.get("mlflow.parentRunId")
            if run.data.tags.get("regtuner.role") != "study" and parent:
                run = client.get_run(parent)
            return run
    experiments = client.search_experiments()
    ids = [e.experiment_id for e in experiments]
    if not ids:
        raise ConfigError("the tracking store has no experiments; run a study first, or pass --tracking-uri.")
    if target is None:
        runs = client.search_runs(ids, _STUDY, order_by=order, max_results=1)
        if not runs:
            raise ConfigError(
                "the tracking store holds no regtuner study; pass --tracking-uri to look elsewhere."
            )
        return runs[0]
    named = [e.experiment_id for e in experiments if e.name == target]
    runs = client.search_runs(named, _STUDY, order_by=order, max_results=1) if named else []
    if not runs:
        escaped = target.replace("'", "\\'")
        runs = client.search_runs(
            ids, f"{_STUDY} and tags.`regtuner.study` = '{escaped}'", order_by=order, max_results=1
        )
    if not runs:
        names = sorted(e.name for e in experiments)
        close = difflib.get_close_matches(target, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"no study found for {target!r}: it is neither a run id, an experiment with a study, nor a study "
            f"name.{hint} Experiments in this store: {', '.join(names[:20])}. Pass --tracking-uri if the "
            "study is in another store."
        )
    return runs[0]


def _artifact(client: Any, run_id: str, path: str, folder: str) -> Path | None:
    try:
        return Path(client.download_artifacts(run_id, path, folder))
    except Exception:  # noqa: BLE001 - missing artifact (the study died), or the store cannot serve it
        return None


def report_text(client: Any, run: Any, fmt: str = "text") -> str:
    """The logged report of ``run`` in ``fmt`` ("text" or "markdown"), else one rebuilt from the run."""
    name = "report.txt" if fmt == "text" else "report.md"
    with tempfile.TemporaryDirectory(prefix="regtuner-report-") as tmp:
        path = _artifact(client, run.info.run_id, name, tmp)
        if path is not None and path.is_file():
            return path.read_text(encoding="utf-8")
    return _rebuilt(run)


def _rebuilt(run: Any) -> str:
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    study = tags.get("regtuner.study", run.info.run_name)
    lines = [
        f"regtuner study {study!r} (run {run.info.run_id}, status {run.info.status}): no report was logged, "
        "so this summary is rebuilt from the run's metrics.",
        f"Objective: {tags.get('regtuner.objective', '?')}; "
        f"chosen trial: #{tags.get('regtuner.best_trial', '?')}",
    ]
    best = {
        k[5:]: v for k, v in {**params, **tags}.items() if k.startswith("best.")
    }  # tags (params in older runs)
    if best:
        lines.append("Chosen settings:")
        lines += [f"  {k} = {v}" for k, v in sorted(best.items())]
    groups = [("validation", "val_"), ("test", "test_"), ("optimism", "optimism_")]
    for title, prefix in groups:
        found = {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}
        if found:
            lines.append(f"{title}: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(found.items())))
    base = {k[9:]: v for k, v in metrics.items() if k.startswith("baseline_")}  # older runs: metrics
    base.update({k[9:]: float(v) for k, v in tags.items() if k.startswith("baseline.") and _number(v)})
    if base:
        lines.append("baselines: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(base.items())))
    counts = {k[7:]: int(v) for k, v in metrics.items() if k.startswith("trials_")}
    if counts:
        lines.append("trials: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return "\n".join(lines)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _report(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr for errors
    client = _client(args.tracking_uri)
    run = find_study_run(client, args.target)
    print(report_text(client, run, args.format))
    if args.html:
        with tempfile.TemporaryDirectory(prefix="regtuner-report-") as tmp:
            page = _artifact(client, run.info.run_id, "report.html", tmp)
            if page is None:
                raise ConfigError(f"run {run.info.run_id} has no report.html (the study did not finish).")
            shutil.copyfile(page, args.html)
        print(f"HTML report saved to {args.html}")
    return 0

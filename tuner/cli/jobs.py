"""``regtuner run``, and ``regtuner job submit | status | logs | stop | list`` (also at the top level, with
``jobs`` for ``list``): job spec files, here or on a Ray cluster.

``run`` runs a spec's study in this process (local or Ray executor); ``submit`` sends ``regtuner run``
to a Ray cluster through the Ray Jobs API and prints the job id; the others follow jobs there. A spec
is checked (keys, references, space, executor settings) before anything runs or is submitted: a bad
spec or an unreachable address exits with code 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError
from tuner.signals import sigterm_as_interrupt

__all__ = ["register"]


def register(subparsers: Any) -> dict[str, Any]:
    run = subparsers.add_parser(
        "run",
        help="run the study a job spec describes, here",
        description="Run the study of a job spec (YAML: builder, data, space, objective, budget, "
        "executor, tracking) in this process. Modules are imported from the current folder.",
    )
    run.add_argument("spec", nargs="?", help="the job spec (YAML)")
    run.add_argument("--spec-env", metavar="VAR", help=argparse.SUPPRESS)  # the spec's text in $VAR
    run.add_argument("--check", action="store_true", help="check the spec and its imports, run nothing")
    run.add_argument("--resume", action="store_true", help="continue the spec's study (same study_name)")
    run.add_argument("--n-trials", type=int, default=None, help="override the spec's budget.n_trials")
    run.add_argument(
        "--max-epochs", type=_epochs, default=None, help="override the spec's budget.max_epochs (N or auto)"
    )
    run.add_argument("--tracking-uri", default=None, help="override the spec's tracking (an MLflow URI)")

    _job_commands(subparsers, listing="jobs")  # the flat commands: regtuner submit | status | ...
    group = subparsers.add_parser(
        "job",
        help="cluster jobs, grouped as `ray job` groups them: submit, status, logs, stop, list",
        description="Jobs on a Ray cluster, through the Ray Jobs API (the same commands as "
        "`regtuner submit|status|logs|stop|jobs`).",
    )
    _job_commands(group.add_subparsers(dest="job_command", metavar="ACTION", required=True), listing="list")
    handlers = {
        "submit": _submit,
        "status": _status,
        "logs": _logs,
        "stop": _stop,
        "jobs": _jobs,
        "list": _jobs,
    }
    return {"run": _run, **handlers, "job": lambda args: handlers[args.job_command](args)}


def _job_commands(sub: Any, listing: str) -> None:
    """submit, status, logs, stop and the listing (``jobs`` at the top level, ``list`` in ``job``)."""
    submit = sub.add_parser(
        "submit",
        help="submit a job spec to a Ray cluster (Ray Jobs API)",
        description="Check the spec here, then submit `regtuner run SPEC` to the cluster whose "
        "dashboard is at --address; prints the job id. The cluster needs regtuner installed (see "
        "docker/); --working-dir uploads your code with the job.",
    )
    submit.add_argument("spec", help="the job spec (YAML)")
    _address(submit)
    submit.add_argument("--working-dir", default=None, help="folder uploaded as the job's working directory")
    submit.add_argument(
        "--pip", nargs="+", default=[], metavar="PKG", help="extra pip packages installed for the job"
    )
    submit.add_argument("--job-id", default=None, help="submission id (default: regtuner-<study>-<time>)")
    submit.add_argument("--wait", action="store_true", help="follow the job's logs until it ends")
    for name, text in (("status", "a job's status"), ("stop", "stop a job")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job", help="job (submission) id")
        _address(p)
    logs = sub.add_parser("logs", help="a job's logs")
    logs.add_argument("job", help="job (submission) id")
    logs.add_argument("--follow", "-f", action="store_true", help="stream until the job ends")
    _address(logs)
    _address(sub.add_parser(listing, help="list the cluster's jobs"))


def _address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default=None,
        help="Ray dashboard URL, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS, "
        "or http://127.0.0.1:8265)",
    )


def _load(args: argparse.Namespace) -> Any:
    from tuner.cli.spec import load_spec, parse_spec

    if args.spec_env:
        text = os.environ.get(args.spec_env)
        if text is None:
            raise ConfigError(f"--spec-env {args.spec_env}: the variable is not set.")
        return parse_spec(text, source=f"${args.spec_env}")
    if not args.spec:
        raise ConfigError("regtuner run needs a job spec: regtuner run spec.yaml")
    return load_spec(args.spec)


def _run(args: argparse.Namespace) -> int:
    spec = _load(args)
    spec.check()
    if args.check:
        print(f"{spec.source}: ok (builder {spec.builder}, data {spec.data}, executor {spec.executor})")
        return 0
    overrides = _overrides(args)
    name = spec.tune_args.get("study_name")
    if name and not overrides.get("resume", spec.tune_args.get("resume")):
        from tuner.study.storage import refuse_existing, storage_url

        how = "run again with --resume (or set resume: true in the spec) to continue it"
        refuse_existing(name, storage_url(spec.tune_args.get("storage")), how)  # before any data loads
    print(f"regtuner run {spec.source}: executor {spec.executor}", flush=True)
    try:
        with sigterm_as_interrupt():  # `regtuner job stop` / `ray job stop` send SIGTERM
            result = spec.run(**overrides)
    except KeyboardInterrupt:
        print(
            f"regtuner run {spec.source}: stopped; the running trial and the study's MLflow run end as "
            "KILLED, and --resume (or resume: true) continues the study.",
            file=sys.stderr,
        )
        return 130
    print(result.report())
    if result.mlflow_run_id:
        print(f"MLflow study run: {result.mlflow_run_id}")
    return 0


def _epochs(text: str) -> int | str:
    """``--max-epochs``: a number, or ``auto`` (checked with the other settings)."""
    try:
        return int(text)
    except ValueError:
        return text


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``tune()`` arguments the command line sets over the spec's, checked as the spec's are."""
    from tuner.config import check_settings
    from tuner.tracking.base import validate_tracking_uri

    out: dict[str, Any] = {"resume": True} if args.resume else {}
    for key in ("n_trials", "max_epochs"):
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    check_settings(out, labels={"n_trials": "--n-trials", "max_epochs": "--max-epochs"})
    if args.tracking_uri is not None:
        out["tracking"] = validate_tracking_uri(args.tracking_uri)
    return out


def _submit(args: argparse.Namespace) -> int:
    from tuner.cli.spec import import_paths, load_spec
    from tuner.executors.ray.jobs import JobsClient, durable_stores, job_request

    spec = load_spec(args.spec)
    if args.working_dir is not None and not os.path.isdir(args.working_dir):
        raise ConfigError(f"--working-dir {args.working_dir!r} is not a folder.")
    if args.working_dir is not None:
        with import_paths(os.path.abspath(args.working_dir)):  # type: ignore[arg-type]
            spec.check()
    else:
        spec.check()
    spec.check_uploadable(Path(args.working_dir).resolve() if args.working_dir else None)
    entrypoint, runtime_env = job_request(args.spec, args.working_dir, args.pip)
    env, said = durable_stores(spec.tune_args)
    runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **env}
    client = JobsClient(args.address)
    job_id = client.submit(entrypoint, runtime_env, args.job_id or _job_id(spec))
    print(job_id)
    at = "" if args.address is None else f" --address {args.address}"
    for line in said:
        print(f"regtuner submit: {line}", file=sys.stderr)
    print(
        f"submitted to {client.address}: regtuner job status {job_id}{at} / "
        f"regtuner job logs {job_id}{at} -f",
        file=sys.stderr,
    )
    if args.wait:
        for chunk in client.follow(job_id):
            sys.stdout.write(chunk)
            sys.stdout.flush()
        return _exit_code(client.status(job_id))
    return 0


def _job_id(spec: Any) -> str:
    name = spec.tune_args.get("study_name") or os.path.splitext(os.path.basename(spec.source))[0]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", str(name)).strip("-")[:40] or "study"
    return f"regtuner-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _client(args: argparse.Namespace) -> Any:
    from tuner.executors.ray.jobs import JobsClient

    return JobsClient(args.address)


def _status(args: argparse.Namespace) -> int:
    info = _client(args).info(args.job)
    print(f"{args.job}: {info.status}")
    if info.message:
        print(info.message)
    return 0


def _logs(args: argparse.Namespace) -> int:
    client = _client(args)
    if not args.follow:
        sys.stdout.write(client.logs(args.job))
        return 0
    for chunk in client.follow(args.job):
        sys.stdout.write(chunk)
        sys.stdout.flush()
    return _exit_code(client.status(args.job))


def _stop(args: argparse.Namespace) -> int:
    stopped = _client(args).stop(args.job)
    print(f"{args.job}: {'stop requested' if stopped else 'already finished'}")
    return 0


def _jobs(args: argparse.Namespace) -> int:
    rows = sorted(_client(args).jobs(), key=lambda j: j.start_time or 0)
    for job in rows:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime((job.start_time or 0) / 1000))
        ident = job.submission_id or job.job_id
        print(f"{ident:<40} {job.status!s:<10} {started}  {(job.entrypoint or '')[:60]}")
    if not rows:
        print("no jobs")
    return 0


def _exit_code(status: str) -> int:
    """After following a job: 0 when it succeeded, 1 otherwise."""
    return 0 if str(status) == "SUCCEEDED" else 1

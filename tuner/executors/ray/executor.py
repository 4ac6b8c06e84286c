"""The Ray executor: trials spread over a Ray cluster by Ray Tune; Optuna still does the search.

``tune(..., executor="ray")`` runs a Ray Tune ``Tuner`` whose searcher is ``OptunaSearch`` (the same
seeded TPE sampler and the same space as the local executor, working on the same Optuna storage) and
whose scheduler is ASHA (in studies of 10 trials or more), fed by the per-epoch reports of
:func:`tuner.trial.dispatch.run_trial`. Each trial runs in a Ray actor; actors are reused between trials,
so TensorFlow or torch load once per worker.

Failure policy: an exception in the builder or in training fails that trial at once (it is
deterministic: a retry would fail the same way). A worker *process* that dies mid-trial (killed, out
of memory, its node lost) is retried up to ``max_failures`` times, then the trial is recorded as
failed; the study goes on either way. ``resume=True`` continues from the Optuna storage: finished
trials and the sampler's knowledge are kept, trials left running by a killed driver are marked
failed ("interrupted") and do not count against ``n_trials``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tuner._imports import require
from tuner.errors import ConfigError
from tuner.executors.base import Executor, StudyJob
from tuner.executors.ray.cluster import check_cluster, connect, parse_resources
from tuner.signals import sigterm_as_interrupt, stop_requested
from tuner.study.search import make_sampler, prunes, warmup_epochs
from tuner.study.storage import finished_count, open_rdb, open_study

if TYPE_CHECKING:
    import optuna

__all__ = ["RayExecutor", "uses_asha"]

log = logging.getLogger("tuner")

# Tune writes CSV/JSON/TensorBoard logs per trial by default; the study's records live in Optuna
# and MLflow, so these only cost time.
_TUNE_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",  # regtuner logs each failed trial itself
    # Ctrl-C raises KeyboardInterrupt (the study is KILLED, resume=True continues it) instead of
    # Tune ending the experiment quietly as if it had finished
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    "RAY_AIR_NEW_OUTPUT": "0",
}
# Tune's end-of-run messages about trial files we chose not to write, and trials we already reported
_QUIET_LOGGERS = ("ray.tune.tune", "ray.tune.analysis.experiment_analysis")


def uses_asha(scheduler: str, n_trials: int, multi: bool) -> bool:
    """Whether a study stops trials early with ASHA: never for Pareto searches; ``"auto"`` where the
    local executor would prune (:func:`tuner.study.search.prunes`)."""
    if scheduler == "auto":
        return prunes(n_trials, multi)
    return scheduler == "asha" and not multi


class RayExecutor(Executor):
    """Trials on Ray: ``resources_per_trial`` (``{"cpu": 2, "gpu": 0.5}``), ``max_concurrent_trials``
    (None: as many as the cluster's nodes hold when the study starts), ``address`` of the cluster to
    join (None: Ray on this machine, ``"auto"``, ``HOST:PORT`` or ``ray://host:port``),
    ``max_failures`` (retries of a trial whose worker died),
    ``scheduler`` (``"auto"``: ASHA where the local executor would prune, see
    :func:`tuner.study.search.prunes`, else FIFO; ``"asha"`` or ``"fifo"`` to choose)."""

    name = "ray"

    def __init__(
        self,
        resources_per_trial: Mapping[str, Any] | None = None,
        max_concurrent_trials: int | None = None,
        address: str | None = None,
        max_failures: int = 0,
        scheduler: str = "auto",
    ) -> None:

        self.resources = parse_resources(resources_per_trial)
        if max_concurrent_trials is not None and (
            isinstance(max_concurrent_trials, bool)
            or not isinstance(max_concurrent_trials, int)
            or max_concurrent_trials < 1
        ):
            raise ConfigError(
                f"max_concurrent_trials must be None (as many as the cluster holds) or an int >= 1, "
                f"got {max_concurrent_trials!r}."
            )
        if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0:
            raise ConfigError(f"max_failures must be an int >= 0 (retries per trial), got {max_failures!r}.")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ConfigError(
                f"address must be None, 'auto', 'HOST:PORT' or 'ray://HOST:PORT', got {address!r}."
            )
        if address is not None and address.startswith(("http://", "https://")):
            raise ConfigError(
                f"address={address!r} is a dashboard (Jobs API) address; RayExecutor joins the cluster "
                "itself: pass 'auto' on a cluster node, 'HOST:6379', or 'ray://HOST:10001'. To send the "
                "study to the cluster use `regtuner submit spec.yaml --address http://HEAD:8265`."
            )
        if scheduler not in ("auto", "asha", "fifo"):
            raise ConfigError(f"scheduler must be 'auto', 'asha' or 'fifo', got {scheduler!r}.")
        self.max_concurrent_trials = max_concurrent_trials
        self.address = address.strip() if address else None
        self.max_failures = max_failures
        self.scheduler = scheduler

    def run(self, job: StudyJob) -> optuna.Study:

        require("ray.tune", "ray")
        import ray

        for key, value in _TUNE_ENV.items():
            os.environ.setdefault(key, value)
        started = connect(self.address)
        scratch = tempfile.mkdtemp(prefix="regtuner-ray-")
        try:
            client = ray.util.client.ray.is_connected()
            tracking_uri = getattr(job.tracker, "tracking_uri", None)
            tracked = type(job.tracker).__name__ != "NullTracker"
            capacity = check_cluster(self.resources, tracking_uri, tracked, job.storage, client)
            # Tune with a searcher and no limit starts one trial at a time: allow what the cluster holds
            with sigterm_as_interrupt(keep_own=True):  # Tune stops its trials on it, as on Ctrl-C
                study = self._run(job, scratch, self.max_concurrent_trials or capacity)
            if stop_requested():  # the interrupt was swallowed inside Ray; the stopper ended Tune's loop
                raise KeyboardInterrupt
            return study
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            if started:
                ray.shutdown()

    def _run(self, job: StudyJob, scratch: str, concurrency: int) -> optuna.Study:
        import optuna

        objective = job.ctx.objective
        study = open_study(
            job.study_name,
            job.storage,
            objective.directions,
            resume=job.resume,
            explicit_name=job.explicit_name,
            sampler=None,
            pruner=optuna.pruners.NopPruner(),  # ASHA prunes
            attrs=job.study_attrs,
        )
        remaining = job.n_trials - finished_count(study)
        if remaining <= 0:
            return study
        if not study.trials:
            for point in job.space.start_points:
                study.enqueue_trial(point, skip_if_exists=True)
        tuner, search, sink = self._tuner(job, scratch, remaining, len(study.trials), concurrency)
        levels = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
        try:
            for name in _QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.CRITICAL)
            tuner.fit()
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
        search.flush()
        if sink.aborted is not None:
            raise sink.aborted
        return optuna.load_study(study_name=job.study_name, storage=open_rdb(job.storage))

    def _tuner(
        self, job: StudyJob, scratch: str, remaining: int, offset: int, concurrency: int
    ) -> tuple[Any, Any, Any]:
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

        from tuner.executors.ray.search import AbortStopper, ErrorCallback, StudySearch, TrialSink
        from tuner.executors.ray.worker import TIME_ATTR, metric_names, trial_function

        objective = job.ctx.objective
        sink = TrialSink(job)
        search = StudySearch(
            job.space,
            objective,
            storage=open_rdb(job.storage),
            study_name=job.study_name,
            sampler=make_sampler(job.seed, job.n_trials, offset=offset),
            sink=sink,
        )
        max_epochs = job.ctx.settings.max_epochs
        if uses_asha(self.scheduler, job.n_trials, objective.is_multi):
            scheduler: Any = ASHAScheduler(
                time_attr=TIME_ATTR,
                metric=metric_names(objective)[0],
                mode="min" if objective.directions[0] == "minimize" else "max",
                max_t=max_epochs + 1,  # the last epoch must not count as a stop by max_t
                grace_period=warmup_epochs(max_epochs),  # the local pruner's warm-up
                reduction_factor=3,
            )
        else:
            scheduler = FIFOScheduler()
        trainable = tune.with_parameters(
            trial_function,
            ctx=job.ctx,
            cpus=self.resources["cpu"],
            gpus=self.resources["gpu"],
            trial_timeout=job.trial_timeout,
        )
        resources = {k: v for k, v in self.resources.items() if v > 0 or k == "cpu"}
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            tune_config=tune.TuneConfig(
                search_alg=search,
                scheduler=scheduler,
                num_samples=remaining,
                max_concurrent_trials=concurrency,
                time_budget_s=job.timeout,
                reuse_actors=True,
                trial_dirname_creator=lambda trial: trial.trial_id,
            ),
            run_config=tune.RunConfig(
                name=_run_name(job.study_name),
                storage_path=scratch,
                failure_config=tune.FailureConfig(max_failures=self.max_failures),
                stop=AbortStopper(sink),
                callbacks=[ErrorCallback(search)],
                verbose=0,
            ),
        )
        return tuner, search, sink


def _run_name(study_name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", study_name).strip("-")[:60] or "study"
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"

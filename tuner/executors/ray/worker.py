"""What runs inside a Ray Tune trial actor: device settings, the epoch reporter, the trial function.

The trial function calls the same :func:`tuner.trial.dispatch.run_trial` as the local executor. Its
:class:`RayReporter` sends one ``ray.tune.report`` per epoch (ASHA and the searcher see them), and the
last report carries the whole :class:`~tuner.records.TrialRecord` as JSON, which the driver writes
into the Optuna storage. Nothing here imports Ray at module level.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tuner.adapters.base import adapter_for
from tuner.errors import TrialPruned
from tuner.study.storage import record_attrs
from tuner.trial.dispatch import run_trial
from tuner.trial.runner import TrialContext

if TYPE_CHECKING:
    from tuner.records import Injection, TrialRecord
    from tuner.trial.objectives import Objective

__all__ = [
    "NUMBER_KEY",
    "EPOCH_KEY",
    "RECORD_KEY",
    "FRAMEWORK_KEY",
    "INJECTED_KEY",
    "TIME_ATTR",
    "metric_names",
    "worker_env",
    "memory_fraction",
    "RayReporter",
    "trial_function",
]

NUMBER_KEY = "_regtuner_number"  # in the trial config: the Optuna trial number
EPOCH_KEY = "regtuner_epoch"  # in an epoch result: that epoch's metrics
FRAMEWORK_KEY = "regtuner_framework"  # in an epoch result: the model's framework
INJECTED_KEY = "regtuner_injected"  # in the first epoch's result: what the adapter did, as JSON
RECORD_KEY = "regtuner_record"  # in the last result: the whole record, as JSON
TIME_ATTR = "epochs_done"  # ASHA's time axis; absent from the record result, so ASHA ignores it


def metric_names(objective: Objective) -> list[str]:
    """Result keys of the objective values: ``objective``, or ``objective_0``... for a Pareto search."""
    if not objective.is_multi:
        return ["objective"]
    return [f"objective_{i}" for i in range(len(objective.names))]


def worker_env(cpus: float, gpus: float) -> dict[str, str]:
    """Environment a trial's process needs before TensorFlow or torch initialize.

    TensorFlow allocates memory as it needs it (never the whole card, so fractional GPUs share
    one device); framework thread pools match the CPUs Ray gave the trial (no oversubscription
    when trials run side by side); a trial that asked for no GPU sees none.
    """
    threads = str(max(1, int(cpus)))
    env = {
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": threads,
        "OMP_NUM_THREADS": threads,
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    }
    if gpus <= 0:
        env["CUDA_VISIBLE_DEVICES"] = ""  # Ray leaves it unset for zero-GPU actors on some versions
    return env


def memory_fraction(gpus: float) -> float | None:
    """torch's per-process memory fraction for a trial holding ``gpus`` of a device (None: no cap).

    Ray hands out fractional GPUs as a share of one device, so the share is the fraction; whole
    GPUs need no cap.
    """
    if gpus <= 0 or gpus >= 1:
        return None
    return float(gpus)


def _apply_env(env: Mapping[str, str]) -> None:
    os.environ.update(env)
    if "torch" in sys.modules:  # a reused actor: torch is loaded already
        sys.modules["torch"].set_num_threads(int(env["OMP_NUM_THREADS"]))


def limit_gpu_memory(fraction: float | None) -> list[str]:
    """Cap torch's and TensorFlow's GPU memory in this process where they are loaded; what was done."""
    done: list[str] = []
    torch = sys.modules.get("torch")
    if fraction is not None and torch is not None and torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            torch.cuda.set_per_process_memory_fraction(fraction, index)
        done.append(f"torch memory fraction {fraction:g}")
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
                done.append(f"tensorflow memory growth on {gpu.name}")
            except (RuntimeError, ValueError):  # already initialized: the env var applied
                pass
    return done


def capped_builder(
    build_model: Callable[..., Any], fraction: float | None, seen: dict[str, Any] | None = None
) -> Callable[..., Any]:
    """``build_model`` that caps GPU memory right after it built (when the framework just loaded),
    and notes the model's framework in ``seen``.

    ``functools.wraps`` keeps the signature, so the runner still sees whether it takes ``hp``.
    """

    @functools.wraps(build_model)
    def build(*args: Any, **kwargs: Any) -> Any:
        model = build_model(*args, **kwargs)
        limit_gpu_memory(fraction)
        if seen is not None:
            try:
                seen["framework"] = adapter_for(model).framework
            except Exception:  # the runner reports a model it cannot train
                pass
        return model

    return build


class RayReporter:
    """The runner's :class:`~tuner.trial.runner.Reporter` for Ray Tune: one ``tune.report`` per epoch.

    When ASHA stops the trial, Ray ends ``tune.report`` with ``SystemExit(0)``; that becomes
    :class:`TrialPruned`, so the runner records a pruned trial, and :attr:`stopped` tells the trial
    function to end the way Ray expects once the record is written.
    """

    def __init__(
        self,
        objective: Objective,
        number: int,
        report: Callable[[dict[str, Any]], None],
        seen: Mapping[str, Any] | None = None,
    ) -> None:
        self.objective, self.number, self._report = objective, number, report
        self.seen = seen if seen is not None else {}
        self.names = metric_names(objective)
        self.stopped = False
        self._metrics: dict[str, float] = {}

    def epoch_metrics(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """The runner's ``on_epoch`` hook: keep this epoch's metrics for the report that follows."""
        self._metrics = dict(metrics)

    def report(self, epoch: int, value: float) -> None:
        values = self.objective.values(self._metrics) if self._metrics else (value,)
        if not all(math.isfinite(v) for v in values):
            return
        payload: dict[str, Any] = dict(zip(self.names, values, strict=True))
        payload[TIME_ATTR] = epoch + 1
        payload[NUMBER_KEY] = self.number
        payload[EPOCH_KEY] = {"epoch": epoch, **self._metrics}
        if "framework" in self.seen:
            payload[FRAMEWORK_KEY] = self.seen["framework"]
        if "injected" in self.seen:
            payload[INJECTED_KEY] = self.seen.pop("injected")
        try:
            self._report(payload)
        except SystemExit:
            self.stopped = True
            raise TrialPruned(f"stopped by the ASHA scheduler after epoch {epoch}") from None


def final_result(record: TrialRecord, names: list[str]) -> dict[str, Any]:
    """The last result of a trial: the record as JSON, and objective values Tune requires in every result.

    Tune checks that each result has the searcher's metrics; the driver ignores these values and
    reads the record (failed and pruned trials carry the last epoch's values, or 0 when none ran).
    """
    if record.values is not None:
        values = list(record.values)
    else:
        values = [0.0] * len(names)
    payload: dict[str, Any] = dict(zip(names, values, strict=True))
    payload[NUMBER_KEY] = record.number
    payload[RECORD_KEY] = json.dumps(record_attrs(record), default=_json_default)
    return payload


def _json_default(value: Any) -> Any:
    try:
        return value.item()  # numpy scalars
    except AttributeError:
        return str(value)


def trial_function(
    config: dict[str, Any],
    *,
    ctx: TrialContext,
    cpus: float,
    gpus: float,
    trial_timeout: float | None = None,
) -> dict[str, Any]:
    """One trial in a Ray actor: run it and report each epoch and the record to the driver, which alone
    writes the storage and MLflow.

    Tune runs it in a thread of the actor, so ``trial_timeout`` is checked at the epoch and batch
    hooks only (no ``SIGALRM`` outside the main thread; see :mod:`tuner.trial.timeouts`).
    """
    from ray import tune

    _apply_env(worker_env(cpus, gpus))
    number = int(config[NUMBER_KEY])
    params = {k: v for k, v in config.items() if k != NUMBER_KEY}
    seen: dict[str, Any] = {}
    trial_ctx = replace(ctx, build_model=capped_builder(ctx.build_model, memory_fraction(gpus), seen))
    reporter = RayReporter(ctx.objective, number, tune.report, seen)

    def on_injected(injected: list[Injection]) -> None:
        seen["injected"] = json.dumps([[i.knob, i.applied, i.detail] for i in injected])

    record = run_trial(
        trial_ctx, number, params, reporter=reporter, on_epoch=reporter.epoch_metrics,
        trial_timeout=trial_timeout, on_injected=on_injected,
    ).record  # fmt: skip
    if reporter.stopped:
        raise SystemExit(0)  # Ray's own way out of a stopped trial's thread
    return final_result(record, reporter.names)

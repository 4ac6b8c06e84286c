"""What MLflow tracking costs a study: a 50-trial study of tiny models with and without tracking.

Each study runs in a fresh process (imports done before the clock starts, as in a user's script), with
``tracking=False`` and with tracking into a fresh SQLite store (MLflow's default kind of store, created by
the study), alternately, ``--repeats`` times. Reported: the wall time of ``tune()`` for both, the
difference, and the time the study's own thread spent inside tracker calls (what tracking takes from
the study itself; the sending happens in the tracking worker process). Target: <= 2 % of the study's
wall time. ``--server`` tracks into a real ``mlflow server`` on 127.0.0.1 (HTTP, one started for the
whole benchmark, as a team's server outlives a study) instead of a SQLite file.

    python -m benchmarks.tracking_overhead [--model keras|numpy] [--trials 50] [--repeats 3] [--server]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = Path(__file__).parent / "results" / "tracking_overhead.json"
TRACKER_METHODS = (
    "start_study",
    "trial_started",
    "epoch_logged",
    "trial_finished",
    "run_id",
    "log_model",
    "end_study",
    "report_files",
)


def _data(model: str):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype("float32"), y


def _builder(model: str):
    if model == "keras":
        import keras

        def build_model():
            net = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                    keras.layers.Dense(10, activation="softmax")])  # fmt: skip
            net.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            return net

        return build_model
    from tests.fakes import NumpyModel

    def build_numpy():
        return NumpyModel(64, 10)

    return build_numpy


def _instrument() -> collections.Counter:
    """Time spent by the calling thread inside each MlflowTracker method."""
    from tuner.tracking.mlflow_tracker import MlflowTracker

    spent: collections.Counter = collections.Counter()
    for name in TRACKER_METHODS:
        if name in ("run_id", "report_files"):
            continue  # timed below
        original = getattr(MlflowTracker, name)

        def timed(self, *args, __original=original, __name=name, **kwargs):
            start = time.perf_counter()
            try:
                return __original(self, *args, **kwargs)
            finally:
                spent[__name] += time.perf_counter() - start

        setattr(MlflowTracker, name, timed)
    prop = MlflowTracker.run_id

    def run_id(self):  # the study waits here once, for the study run's id
        start = time.perf_counter()
        try:
            return prop.fget(self)
        finally:
            spent["run_id"] += time.perf_counter() - start

    MlflowTracker.run_id = property(run_id)
    try:  # the report files (plots, HTML) are drawn only to be logged to the study run
        import tuner.insight.report as report

        draw = report.write_files

        def write_files(*args, **kwargs):
            start = time.perf_counter()
            try:
                return draw(*args, **kwargs)
            finally:
                spent["report_files"] += time.perf_counter() - start

        report.write_files = write_files
    except (ImportError, AttributeError):
        pass
    return spent


def run_one(model: str, tracked: bool, trials: int, epochs: int, uri: str | None = None) -> dict:
    """One study in this process; returns its timings."""
    if model == "numpy":
        from tests.fakes import NumpyAdapter  # noqa: F401 - registered below
        from tuner.adapters import base

        base.ADAPTERS.insert(0, "tests.fakes:NumpyAdapter")
    from tuner import tune

    build, data = _builder(model), _data(model)
    spent = _instrument()
    with tempfile.TemporaryDirectory(prefix="regtuner-bench-") as tmp:
        os.chdir(tmp)
        tracking = (uri or f"sqlite:///{tmp}/mlflow.db") if tracked else False
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = time.process_time()
        start = time.perf_counter()
        result = tune(build, data, space="quick", n_trials=trials, max_epochs=epochs, tracking=tracking,
                      progress=False, baselines=False, seed=0)  # fmt: skip
        wall = time.perf_counter() - start
        own = time.process_time() - own  # the study process's CPU, all its threads
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        deadline = time.monotonic() + (60 if tracked else 0)
        while after.ru_utime == before.ru_utime and time.monotonic() < deadline:
            time.sleep(0.5)  # the tracking worker is exiting: its CPU counts once it is reaped
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "study_cpu_s": own,
        "worker_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "tracked": tracked,
        "wall_s": wall,
        "in_tracker_s": sum(spent.values()),
        "by_method_s": dict(spent),
        "trials": len(result.records),
        "epochs": sum(r.epochs_run for r in result.records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("keras", "numpy"), default="keras")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--server", action="store_true", help="track into an mlflow server (HTTP)")
    parser.add_argument("--one", choices=("tracked", "untracked"), help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.model, args.one == "tracked", args.trials, args.epochs, args.uri)))
        return
    with contextlib.ExitStack() as stack:
        uri = None
        if args.server:
            from tests.mlflow_server import MlflowServer

            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="regtuner-bench-server-")))
            uri = stack.enter_context(MlflowServer(root)).url
        _compare(args, uri)


def _compare(args: argparse.Namespace, uri: str | None) -> None:
    runs: dict[str, list[dict]] = {"untracked": [], "tracked": []}
    root = str(Path(__file__).resolve().parent.parent)
    for repeat in range(args.repeats):
        for mode in ("untracked", "tracked") if repeat % 2 == 0 else ("tracked", "untracked"):
            command = [sys.executable, "-m", "benchmarks.tracking_overhead", "--model", args.model,
                       "--trials", str(args.trials), "--epochs", str(args.epochs), "--one", mode]  # fmt: skip
            command += ["--uri", uri] if uri else []
            out = subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout
            runs[mode].append(json.loads(out.strip().splitlines()[-1]))
            print(f"{mode:>9}: {runs[mode][-1]['wall_s']:.1f} s", flush=True)
    plain = statistics.median(r["wall_s"] for r in runs["untracked"])
    tracked = statistics.median(r["wall_s"] for r in runs["tracked"])
    inside = statistics.median(r["in_tracker_s"] for r in runs["tracked"])
    worker = statistics.median(r.get("worker_cpu_s", 0.0) for r in runs["tracked"])
    cpu = {mode: statistics.median(r["study_cpu_s"] for r in runs[mode]) for mode in runs}
    methods = {
        m: statistics.median(r["by_method_s"].get(m, 0.0) for r in runs["tracked"]) for m in TRACKER_METHODS
    }
    summary = {
        "model": args.model, "store": "mlflow server (HTTP)" if uri else "sqlite", "trials": args.trials,
        "max_epochs": args.epochs, "repeats": args.repeats,
        "cpus": os.cpu_count(), "median_wall_untracked_s": plain, "median_wall_tracked_s": tracked,
        "wall_overhead_pct": 100 * (tracked - plain) / plain, "median_in_tracker_s": inside,
        "in_tracker_pct": 100 * inside / tracked, "median_by_method_s": methods,
        "median_worker_cpu_s": worker, "median_study_cpu_s": cpu, "runs": runs,
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[args.model + ("_server" if uri else "")] = summary
    RESULTS.write_text(json.dumps(data, indent=2))
    print(
        f"{args.model} ({summary['store']}), {args.trials} trials: untracked {plain:.1f} s, "
        f"tracked {tracked:.1f} s "
        f"({summary['wall_overhead_pct']:+.1f} %); in tracker calls {inside:.2f} s "
        f"({summary['in_tracker_pct']:.2f} % of the tracked study); tracking worker CPU {worker:.1f} s; "
        f"study process CPU {cpu['untracked']:.1f} s untracked, {cpu['tracked']:.1f} s tracked"
    )
    for name, seconds in methods.items():
        print(f"  {name:<15} {seconds:.3f} s")


if __name__ == "__main__":
    main()

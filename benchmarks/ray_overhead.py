"""The Ray executor's cost: per-trial overhead once warm, and the throughput of 2 trials at once.

1. **Overhead per trial once warm**: the same study (identical trials: a tiny Keras MLP, the same
   epochs, no early stopping) with the local executor and with the Ray executor on
   ``ray.init(num_cpus=2)``, one trial at a time, each trial given both CPUs. Each trial's start is
   time-stamped by its builder; the time per trial is the median gap between a worker's consecutive
   starts after its first ``--warmup`` trials (Ray's first trial also starts the worker and imports
   TensorFlow there). Target: Ray minus local <= 0.5 s.
2. **Throughput**: the Ray executor with one CPU per trial and ``max_concurrent_trials`` 1, then 2:
   trials per second in steady state (workers / median gap). Target: 2 concurrent >= 1.6x 1.

The four studies run ``--repeats`` times, interleaved, so that drift in the machine's load hits all.

    python -m benchmarks.ray_overhead [--trials 12] [--epochs 6] [--rows 2000] [--repeats 2] [--json PATH]

Run it on an otherwise idle machine: other processes on the 2 cores distort both figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

# every trial alike: one searched knob that does not change the cost, patience 0 (all epochs run)
SPACE = {
    "knobs": {
        "l2": {"low": 1e-6, "high": 1e-5, "log": True},
        "dropout": 0.1,
        "learning_rate": 1e-3,
        "batch_size": 32,
        "patience": 0,
        "lr_schedule": "constant",
    }
}


def make_data(n: int, d: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = np.argmax(X @ rng.normal(size=(d, 4)) + rng.normal(scale=2.0, size=(n, 4)), axis=1)
    return X, y


def stamped_mlp(stamps: str):
    """A small Keras MLP; appends the time it was built (a trial's start) to ``stamps``."""
    import keras

    with open(stamps, "a") as f:
        f.write(f"{os.getpid()} {time.time()}\n")
    model = keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def run_study(folder: Path, name: str, data, trials: int, epochs: int, **executor) -> list[tuple[int, float]]:
    """(pid, start time) of each trial of one study (the preflight build, in this process, is dropped)."""
    from tuner import tune

    stamps = folder / f"{name}.stamps"
    stamps.write_text("")
    builder = functools.partial(stamped_mlp, str(stamps))
    tune(builder, data, space=SPACE, n_trials=trials, max_epochs=epochs, tracking=False, progress=False,
         baselines=False, test=None, study_name=name, storage=str(folder / "studies.db"),
         **executor)  # fmt: skip
    rows = [line.split() for line in stamps.read_text().splitlines() if line.strip()]
    return sorted(((int(pid), float(at)) for pid, at in rows[1:]), key=lambda r: r[1])


def per_trial(starts: list[tuple[int, float]], warmup: int) -> list[float]:
    """Start-to-start gaps of each worker process after its first ``warmup`` trials: seconds per trial."""
    gaps: list[float] = []
    for pid in {p for p, _ in starts}:
        times = [at for p, at in starts if p == pid][warmup:]
        gaps += list(np.diff(times))
    if not gaps:
        raise SystemExit("too few trials after the warm-up; raise --trials")
    return gaps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=2, help="rounds of the four studies, interleaved")
    p.add_argument("--warmup", type=int, default=2, help="trials per worker left out at the start")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    import ray

    from tuner import RayExecutor

    data = make_data(args.rows)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    ray_start = time.perf_counter() - t0
    gaps: dict[str, list[float]] = {"local": [], "ray": [], "one": [], "two": []}
    first: list[float] = []
    studies = {
        "local": {},
        "ray": {"executor": RayExecutor(max_concurrent_trials=1, resources_per_trial={"cpu": 2})},
        "one": {"executor": RayExecutor(max_concurrent_trials=1, resources_per_trial={"cpu": 1})},
        "two": {"executor": RayExecutor(max_concurrent_trials=2, resources_per_trial={"cpu": 1})},
    }
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        for round_ in range(args.repeats):
            for key, executor in studies.items():
                starts = run_study(Path(tmp), f"{key}-{round_}", data, args.trials, args.epochs, **executor)
                gaps[key] += per_trial(starts, args.warmup)
                if key == "ray":
                    first.append(starts[1][1] - starts[0][1])
    ray.shutdown()
    med = {k: statistics.median(v) for k, v in gaps.items()}
    workers_two = 2  # two actors, each a trial every med["two"] seconds
    out = {
        "local_s_per_trial": med["local"],
        "ray_s_per_trial": med["ray"],
        "overhead_s_per_trial": med["ray"] - med["local"],
        "ray_first_trial_s": statistics.median(first),
        "throughput_1": 1 / med["one"],
        "throughput_2": workers_two / med["two"],
        "ray_init_s": ray_start,
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "cpus": os.cpu_count() or 0,
    }
    out["speedup_2_vs_1"] = out["throughput_2"] / out["throughput_1"]
    print(f"{args.trials} trials x {args.epochs} epochs, {args.rows} rows, {args.repeats} rounds; "
          f"medians of start-to-start gaps after {args.warmup} warm-up trials per worker")  # fmt: skip
    print("| figure | value | target |\n|---|---|---|")
    print(f"| local executor, s per trial | {med['local']:.2f} | |")
    print(f"| Ray executor, s per trial (1 at a time, 2 CPUs each) | {med['ray']:.2f} | |")
    print(f"| **Ray overhead per trial once warm** | **{out['overhead_s_per_trial']:+.2f} s** | <= 0.5 s |")
    first_row = "Ray, first trial of a study (a fresh worker), start to next start"
    print(f"| {first_row} | {out['ray_first_trial_s']:.1f} s | |")
    print(f"| Ray, 1 CPU per trial: trials/s, 1 at a time | {out['throughput_1']:.3f} | |")
    print(f"| Ray, 1 CPU per trial: trials/s, 2 at a time | {out['throughput_2']:.3f} | |")
    print(f"| **2 concurrent vs 1, throughput** | **{out['speedup_2_vs_1']:.2f}x** | >= 1.6x |")
    print(f"| ray.init(num_cpus=2) | {ray_start:.1f} s | |")
    print(f"| load average (1 min) before / after | {load:.1f} / {out['load_after']:.1f} | |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

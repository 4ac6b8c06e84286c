"""How the study machinery's cost grows with the number of trials, without any training.

Runs regtuner's own sampler (:func:`tuner.study.search.make_sampler`: multivariate TPE, constant liar)
and pruner (:func:`tuner.study.search.make_pruner`) on the ``default`` preset's space for a tabular
classification task, with a synthetic objective (a smooth function of the knobs plus noise) and
``--epochs`` pruning reports per trial, in Optuna's SQLite storage (what ``tune()`` uses) and in
memory. Reports the time per trial (ask + sample + reports + tell) in windows of 100 trials, so
the growth with the trial count is visible.

    python -m benchmarks.scale [--trials 1200] [--epochs 20] [--storage sqlite|memory|both]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _value(params: dict, epoch: int, rng) -> float:
    lr = math.log10(params["learning_rate"])
    return (
        0.3 + (params["dropout"] - 0.3) ** 2 + 0.05 * (lr + 2.5) ** 2
        + 0.02 * abs(math.log10(params["l2"]) + 4) + 0.5 / (epoch + 1) + rng.normal(scale=0.01)
    )  # fmt: skip


def measure(n_trials: int, epochs: int, storage: str, window: int = 100) -> dict:
    import numpy as np
    import optuna

    from tuner.records import TaskInfo
    from tuner.space.searchspace import resolve
    from tuner.study.search import make_pruner, make_sampler

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = resolve("default").for_task(
        TaskInfo("binary", 2, (0, 1), input_kind="tabular", input_shape=(20,))
    )
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/s.db" if storage == "sqlite" else None
        study = optuna.create_study(
            storage=url,
            sampler=make_sampler(0, n_trials),
            pruner=make_pruner(epochs, False, n_trials),
            study_name="scale",
        )
        for point in space.start_points:
            study.enqueue_trial(point)
        times, pruned = [], 0
        for _ in range(n_trials):
            t0 = time.perf_counter()
            trial = study.ask()
            params = space.sample(trial)
            state, value = optuna.trial.TrialState.COMPLETE, None
            for epoch in range(epochs):
                value = _value(params, epoch, rng)
                trial.report(value, epoch)
                if trial.should_prune():
                    state, pruned = optuna.trial.TrialState.PRUNED, pruned + 1
                    break
            study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
            times.append(time.perf_counter() - t0)
    windows = [
        {"trials": f"{i}-{i + window - 1}", "ms_per_trial": 1000 * float(np.mean(times[i : i + window]))}
        for i in range(0, n_trials, window)
    ]
    return {"storage": storage, "n_trials": n_trials, "epochs": epochs, "pruned": pruned,
            "total_s": float(sum(times)), "windows": windows}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    p.add_argument("--trials", type=int, default=1200)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--storage", choices=("sqlite", "memory", "both"), default="both")
    p.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = p.parse_args()
    kinds = ("memory", "sqlite") if args.storage == "both" else (args.storage,)
    out = []
    for kind in kinds:
        res = measure(args.trials, args.epochs, kind)
        out.append(res)
        print(f"{kind}: {res['total_s']:.1f} s for {res['n_trials']} trials ({res['pruned']} pruned)")
        for w in res["windows"]:
            print(f"  trials {w['trials']:>11s}: {w['ms_per_trial']:8.1f} ms/trial")
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

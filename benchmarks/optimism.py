"""How optimistic is each method's reported score? Measured on an audit half that no method saw.

Each (task, seed) split's test part is halved. regtuner gets half A as its test pair: what it
reports is its held-out test score on A (``Result.test_scores``). Optuna TPE with a median pruner
(the peer closest to a practitioner's own loop) reports its best trial's validation score. The
audit half B is scored by each method's chosen model only after the study; optimism is
reported − audit, in the task's metric (accuracy or R²), positive = the reported figure flatters.

    python -m benchmarks.optimism [--tasks a,b] [--seeds 2] [--trials 6] [--epochs 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.methods import Budget
from benchmarks.tasks import Split, get_task, task_names


def halves(split: Split, seed: int) -> tuple[Split, Split]:
    """(split whose test part is half A, split whose test part is half B), A and B disjoint."""
    X, y = split.test
    order = np.random.default_rng(20_000 + seed).permutation(len(X))
    a, b = order[: len(X) // 2], order[len(X) // 2 :]
    return dataclasses.replace(split, test=(X[a], y[a])), dataclasses.replace(split, test=(X[b], y[b]))


def regtuner_row(split_a: Split, split_b: Split, budget: Budget, seed: int) -> dict[str, Any]:
    """regtuner on (train, validation, A); its chosen model then scored on B."""
    import torch

    from benchmarks.methods import ours
    from benchmarks.methods.peer_loop import evaluate_torch

    kept: dict[str, Any] = {}
    row = ours.regtuner_zero_arg(split_a, budget, seed, "torch", keep=kept)
    Xb, yb = split_b.arrays("torch")[2]
    _, audit = evaluate_torch(kept["model"], split_b, torch.from_numpy(Xb), yb)
    return {"reported": row.test_metric, "audit": audit, "validation": row.reported_val}


def optuna_row(split_b: Split, budget: Budget, seed: int) -> dict[str, Any]:
    """Optuna TPE: its best validation score, and its chosen trial scored on B (its test part)."""
    from benchmarks.methods.optuna_tpe import optuna_tpe

    row = optuna_tpe(split_b, budget, seed, "torch")
    return {"reported": row.reported_val, "audit": row.test_metric, "validation": row.reported_val}


def summarise(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| method | runs | mean optimism (reported − audit) | median | mean abs | audit metric, median |",
           "|---|---|---|---|---|---|"]  # fmt: skip
    for method in ("regtuner", "optuna_tpe"):
        mine = [r for r in rows if r["method"] == method]
        opt = [r["reported"] - r["audit"] for r in mine]
        if not opt:
            continue
        mean_abs = statistics.mean(abs(o) for o in opt)
        audit = statistics.median(r["audit"] for r in mine)
        out.append(
            f"| {method} | {len(opt)} | {statistics.mean(opt):+.4f} | {statistics.median(opt):+.4f} "
            f"| {mean_abs:.4f} | {audit:.3f} |"
        )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default=",".join(task_names()))
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    from benchmarks.run import configure

    configure()
    budget = Budget(n_trials=args.trials, max_epochs=args.epochs)
    rows: list[dict[str, Any]] = []
    for task in args.tasks.split(","):
        for seed in range(args.seeds):
            split_a, split_b = halves(get_task(task).split(seed), seed)
            for method in ("regtuner", "optuna_tpe"):
                if method == "regtuner":
                    got = regtuner_row(split_a, split_b, budget, seed)
                else:
                    got = optuna_row(split_b, budget, seed)
                r = {"task": task, "seed": seed, "method": method, **got}
                rows.append(r)
                print(f"{task:14s} s{seed} {method:10s} reported {r['reported']:.3f}  audit {r['audit']:.3f}",
                      flush=True)  # fmt: skip
    print("\n".join(summarise(rows)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

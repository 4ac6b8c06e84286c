"""Orchestration overhead of ``tune()`` against a plain hand-written torch loop.

Both sides train the same fixed configurations (those of :mod:`benchmarks.overhead`, on the
same data) for the same number of epochs, without early stopping. The plain side is the loop
a user writes: ``DataLoader(TensorDataset(X, y), shuffle=True)``, AdamW, cross-entropy, and a
validation loss after every epoch. regtuner runs ``tune()`` with those configurations as the
study's start points; its time includes data checks, the dry run, the per-epoch train and
validation metrics, and the final refit of the chosen configuration. Target: ratio <= 1.10
without tracking (<= 1.15 with MLflow's local store).

    python -m benchmarks.overhead_torch [--epochs 20] [--repeats 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.overhead import CONFIGS, fixed_space, make_data


def torch_model(dropout: float | None = None):
    from torch import nn

    layers: list[nn.Module] = [nn.Linear(30, 128), nn.ReLU()]
    if dropout is not None:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(128, 64), nn.ReLU()]
    if dropout is not None:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(64, 4))
    return nn.Sequential(*layers)


def user_builder():
    """The zero-arg builder regtuner regularizes by injection."""
    return torch_model()


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds since ``start``; CPU time is the steadier one on a shared machine."""
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def plain(train, val, epochs: int) -> tuple[float, float]:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    Xt, yt = torch.from_numpy(train[0]), torch.from_numpy(train[1]).long()
    Xv, yv = torch.from_numpy(val[0]), torch.from_numpy(val[1]).long()
    start = _clock()
    for cfg in CONFIGS:
        torch.manual_seed(0)
        model = torch_model(cfg["dropout"])
        opt = torch.optim.AdamW(model.parameters(), lr=cfg["learning_rate"], weight_decay=cfg["l2"])
        loader = DataLoader(TensorDataset(Xt, yt), batch_size=cfg["batch_size"], shuffle=True)
        for _ in range(epochs):
            model.train()
            for xb, yb in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                F.cross_entropy(model(Xv), yv).item()
    return _since(start)


def with_tuner(
    train, val, epochs: int, tracking: bool, trials: list[float] | None = None
) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``tune()`` call; ``trials`` gets the summed wall time of its trials."""
    from tuner import tune

    space = fixed_space()
    with tempfile.TemporaryDirectory() as tmp:
        start = _clock()
        result = tune(
            user_builder,
            {"train": train, "validation": val},
            space=space,
            n_trials=len(CONFIGS),
            max_epochs=epochs,
            test=None,
            tracking=f"sqlite:///{tmp}/mlflow.db" if tracking else False,
            progress=False,
            storage=f"{tmp}/studies.db",
            baselines=False,
            device="cpu",
        )
        elapsed = _since(start)
        if trials is not None:
            trials.append(sum(r.duration for r in result.records))
        return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--mlflow", action="store_true", help="also time tune() with MLflow's local store")
    ap.add_argument(
        "--freeze",
        action="store_true",
        help="gc.freeze() after the warm-up: shows what the runner's per-trial gc.collect() costs",
    )
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "overhead_torch.json"))
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    train, val = make_data()
    plain(train, val, 1)  # warm the imports and the first passes outside the timings
    with_tuner(train, val, 1, tracking=False)
    if args.freeze:
        import gc

        gc.collect()
        gc.freeze()
    kinds = ["plain", "tune"] + (["tune+mlflow"] if args.mlflow else [])
    wall: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    trials: list[float] = []
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits every side
        for kind in kinds:
            if kind == "plain":
                w, c = plain(train, val, args.epochs)
            else:
                w, c = with_tuner(
                    train, val, args.epochs, kind == "tune+mlflow", None if "+" in kind else trials
                )
            wall[kind].append(w)
            cpu[kind].append(c)

    def ratio(times: dict[str, list[float]], kind: str) -> float:  # median of the paired ratios
        return statistics.median(t / p for t, p in zip(times[kind], times["plain"]))

    out = {
        "configs": len(CONFIGS),
        "epochs": args.epochs,
        "torch_threads": torch.get_num_threads(),
        "gc_frozen": args.freeze,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "ratio_no_tracking": ratio(wall, "tune"),
        "cpu_ratio_no_tracking": ratio(cpu, "tune"),
        # wall time of the trials alone (the configurations and the refit of the chosen one)
        "trial_seconds": trials,
        "ratio_trials_only": statistics.median(t / p for t, p in zip(trials, wall["plain"])),
    }
    if args.mlflow:
        out["ratio_mlflow"] = ratio(wall, "tune+mlflow")
        out["cpu_ratio_mlflow"] = ratio(cpu, "tune+mlflow")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    plain_s = statistics.median(wall["plain"])
    print(f"plain torch loop: {plain_s:.1f} s for {len(CONFIGS)} configs x {args.epochs} epochs")
    print(
        f"tune(), no tracking: ratio {out['ratio_no_tracking']:.3f} wall, "
        f"{out['cpu_ratio_no_tracking']:.3f} CPU (target <= 1.10); "
        f"trials alone {out['ratio_trials_only']:.3f}"
    )
    if args.mlflow:
        print(
            f"tune(), MLflow local: ratio {out['ratio_mlflow']:.3f} wall, {out['cpu_ratio_mlflow']:.3f} CPU "
            "(target <= 1.15)"
        )


if __name__ == "__main__":
    main()

"""Ray Tune with its defaults: random search (``BasicVariantGenerator``), FIFO scheduler, no pruning.

A function trainable reports ``val_loss`` and the validation metric every epoch with
``tune.report``; ``TuneConfig(metric="val_loss", mode="min", num_samples=n_trials)``; the chosen
trial is ``get_best_result()`` (its last report). Ray runs on this machine with 1 CPU per trial
(as many concurrent trials as cores). ``ray.init`` happens once per process and is not counted in
``wall_s`` (it is in ``extra["ray_init_s"]`` of the first row).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.methods import Budget, Row
from benchmarks.methods.peer_loop import PEER_SPACE, Epoch, train_torch
from benchmarks.tasks import Split

__all__ = ["ray_tune_default", "trainable"]

_INIT: dict[str, float] = {}


def trainable(config: dict[str, Any], split: Split, max_epochs: int, seed: int) -> None:
    """Ray Tune function trainable: one configuration, a report per epoch."""
    import torch
    from ray import tune

    from benchmarks import builders_torch

    torch.set_num_threads(1)
    params = dict(config)

    def report(e: Epoch) -> None:  # every epoch but the last: that one also carries the test metric
        if e.epoch + 1 < max_epochs:
            tune.report({"val_loss": e.val_loss, "val_metric": e.val_metric, "epochs": e.epoch + 1})

    out = train_torch(
        lambda p: builders_torch.model(split, dropout=p), split, params, max_epochs, seed, report
    )
    tune.report(
        {
            "val_loss": out["val_loss"],
            "val_metric": out["val_metric"],
            "epochs": out["epochs"],
            "test_metric": out["test_metric"],
        }
    )


def _init_ray() -> None:
    import ray

    if ray.is_initialized():
        return
    root = str(Path(__file__).resolve().parents[2])
    os.environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    if root not in sys.path:
        sys.path.insert(0, root)
    start = time.perf_counter()
    ray.init(
        num_cpus=os.cpu_count() or 2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=True,
        logging_level="ERROR",
    )
    _INIT["ray_init_s"] = time.perf_counter() - start


def ray_tune_default(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    from ray import tune

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    _init_ray()
    space = {
        "dropout": tune.uniform(*PEER_SPACE["dropout"]),
        "l2": tune.loguniform(*PEER_SPACE["l2"]),
        "learning_rate": tune.loguniform(*PEER_SPACE["learning_rate"]),
        "batch_size": tune.choice(list(PEER_SPACE["batch_size"])),
    }
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        start = time.perf_counter()
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(trainable, split=split, max_epochs=budget.max_epochs, seed=seed),
                {"cpu": 1},
            ),
            param_space=space,
            tune_config=tune.TuneConfig(metric="val_loss", mode="min", num_samples=budget.n_trials),
            run_config=tune.RunConfig(storage_path=tmp, name="bench", verbose=0),
        )
        grid = tuner.fit()
        wall = time.perf_counter() - start
        best = grid.get_best_result()
        epochs = sum(int(r.metrics.get("epochs", 0) or 0) for r in grid if r.metrics)
        errors = [str(r.error) for r in grid if r.error]
    extra: dict[str, Any] = {"best_params": best.config, **_INIT}
    _INIT.clear()
    return Row(
        task=split.task,
        method="ray_tune",
        seed=seed,
        framework="torch",
        metric=split.metric,
        test_metric=best.metrics.get("test_metric"),
        reported_val=best.metrics.get("val_metric"),
        wall_s=wall,
        epochs_trained=epochs,
        trials=len(grid),
        error="; ".join(errors[:1]) or None,
        extra=extra,
    )

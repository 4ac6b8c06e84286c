"""Optuna TPE with a median pruner, written the way Optuna's PyTorch example shows.

``suggest_float`` for dropout, L2 (log) and the learning rate (log), ``suggest_categorical`` for the
batch size, ``trial.report(val_loss, epoch)`` and ``trial.should_prune()`` after every epoch,
``TPESampler(seed=...)`` and ``MedianPruner()`` with their defaults, the last epoch's validation
loss as the value. The chosen model is the best trial's final model.
"""

from __future__ import annotations

import time

from benchmarks.methods import Budget, Row
from benchmarks.methods.peer_loop import PEER_SPACE, Epoch, train_torch
from benchmarks.tasks import Split

__all__ = ["optuna_tpe"]


def optuna_tpe(split: Split, budget: Budget, seed: int, framework: str) -> Row:
    import optuna

    from benchmarks import builders_torch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    epochs = [0]

    def objective(trial: optuna.Trial) -> float:
        params = {
            "dropout": trial.suggest_float("dropout", *PEER_SPACE["dropout"]),
            "l2": trial.suggest_float("l2", *PEER_SPACE["l2"], log=True),
            "learning_rate": trial.suggest_float("learning_rate", *PEER_SPACE["learning_rate"], log=True),
            "batch_size": trial.suggest_categorical("batch_size", list(PEER_SPACE["batch_size"])),
        }

        def report(e: Epoch) -> None:
            trial.report(e.val_loss, e.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            out = train_torch(
                lambda p: builders_torch.model(split, dropout=p), split, params, budget.max_epochs,
                seed + trial.number, report,
            )  # fmt: skip
        finally:
            epochs[0] += params.get("_epochs", 0)
        trial.set_user_attr("val_metric", out["val_metric"])
        trial.set_user_attr("test_metric", out["test_metric"])
        return out["val_loss"]

    start = time.perf_counter()
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(),
    )
    study.optimize(objective, n_trials=budget.n_trials)
    wall = time.perf_counter() - start
    best = study.best_trial
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return Row(
        task=split.task,
        method="optuna_tpe",
        seed=seed,
        framework="torch",
        metric=split.metric,
        test_metric=best.user_attrs["test_metric"],
        reported_val=best.user_attrs["val_metric"],
        wall_s=wall,
        epochs_trained=epochs[0],
        trials=len(study.trials),
        extra={"best_params": best.params, "pruned": pruned},
    )

"""Each pruner on the planted slow learner of ``tests/test_epoch_budget.py`` (seconds, numpy).

    python -m benchmarks.slow_pruners

Learning rates far too small for 30 epochs: every trial still improves at its last epoch, so a
pruner that stops most trials at its first rung stops trials that were not hopeless (issue 18).
Prints, per pruner, how many of the 20 trials were pruned and at which epoch.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

__all__ = ["main"]


def _pruners() -> dict[str, Callable[..., Any]]:
    from benchmarks.methods.ours import rung_pruner
    from tuner.study.search import make_pruner

    return {
        "median (default)": make_pruner,
        "hyperband": rung_pruner("hyperband"),
        "halving": rung_pruner("halving"),
    }


def main() -> None:
    import tuner.executors.local as local
    from tests.test_epoch_budget import slow_study
    from tuner.adapters import base

    base.ADAPTERS.insert(0, "tests.fakes:NumpyAdapter")
    default = local.make_pruner
    try:
        for name, factory in _pruners().items():
            local.make_pruner = factory
            result = slow_study(n_trials=20, max_epochs=30)
            pruned = collections.Counter(r.epochs_run for r in result.records if r.state == "pruned")
            at = ", ".join(f"{n} at epoch {e}" for e, n in sorted(pruned.items())) or "none"
            print(f"{name:17s} pruned {sum(pruned.values()):2d} of {len(result.records)}: {at}")
    finally:
        local.make_pruner = default


if __name__ == "__main__":
    main()

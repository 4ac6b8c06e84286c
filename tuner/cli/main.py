"""The ``regtuner`` command. Exit codes: 0 success, 2 bad input or configuration, 1 anything else."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from tuner import __version__
from tuner.cli.quiet import quiet_tensorflow_import
from tuner.errors import ConfigError, TunerError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="regtuner", description="Regularization tuner for neural networks.")
    p.add_argument("--version", action="version", version=f"regtuner {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="tune an overfitting Keras MLP on scikit-learn's digits")
    demo.add_argument(
        "--n-trials", "--trials", dest="trials", type=int, default=8, metavar="N", help="trials (default 8)"
    )
    demo.add_argument(
        "--max-epochs",
        "--epochs",
        dest="epochs",
        type=int,
        default=30,
        metavar="N",
        help="max epochs per trial (default 30)",
    )
    demo.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: MLflow's own)")
    demo.add_argument("--no-tracking", action="store_true", help="log nothing to MLflow")

    spaces = sub.add_parser("spaces", help="list the search-space presets, or print one")
    spaces.add_argument("name", nargs="?", help="preset name or YAML path to print (resolved)")
    for module in COMMAND_MODULES:
        _COMMANDS.update(importlib.import_module(module).register(sub))
    return p


#: modules that add command groups: each has ``register(subparsers) -> {name: handler}``
#: and keeps its heavy imports inside the handlers.
COMMAND_MODULES: list[str] = ["tuner.cli.tracking", "tuner.cli.jobs", "tuner.cli.report"]


def main(argv: Sequence[str] | None = None) -> int:
    # the command owns its process: TensorFlow's C++ start-up lines (oneDNN, CPU features) stay out
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    quiet_tensorflow_import()
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments already
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _COMMANDS[args.command](args)
    except (ConfigError, ValueError) as exc:
        print(f"regtuner: error: {exc}", file=sys.stderr)
        return 2
    except TunerError as exc:
        print(f"regtuner: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("regtuner: interrupted", file=sys.stderr)
        return 130


def _demo(args: argparse.Namespace) -> int:
    from tuner.cli.demo import run_demo

    tracking = False if args.no_tracking else args.tracking_uri
    print(f"regtuner demo: {args.trials} trials on digits (600 training rows), Keras MLP, preset 'quick'")
    result = run_demo(n_trials=args.trials, max_epochs=args.epochs, tracking=tracking)
    print(result.report())
    if result.mlflow_run_id:
        print("Review the trials with: regtuner ui   (or: mlflow ui)")
    return 0


def _spaces(args: argparse.Namespace) -> int:
    from tuner.space.searchspace import PRESETS, resolve

    if args.name is None:
        for name in PRESETS:
            print(f"{name:<12} {resolve(name).description}")
        return 0
    print(resolve(args.name).to_yaml())
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"demo": _demo, "spaces": _spaces}

"""The ``regtuner`` command and its job specs."""

from tuner.cli.main import main

__all__ = ["main"]

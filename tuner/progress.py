"""Live progress display: trials done / pruned / failed, best value so far, ETA."""

from __future__ import annotations

import math
import sys
from typing import Any, Literal

from tuner.records import TrialRecord

__all__ = ["Progress", "ProgressMode"]

ProgressMode = bool | Literal["always"]


class Progress:
    """A rich progress bar on stderr; silent when disabled or when stderr is not a terminal.

    ``mode=True`` shows it on a terminal only, ``"always"`` shows it anywhere, False never.
    """

    def __init__(self, mode: ProgressMode, total: int, direction: str, done: int = 0) -> None:
        self.total, self.direction = total, direction
        self.counts = {"complete": 0, "pruned": 0, "failed": 0}
        self.best: float | None = None
        self._bar: Any = None
        if mode is False or (mode is True and not sys.stderr.isatty()):
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]regtuner[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True, force_terminal=mode == "always" or None),
            transient=False,
        )
        self._task = self._bar.add_task("trials", total=total, completed=done, stats=self._stats())
        self._bar.start()

    @property
    def enabled(self) -> bool:
        return self._bar is not None

    def _stats(self) -> str:
        best = "-" if self.best is None else f"{self.best:.4g}"
        c = self.counts
        return f"done {c['complete']} pruned {c['pruned']} failed {c['failed']}  best {best}"

    def update(self, record: TrialRecord) -> None:
        self.counts[record.state] += 1
        if record.values and math.isfinite(record.values[0]):
            v = record.values[0]
            if self.best is None or (v < self.best if self.direction == "minimize" else v > self.best):
                self.best = v
        if self._bar is not None:
            self._bar.update(self._task, advance=1, stats=self._stats())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

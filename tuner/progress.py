"""Live progress display: trials done / pruned / failed, the best value and its trial, the running
trial's epoch, ETA, and what runs after the last trial."""

from __future__ import annotations

import math
import sys
from typing import Any, Literal

from tuner.records import TrialRecord

__all__ = ["Progress", "ProgressMode"]

ProgressMode = bool | Literal["always"]

#: how far a trial's epochs move the bar before the trial ends (early stopping may end it sooner)
EPOCH_SHARE = 0.95


class Progress:
    """A rich progress bar on stderr; silent when disabled or when stderr is not a terminal.

    ``mode=True`` shows it on a terminal only, ``"always"`` shows it anywhere, False never. The bar
    counts trials and moves with each epoch, so the ETA shows from the first epochs on.
    """

    def __init__(
        self,
        mode: ProgressMode,
        total: int,
        direction: str,
        done: int = 0,
        metric: str = "objective",
        max_epochs: int = 1,
    ) -> None:
        self.total, self.direction, self.metric = total, direction, metric
        self.max_epochs = max(1, int(max_epochs))
        self.counts = {"complete": 0, "pruned": 0, "failed": 0}
        self.best: float | None = None
        self.best_trial: int | None = None
        self.running: dict[int, int] = {}  # trial number -> epochs done
        self._done = float(done)
        self._phase = ""
        self._bar: Any = None
        if mode is False or (mode is True and not sys.stderr.isatty()):
            return
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]regtuner[/]"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True, force_terminal=mode == "always" or None),
            transient=False,
        )
        self._task = self._bar.add_task("trials", total=total, completed=done, **self._fields())
        self._bar.start()

    @property
    def enabled(self) -> bool:
        return self._bar is not None

    def stats(self) -> str:
        """The line beside the bar: ``done 3 pruned 1 failed 0  best val_loss 0.1394 (#2)  #5 epoch 7/30``."""
        if self._phase:
            return self._phase
        c = self.counts
        best = "-" if self.best is None else f"{self.best:.4g} (#{self.best_trial})"
        text = f"done {c['complete']} pruned {c['pruned']} failed {c['failed']}  best {self.metric} {best}"
        if self.running:
            number = max(self.running)
            text += f"  #{number} epoch {self.running[number]}/{self.max_epochs}"
        return text

    def _fields(self) -> dict[str, str]:
        finished = sum(self.counts.values())
        return {"count": f"{finished}/{self.total}", "stats": self.stats()}

    def _completed(self) -> float:
        share = sum(min(n / self.max_epochs, 1.0) * EPOCH_SHARE for n in self.running.values())
        return self._done + share

    def _refresh(self) -> None:
        if self._bar is not None:  # drawn now: an epoch can be shorter than rich's refresh period
            self._bar.update(self._task, completed=self._completed(), **self._fields())
            self._bar.refresh()

    def epoch(self, number: int, epoch: int) -> None:
        """Trial ``number`` finished its epoch ``epoch`` (0-based)."""
        self.running[number] = max(self.running.get(number, 0), epoch + 1)
        self._refresh()

    def update(self, record: TrialRecord) -> None:
        """Trial ``record.number`` ended."""
        self.running.pop(record.number, None)
        self.counts[record.state] += 1
        self._done += 1
        if record.values and math.isfinite(record.values[0]):
            v = record.values[0]
            if self.best is None or (v < self.best if self.direction == "minimize" else v > self.best):
                self.best, self.best_trial = v, record.number
        self._refresh()

    def phase(self, text: str) -> None:
        """What runs now that the trials are done (the refit, the baselines)."""
        self._phase, self.running = text, {}
        self._refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

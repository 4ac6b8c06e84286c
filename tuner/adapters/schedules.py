"""Learning-rate schedules, framework-neutral: the adapter asks for ``lr(epoch)`` at each epoch start.

Every schedule works at epoch granularity (epochs are 0-based, ``E = max_epochs``) and
starts from the trial's base learning rate ``b``:

``constant``
    ``lr(e) = b``.
``step``
    halves every ``s = max(1, E // 3)`` epochs: ``lr(e) = b * 0.5 ** (e // s)``.
``exponential``
    ``lr(e) = b * r ** e`` with ``r = 0.01 ** (1 / max(1, E - 1))``, so the last epoch runs at 1 % of ``b``.
``cosine``
    linear warm-up over ``w = round(warmup_fraction * E)`` epochs, ``lr(e) = b * (e + 1) / (w + 1)``
    for ``e < w``, then cosine annealing from ``b`` to ``m = 0.01 * b`` over the remaining epochs:
    ``lr(e) = m + (b - m) * (1 + cos(pi * t)) / 2`` with ``t = (e - w) / max(1, E - 1 - w)``.
``one_cycle``
    Smith's one-cycle policy: linear rise from ``b / 25`` at epoch 0 to ``b`` at epoch
    ``p = max(1, round(0.3 * E))``, then cosine annealing from ``b`` down to ``f = b / 1e4`` at the
    last epoch: ``lr(e) = f + (b - f) * (1 + cos(pi * t)) / 2`` with ``t = (e - p) / max(1, E - 1 - p)``.
``plateau``
    reduce-on-plateau: starts at ``b``; after 3 consecutive epochs without improvement of the
    monitored value (reported through :meth:`Schedule.observe`) the rate halves, never below ``b * 1e-3``.

Epochs past ``E - 1`` keep the last epoch's rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tuner.errors import ConfigError

__all__ = ["Schedule", "SCHEDULES", "make_schedule"]

#: names accepted by :func:`make_schedule`
SCHEDULES: tuple[str, ...] = ("constant", "step", "exponential", "cosine", "one_cycle", "plateau")

PLATEAU_PATIENCE = 3
PLATEAU_FACTOR = 0.5
PLATEAU_FLOOR = 1e-3  # fraction of the base rate
ONE_CYCLE_RISE = 0.3  # fraction of the epochs spent rising
ONE_CYCLE_DIV = 25.0  # start at base / 25
ONE_CYCLE_FINAL_DIV = 1e4  # end at base / 1e4
COSINE_FLOOR = 0.01  # cosine and exponential end at 1 % of base


@dataclass
class Schedule:
    """A learning-rate schedule for one trial (see the module docstring for each formula)."""

    kind: str
    base_lr: float
    max_epochs: int
    warmup_fraction: float = 0.0
    _current: float = field(init=False, repr=False)
    _wait: int = field(init=False, default=0, repr=False)

    def __post_init__(self) -> None:
        self._current = self.base_lr

    def lr(self, epoch: int) -> float:
        """The learning rate for ``epoch`` (0-based)."""
        b, n = self.base_lr, self.max_epochs
        e = min(max(int(epoch), 0), n - 1)
        if self.kind == "constant":
            return b
        if self.kind == "step":
            return b * 0.5 ** (e // max(1, n // 3))
        if self.kind == "exponential":
            return b * (COSINE_FLOOR ** (1.0 / max(1, n - 1))) ** e
        if self.kind == "cosine":
            w = round(self.warmup_fraction * n)
            if e < w:
                return b * (e + 1) / (w + 1)
            return _cosine(b, COSINE_FLOOR * b, (e - w) / max(1, n - 1 - w))
        if self.kind == "one_cycle":
            if n == 1:
                return b
            p = min(max(1, round(ONE_CYCLE_RISE * n)), n - 1)
            if e <= p:
                start = b / ONE_CYCLE_DIV
                return start + (b - start) * e / p
            return _cosine(b, b / ONE_CYCLE_FINAL_DIV, (e - p) / max(1, n - 1 - p))
        return self._current  # plateau

    def observe(self, value: float, improved: bool) -> None:
        """Feed the monitored value after an epoch; only ``plateau`` reacts."""
        if self.kind != "plateau":
            return
        if improved:
            self._wait = 0
            return
        self._wait += 1
        if self._wait >= PLATEAU_PATIENCE:
            self._current = max(self._current * PLATEAU_FACTOR, self.base_lr * PLATEAU_FLOOR)
            self._wait = 0


def _cosine(high: float, low: float, t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return low + (high - low) * 0.5 * (1.0 + math.cos(math.pi * t))


def make_schedule(kind: str, base_lr: float, max_epochs: int, *, warmup_fraction: float = 0.0) -> Schedule:
    """A :class:`Schedule` of ``kind`` (one of :data:`SCHEDULES`) starting from ``base_lr``."""
    if kind not in SCHEDULES:
        raise ConfigError(f"unknown learning-rate schedule {kind!r}; choose one of {list(SCHEDULES)}.")
    if not (isinstance(base_lr, (int, float)) and math.isfinite(base_lr) and base_lr > 0):
        raise ConfigError(f"the learning rate must be a positive number, got {base_lr!r}.")
    if int(max_epochs) < 1:
        raise ConfigError(f"max_epochs must be >= 1, got {max_epochs!r}.")
    if not 0.0 <= float(warmup_fraction) < 1.0:
        raise ConfigError(f"warmup_fraction must be in [0, 1), got {warmup_fraction!r}.")
    return Schedule(kind, float(base_lr), int(max_epochs), float(warmup_fraction))

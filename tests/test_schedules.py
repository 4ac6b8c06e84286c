import math

import pytest

from tuner.adapters.schedules import SCHEDULES, make_schedule
from tuner.errors import ConfigError


def lrs(kind: str, n: int = 10, base: float = 0.1, **kw) -> list[float]:
    s = make_schedule(kind, base, n, **kw)
    return [s.lr(e) for e in range(n)]


def test_constant():
    assert lrs("constant") == [0.1] * 10


def test_step_halves_every_third_of_the_epochs():
    values = lrs("step", n=9)
    assert values == pytest.approx([0.1] * 3 + [0.05] * 3 + [0.025] * 3)
    assert lrs("step", n=2) == pytest.approx([0.1, 0.05])  # step of at least one epoch


def test_exponential_ends_at_one_percent():
    values = lrs("exponential", n=5)
    rate = 0.01 ** (1 / 4)
    assert values == pytest.approx([0.1 * rate**e for e in range(5)])
    assert values[-1] == pytest.approx(0.001)
    assert all(a > b for a, b in zip(values, values[1:]))


def test_cosine_without_warmup():
    values = lrs("cosine", n=5)
    assert values[0] == pytest.approx(0.1)
    assert values[2] == pytest.approx(0.001 + 0.099 * 0.5)  # half-way
    assert values[-1] == pytest.approx(0.001)
    assert all(a > b for a, b in zip(values, values[1:]))


def test_cosine_with_warmup():
    values = lrs("cosine", n=10, warmup_fraction=0.3)  # 3 warm-up epochs
    assert values[:3] == pytest.approx([0.025, 0.05, 0.075])
    assert values[3] == pytest.approx(0.1)
    assert values[-1] == pytest.approx(0.001)
    assert all(a < b for a, b in zip(values[:4], values[1:4]))
    assert all(a > b for a, b in zip(values[3:], values[4:]))


def test_one_cycle():
    values = lrs("one_cycle", n=10)  # rises over epochs 0..3, falls over 3..9
    assert values[0] == pytest.approx(0.1 / 25)
    assert values[3] == pytest.approx(0.1)
    assert values[1] == pytest.approx(0.004 + 0.096 / 3)
    assert values[-1] == pytest.approx(0.1 / 1e4)
    assert values[6] == pytest.approx(1e-5 + (0.1 - 1e-5) * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert max(values) == values[3]
    assert all(a < b for a, b in zip(values[:3], values[1:4]))
    assert all(a > b for a, b in zip(values[3:], values[4:]))
    assert lrs("one_cycle", n=1) == [0.1]


def test_plateau_halves_after_three_epochs_without_improvement_and_has_a_floor():
    s = make_schedule("plateau", 0.1, 100)
    s.observe(1.0, True)
    s.observe(1.0, False)
    s.observe(1.0, False)
    assert s.lr(3) == 0.1
    s.observe(1.0, False)
    assert s.lr(4) == pytest.approx(0.05)
    s.observe(0.5, True)  # improvement resets the count
    s.observe(0.6, False)
    s.observe(0.6, False)
    assert s.lr(7) == pytest.approx(0.05)
    for _ in range(100):
        s.observe(0.6, False)
    assert s.lr(50) == pytest.approx(0.1 * 1e-3)


def test_other_schedules_ignore_observe_and_clamp_late_epochs():
    s = make_schedule("step", 0.1, 9)
    for _ in range(10):
        s.observe(1.0, False)
    assert s.lr(0) == 0.1
    assert s.lr(100) == s.lr(8)


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(ConfigError) as err:
        make_schedule("linear", 0.1, 10)
    for kind in SCHEDULES:
        assert kind in str(err.value)


@pytest.mark.parametrize("kw", [{"base_lr": 0.0}, {"max_epochs": 0}, {"warmup_fraction": 1.5}])
def test_bad_arguments(kw):
    args = {"base_lr": 0.1, "max_epochs": 10, "warmup_fraction": 0.0, **kw}
    with pytest.raises(ConfigError):
        make_schedule("cosine", args["base_lr"], args["max_epochs"], warmup_fraction=args["warmup_fraction"])

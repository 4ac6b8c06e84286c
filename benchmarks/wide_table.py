"""The wide benchmark's table: per-task medians, paired win/tie/loss per split, the issue's targets.

    python -m benchmarks.wide_table benchmarks/results/wide_quick.json [more.json ...] [--readme]

Rows of several JSON files (e.g. Keras Tuner measured by a second process) are merged. A split is
one (task, seed); regtuner and a method *tie* on it when their test metrics differ by at most one
test row's worth of metric (``1 / n_test``: one more or one fewer correct row of accuracy; the same
step is used for R²). Writes ``<first json stem>.md`` beside the first file and, with ``--readme``,
the block between ``<!-- wide:start -->`` and ``<!-- wide:end -->`` in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.table import _ok, cells

__all__ = ["markdown", "wins_ties_losses", "main"]

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- wide:start -->", "<!-- wide:end -->"
OURS = "regtuner"
ORDER = ("regtuner", "optuna_tpe", "keras_tuner", "untuned", "textbook", "hgb", "linear")


def _by_split(rows: list[dict]) -> dict[tuple[str, int], dict[str, dict]]:
    out: dict[tuple[str, int], dict[str, dict]] = defaultdict(dict)
    for r in _ok(rows):
        out[(r["task"], r["seed"])][r["method"]] = r
    return out


def wins_ties_losses(rows: list[dict], peer: str) -> tuple[int, int, int, list[float]]:
    """regtuner vs ``peer`` on every split both have: (wins, ties, losses, differences)."""
    won = tied = lost = 0
    diffs = []
    for split in _by_split(rows).values():
        if OURS not in split or peer not in split:
            continue
        ours, theirs = split[OURS], split[peer]
        d = ours["test_metric"] - theirs["test_metric"]
        step = 1.0 / max(int(ours.get("extra", {}).get("n_test") or 1), 1)
        diffs.append(d)
        if abs(d) <= step + 1e-12:
            tied += 1
        elif d > 0:
            won += 1
        else:
            lost += 1
    return won, tied, lost, diffs


def _methods(rows: list[dict]) -> list[str]:
    present = {r["method"] for r in rows}
    return [m for m in ORDER if m in present] + sorted(present - set(ORDER))


def task_table(rows: list[dict]) -> str:
    """Median test metric per task and method over seeds; the best median per row in bold."""
    methods = _methods(rows)
    c = cells(rows)
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    metric = {r["task"]: r["metric"] for r in rows}
    head = "| task (metric, test rows) | " + " | ".join(methods) + " |"
    lines = [head, "|---|" + "---|" * len(methods)]
    for t in tasks:
        meds = {m: statistics.median(c[(t, m)]) for m in methods if c.get((t, m))}
        top = max(meds.values())
        n_test = next((r["extra"].get("n_test") for r in rows if r["task"] == t and r.get("extra")), "?")
        out = [("**%.3f**" if meds[m] == top else "%.3f") % meds[m] if m in meds else "–" for m in methods]
        lines.append(f"| {t} ({metric[t]}, {n_test}) | " + " | ".join(out) + " |")
    return "\n".join(lines)


def pair_table(rows: list[dict]) -> str:
    """regtuner against each method: splits won, tied and lost, and the mean difference ± its SE."""
    lines = [
        f"| `{OURS}` vs | splits | won | tied | lost | at or above | mean difference ± SE |",
        "|---|---|---|---|---|---|---|",
    ]
    for peer in _methods(rows):
        if peer == OURS:
            continue
        won, tied, lost, d = wins_ties_losses(rows, peer)
        if not d:
            continue
        se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
        share = (won + tied) / len(d)
        lines.append(
            f"| {peer} | {len(d)} | {won} | {tied} | {lost} | {100 * share:.0f} % | "
            f"{statistics.fmean(d):+.4f} ± {se:.4f} |"
        )
    return "\n".join(lines)


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, each with its numbers and ✓ or ✗."""
    out = []
    for peer, goal in (("optuna_tpe", 0.7), ("untuned", 0.8), ("textbook", 0.8)):
        won, tied, lost, d = wins_ties_losses(rows, peer)
        if d:
            share = (won + tied) / len(d)
            mark = "✓" if share >= goal else "✗"
            out.append(f"- at or above `{peer}` on {won + tied}/{len(d)} splits = {100 * share:.1f} % "
                       f"(target ≥ {100 * goal:.0f} %) {mark}")  # fmt: skip
    c = cells(rows)
    short = []
    for t in dict.fromkeys(r["task"] for r in rows):
        refs = [statistics.median(c[(t, m)]) for m in ("untuned", "textbook") if c.get((t, m))]
        if c.get((t, OURS)) and refs:
            gap = statistics.median(c[(t, OURS)]) - max(refs)
            if gap < -0.03:
                short.append(f"{t} ({gap:+.3f})")
    mark = "✓" if not short else "✗"
    out.append(f"- tasks whose median is more than 0.03 below the best of untuned and textbook: "
               f"{', '.join(short) or 'none'} {mark}")  # fmt: skip
    return out


def timing(rows: list[dict]) -> str:
    """Wall time and epochs per study, regtuner vs the plain Optuna loop on the same splits."""
    lines = ["| method | median wall per study (s) | median epochs | splits |", "|---|---|---|---|"]
    for m in _methods(rows):
        mine = [r for r in _ok(rows) if r["method"] == m]
        if mine:
            wall = statistics.median(r["wall_s"] for r in mine)
            epochs = statistics.median(r["epochs_trained"] for r in mine)
            lines.append(f"| {m} | {wall:.1f} | {epochs:.0f} | {len(mine)} |")
    ours = [
        r["extra"]["baselines_s"]
        for r in _ok(rows)
        if r["method"] == OURS and "baselines_s" in r.get("extra", {})
    ]
    if ours:
        lines.append(
            f"| of which `{OURS}`'s baselines (trained as candidates) | {statistics.median(ours):.1f} | | |"
        )
    ratios = []
    for split in _by_split(rows).values():
        if OURS in split and "optuna_tpe" in split:
            ours, peer = split[OURS], split["optuna_tpe"]
            per_ours = ours["wall_s"] / max(ours["epochs_trained"], 1)
            per_peer = peer["wall_s"] / max(peer["epochs_trained"], 1)
            ratios.append(per_ours / per_peer)
    if ratios:
        lines.append("")
        note = " (its baselines included)" if ours else ""
        lines.append(f"Wall time per epoch, `{OURS}`{note} / `optuna_tpe` on the same split: median "
                     f"**{statistics.median(ratios):.2f}×** over {len(ratios)} splits "
                     f"(quartiles {_quartiles(ratios)}).")  # fmt: skip
    return "\n".join(lines)


def _quartiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return f"{q[0]:.2f}–{q[2]:.2f}"


def markdown(docs: list[dict[str, Any]]) -> str:
    rows = [r for d in docs for r in d["rows"]]
    metas = [d.get("meta", {}) for d in docs]
    commands = [c for m in metas for c in m.get("commands", [m.get("command")])]
    budget = docs[0].get("meta", {}).get("budget", {})
    seeds = sorted({r["seed"] for r in rows})
    head = (
        "Commands: " + "; ".join(f"`{c}`" for c in commands if c)
        + f". {len({r['task'] for r in rows})} tasks, seeds {seeds[0]}–{seeds[-1]}, "
        f"{budget.get('n_trials', '?')} trials × at most {budget.get('max_epochs', '?')} epochs per tuning "
        "method, torch (Keras Tuner: Keras)."
    )  # fmt: skip
    return "\n\n".join([
        head,
        "**Targets** (a tie is within one test row's worth of metric):", "\n".join(targets(rows)),
        "**Paired, per split** (task, seed):", pair_table(rows),
        "**Median test metric per task** (accuracy or R²; the best in bold):", task_table(rows),
        "**Time**:", timing(rows),
    ]) + "\n"  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.wide_table", description=__doc__.splitlines()[0])
    p.add_argument("json", nargs="+", type=Path)
    p.add_argument("--readme", action="store_true")
    args = p.parse_args(argv)
    text = markdown([json.loads(path.read_text()) for path in args.json])
    args.json[0].with_suffix(".md").write_text(text)
    if args.readme:
        doc = README.read_text()
        if START in doc:
            before, rest = doc.split(START, 1)
            doc = before + START + "\n" + text + END + rest.split(END, 1)[1]
            README.write_text(doc)
    print(text)


if __name__ == "__main__":
    main()

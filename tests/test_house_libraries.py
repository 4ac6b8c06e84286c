"""Plumbing done by well-kept libraries: OS file locks through ``filelock`` (tracking spool files, the
storage's first initialization), process liveness through ``psutil`` (a study's owner), and
YAML alias bombs refused by the loader itself (``tuner.space.yamldoc``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.error_cases_io import BOMB, DEEP, TOO_DEEP
from tuner.errors import ConfigError
from tuner.space.yamldoc import MAX_DEPTH, MAX_VALUES, guarded_loader, safe_load
from tuner.study.owner import OWNER_ATTR, _start_time, check_owner, is_alive, owner_record
from tuner.tracking.spool import SpoolFile, lock_path, os_lock, read_spool, spool_files
from tuner.tracking.state import StudyRun

# -- locks -------------------------------------------------------------------------------------------


def _holder(path: Path) -> subprocess.Popen[str]:
    """A child process that opens spool file ``path`` to replay it and then sleeps, holding it."""
    code = (
        "import sys, time\n"
        "from tuner.tracking.spool import SpoolFile\n"
        f"spool = SpoolFile.open_existing({str(path)!r})\n"
        "print('held' if spool is not None else 'refused', flush=True)\n"
        "time.sleep(120)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_spool_file_of_a_process_killed_with_sigkill_is_free_again(tmp_path):
    spool = SpoolFile.create(tmp_path, "http://host:5000", "u1")
    spool.write(StudyRun("u1", "exp", status="FINISHED"))
    spool.close()
    child = _holder(spool.path)
    try:
        assert SpoolFile.open_existing(spool.path) is None  # a live process owns it: sync skips it
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    reopened = SpoolFile.open_existing(spool.path)  # the OS dropped the dead process's lock
    assert reopened is not None and read_spool(reopened.path).study.status == "FINISHED"
    reopened.close()


def test_two_owners_in_one_process_exclude_each_other_across_threads(tmp_path):
    spool = SpoolFile.create(tmp_path, None, "u1")
    spool.write(StudyRun("u1", "exp"))
    assert SpoolFile.open_existing(spool.path) is None  # same process, same thread
    seen: list[SpoolFile | None] = []
    thread = threading.Thread(target=lambda: seen.append(SpoolFile.open_existing(spool.path)))
    thread.start()
    thread.join()
    assert seen == [None]  # another thread (a second tracker of this process) is kept out too
    closer = threading.Thread(target=spool.close)  # released from another thread than the one that took it
    closer.start()
    closer.join()
    again = SpoolFile.open_existing(spool.path)
    assert again is not None
    again.close()


def test_lock_files_are_not_spool_files_and_go_with_a_sent_spool(tmp_path):
    spool = SpoolFile.create(tmp_path, None, "u1")
    spool.write(StudyRun("u1", "exp"))
    assert lock_path(spool.path).name == spool.path.name + ".lock" and lock_path(spool.path).exists()
    assert spool_files(tmp_path) == [spool.path]  # `regtuner sync` lists the data file only
    spool.write(StudyRun("u1", "exp", status="KILLED"))  # rewritten whole: never torn
    assert read_spool(spool.path).study.status == "KILLED" and spool_files(tmp_path) == [spool.path]
    spool.close(remove=True)  # everything was sent
    assert spool_files(tmp_path) == [] and not lock_path(spool.path).exists()
    assert SpoolFile.open_existing(spool.path) is None  # removed by its owner while we waited: skipped
    assert not spool.path.exists() and not lock_path(spool.path).exists()  # and not brought back empty


def test_os_lock_is_an_os_lock_that_a_second_object_cannot_take(tmp_path):
    import filelock

    one, two = os_lock(tmp_path / "x.lock"), os_lock(tmp_path / "x.lock")
    assert one is not two and not isinstance(one, filelock.SoftFileLock)
    one.acquire(timeout=0)
    with pytest.raises(filelock.Timeout):
        two.acquire(timeout=0)
    one.release()
    two.acquire(timeout=0)
    two.release()


# -- process liveness --------------------------------------------------------------------------------


def test_owner_liveness_of_this_process_and_of_a_dead_one():
    assert is_alive(os.getpid(), _start_time(os.getpid()))
    assert not is_alive(os.getpid(), "1")  # the pid runs, but started at another time: a reused pid
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert _start_time(child.pid) is None and not is_alive(child.pid, "1")
    assert not is_alive(child.pid, None) and not is_alive("12", "1") and not is_alive(2**70, "1")
    assert _start_time(-1) is None and _start_time(0) is None


def test_a_killed_owner_that_is_not_reaped_yet_counts_as_gone():
    child = subprocess.Popen(["sleep", "60"])
    try:
        record = {"host": owner_record()["host"], "pid": child.pid, "started": _start_time(child.pid)}
        assert record["started"] is not None
        with pytest.raises(ConfigError, match=rf"another process \(pid {child.pid} on this machine\)"):
            check_owner("mlp", {OWNER_ATTR: record})
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _start_time(child.pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)  # a zombie until waited for
        check_owner("mlp", {OWNER_ATTR: record})  # no error
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux /proc")
def test_the_stored_start_time_is_the_kernels_as_older_versions_stored_it():
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    ticks = stat[stat.rfind(")") + 2 :].split()[19]  # what studies written before psutil hold
    assert _start_time(os.getpid()) == ticks == owner_record()["started"]


# -- YAML --------------------------------------------------------------------------------------------


def test_a_billion_laughs_is_refused_before_anything_is_constructed(monkeypatch):
    loader = guarded_loader()

    def construct_document(self, node):
        raise AssertionError("constructed")

    monkeypatch.setattr(loader, "construct_document", construct_document)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=rf"^spec\.yaml: the document expands to more than {MAX_VALUES}"):
        safe_load(f"data_args: {BOMB}\n", "spec.yaml")
    huge = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 30)
    )  # 10**30 values
    with pytest.raises(ConfigError, match="expands to more than"):
        safe_load(huge, "spec.yaml")
    assert time.monotonic() - started < 5


def test_a_merge_key_bomb_is_refused_before_pyyaml_merges_it():
    # `<<` copies the merged pairs into each mapping while constructing: 10**9 pairs without the count
    text = "a0: &a0 {k: v}\n" + "".join(
        f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 10)}]}}\n" for i in range(1, 10)
    )
    with pytest.raises(ConfigError, match="expands to more than"):
        safe_load(text, "space.yaml")


def test_the_loader_refuses_what_the_old_walk_refused_and_nothing_else():
    assert safe_load("[" + ", ".join(["1"] * (MAX_VALUES - 1)) + "]") == [1] * (MAX_VALUES - 1)
    with pytest.raises(ConfigError, match="expands to more than"):
        safe_load("[" + ", ".join(["1"] * MAX_VALUES) + "]")
    many = "a: &x [" + ", ".join(["1"] * 999) + "]\nb: [" + ", ".join(["*x"] * 19) + "]\n"
    with pytest.raises(ConfigError, match="expands to more than"):  # 1 + 2 + 1000 + 1 + 19 * 1000
        safe_load(many)
    nested = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    assert safe_load(nested) is not None
    with pytest.raises(ConfigError, match=rf"^s\.yaml: the document nests more than {MAX_DEPTH} levels"):
        safe_load("[" + nested + "]", "s.yaml")
    with pytest.raises(ConfigError, match="nests more than"):
        safe_load(f"description: {DEEP}\n")
    with pytest.raises(ConfigError, match=r"refers to a node that contains it"):
        safe_load("knobs: &k {dropout: [1, *k]}\n")
    deep_alias = "a: &x " + "[" * 30 + "]" * 30 + "\nb: " + "[" * 20 + "*x" + "]" * 20 + "\n"
    assert safe_load(deep_alias)["b"] is not None  # an alias is not nested again where it is used
    assert safe_load("a: &s hi\nb: [*s, *s]\nc: {<<: {z: 1}, y: 2}\n") == {
        "a": "hi",
        "b": ["hi", "hi"],
        "c": {"z": 1, "y": 2},
    }


def test_what_the_parser_refuses_is_refused_as_before():
    import yaml

    with pytest.raises(RecursionError):  # E332 / E429: deeper than the parser goes
        safe_load(f"description: {TOO_DEEP}\n")
    with pytest.raises(yaml.constructor.ConstructorError, match="could not determine a constructor"):
        safe_load("knobs: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(yaml.YAMLError, match="a tagged value cannot be read"):
        safe_load("seed: !!int x\n")
    with pytest.raises(yaml.composer.ComposerError, match="found undefined alias"):
        safe_load("a: *nowhere\n")
    assert safe_load("") is None

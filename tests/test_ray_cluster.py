"""A two-node Ray cluster simulated on this machine (``ray.cluster_utils.Cluster``).

A worker node is removed in the middle of a study: its trial is retried elsewhere (``max_failures``),
the study finishes, and no trial that had finished is lost or changed.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time

import pytest

from tests.fakes import NumpyModel, blobs
from tests.test_ray_executor import NUMPY_SPACE, QUIET, _register_fake
from tuner import RayExecutor, tune

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("numpy_adapter")]  # numpy_adapter: conftest.py


@pytest.fixture(scope="module")
def cluster(local_ray):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    local_ray.down()  # the runtime other tests share (conftest.py): this driver joins the cluster
    two_nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = two_nodes.add_node(num_cpus=1)
    ray.init(address=two_nodes.address, logging_level=logging.WARNING)
    two_nodes.wait_for_nodes()
    yield two_nodes, worker
    ray.shutdown()
    two_nodes.shutdown()


def slow_model(hp, log: str | None = None, slow_node: str | None = None):
    _register_fake()
    sleep = 0.15
    if log is not None:  # which node builds when: the test removes a node while it trains
        import ray

        node = ray.get_runtime_context().get_node_id()
        with open(log, "a") as f:
            f.write(f"{node} {time.time()}\n")
        sleep = 0.5 if node == slow_node else sleep  # a wide window to remove that node mid-trial
    return NumpyModel(5, 3, sleep=sleep)


@pytest.mark.mlflow
def test_a_local_tracking_store_serves_a_multi_node_cluster_through_its_one_writer(cluster, tmp_path):
    """Workers on both nodes never write MLflow: the driver logs every trial from what Tune reports, so
    a store only the driver's machine has holds every trial, once, nested under the study run."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = tune(slow_model, blobs(n=300), space=NUMPY_SPACE, n_trials=3, max_epochs=3, executor="ray",
                  tracking=uri, experiment="two-nodes", progress=False, baselines=False)  # fmt: skip
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("two-nodes").experiment_id
    runs = client.search_runs([experiment], filter_string="tags.`regtuner.role` = 'trial'")
    assert sorted(int(r.data.tags["regtuner.trial"]) for r in runs) == [r.number for r in result.records]
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == result.mlflow_run_id
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) >= 1


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_losing_a_worker_node_mid_study_loses_no_finished_trial(cluster, database, request):
    import optuna
    import ray
    from optuna.trial import TrialState

    two_nodes, worker = cluster
    if not worker.all_processes or len([n for n in ray.nodes() if n["Alive"]]) < 2:
        worker = two_nodes.add_node(num_cpus=1)  # the node an earlier run of this test removed
        two_nodes.wait_for_nodes()
    if database == "postgres":  # the storage every node of a real cluster reaches
        url = request.getfixturevalue("postgres").url("lossy_" + request.node.callspec.id)
    else:
        url = f"sqlite:///{os.path.abspath('studies.db')}"
    optuna.storages.RDBStorage(url)  # the schema, before the watcher below reads it
    seen: dict[int, tuple] = {}

    log = os.path.abspath("builds.log")
    open(log, "w").close()

    def builds() -> list[tuple[str, float]]:
        with open(log) as f:
            return [(node, float(at)) for node, at in (line.split() for line in f if line.strip())]

    def remove_worker_mid_trial() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                trials = optuna.load_study(study_name="lossy", storage=url).get_trials(deepcopy=False)
            except (KeyError, ValueError):  # the study is not created yet
                trials = []
            done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            on_worker = [at for node, at in builds() if node == worker.node_id]
            if done and on_worker and time.time() - on_worker[-1] < 1.5:  # it is training now
                seen.update({t.number: (t.state, t.values) for t in done})
                two_nodes.remove_node(worker)
                return
            time.sleep(0.05)

    remover = threading.Thread(target=remove_worker_mid_trial, daemon=True)
    remover.start()
    builder = functools.partial(slow_model, log=log, slow_node=worker.node_id)
    result = tune(builder, blobs(n=300), space=NUMPY_SPACE, n_trials=6, max_epochs=5,
                  executor=RayExecutor(max_failures=3), storage=url, study_name="lossy", **QUIET)  # fmt: skip
    remover.join(timeout=5)
    assert seen, "the worker node was never removed"
    assert len(result.records) == 6
    # The trial the node took along is retried elsewhere (a build more than the preflight and six
    # trials), or, when Ray spent its retries on the node before it was declared dead, recorded as
    # failed with the reason: at most that one trial is lost, and never silently.
    died = [r for r in result.records if r.state == "failed"]
    assert len(builds()) > 6 + 1 or (len(died) == 1 and "worker running this trial died" in died[0].error)
    assert len(died) <= 1
    after = {t.number: (t.state, t.values) for t in result.study.get_trials(deepcopy=False)}
    assert all(after[number] == before for number, before in seen.items())
    assert len([n for n in ray.nodes() if n["Alive"]]) == 1
    resumed = tune(builder, blobs(n=300), space=NUMPY_SPACE, n_trials=8, max_epochs=5, resume=True,
                   executor=RayExecutor(max_failures=3), storage=url, study_name="lossy",
                   **QUIET)  # fmt: skip
    assert len(resumed.records) == 8  # the study continues on the node that is left, nothing lost
    again = {t.number: (t.state, t.values) for t in resumed.study.get_trials(deepcopy=False)}
    assert all(again[number] == before for number, before in after.items())

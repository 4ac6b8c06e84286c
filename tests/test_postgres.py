"""A real PostgreSQL server as the study storage and as MLflow's backend store (the databases a
distributed study needs every node to reach); the Ray tests with a lost node or a killed driver run
on it too (tests/test_ray_cluster.py, tests/test_kill_resume_ray.py)."""

from __future__ import annotations

import optuna
import pytest

from tests.fakes import SPACE, NumpyModel, blobs
from tuner import tune

pytestmark = pytest.mark.usefixtures("numpy_adapter")  # conftest.py


def test_a_study_and_its_mlflow_runs_live_in_postgresql_and_resume_there(postgres):
    from mlflow.tracking import MlflowClient

    storage, tracking = postgres.url("studies_local"), postgres.url("mlflow_local")
    args = dict(space=SPACE, max_epochs=4, storage=storage, tracking=tracking, experiment="pg-study",
                study_name="pg-study", progress=False, baselines=False)  # fmt: skip
    first = tune(lambda: NumpyModel(5, 3), blobs(n=300), n_trials=3, **args)
    again = tune(lambda: NumpyModel(5, 3), blobs(n=300), n_trials=5, resume=True, **args)
    study = optuna.load_study(study_name="pg-study", storage=storage)
    assert len(study.trials) == 5 and len(again.records) == 5
    kept = {r.number: r.values for r in first.records}
    assert all(r.values == kept[r.number] for r in again.records if r.number in kept)

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("pg-study")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    roles = [r.data.tags.get("regtuner.role") for r in runs]
    assert roles.count("study") == 1 and roles.count("trial") == 5  # one run per trial after the resume
    names = sorted(r.info.run_name for r in runs if r.data.tags.get("regtuner.role") == "trial")
    assert names == [f"trial-{n:04d}" for n in range(5)]
    assert all(r.info.status == "FINISHED" for r in runs)
    parent = next(r for r in runs if r.data.tags.get("regtuner.role") == "study")
    assert parent.data.tags["regtuner.best_trial"] == str(again.best_trial)  # the resumed study's choice
    assert {f"best.{k}" for k in again.best_params} <= set(parent.data.tags)
    assert postgres.url("studies_local").startswith("postgresql+psycopg2://postgres@127.0.0.1:")

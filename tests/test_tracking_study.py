"""tune() in MLflow end to end (real server, REST queries): the study run, its trials, resume, the model."""

from __future__ import annotations

import numpy as np
import pytest

import tuner
from tests.fakes import SPACE, NumpyModel, blobs
from tests.mlflow_server import artifacts, find_runs, metric_history, metrics_of, params_of, rest, tags_of
from tests.test_tracking import EPOCHS, SUMMARY, records, study_info
from tuner import tune
from tuner.tracking import MlflowTracker, StudySummary, make_tracker

# the layout does not depend on where the tracking worker runs: the thread one is quicker to start
pytestmark = pytest.mark.usefixtures("thread_worker")  # conftest.py, like numpy_adapter


def by_role(url: str, experiment: str) -> tuple[list[dict], dict[int, dict]]:
    runs = find_runs(url, experiment)
    parents = [r for r in runs if tags_of(r).get("regtuner.role") == "study"]
    children = {
        int(tags_of(r)["regtuner.trial"]): r for r in runs if tags_of(r).get("regtuner.role") == "trial"
    }
    return parents, children


@pytest.mark.slow
def test_tune_writes_the_study_run_and_one_nested_run_per_trial(mlflow_server, numpy_adapter):
    built = []

    def build_model():
        built.append(1)
        if len(built) == 3:  # trial 1 (after the preflight build and trial 0) fails
            raise ValueError("no such layer")
        return NumpyModel(5, 3)

    result = tune(build_model, blobs(n=300), space=SPACE, n_trials=5, max_epochs=6, tracking=mlflow_server,
                  experiment="layout", progress=False)  # fmt: skip
    parents, children = by_role(mlflow_server, "layout")
    assert len(parents) == 1
    parent = parents[0]
    assert parent["info"]["run_id"] == result.mlflow_run_id and parent["info"]["status"] == "FINISHED"
    tags = tags_of(parent)
    assert tags["regtuner.study"] == result.study.study_name == parent["info"]["run_name"]
    assert (tags["regtuner.executor"], tags["regtuner.framework"], tags["regtuner.task"]) == (
        "local",
        "numpy",
        "multiclass",
    )
    assert (tags["regtuner.objective"], tags["regtuner.direction"]) == ("val_loss", "minimize")
    assert len(tags["regtuner.fingerprint"]) >= 8 and tags["regtuner.version"] == tuner.__version__
    assert tags["regtuner.best_trial"] == str(result.best_trial)
    params = params_of(parent)
    assert (params["n_trials"], params["max_epochs"], params["seed"]) == ("5", "6", "0")
    assert params["space"] == tags["regtuner.space"]
    assert {f"best.{k}" for k in result.best_params} <= set(tags)
    metrics = metrics_of(parent)
    assert metrics["best_objective"] == pytest.approx(result.best_value)
    assert metrics["test_loss"] == pytest.approx(result.test_scores["loss"])
    assert metrics["test_accuracy"] == pytest.approx(result.test_scores["accuracy"])
    assert metrics["trials_failed"] == 1 and metrics["trials_complete"] == result.counts["complete"]
    assert any(k.startswith("baseline.") for k in tags_of(parent)), sorted(tags_of(parent))  # same split
    assert {"space.yaml", "report.txt"} <= set(artifacts(mlflow_server, result.mlflow_run_id))

    assert sorted(children) == [r.number for r in result.records] == list(range(5))
    for record in result.records:
        child = children[record.number]
        ctags = tags_of(child)
        assert child["info"]["run_name"] == f"trial-{record.number:04d}"
        assert ctags["mlflow.parentRunId"] == result.mlflow_run_id and ctags["state"] == record.state
        assert child["info"]["status"] == ("FAILED" if record.state == "failed" else "FINISHED")
        assert float(params_of(child)["l2"]) == pytest.approx(record.params["l2"])
        for key in ("train_loss", "val_loss", "gap", "lr", "train_accuracy", "val_accuracy"):
            history = metric_history(mlflow_server, child["info"]["run_id"], key)
            assert [m["step"] for m in history] == list(range(record.epochs_run)), (record.number, key)
        if record.state == "complete":
            assert metrics_of(child)["objective"] == pytest.approx(record.values[0])
    failed = children[1]
    assert "ValueError: no such layer" in tags_of(failed)["error"]
    assert "traceback.txt" in artifacts(mlflow_server, failed["info"]["run_id"])

    # failed and pruned trials are runs like the others, found by a filter on their state
    experiment_id = parent["info"]["experiment_id"]
    found = rest(mlflow_server, "/api/2.0/mlflow/runs/search",
                 {"experiment_ids": [experiment_id], "filter": "tags.state = 'failed'"})  # fmt: skip
    assert [r["info"]["run_name"] for r in found["runs"]] == ["trial-0001"]


def test_summary_artifacts_and_baselines_reach_the_study_run(mlflow_server, tmp_path):
    plot, page = tmp_path / "curves.png", tmp_path / "report.html"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    page.write_text("<html>report</html>")
    tracker = MlflowTracker(mlflow_server, "exp-summary")
    tracker.start_study(study_info("study-summary", "exp-summary"))
    summary = StudySummary(
        **{
            k: getattr(SUMMARY, k)
            for k in ("best_params", "best_values", "best_trial", "test_scores", "counts")
        },
        baseline_scores={"linear": {"val_accuracy": 0.75}, "dummy": {"val_accuracy": 0.33}},
        artifacts={"plots/learning_curves.png": plot, "report.html": page},
    )
    tracker.end_study(summary)
    plot.unlink()  # the caller may delete its files as soon as end_study returns
    run_id = tracker.run_id
    assert {"plots", "report.html", "space.yaml"} <= set(artifacts(mlflow_server, run_id))
    assert artifacts(mlflow_server, run_id, "plots") == ["plots/learning_curves.png"]
    run = rest(mlflow_server, "/api/2.0/mlflow/runs/get", {"run_id": run_id})["run"]
    assert float(tags_of(run)["baseline.linear.val_accuracy"]) == pytest.approx(0.75)
    assert float(tags_of(run)["baseline.dummy.val_accuracy"]) == pytest.approx(0.33)
    assert not [k for k in metrics_of(run) if k.startswith("baseline")]  # no chart before the trials


def test_resume_reattaches_to_the_study_run_and_closes_orphaned_trials(mlflow_server):
    first, second, third = records()
    dead = MlflowTracker(mlflow_server, "exp-resume")
    dead.start_study(study_info("study-resume", "exp-resume"))
    dead.trial_started(0, first.params)
    dead.epoch_logged(0, 0, first.epochs[0])
    dead.trial_started(1, second.params)
    dead.trial_finished(second)
    assert dead.flush(60)
    dead.close()  # the process dies: trial 0 and the study stay RUNNING
    parents, children = by_role(mlflow_server, "exp-resume")
    assert parents[0]["info"]["status"] == children[0]["info"]["status"] == "RUNNING"

    tracker = make_tracker(mlflow_server, "exp-resume", study_uid=dead.study_uid)
    tracker.start_study(study_info("study-resume", "exp-resume"))
    assert tracker.flush(60) and tracker.run_id == dead.run_id
    parents, children = by_role(mlflow_server, "exp-resume")
    assert len(parents) == 1 and parents[0]["info"]["status"] == "RUNNING"
    orphan = children[0]
    assert orphan["info"]["status"] == "KILLED" and tags_of(orphan)["state"] == "failed"
    assert tags_of(orphan)["error"].startswith("interrupted")
    tracker.trial_started(2, third.params)
    for epoch in range(EPOCHS):
        tracker.epoch_logged(2, epoch, third.epochs[epoch])
    tracker.trial_finished(third)
    tracker.end_study(SUMMARY)
    parents, children = by_role(mlflow_server, "exp-resume")
    assert len(parents) == 1 and parents[0]["info"]["status"] == "FINISHED"
    assert sorted(children) == [0, 1, 2]
    assert tags_of(children[2])["mlflow.parentRunId"] == dead.run_id


@pytest.mark.slow
def test_a_resumed_tune_keeps_one_study_run(mlflow_server, numpy_adapter):
    calls = []

    def build_model():
        calls.append(1)
        if len(calls) == 4:  # preflight, trials 0 and 1, then Ctrl-C in trial 2
            raise KeyboardInterrupt
        return NumpyModel(5, 3)

    kwargs = dict(space=SPACE, max_epochs=4, tracking=mlflow_server, experiment="resumed", progress=False,
                  study_name="resumed-study")  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        tune(build_model, blobs(n=300), n_trials=4, **kwargs)
    parents, _ = by_role(mlflow_server, "resumed")
    assert len(parents) == 1 and parents[0]["info"]["status"] == "KILLED"
    result = tune(build_model, blobs(n=300), n_trials=4, resume=True, **kwargs)
    parents, children = by_role(mlflow_server, "resumed")
    assert len(parents) == 1 and parents[0]["info"]["run_id"] == result.mlflow_run_id
    assert parents[0]["info"]["status"] == "FINISHED"
    assert {r.number for r in result.records} <= set(children)


@pytest.mark.parametrize("framework", ["sklearn", "torch"])
def test_best_model_is_logged_with_its_flavour_signature_and_example(mlflow_server, monkeypatch, framework):
    import mlflow

    X = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    if framework == "sklearn":
        from sklearn.linear_model import LogisticRegression

        model, expected = LogisticRegression().fit(X, y), None
        expected = model.predict(X[:3])
    else:
        import torch

        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Softmax(dim=-1))
        expected = model(torch.as_tensor(X[:3])).detach().numpy()
    tracker = MlflowTracker(mlflow_server, f"exp-model-{framework}")
    tracker.start_study(study_info("study-model", f"exp-model-{framework}"))
    tracker.log_model(model, framework, X)
    tracker.end_study(SUMMARY)
    assert tracker.failures == 0

    run = rest(mlflow_server, "/api/2.0/mlflow/runs/get", {"run_id": tracker.run_id})["run"]
    model_uri = tags_of(run)["regtuner.model_uri"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    logged = mlflow.get_logged_model(model_uri.split("/")[-1])
    assert logged.source_run_id == tracker.run_id and str(logged.status).endswith("READY")
    loaded = mlflow.pyfunc.load_model(model_uri)
    flavor = {"sklearn": "sklearn", "torch": "pytorch"}[framework]
    assert flavor in loaded.metadata.flavors
    assert loaded.metadata.get_input_schema().inputs[0].shape == (-1, 4)  # the signature
    assert loaded.metadata.saved_input_example_info is not None  # the input example
    np.testing.assert_allclose(np.asarray(loaded.predict(X[:3])), expected, rtol=1e-5)


@pytest.mark.slow
def test_keras_study_logs_the_best_model_with_the_keras_flavour(mlflow_server, monkeypatch):
    keras = pytest.importorskip("keras")
    import mlflow

    X, y = blobs(n=200, k=3, d=6)

    def build_model():
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])  # fmt: skip
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    result = tune(build_model, (X, y), space="quick", n_trials=2, max_epochs=2, tracking=mlflow_server,
                  experiment="keras-model", progress=False)  # fmt: skip
    run = rest(mlflow_server, "/api/2.0/mlflow/runs/get", {"run_id": result.mlflow_run_id})["run"]
    assert tags_of(run)["regtuner.framework"] == "keras"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    loaded = mlflow.pyfunc.load_model(tags_of(run)["regtuner.model_uri"])
    assert "keras" in loaded.metadata.flavors
    assert loaded.metadata.get_input_schema().inputs[0].shape == (-1, 6)
    out = np.asarray(loaded.predict(X[:4].astype(np.float32)))
    np.testing.assert_allclose(out, result.best_model.predict(X[:4], verbose=0), rtol=1e-4, atol=1e-6)

"""tune() with the local executor, end to end on the numpy fake adapter (fast, no framework)."""

import sqlite3

import numpy as np
import optuna
import pytest

from tests.fakes import SPACE, NumpyModel, blobs
from tuner import tune
from tuner.errors import ConfigError, ModelError, StudyAborted

pytestmark = pytest.mark.usefixtures("numpy_adapter")  # conftest.py


def data():
    return blobs(n=400)


def model():
    return NumpyModel(5, 3)


def run(**kw):
    args = dict(space=SPACE, n_trials=6, max_epochs=10, tracking=False, progress=False, baselines=False)
    args.update(kw)
    return tune(kw.pop("builder", model), data(), **{k: v for k, v in args.items() if k != "builder"})


def test_result_has_everything():
    r = run()
    assert set(r.best_params) >= {"l2", "learning_rate", "batch_size", "patience"}
    assert r.best_value == pytest.approx(r.validation_scores["loss"])
    assert set(r.test_scores) == {"loss", "accuracy", "log_loss", "f1"}
    assert len(r.trials) == 6 and set(r.trials["state"]) <= {"complete", "pruned", "failed"}
    assert {"number", "value", "params_l2", "epochs", "duration", "state"} <= set(r.trials.columns)
    assert r.mlflow_run_id is None and isinstance(r.study, optuna.Study)
    assert isinstance(r.best_model, NumpyModel)
    text = r.report()
    assert "test" in text and "optimism" in text and "l2" in text


def test_test_part_is_never_seen_by_the_search():
    r = run(test=None)
    assert r.test_scores == {}
    assert "test=None" in r.report()


def test_seeded_studies_are_identical():
    a, b = run(study_name="a"), run(study_name="b")
    assert a.best_params == b.best_params
    assert a.trials["value"].fillna(-1).tolist() == b.trials["value"].fillna(-1).tolist()


def test_resume_continues_a_study_and_keeps_trials(tmp_path):
    run(study_name="s", n_trials=3)
    r = run(study_name="s", n_trials=5, resume=True)
    assert len(r.trials) == 5 and list(r.trials["number"]) == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="resume=True"):
        run(study_name="s", n_trials=5)


def test_resume_marks_trials_of_a_dead_process_failed():
    run(study_name="k", n_trials=2)
    storage = optuna.storages.RDBStorage("sqlite:///.regtuner/studies.db")
    study = optuna.load_study(study_name="k", storage=storage)
    study.ask()  # a trial left RUNNING, as by a killed process
    r = run(study_name="k", n_trials=4, resume=True)
    states = dict(zip(r.trials["number"], r.trials["state"]))
    assert states[2] == "failed" and "interrupted" in r.trials.set_index("number").loc[2, "error"]
    assert sum(s != "failed" for s in states.values()) >= 4 - 0 or len(states) == 5
    assert len(states) == 5  # the interrupted trial does not count against the budget


def test_resume_with_other_data_is_refused():
    run(study_name="d", n_trials=2)
    X, y = data()
    with pytest.raises(ConfigError, match="fingerprint"):
        tune(
            model,
            (X[::-1], y[::-1]),
            space=SPACE,
            n_trials=3,
            tracking=False,
            progress=False,
            study_name="d",
            resume=True,
        )


def test_failing_trials_do_not_stop_the_study():
    calls = {"n": 0}

    def flaky(hp):
        calls["n"] += 1
        if calls["n"] in (3, 5):  # preflight is call 1
            raise RuntimeError(f"flaky {calls['n']}")
        return NumpyModel(5, 3)

    r = run(builder=flaky, n_trials=6)
    assert (r.trials["state"] == "failed").sum() == 2
    assert (r.trials["state"] == "complete").sum() >= 3


def test_hopeless_study_stops_with_the_first_error():
    calls = {"n": 0}

    def hopeless():
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyError("column 'age' missing")
        return NumpyModel(5, 3)

    with pytest.raises(StudyAborted, match="column 'age' missing"):
        run(builder=hopeless, n_trials=10)
    assert calls["n"] == 4  # preflight + 3 failed trials


def test_bad_model_output_is_caught_before_any_trial():
    with pytest.raises(ModelError, match="outputs 4"):
        run(builder=lambda: NumpyModel(5, 4))
    with pytest.raises(ModelError, match="not a model"):
        run(builder=lambda: "a string")


def test_pareto_search_exposes_the_front():
    r = run(objective=["val_loss", "val_accuracy"])
    assert r.pareto_front is not None and len(r.pareto_front) >= 1
    assert isinstance(r.best_value, tuple) and r.best_trial in set(r.pareto_front["number"])


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"n_trials": 0}, "n_trials"),
        ({"max_epochs": -1}, "max_epochs"),
        ({"objective": "val_r2"}, "val_r2"),
        ({"metrics": ["r2"]}, "r2"),
        ({"space": "no_such_preset"}, "no_such_preset"),
        ({"timeout": 0}, "timeout"),
        ({"executor": "spark"}, "spark"),
        ({"progress": "sometimes"}, "progress"),
    ],
)
def test_bad_settings_are_refused_up_front(kw, match):
    with pytest.raises(ConfigError, match=match):
        run(**kw)


def test_unwritable_storage_is_refused_up_front(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot be written"):
        run(storage=str(blocker / "sub" / "studies.db"))


def test_storage_is_sqlite_in_working_dir():
    run(study_name="here", n_trials=2)
    con = sqlite3.connect(".regtuner/studies.db")
    assert ("here",) in con.execute("select study_name from studies").fetchall()
    assert np.isfinite(1.0)


def _pruner_study(curves, n_trials=20):
    """An in-memory study with the product's pruner and one complete trial per curve (val loss per epoch)."""
    from tuner.study.search import make_pruner

    study = optuna.create_study(pruner=make_pruner(max_epochs=10, multi=False, n_trials=n_trials))
    for curve in curves:
        trial = study.ask()
        for epoch, value in enumerate(curve):
            trial.report(value, epoch)
        study.tell(trial, min(curve))
    return study


def _pruned_at(study, curve):
    trial = study.ask()
    for epoch, value in enumerate(curve):
        trial.report(value, epoch)
        if trial.should_prune():
            return epoch
    return None


def test_pruner_stops_a_poor_trial_after_three_trials_and_the_warm_up():
    good = [1.0 - 0.05 * e for e in range(10)]
    study = _pruner_study([good, good, good])
    assert _pruned_at(study, [2.0] * 10) == 2  # warm-up max(2, 10 // 10) = 2 epochs, then pruned


def test_a_study_of_fewer_than_ten_trials_is_not_pruned():
    """A median of 3 trials would stop half of a 6-trial study, and the epochs saved buy no trial."""
    good = [1.0 - 0.05 * e for e in range(10)]
    assert _pruned_at(_pruner_study([good] * 3, n_trials=9), [2.0] * 10) is None
    assert _pruned_at(_pruner_study([good] * 3, n_trials=10), [2.0] * 10) == 2


def test_epochs_are_written_to_the_storage_only_where_a_pruner_reads_them():
    """Each epoch's report is a storage write; a study too small to prune makes none."""
    small = run(study_name="small", n_trials=3, max_epochs=4)
    assert all(not t.intermediate_values for t in small.study.trials)
    large = run(study_name="large", n_trials=10, max_epochs=4)
    assert any(t.intermediate_values for t in large.study.trials)


def test_pruner_needs_three_trials_at_an_epoch_not_the_best_one_alone():
    """Early stopping leaves late epochs to the best trial: a median of one would prune near-best trials."""
    best = [1.0 - 0.05 * e for e in range(10)]
    short = [1.0 - 0.04 * e for e in range(4)]  # stopped early
    study = _pruner_study([best, short, short])
    near_best = [v + 0.01 for v in best]
    assert _pruned_at(study, near_best) is None


def test_progress_moves_with_epochs_and_names_the_metric_and_trial():
    from tuner.progress import Progress
    from tuner.records import TrialRecord

    bar = Progress(False, 4, "minimize", metric="val_loss", max_epochs=10)
    bar.epoch(0, 4)
    assert bar.stats().endswith("#0 epoch 5/10") and bar._completed() == pytest.approx(0.475)
    bar.update(TrialRecord(number=0, params={}, state="complete", values=(0.5,)))
    bar.update(TrialRecord(number=1, params={}, state="pruned"))
    assert bar.stats() == "done 1 pruned 1 failed 0  best val_loss 0.5 (#0)" and bar._completed() == 2
    bar.phase("trials done; now the refit")
    assert bar.stats() == "trials done; now the refit"


def test_the_live_display_shows_epochs_the_best_trial_and_the_end_phase(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: rich shortens what does not fit
    run(n_trials=3, max_epochs=4, progress="always")
    err = capsys.readouterr().err
    assert "best val_loss" in err and "epoch" in err and "/4" in err and "(#" in err
    assert "trials done: the refit of the chosen trial" in err

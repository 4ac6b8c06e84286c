"""Triggers of the input errors in docs/errors.md that ``tune()`` raises (data, task, settings, executors,
tracking, storage). Each runs the real entry point on bad input and must raise before any trial trains.

A trigger is a function of no arguments registered under its catalogue id; the test runs in its own
temporary working directory. See tests/error_cases_io.py for spaces, job specs and the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tests.fakes import NumpyModel, blobs
from tuner import RayExecutor, lr_range_test, tune

CASES: dict[str, Callable[[], Any]] = {}

SPACE = {"knobs": {"l2": {"type": "float", "low": 1e-6, "high": 1e-1, "log": True}, "patience": 3}}


def case(*ids: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def register(fn: Callable[[], Any]) -> Callable[[], Any]:
        for ident in ids:
            CASES[ident] = fn
        return fn

    return register


def model() -> NumpyModel:
    return NumpyModel(5, 3)


def run(data: Any = None, builder: Callable[..., Any] | None = None, **kw: Any) -> Any:
    """``tune()`` on the numpy fake: one trial of one epoch, nothing tracked, if it ever got that far."""
    args: dict[str, Any] = dict(
        space=SPACE, n_trials=1, max_epochs=1, tracking=False, progress=False, baselines=False
    )
    args.update(kw)
    return tune(builder or model, blobs(n=200) if data is None else data, **args)


X, Y = blobs(n=200)


def add(ident: str, fn: Callable[[], Any]) -> None:
    CASES[ident] = fn


# -- data shapes and values (E1xx) -----------------------------------------------------------------
add("E101", lambda: run((X[:10], Y[:9])))
add("E102", lambda: run([X, Y, Y]))
add("E103", lambda: run({"train": (X, Y), "valid": (X, Y)}))
add("E104", lambda: run({"validation": (X, Y)}))
add("E105", lambda: run({"train": (X, Y), "test": (X, Y)}, test=(X, Y)))
add("E106", lambda: run((X[:, 0], Y)))
add("E107", lambda: run((X.reshape(200, 5, 1, 1, 1), Y)))
add("E108", lambda: run((np.zeros((0, 5)), np.zeros(0))))
add("E109", lambda: run((np.full((200, 5), "a"), Y)))
add("E111", lambda: run((np.array([[1.0, "a"]] * 200, dtype=object), Y)))
add("E113", lambda: run(([[1.0, 2.0], [1.0]], [0, 1])))
add("E114", lambda: run((X, np.zeros((200, 2, 2), dtype=int))))
add("E115", lambda: run((X, [])))
add("E118", lambda: run(groups=[1, 2]))
add("E119", lambda: run({"train": (X, Y), "validation": (X[:, :3], Y)}))
add("E121", lambda: run((X[:10], Y[:10])))
add("E122", lambda: run((X[:40], np.r_[np.zeros(20, int), np.ones(17, int), np.full(3, 2)]), cv=5, test=None))
add("E123", lambda: run(cv=5, test=None, groups=np.arange(200) % 3))
add("E124", lambda: run((X[:3], [[1.0], [2.0], [3.0, 4.0]])))


@case("E110")
def _pandas_text_column() -> Any:
    import pandas as pd

    frame = pd.DataFrame({"age": np.arange(200.0), "city": ["Oslo", "Rome"] * 100})
    return run((frame, Y))


@case("E112")
def _nan_and_inf() -> Any:
    bad = X.copy()
    bad[2, 0], bad[7, 3] = np.nan, np.inf
    return run((bad, Y))


@case("E116")
def _nan_label() -> Any:
    return run((X, np.where(np.arange(200) == 5, np.nan, Y.astype(float))), task="regression")


@case("E117")
def _pandas_missing_label() -> Any:
    import pandas as pd

    return run((X, pd.Series(Y, dtype="Int64").mask(np.arange(200) == 4)))


@case("E120")
def _rare_class() -> Any:
    y = Y.copy()
    y[:2] = 7  # two rows of class 7
    return run((X, y))


@case("E125")
def _iterable_dataset() -> Any:
    from torch.utils.data import IterableDataset

    class Stream(IterableDataset):
        def __iter__(self):
            yield from zip(X, Y, strict=True)

    return run(Stream())


@case("E126")
def _ragged_dataset() -> Any:
    from torch.utils.data import Dataset

    class Ragged(Dataset):
        def __len__(self) -> int:
            return 200

        def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
            return X[i, : 5 - (i == 3)], int(Y[i])

    return run(Ragged())


@case("E127")
def _unseen_label() -> Any:
    y = Y % 2
    return run({"train": (X, y), "validation": (X[:20], np.r_[y[:18], 2, 2])}, test=None)


@case("E128")
def _raw_table_for_a_plain_estimator() -> Any:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"age": np.arange(200.0), "city": ["Oslo", "Rome"] * 100})
    return run((frame, Y), builder=LogisticRegression, space="default")


add("E129", lambda: run((np.zeros((200, 4, 4, 1)), Y), preprocess=True))


# -- task, loss, metric and model mismatches (E2xx) ------------------------------------------------
add("E201", lambda: run(task="clf"))
add("E202", lambda: run((X, np.ones(200, int))))
add("E203", lambda: run(task="binary"))
add("E204", lambda: run((X, np.where(Y == 0, "cat", "dog")), task="regression"))
add("E205", lambda: run((X, Y + 0.5), task="classification"))
add("E206", lambda: run((X, np.eye(3)[Y] * 2), task="multiclass"))
add("E207", lambda: run((X, np.array([1, "a"] * 100, dtype=object))))
add("E208", lambda: run((X, np.full((200, 2), "a"))))
add("E209", lambda: run(objective="val_r2"))
add("E210", lambda: run(objective=[]))
add("E211", lambda: run(objective=["val_loss", "val_loss"]))
add("E212", lambda: run(objective=5))
add("E213", lambda: run(metrics=["r2"]))
add("E214", lambda: run(metrics=[object()]))
add("E215", lambda: run(metrics=5))
add("E216", lambda: run(loss=5))
add("E221", lambda: run(builder=lambda: "a model"))


def _torch_run(layers: Callable[[Any], Any], **kw: Any) -> Any:
    from torch import nn

    return run(builder=lambda: layers(nn), space="quick", **kw)


add("E217", lambda: _torch_run(lambda nn: nn.Sequential(nn.Linear(5, 3)), loss="hinge"))
add("E218", lambda: _torch_run(lambda nn: nn.Sequential(nn.Linear(5, 3)), loss="mse"))
add("E219", lambda: _torch_run(lambda nn: nn.Sequential(nn.Linear(5, 4))))
add("E220", lambda: _torch_run(lambda nn: nn.Sequential(nn.Linear(6, 3))))
add("E222", lambda: _torch_run(lambda nn: nn.LSTM(5, 3)))
add("E223", lambda: _torch_run(lambda nn: nn.Sequential(nn.ReLU())))


@case("E224")
def _regressor_for_classes() -> Any:
    from sklearn.linear_model import Ridge

    return run(builder=Ridge, space="quick")


@case("E225")
def _nothing_to_tune() -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return run(builder=KNeighborsClassifier, space="quick")


# -- executors (E7xx) ------------------------------------------------------------------------------
add("E701", lambda: run(executor="dask"))
add("E704", lambda: run(executor=RayExecutor(resources_per_trial=[2])))
add("E705", lambda: run(executor=RayExecutor(resources_per_trial={"cpu": "2"})))
add("E706", lambda: run(executor=RayExecutor(resources_per_trial={"gpu": -1})))
add("E707", lambda: run(executor=RayExecutor(resources_per_trial={"gpu": 1.5})))
add("E708", lambda: run(executor=RayExecutor(resources_per_trial={"cpu": 0})))
add("E709", lambda: run(executor=RayExecutor(max_concurrent_trials=0)))
add("E710", lambda: run(executor=RayExecutor(max_failures=-1)))
add("E711", lambda: run(executor=RayExecutor(address=" ")))
add("E712", lambda: run(executor=RayExecutor(address="http://head:8265")))
add("E714", lambda: run(executor=RayExecutor(scheduler="hyperband")))
add("E715", lambda: _torch_run(lambda nn: nn.Sequential(nn.Linear(5, 3)), device="tpu"))
add("E716", lambda: _torch_run(lambda nn: nn.Sequential(nn.Linear(5, 3)), device="cuda"))


# -- tracking (E6xx) -------------------------------------------------------------------------------
add("E601", lambda: run(tracking=5))
add("E602", lambda: run(tracking=" "))
add("E603", lambda: run(tracking="localhost:5000"))
add("E604", lambda: run(tracking="/srv/mlruns"))
add("E605", lambda: run(tracking="http://:5000"))
add("E606", lambda: run(tracking="http://mlflow:99999"))
add("E611", lambda: run(tracking="http://mlflow:5000/?token=PlantedTok5512"))
add("E607", lambda: run(tracking="sqlite://mlflow.db"))
add("E608", lambda: run(tracking="file:///srv/mlruns"))
add("E609", lambda: run(tracking="mlfow://server"))
add("E610", lambda: run(tracking=None, experiment=" "))


# -- storage (E8xx) --------------------------------------------------------------------------------
add("E801", lambda: run(storage=5))
add("E802", lambda: run(storage="postgres-db://host/studies"))
add("E803", lambda: run(storage="sqlite://studies.db"))
add("E804", lambda: run(storage="mssql+pymssql://user@dbhost/studies"))


@case("E805")
def _storage_not_writable() -> Any:
    with open("a-file", "w") as fh:
        fh.write("not a folder")
    return run(storage="a-file/studies.db")


@case("E806")
def _study_exists() -> Any:
    import optuna

    optuna.create_study(study_name="mlp", storage="sqlite:///studies.db")
    return run(study_name="mlp", storage="studies.db")


@case("E807")
def _resume_other_data() -> Any:
    import optuna

    study = optuna.create_study(study_name="mlp", storage="sqlite:///studies.db")
    study.set_user_attr("fingerprint", "0123456789abcdef")
    return run(study_name="mlp", storage="studies.db", resume=True)


@case("E808")
def _study_run_by_another_process() -> Any:
    import socket
    import subprocess

    import optuna

    from tuner.study.owner import OWNER_ATTR, _start_time

    # a live process of this machine is recorded as the study's owner, as a running study records itself
    other = subprocess.Popen(["sleep", "120"])
    try:
        study = optuna.create_study(study_name="mlp", storage="sqlite:///studies.db")
        owner = {"host": socket.gethostname(), "pid": other.pid, "started": _start_time(other.pid)}
        study.set_user_attr(OWNER_ATTR, owner)
        return run(study_name="mlp", storage="studies.db", resume=True)
    finally:
        other.kill()
        other.wait()


# -- tune() settings and the builder (E9xx) --------------------------------------------------------
add("E901", lambda: run(n_trials=0))
add("E902", lambda: run(max_epochs=2.5))
add("E903", lambda: run(timeout=float("nan")))
add("E904", lambda: run(trial_timeout=-1))
add("E905", lambda: run(seed=-1))
add("E906", lambda: run(progress="yes"))
add("E907", lambda: run(study_name=""))
add("E908", lambda: run(validation_split=1.5))
add("E909", lambda: run(test="20%"))
add("E910", lambda: run(cv=1))
add("E911", lambda: run({"train": (X, Y), "validation": (X[:50], Y[:50])}, cv=3))
add("E912", lambda: run(validation_split=None))
add("E913", lambda: run(repeats=0))
add("E914", lambda: run(repeats=3, test=None))
add("E915", lambda: run(baselines="no"))
add("E916", lambda: run(resume="yes"))
add("E917", lambda: run(max_consecutive_failures=0))
add("E918", lambda: run(builder=model()))
add("E919", lambda: run(builder=lambda units, rate: model()))
add("E920", lambda: run(builder=lambda: 1 / 0))
add("E921", lambda: lr_range_test(model, (X, Y), min_lr=1e-3, max_lr=float("inf")))
add("E922", lambda: lr_range_test(model, (X, Y), levels=3))
add("E923", lambda: lr_range_test(model, (X, Y), steps=10))
add("E924", lambda: lr_range_test(model, (X, Y), batch_size=0))

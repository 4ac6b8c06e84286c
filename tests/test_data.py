"""Tests of tuner.data.prepare.prepare: task inference, splits, folds, fingerprints, leakage, errors."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tuner.data.prepare import PreparedData, prepare
from tuner.errors import ConfigError, DataError


def _xy(n: int = 200, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=n)


def _all_rows(p: PreparedData) -> int:
    return sum(len(part[0]) for part in (p.train, p.validation, p.test) if part is not None)


# ----------------------------------------------------------------------------- task inference


def test_binary_strings_encoded_and_decoded():
    X, _ = _xy(100)
    y = np.where(np.arange(100) % 3 == 0, "spam", "ham")
    p = prepare((X, y))
    assert p.task.kind == "binary" and p.task.n_classes == 2
    assert p.task.classes == ("ham", "spam")
    assert p.train[1].dtype == np.int64 and set(np.unique(p.train[1])) == {0, 1}
    assert p.train[0].dtype == np.float32 and p.train[0].flags.c_contiguous
    assert _all_rows(p) == p.n_rows == 100
    # decode round trip: encoded test labels map back to the original rows' labels
    decoded = p.decode(p.test[1])
    assert set(decoded) <= {"ham", "spam"}
    assert list(p.decode(np.array([[0.9, 0.1], [0.2, 0.8]]))) == ["ham", "spam"]


def test_decode_round_trip_matches_original_labels():
    X = np.arange(60, dtype=float).reshape(-1, 1)
    y = np.array(["cat", "dog", "eel"])[np.arange(60) % 3]
    p = prepare((X, y), test=None)
    for Xp, yp in (p.train, p.validation):
        rows = Xp[:, 0].astype(int)
        assert list(p.decode(yp)) == list(y[rows])


def test_multiclass_integer_labels_note():
    X, _ = _xy(300)
    y = np.arange(300) % 10 + 5
    p = prepare((X, y))
    assert p.task.kind == "multiclass" and p.task.n_classes == 10
    assert p.task.classes == tuple(range(5, 15))
    assert any("10 distinct integer labels" in n for n in p.notes)


def test_many_integers_are_regression_with_note():
    X, _ = _xy(500)
    y = np.arange(500)
    p = prepare((X, y))
    assert p.task.kind == "regression" and p.train[1].dtype == np.float32
    assert any("500 distinct integer values" in n for n in p.notes)


def test_float_regression_and_integral_float_hint():
    X, y = _xy(200)
    p = prepare((X, y))
    assert p.task.kind == "regression" and p.task.n_classes == 0 and p.task.n_outputs == 1
    assert p.train[1].dtype == np.float32 and p.train[1].ndim == 1
    p2 = prepare((X, (np.arange(200) % 4).astype(float)))
    assert p2.task.kind == "regression"
    assert any("task='multiclass'" in n for n in p2.notes)
    p3 = prepare((X, (np.arange(200) % 4).astype(float)), task="multiclass")
    assert p3.task.kind == "multiclass" and p3.task.classes == (0.0, 1.0, 2.0, 3.0)


def test_one_hot_is_multiclass_indices():
    X, _ = _xy(120)
    labels = np.arange(120) % 3
    Y = np.eye(3)[labels]
    p = prepare((X, Y), test=None)
    assert p.task.kind == "multiclass" and p.task.n_classes == 3
    assert p.train[1].ndim == 1 and p.train[1].dtype == np.int64
    rows = np.isin(X[:, 0].astype(np.float32), p.train[0][:, 0])
    assert sorted(p.train[1]) == sorted(labels[rows])


def test_multi_output_regression():
    X, _ = _xy(100)
    Y = np.random.default_rng(1).normal(size=(100, 3))
    p = prepare((X, Y))
    assert p.task.kind == "regression" and p.task.n_outputs == 3
    assert p.train[1].shape[1] == 3 and p.train[1].dtype == np.float32


def test_pandas_inputs_with_string_labels():
    df = pd.DataFrame({"age": np.arange(90.0), "smoker": [True, False, True] * 30, "n": np.arange(90)})
    y = pd.Series(["low", "mid", "high"] * 30, name="risk")
    p = prepare((df, y))
    assert p.task.kind == "multiclass" and p.task.classes == ("high", "low", "mid")
    assert p.train[0].shape[1] == 3 and p.train[0].dtype == np.float32
    cat = pd.Series(pd.Categorical(["b", "a"] * 45, categories=["b", "a", "unused"]))
    pc = prepare((df, cat))
    assert pc.task.kind == "binary" and pc.task.classes == ("b", "a")  # category order, observed only


def test_bool_labels_and_explicit_tasks():
    X, _ = _xy(100)
    yb = np.arange(100) % 2 == 0
    assert prepare((X, yb)).task.classes == (False, True)
    p = prepare((X, np.arange(100) % 2), task="multiclass")
    assert p.task.kind == "multiclass" and p.task.n_classes == 2
    assert prepare((X, np.arange(100) % 3), task="classification").task.kind == "multiclass"
    assert prepare((X, np.arange(100) % 3), task="regression").task.kind == "regression"


def test_input_kinds():
    y = np.arange(40) % 2
    assert prepare((np.zeros((40, 5, 3)) + np.arange(40)[:, None, None], y)).task.input_kind == "sequence"
    img = np.random.default_rng(0).normal(size=(40, 6, 6, 1))
    p = prepare((img, y))
    assert p.task.input_kind == "image" and p.task.input_shape == (6, 6, 1)
    p = prepare((img[..., 0], y), input_kind="image")
    assert p.task.input_shape == (6, 6, 1) and p.train[0].ndim == 4
    assert any("(6, 6) reshaped to (6, 6, 1)" in n for n in p.notes)
    p = prepare((img, y), input_kind="tabular")
    assert p.task.input_kind == "tabular" and p.task.input_shape == (36,)


# ----------------------------------------------------------------------------- splits


def test_stratification_keeps_class_ratios():
    X, _ = _xy(1000)
    y = np.array([0] * 900 + [1] * 100)
    p = prepare((X, y), validation_split=0.25, test=0.2)
    for part in (p.train, p.validation, p.test):
        assert abs(part[1].mean() - 0.1) < 0.01
    assert (len(p.train[0]), len(p.validation[0]), len(p.test[0])) == (600, 200, 200)


def test_seed_determines_split_and_fingerprint():
    X, y = _xy(300)
    a, b, c = prepare((X, y), seed=1), prepare((X, y), seed=1), prepare((X, y), seed=2)
    assert np.array_equal(a.test[0], b.test[0]) and np.array_equal(a.validation[1], b.validation[1])
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    int(a.fingerprint, 16)
    assert not np.array_equal(a.test[0], c.test[0])
    assert a.fingerprint != c.fingerprint
    y2 = y.copy()
    y2[0] += 1
    assert prepare((X, y2), seed=1).fingerprint != a.fingerprint
    assert prepare((X, y), seed=1, cv=3).fingerprint != a.fingerprint


def test_rows_stay_aligned_after_split():
    X = np.arange(100, dtype=float).reshape(-1, 1)
    y = X[:, 0] * 3
    p = prepare((X, y))
    for Xp, yp in (p.train, p.validation, p.test):
        np.testing.assert_allclose(yp, Xp[:, 0] * 3)
    seen = np.concatenate([p.train[0][:, 0], p.validation[0][:, 0], p.test[0][:, 0]])
    assert sorted(seen) == list(range(100))


def test_explicit_mapping_parts_win():
    X, y = _xy(100)
    Xv, yv = _xy(17, seed=1)
    Xt, yt = _xy(13, seed=2)
    p = prepare({"train": (X, y), "validation": (Xv, yv), "test": (Xt, yt)}, validation_split=0.5, test=0.5)
    assert len(p.train[0]) == 100 and len(p.validation[0]) == 17 and len(p.test[0]) == 13
    np.testing.assert_allclose(p.test[0], Xt.astype(np.float32))
    assert p.n_rows == 130
    q = prepare({"train": (X, y)}, test=(Xt, yt))
    assert len(q.test[0]) == 13 and len(q.train[0]) + len(q.validation[0]) == 100


def test_test_none_disables_test_part():
    X, y = _xy(100)
    p = prepare((X, y), test=None)
    assert p.test is None and len(p.train[0]) == 80 and len(p.validation[0]) == 20
    assert p.leakage == {"validation_in_train": 0, "test_in_train": 0}


def test_stratified_cv_folds():
    X, _ = _xy(200)
    y = np.array(["a"] * 150 + ["b"] * 50)
    p = prepare((X, y), cv=4)
    assert p.validation is None and len(p.folds) == 4
    n = len(p.train[0])
    all_val = np.concatenate([va for _, va in p.folds])
    assert sorted(all_val) == list(range(n))
    for tr, va in p.folds:
        assert not np.intersect1d(tr, va).size and len(tr) + len(va) == n
        assert abs(p.train[1][va].mean() - 0.25) < 0.05


def test_grouped_splits_keep_groups_apart():
    X, y = _xy(240)
    groups = np.repeat(np.arange(40), 6)
    X[:, 0] = groups  # lets the test find each row's group back
    p = prepare((X, y), cv=4, groups=groups)
    train_groups = p.train[0][:, 0].astype(int)
    test_groups = p.test[0][:, 0].astype(int)
    assert not np.intersect1d(train_groups, test_groups).size
    assert len(p.folds) == 4
    for tr, va in p.folds:
        assert not np.intersect1d(train_groups[tr], train_groups[va]).size
    yc = np.array(["x", "y"])[np.arange(240) % 2]
    pc = prepare((X, yc), cv=3, groups=groups.astype(str), test=None)
    g = pc.train[0][:, 0].astype(int)
    for tr, va in pc.folds:
        assert not np.intersect1d(g[tr], g[va]).size


def test_leakage_counts_planted_duplicates():
    X = np.random.default_rng(0).normal(size=(50, 3))
    Xt = np.random.default_rng(1).normal(size=(20, 3))
    Xt[[2, 5, 7]] = X[[0, 10, 20]]
    Xv = np.random.default_rng(2).normal(size=(10, 3))
    Xv[4] = X[3]
    Xv[5] = -0.0 * X[3] + X[3]  # same values, still a copy
    y = np.arange(50) % 2
    p = prepare({"train": (X, y), "validation": (Xv, np.arange(10) % 2), "test": (Xt, np.arange(20) % 2)})
    assert p.leakage == {"validation_in_train": 2, "test_in_train": 3}
    assert any("3 test rows" in n for n in p.notes)


def test_repeated_rows_found_after_own_split():
    base = np.random.default_rng(0).normal(size=(100, 4))
    X = np.concatenate([base, base])  # every row twice
    p = prepare((X, np.zeros(200) + np.arange(200) % 7), test=0.5, validation_split=0.5)
    total = p.leakage["validation_in_train"] + p.leakage["test_in_train"]
    assert 0 < total <= 150


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("data", "kwargs", "exc", "needle"),
    [
        ((np.zeros((0, 3)), np.zeros(0)), {}, DataError, "empty"),
        ((np.zeros((10, 3)), np.zeros(9)), {}, DataError, "y has 9"),
        ((np.zeros(10), np.zeros(10)), {}, DataError, "X.reshape(-1, 1)"),
        ((np.zeros((10, 2)), np.array(["a"] * 10)), {}, DataError, "one class"),
        ((np.zeros((30, 2)), np.arange(30) % 3), {"task": "binary"}, DataError, "3 classes"),
        ((np.zeros((30, 2)), np.array(["a", "b"] * 15)), {"task": "regression"}, DataError, "labels"),
        ((np.zeros((30, 2)), np.linspace(0, 1, 30)), {"task": "multiclass"}, DataError, "non-integer"),
        ((np.zeros((30, 2)), np.zeros(30)), {"cv": 1}, ConfigError, "cv=1"),
        ((np.zeros((30, 2)), np.zeros(30)), {"cv": 2.5}, ConfigError, "cv=2.5"),
        ((np.zeros((30, 2)), np.zeros(30)), {"validation_split": 1.0}, ConfigError, "validation_split=1.0"),
        ((np.zeros((30, 2)), np.zeros(30)), {"test": 0.0}, ConfigError, "test=0.0"),
        ((np.zeros((30, 2)), np.zeros(30)), {"task": "ranking"}, ConfigError, "ranking"),
        ((np.zeros((30, 2)), np.zeros(30)), {"input_kind": "video"}, ConfigError, "video"),
        ((np.zeros((30, 2)), np.zeros(30)), {"groups": np.arange(29)}, DataError, "29"),
        ((np.zeros((10, 2)), np.zeros(10)), {"cv": 20, "test": None}, DataError, "cv=20"),
        ({"train": (np.zeros((10, 2)), np.zeros(10)), "holdout": None}, {}, DataError, "holdout"),
        ({"validation": (np.zeros((10, 2)), np.zeros(10))}, {}, DataError, "'train'"),
        ("data.csv", {}, DataError, "(X, y)"),
        ((np.zeros((10, 2)), np.zeros(10), np.zeros(10)), {}, DataError, "length 3"),
        ((np.array([["a", "b"]] * 10), np.arange(10) % 2), {}, DataError, "not numeric"),
        ((np.zeros((30, 2)), np.eye(3)[np.arange(30) % 3]), {"task": "binary"}, DataError, "3 classes"),
        ((np.zeros((30, 2)), np.array([1, "a"] * 15, dtype=object)), {}, DataError, "mixes label types"),
        ((np.zeros((30, 2)), np.zeros(30)), {"seed": -1}, ConfigError, "seed=-1"),
        ((np.zeros((30, 2)), np.zeros(30)), {"validation_split": None}, ConfigError, "validation_split=None"),
        ((np.zeros((30, 2)), np.zeros(30)), {"input_kind": "image"}, DataError, "(n, h, w, c)"),
        (
            (np.zeros((30, 2)), np.zeros(30)),
            {"groups": np.arange(30) % 2, "cv": 3},
            DataError,
            "3 training groups",
        ),
    ],
)
def test_error_cases(data, kwargs, exc, needle):
    with pytest.raises(exc) as info:
        prepare(data, **kwargs)
    assert needle in str(info.value)


def test_nan_and_inf_are_located():
    X = np.zeros((20, 3))
    X[7, 2] = np.nan
    X[9, 2] = np.inf
    with pytest.raises(DataError, match=r"1 NaN and 1 inf values in 2 rows \(in column 2; first at row 7\)"):
        prepare((X, np.zeros(20)))
    df = pd.DataFrame({"a": np.zeros(20), "income": [1.0] * 19 + [np.inf]})
    with pytest.raises(DataError, match="'income'.*row 19.*[Ii]mpute"):
        prepare((df, np.zeros(20)))
    y = np.zeros(20)
    y[4] = np.nan
    with pytest.raises(DataError, match="y \\(train\\) has 1 rows.*first at row 4"):
        prepare((np.zeros((20, 2)), y))
    with pytest.raises(DataError, match="row 3"):
        prepare((np.zeros((20, 2)), ["a", "b", "a", None] * 5))


def test_non_numeric_dataframe_columns_named():
    df = pd.DataFrame({"x": np.arange(20.0), "city": ["a", "b"] * 10, "kind": pd.Categorical(["u"] * 20)})
    table = prepare((df, np.arange(20) % 2)).table  # kept raw: a Pipeline may encode it itself
    assert table is not None and table.text == ("city", "kind")
    assert re.search(r"\['city', 'kind'\].*preprocess=True.*get_dummies", table.problem)
    numeric_train = {"train": (df[["x"]], np.arange(20) % 2), "test": (df[["x", "city"]], np.arange(20) % 2)}
    with pytest.raises(DataError, match=r"X \(test\) has non-numeric columns \['city'\].*preprocess=True"):
        prepare(numeric_train)


def test_too_few_rows_for_stratified_splits_names_class():
    X = np.zeros((43, 2))
    y = np.array(["common"] * 40 + ["rare"] * 3)
    p = prepare((X, y))  # 3 rows is enough for test + validation + train
    assert p.task.n_classes == 2
    with pytest.raises(DataError, match=r"'rare' has 3 rows; the stratified splits \(test \+ 4 folds\)"):
        prepare((X, y), cv=4)
    with pytest.raises(DataError, match="'rare' has 3 rows.*test \\+ validation \\+ train"):
        prepare((X, y), test=0.5)  # test could take 2 of the 3, leaving too few to split again
    with pytest.raises(DataError, match="'rare' has 3.*fewer folds"):
        prepare((X, y), cv=4, test=None)
    y2 = np.array(["common"] * 41 + ["rare"] * 2)
    with pytest.raises(DataError, match="'rare' has 2 rows"):
        prepare((X, y2))


def test_tiny_split_sizes_error():
    X = np.zeros((6, 2))
    y = np.arange(6) % 3
    with pytest.raises(DataError, match="test split of 0.2 of 6 rows gives 2 test"):
        prepare((X, y), test=0.2)


def test_part_mismatches():
    X, y = _xy(40)
    with pytest.raises(DataError, match=r"different feature shapes.*\(4,\).*\(5,\)"):
        prepare({"train": (X, y), "test": _xy(10, d=5)})
    yc = np.arange(40) % 2
    with pytest.raises(DataError, match="not seen in train: '7' \\(2 rows\\)"):
        prepare({"train": (X, yc), "test": (X[:4], np.array([0, 7, 7, 1]))})
    with pytest.raises(DataError, match="not seen in train: 'c'"):
        prepare({"train": (X, np.array(["a", "b"])[yc]), "validation": (X[:3], ["a", "c", "b"])})
    with pytest.raises(ConfigError, match="explicit 'validation'"):
        prepare({"train": (X, y), "validation": (X[:5], y[:5])}, cv=3)
    with pytest.raises(DataError, match="X and y of validation differ.*X has 5 rows, y has 4"):
        prepare({"train": (X, y), "validation": (X[:5], y[:4])})


def test_large_input_prepares():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 50))
    y = rng.integers(0, 5, size=100_000)
    p = prepare((X, y), cv=3)
    assert len(p.train[0]) == 80_000 and len(p.folds) == 3
    assert p.leakage["test_in_train"] == 0


def test_more_input_forms():
    X = np.random.default_rng(0).normal(size=(60, 3))
    p = prepare((pd.DataFrame(X), pd.Series(pd.array([1, 2, 3] * 20, dtype="Int64"))))
    assert p.task.kind == "multiclass" and p.task.classes == (1, 2, 3)
    with pytest.raises(DataError, match="20 rows with missing values, first at row 2"):
        prepare((pd.DataFrame(X), pd.Series(pd.array([1, 2, None] * 20, dtype="Int64"))))
    p = prepare((X.tolist(), pd.DataFrame({"t": np.arange(60.0)})), validation_split=None, cv=3)
    assert p.task.kind == "regression" and p.validation is None and p.train[1].ndim == 1
    onehot = np.eye(3)[np.arange(60) % 3]
    p = prepare({"train": (X, onehot), "validation": (X[:6], onehot[:6])}, test=None)
    assert list(p.validation[1]) == [0, 1, 2, 0, 1, 2]
    assert p.leakage["validation_in_train"] == 6


def test_decode_rejects_bad_indices():
    X = np.zeros((60, 2)) + np.arange(60)[:, None]
    p = prepare((X, np.arange(60) % 3))
    with pytest.raises(DataError, match="0..2.*values 5..5"):
        p.decode(np.array([5]))
    with pytest.raises(DataError, match="classification"):
        prepare((X, np.linspace(0, 1, 60))).decode([0])


def test_group_split_losing_a_class_is_reported():
    X = np.zeros((60, 2)) + np.arange(60)[:, None]
    y = np.r_[np.zeros(57, int), np.ones(3, int)]
    groups = np.r_[np.arange(57) % 19, [19, 19, 19]]  # class 1 lives in one group only
    outcomes = set()
    for seed in range(8):
        try:
            p = prepare((X, y), groups=groups, seed=seed)
            outcomes.add("ok")
            assert 1 in p.train[1]
        except DataError as exc:
            outcomes.add("error")
            assert "class 1 out of train" in str(exc)
    assert outcomes == {"ok", "error"}


def test_import_is_light():
    code = (
        "import sys, tuner; before = set(sys.modules); import tuner.data.prepare; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(new & {'sklearn', 'pandas', 'torch', 'tensorflow', 'keras'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

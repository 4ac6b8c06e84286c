"""Save a trained model as an MLflow model with its framework's own flavour, a signature and an example.

``save_model(model, framework, path, input_example)`` writes an MLflow model folder (``MLmodel``,
the flavour's files, ``input_example.json``, requirements) that ``mlflow.pyfunc.load_model`` and
``mlflow.<flavour>.load_model`` read. The tracker saves it in the study's process (the model lives there)
and its worker uploads it as the study run's logged model. Requirements are pinned from the installed
versions, so MLflow does not start a process to infer them.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from tuner.errors import ConfigError

__all__ = ["SavedModel", "save_model", "upload_model", "warm_up", "FLAVORS"]

#: framework name (as adapters call it) -> MLflow flavour module
FLAVORS = {
    "keras": "keras",
    "torch": "pytorch",
    "pytorch": "pytorch",
    "sklearn": "sklearn",
    "scikit-learn": "sklearn",
}
_EXAMPLE_ROWS = 5
_REQUIREMENTS = {
    "keras": (("keras",), ("tensorflow", "tensorflow-cpu")),
    "pytorch": (("torch",),),
    "sklearn": (("scikit-learn",),),
}


@dataclass(frozen=True)
class SavedModel:
    """Where a model was saved and how."""

    path: Path
    framework: str
    flavor: str
    has_signature: bool


def save_model(
    model: Any, framework: str, path: str | os.PathLike[str], input_example: Any = None
) -> SavedModel:
    """Save ``model`` to the new folder ``path`` with ``framework``'s MLflow flavour.

    ``input_example`` is a few input rows (array-like; the first 5 are kept); with it the signature is
    inferred from the model's own predictions on them. Raises ConfigError for a framework without flavour.
    """
    flavor = FLAVORS.get(str(framework).lower())
    if flavor is None:
        known = ", ".join(sorted(FLAVORS))
        raise ConfigError(
            f"framework {framework!r} has no MLflow flavour regtuner can log (known: {known}); "
            "the model is not logged."
        )
    from mlflow.models import infer_signature

    module = importlib.import_module(f"mlflow.{flavor}")
    example = _example(input_example)
    signature = None
    if example is not None:
        signature = infer_signature(example, _predict(model, flavor, example))
    kwargs: dict[str, Any] = {"signature": signature, "input_example": example}
    kwargs["pip_requirements"] = _requirements(flavor)
    target = Path(path)
    target.mkdir(parents=True, exist_ok=True)  # mlflow.keras writes the example before creating it
    if flavor == "sklearn":
        module.save_model(model, str(target), serialization_format="cloudpickle", **kwargs)
    else:
        module.save_model(model, str(target), **kwargs)
    return SavedModel(target, str(framework), flavor, signature is not None)


def warm_up(framework: str) -> None:
    """Import MLflow's model modules in a background thread, so that :func:`save_model` at the end of a
    study does not wait for them (the import mostly overlaps training, which releases the GIL)."""
    flavor = FLAVORS.get(str(framework).lower())
    if flavor is None or "mlflow.models" in sys.modules:
        return

    def load() -> None:
        # MLflow's core only: the flavour module imports the framework, which the study thread uses
        with contextlib.suppress(Exception):  # save_model reports a missing or broken MLflow itself
            importlib.import_module("mlflow.models")

    threading.Thread(target=load, name="regtuner-mlflow-import", daemon=True).start()


def _example(value: Any) -> Any:
    """The first rows of ``value`` as a numpy array (float32 for floating data), or None; a DataFrame
    (a raw table) stays one, so that the signature names its columns and their types."""
    if value is None:
        return None
    if hasattr(value, "iloc") and hasattr(value, "columns"):
        return value.iloc[:_EXAMPLE_ROWS]
    try:
        rows = np.asarray(value[:_EXAMPLE_ROWS])
    except Exception:  # a dataset object without slicing: no example
        return None
    if rows.dtype == object or rows.ndim == 0 or len(rows) == 0:
        return None
    if np.issubdtype(rows.dtype, np.floating):
        rows = rows.astype(np.float32)
    return rows


def _predict(model: Any, flavor: str, X: np.ndarray) -> np.ndarray:
    """The model's own output for ``X`` (what MLflow's pyfunc returns), for the signature."""
    if flavor == "keras":
        return np.asarray(model.predict(X, verbose=0))
    if flavor == "pytorch":
        import torch

        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model(torch.as_tensor(X).to(device))
        finally:
            model.train(was_training)
        return out.detach().cpu().numpy()
    return np.asarray(model.predict(X))


def _requirements(flavor: str) -> list[str]:
    """Pinned requirements of the installed packages the flavour needs (first installed of each group)."""
    out = []
    for group in _REQUIREMENTS.get(flavor, ()):
        for dist in group:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
            out.append(f"{dist}=={version.split('+')[0]}")
            break
    return out


def upload_model(
    client: Any,
    experiment_id: str,
    run_id: str,
    path: str | os.PathLike[str],
    uid: str,
    name: str = "model",
    tags: Mapping[str, str] | None = None,
) -> str:
    """Upload a saved model folder as the run's logged model (MLflow 3); returns ``models:/<id>``.

    The logged model carries ``regtuner.uid``: a retried upload finds it instead of making a second."""
    from mlflow.entities import LoggedModelOutput

    found = client.search_logged_models(
        [experiment_id], filter_string=f"tags.`regtuner.uid` = '{uid}'", max_results=1
    )
    if found:
        model = found[0]
    else:
        all_tags = {**(tags or {}), "regtuner.uid": uid, "mlflow.source.run_id": run_id}
        model = client.create_logged_model(experiment_id, name=name, source_run_id=run_id, tags=all_tags)
    client.log_model_artifacts(model.model_id, str(path))
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    client.finalize_logged_model(model.model_id, "READY")
    uri = f"models:/{model.model_id}"
    client.set_tag(run_id, "regtuner.model_uri", uri)
    return uri

"""Job spec files: one YAML file that says what to tune and how, for ``regtuner run`` and ``submit``.

A spec names the builder and the data loader as ``module:function`` (imported, never evaluated), the
space, objective, budget, executor settings and tracking::

    builder: digits_job:build_model        # module:function returning a fresh model
    data: digits_job:load_data             # module:function returning (X, y) or {train, validation, test}
    data_args: {n_rows: 1200}              # keyword arguments for the data loader (optional)
    space: quick                           # preset name, YAML path (relative to this file) or mapping
    objective: val_loss
    budget: {n_trials: 20, max_epochs: 30, timeout: null, trial_timeout: null}
    seed: 0
    study_name: digits-mlp
    executor:                              # or just: executor: local
      type: ray                            # local | ray
      address: auto                        # null (this machine), auto, HOST:PORT, ray://...
      resources_per_trial: {cpu: 1, gpu: 0}
      max_concurrent_trials: 2
      max_failures: 1
    tracking:                              # or: tracking: false
      uri: http://mlflow:5000
      experiment: digits

Other top-level keys: ``validation_split``, ``test``, ``cv``, ``task``, ``loss`` (a name), ``metrics``,
``storage`` (relative paths are relative to the spec's folder), ``resume``, ``baselines``,
``preprocess`` (true: impute, one-hot encode and standardize a table, as ``tune(preprocess=True)``). Unknown
keys are errors that name the key. Modules are imported from the current directory (a job's working
directory) and the spec's folder.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.machinery
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.config import check_names, check_settings
from tuner.errors import ConfigError
from tuner.executors import Executor, LocalExecutor, RayExecutor
from tuner.space.yamldoc import safe_load

__all__ = ["JobSpec", "load_spec", "parse_spec", "resolve_ref", "import_paths"]

_TOP = (
    "builder", "data", "data_args", "space", "objective", "budget", "validation_split", "test", "cv",
    "task", "loss", "metrics", "seed", "study_name", "storage", "resume", "baselines", "executor",
    "tracking", "preprocess",
)  # fmt: skip
_BUDGET = ("n_trials", "max_epochs", "timeout", "trial_timeout")
_EXECUTOR = ("type", "address", "resources_per_trial", "max_concurrent_trials", "max_failures")
_TRACKING = ("uri", "experiment")


@dataclass
class JobSpec:
    """A parsed spec: references still as text (``module:function``), settings validated in shape."""

    builder: str
    data: str
    source: str = "<spec>"
    base_dir: Path = field(default_factory=Path.cwd)
    data_args: dict[str, Any] = field(default_factory=dict)
    tune_args: dict[str, Any] = field(default_factory=dict)
    executor: str = "local"
    executor_args: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """Import the builder and the data loader (ConfigError naming what is missing)."""
        with import_paths(self.base_dir):
            return resolve_ref(self.builder, "builder"), resolve_ref(self.data, "data")

    def executor_object(self) -> Executor:
        """The executor the spec describes, its settings checked."""
        if self.executor == "ray":
            return RayExecutor(**self.executor_args)
        return LocalExecutor()

    def check(self) -> None:
        """Everything that can be checked without running: references import, the space resolves."""
        self.resolve()
        self.executor_object()  # settings such as resources_per_trial
        space = self.tune_args.get("space")
        if space is not None:
            from tuner.space.searchspace import resolve

            resolve(space)

    def check_uploadable(self, working_dir: Path | None) -> None:
        """The builder and data modules are importable on the cluster: from ``working_dir`` (what
        submit uploads) or the installed packages, not merely from this machine's folders."""
        here = {"", os.getcwd(), str(self.base_dir)} - ({str(working_dir)} if working_dir else set())
        paths = ([str(working_dir)] if working_dir else []) + [p for p in sys.path if p not in here]
        for ref, what in ((self.builder, "builder"), (self.data, "data")):
            top = _ref_text(ref, what)[0].split(".")[0]
            if (
                importlib.machinery.PathFinder.find_spec(top, paths) is None
                and top not in sys.builtin_module_names
            ):
                where = (
                    f"not in --working-dir {working_dir}"
                    if working_dir
                    else "not uploaded (no --working-dir)"
                )
                raise ConfigError(
                    f"{what}: module {top!r} would not be found on the cluster: it is {where} and not "
                    f"installed. Submit with --working-dir pointing at the folder that holds {top}.py."
                )

    def run(self, **overrides: Any) -> Any:
        """Load the data and run the study here (this process drives it); returns the ``Result``."""
        from tuner.api import tune

        build_model, load_data = self.resolve()
        kwargs = {**self.tune_args, **overrides}
        with import_paths(self.base_dir):  # lazy imports, and Ray workers started here, see the folders
            data = load_data(**self.data_args)
            if data is None:
                raise ConfigError(f"data: {self.data} returned None; it must return (X, y) or a mapping.")
            return tune(build_model, data, executor=self.executor_object(), **kwargs)


def load_spec(path: str | os.PathLike[str]) -> JobSpec:
    """Read and validate a spec file (YAML, read with ``yaml.safe_load``)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the job spec {str(path)!r}: {exc.strerror or exc}.") from None
    return parse_spec(text, source=str(path), base_dir=file.resolve().parent)


def parse_spec(text: str, *, source: str = "<spec>", base_dir: Path | None = None) -> JobSpec:
    """Validate spec text; ``base_dir`` is where relative paths in it point (the spec's folder)."""
    import yaml

    base = base_dir or Path.cwd()
    try:
        doc = safe_load(text, source)  # yaml.safe_load's plain data; refuses alias bombs and loops
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({' '.join(str(exc).split())}).") from None
    except RecursionError:
        raise ConfigError(f"{source}: the YAML nests too deeply to read; flatten it.") from None
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: a job spec is a YAML mapping with 'builder:' and 'data:' keys.")
    _known(doc, _TOP, source, "")
    for key in ("builder", "data"):
        if key not in doc:
            raise ConfigError(f"{source}: '{key}' is missing; write it as '{key}: module:function'.")
        _ref_text(doc[key], f"{source}: {key}")
    data_args = doc.get("data_args") or {}
    if not isinstance(data_args, Mapping):
        raise ConfigError(f"{source}: data_args must be a mapping of keyword arguments, got {data_args!r}.")

    args: dict[str, Any] = {}
    for key in ("objective", "validation_split", "cv", "task", "loss", "metrics", "seed"):
        if key in doc and doc[key] is not None:
            args[key] = doc[key]
    for key in ("study_name", "resume", "baselines", "preprocess", "test"):  # test: null means no test part
        if key in doc:
            args[key] = doc[key]
    if "loss" in args and not isinstance(args["loss"], str):
        raise ConfigError(f"{source}: loss must be a loss name such as 'mse', got {args['loss']!r}.")
    if doc.get("space") is not None:
        args["space"] = _space(doc["space"], base)
    if doc.get("storage") is not None:
        args["storage"] = _path_or_url(doc["storage"], base, f"{source}: storage")
    args.update(_budget(doc.get("budget"), source))
    args.update(_tracking(doc.get("tracking", None), source, "tracking" in doc))
    executor, executor_args = _executor(doc.get("executor"), source)
    for key in data_args:
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(
                f"{source}: data_args key {key!r} is not a keyword argument name; the data loader is "
                "called as load_data(**data_args), so write names such as 'n_rows: 1200'."
            )
    try:  # tune()'s own rules: `run --check` and submit refuse what tune() would
        check_settings(args, labels={k: f"budget.{k}" for k in _BUDGET})
        check_names(args)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return JobSpec(
        builder=doc["builder"],
        data=doc["data"],
        source=source,
        base_dir=base,
        data_args=dict(data_args),
        tune_args=args,
        executor=executor,
        executor_args=executor_args,
    )


def resolve_ref(ref: str, what: str) -> Callable[..., Any]:
    """Import ``module:function`` and return the function (attribute paths like ``mod:Class.make`` too)."""
    module_name, attr = _ref_text(ref, what)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ConfigError(
                f"{what}: module {module_name!r} not found (searched the current folder "
                f"{os.getcwd()} and the installed packages). Run from the folder that holds it, or "
                "submit with --working-dir pointing there."
            ) from None
        raise ConfigError(
            f"{what}: importing {module_name!r} failed because it imports {exc.name!r}, which is not "
            "installed. Install it (on the cluster: submit with --pip)."
        ) from None
    except Exception as exc:
        raise ConfigError(
            f"{what}: importing {module_name!r} raised {type(exc).__name__}: {exc}. Fix the module."
        ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(target) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{what}: {module_name!r} has no {part!r}{hint}.")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{what}: {ref!r} is a {type(target).__name__}, not a function.")
    return target


class import_paths:  # noqa: N801 - used like a function: ``with import_paths(folder):``
    """Put the current directory and ``folder`` first on ``sys.path`` while inside the block."""

    def __init__(self, folder: Path) -> None:
        self.paths = list(dict.fromkeys([os.getcwd(), str(folder)]))
        self.added: list[str] = []

    def __enter__(self) -> import_paths:
        for path in reversed(self.paths):
            if path not in sys.path:
                sys.path.insert(0, path)
                self.added.append(path)
        return self

    def __exit__(self, *exc: object) -> None:
        for path in self.added:
            if path in sys.path:
                sys.path.remove(path)


# -- sections ---------------------------------------------------------------------------------------


def _known(section: Mapping[Any, Any], keys: tuple[str, ...], source: str, prefix: str) -> None:
    for key in section:
        if key not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            where = f"in {prefix[:-1]}" if prefix else "at the top"
            raise ConfigError(
                f"{source}: unknown key {prefix}{key!r}{hint}; allowed {where}: {', '.join(keys)}."
            )


def _ref_text(ref: Any, what: str) -> tuple[str, str]:
    if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
        raise ConfigError(f"{what}: {ref!r} is not a reference; write it as 'module:function'.")
    module, attr = (part.strip() for part in ref.split(":"))
    parts = [*module.split("."), *attr.split(".")]
    if not all(p.isidentifier() for p in parts):
        raise ConfigError(f"{what}: {ref!r} is not a reference; write it as 'module:function'.")
    return module, attr


def _space(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value.endswith((".yaml", ".yml")) and not os.path.isabs(value):
        return str(base / value)
    return value


def _path_or_url(value: Any, base: Path, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a path or an RDB URL, got {value!r}.")
    if "://" in value or os.path.isabs(value):
        return value
    return str(base / value)


def _budget(value: Any, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: budget must be a mapping such as {{n_trials: 20, max_epochs: 30}}.")
    _known(value, _BUDGET, source, "budget.")
    return {k: value[k] for k in _BUDGET if k in value}


def _tracking(value: Any, source: str, given: bool) -> dict[str, Any]:
    if not given:
        return {}
    if value is False or value is None:
        return {"tracking": False} if value is False else {}
    if isinstance(value, str):
        return {"tracking": value}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{source}: tracking must be false, a URI, or a mapping with 'uri' and 'experiment'."
        )
    _known(value, _TRACKING, source, "tracking.")
    out: dict[str, Any] = {}
    if value.get("uri") is not None:
        out["tracking"] = value["uri"]
    if value.get("experiment") is not None:
        out["experiment"] = value["experiment"]
    return out


def _executor(value: Any, source: str) -> tuple[str, dict[str, Any]]:
    if value is None:
        return "local", {}
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: executor must be 'local', 'ray' or a mapping with 'type: ray'.")
    _known(value, _EXECUTOR, source, "executor.")
    kind = value.get("type", "local")
    if kind not in ("local", "ray"):
        raise ConfigError(f"{source}: executor.type must be 'local' or 'ray', got {kind!r}.")
    options = {k: value[k] for k in _EXECUTOR[1:] if value.get(k) is not None}
    if kind == "local" and options:
        raise ConfigError(
            f"{source}: executor settings {sorted(options)} apply to 'type: ray' only; remove them or "
            "set executor.type: ray."
        )
    return kind, options

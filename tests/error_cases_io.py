"""Triggers of the input errors in docs/errors.md that come from files and the command line: search
spaces (E3xx), job specs (E4xx) and ``regtuner`` arguments (E5xx). Same conventions as
tests/error_cases.py; a CLI trigger returns ``(exit code, what it printed)`` instead of raising.
"""

from __future__ import annotations

import contextlib
import io
import socket
import textwrap
import uuid
from pathlib import Path
from typing import Any

from tests.error_cases import CASES, case
from tuner.cli.main import main
from tuner.cli.spec import load_spec, parse_spec
from tuner.space.searchspace import resolve


def add(ident: str, fn: Any) -> None:
    CASES[ident] = fn


def write(name: str, text: str) -> str:
    Path(name).write_text(textwrap.dedent(text))
    return name


def cli(*argv: str) -> tuple[int, str]:
    """``regtuner ARGV`` in this process: its exit code and everything it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


def module(body: str) -> str:
    """A module of a fresh name in the working directory (imports are cached by name)."""
    name = f"job_{uuid.uuid4().hex[:8]}"
    write(f"{name}.py", body)
    return name


def spec(text: str) -> Any:
    return parse_spec(textwrap.dedent(text), source="spec.yaml", base_dir=Path.cwd())


# nine YAML anchors, each a list of ten aliases of the one before: 10**9 values once expanded
BOMB = (
    "["
    + ", ".join(
        ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
        + [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    )
    + "]"
)

DEEP = "[" * 45 + "]" * 45  # nested lists, more levels than any spec or space needs
TOO_DEEP = "[" * 2000 + "]" * 2000  # deeper than the YAML parser can recurse

# -- search spaces (E3xx) --------------------------------------------------------------------------
add("E301", lambda: resolve("defualt"))
add("E302", lambda: resolve("spaces/mine.yaml"))
add("E303", lambda: resolve(write("space.yaml", "knobs:\n  dropout: [0.1, 0.2\n  l2: 0.1\n")))
add("E304", lambda: resolve(write("space.yaml", "# nothing yet\n")))
add("E305", lambda: resolve(write("space.yaml", "- dropout\n- l2\n")))
add("E306", lambda: resolve({"knob": {}}))
add("E307", lambda: resolve({"knobs": {"dropuot": [0.1, 0.3]}}))
add("E308", lambda: resolve({"knobs": {"dropout": {"lowe": 0.0, "high": 0.5}}}))
add("E309", lambda: resolve({"knobs": {"dropout": {"low": 0.5, "high": 0.1}}}))
add("E310", lambda: resolve({"knobs": {"l2": {"low": 0, "high": 0.1, "log": True}}}))
add("E311", lambda: resolve({"knobs": {"l2": {"low": 1e-5, "high": 0.1, "log": True, "step": 0.01}}}))
add("E312", lambda: resolve({"knobs": {"dropout": {"low": 0.0, "high": 0.5, "step": 0.2}}}))
add("E313", lambda: resolve({"knobs": {"dropout": {"low": 0.0, "high": 1.5}}}))
add("E314", lambda: resolve({"knobs": {"optimizer": {"type": "float", "low": 0, "high": 1}}}))
add("E315", lambda: resolve({"knobs": {"batch_size": {"type": "float", "low": 16, "high": 64}}}))
add("E316", lambda: resolve({"knobs": {"batch_size": [32, 64, 32]}}))
add("E317", lambda: resolve({"hyperparameters": {"n-units": [32, 64]}}))
add("E318", lambda: resolve({"hyperparameters": {"dropout": [0.1, 0.2]}}))
add("E319", lambda: resolve({"knobs": {"dropout": [0.1, 0.3]}, "start": [{"dropuot": 0.1}]}))
add("E320", lambda: resolve({"knobs": {"dropout": [0.1, 0.3]}, "start": [{"dropout": 0.2}]}))
add("E321", lambda: resolve({"extends": "tabluar"}))
add("E322", lambda: resolve(write("loop.yaml", "extends: loop.yaml\n")))
add("E323", lambda: resolve({"knobs": {"augmentation": ["none", "flip+twist"]}}))
add("E324", lambda: resolve(write("space.yaml", f"description: {BOMB}\n")))
add("E325", lambda: resolve(write("space.yaml", "knobs: &k {dropout: *k}\n")))
add("E326", lambda: resolve(write("space.yaml", "knobs: !!python/object/apply:os.system ['true']\n")))
add("E327", lambda: resolve(5))
add("E328", lambda: resolve({"knobs": {"optimizer": {"type": "categorical", "low": 0, "choices": ["adam"]}}}))
add("E329", lambda: resolve({"hyperparameters": {"units": {"type": "int", "low": 8}}}))
add("E330", lambda: resolve({"knobs": {"l2": {"low": 0, "high": float("inf")}}}))
add("E331", lambda: resolve(write("space.yaml", f"description: {DEEP}\n")))
add("E332", lambda: resolve(write("space.yaml", f"description: {TOO_DEEP}\n")))

# -- job specs (E4xx) ------------------------------------------------------------------------------
add("E401", lambda: spec("builder: [unclosed\n"))
add("E402", lambda: spec("- builder: m:f\n"))
add("E403", lambda: spec("builder: m:f\ndata: m:g\nbudjet: {n_trials: 5}\n"))
add("E404", lambda: spec("builder: m:f\n"))
add("E405", lambda: spec("builder: os.system\ndata: m:g\n"))
add("E406", lambda: spec("builder: !!python/name:os.system\ndata: m:g\n"))
add("E407", lambda: spec("builder: no_such_module_zz:build\ndata: m:g\n").resolve())
add("E408", lambda: spec(f"builder: {module('import a_package_nobody_installed')}:f\ndata: m:g\n").resolve())
add("E409", lambda: spec(f"builder: {module('raise RuntimeError(42)')}:f\ndata: m:g\n").resolve())
add("E410", lambda: spec(f"builder: {module('def build(): pass')}:buld\ndata: m:g\n").resolve())
add("E411", lambda: spec(f"builder: {module('build = 3')}:build\ndata: m:g\n").resolve())
add("E412", lambda: spec("builder: m:f\ndata: m:g\ndata_args: [1200]\n"))
add("E413", lambda: spec("builder: m:f\ndata: m:g\ndata_args: {1: 1200}\n"))
add("E414", lambda: spec("builder: m:f\ndata: m:g\nloss: [mse]\n"))
add("E415", lambda: spec("builder: m:f\ndata: m:g\nbudget: 20\n"))
add("E416", lambda: spec("builder: m:f\ndata: m:g\nbudget: {n_trials: 0}\n"))
add("E417", lambda: spec("builder: m:f\ndata: m:g\nbudget: {timeout: .nan}\n"))
add("E418", lambda: spec("builder: m:f\ndata: m:g\ntracking: [http://mlflow:5000]\n"))
add("E419", lambda: spec("builder: m:f\ndata: m:g\nexecutor: {type: dask}\n"))
add("E420", lambda: spec("builder: m:f\ndata: m:g\nexecutor: {max_failures: 2}\n"))
add("E421", lambda: spec("builder: m:f\ndata: m:g\nstorage: 5\n"))
add("E422", lambda: load_spec("nowhere/spec.yaml"))
add("E423", lambda: spec(f"builder: m:f\ndata: m:g\ndata_args: {BOMB}\n"))
add("E424", lambda: spec("builder: m:f\ndata: m:g\nseed: -1\n"))
add("E425", lambda: spec("builder: m:f\ndata: m:g\nobjective: val_los\n"))
add("E428", lambda: spec(f"builder: m:f\ndata: m:g\ndata_args: {{rows: {DEEP}}}\n"))
add("E429", lambda: spec(f"builder: m:f\ndata: m:g\ndata_args: {{rows: {TOO_DEEP}}}\n"))
add("E430", lambda: spec("builder: m:f\ndata: m:g\nobjective: []\n"))


@case("E427")
def _ray_settings_on_check() -> Any:
    name = module("def build():\n    pass\n\ndef data():\n    pass\n")
    ray = "executor: {type: ray, resources_per_trial: {gpu: 1.5}}\n"
    return spec(f"builder: {name}:build\ndata: {name}:data\n{ray}").check()


@case("E426")
def _loader_returns_none() -> Any:
    name = module("def build():\n    pass\n\ndef data():\n    return None\n")
    return spec(f"builder: {name}:build\ndata: {name}:data\n").run()


# -- the command line (E5xx) -----------------------------------------------------------------------
add("E501", lambda: cli())
add("E502", lambda: cli("demo", "--n-trials", "x"))
add("E503", lambda: cli("spaces", "defualt"))
add("E504", lambda: cli("ui", "--port", "0", "--tracking-uri", "sqlite:///mlflow.db"))
add("E505", lambda: cli("ui", "--host", "no-such-host.invalid", "--tracking-uri", "sqlite:///mlflow.db"))
add("E507", lambda: cli("run"))
add("E508", lambda: cli("run", "--spec-env", "REGTUNER_NO_SUCH_VARIABLE"))
add("E509", lambda: cli("run", "missing.yaml"))
add("E510", lambda: cli("run", write("spec.yaml", "builder: m:f\ndata: m:g\nbudjet: {}\n"), "--check"))
add("E512", lambda: cli("status", "job-1", "--address", "ftp://head"))
add("E514", lambda: cli("sync", "--tracking-uri", "localhost:5000"))


@case("E506")
def _port_in_use() -> tuple[int, str]:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        return cli("ui", "--port", str(busy.getsockname()[1]), "--tracking-uri", "sqlite:///mlflow.db")


@case("E511")
def _working_dir_missing() -> tuple[int, str]:
    name = module("def build():\n    pass\n\ndef data():\n    pass\n")
    write("spec.yaml", f"builder: {name}:build\ndata: {name}:data\n")
    return cli("submit", "spec.yaml", "--working-dir", "nowhere")


@case("E515")
def _not_the_dashboard() -> tuple[int, str]:
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer() -> None:  # a gRPC frame, as Ray's GCS port sends to an HTTP request
        try:
            conn, _ = server.accept()
            conn.recv(1024)
            conn.sendall(b"\x00\x00\x12\x04\x00\x00\x00\x00\x00")
            conn.close()
        except OSError:
            pass

    threading.Thread(target=answer, daemon=True).start()
    try:
        return cli("jobs", "--address", f"http://127.0.0.1:{server.getsockname()[1]}")
    finally:
        server.close()


@case("E513")
def _dashboard_unreachable() -> tuple[int, str]:
    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    return cli("jobs", "--address", f"http://127.0.0.1:{port}")

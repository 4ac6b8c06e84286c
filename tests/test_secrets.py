"""A planted password (in the tracking URI) and token (``MLFLOW_TRACKING_TOKEN``) reach nothing
regtuner writes or shows.

A real study against a real MLflow server (its own, so that its whole store can be read), then
``regtuner report`` on it: the terminal, the log records, the report, every file written (the study
storage, the spool, the MLflow store and artifacts) and the command lines of every process regtuner
started while the study ran are searched for the two secrets, as written and percent-encoded. A
token in the URI's query string is refused before anything runs, without showing it (E611).
"""

from __future__ import annotations

import logging
import urllib.parse
from pathlib import Path

import psutil
import pytest

from tests.fakes import SPACE, NumpyModel, blobs
from tests.mlflow_server import MlflowServer
from tuner import tune
from tuner.cli.main import main
from tuner.errors import ConfigError

pytestmark = [pytest.mark.slow, pytest.mark.mlflow, pytest.mark.usefixtures("numpy_adapter")]

PASSWORD = "PlantedPw7731"
TOKEN = "PlantedTok5512"


def _forms(secret: str) -> set[str]:
    return {secret, urllib.parse.quote(secret, safe="")}


def test_a_planted_password_and_query_token_reach_no_output_store_log_or_command_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", TOKEN)  # sent as a header; the test server ignores it
    command_lines: list[str] = []

    def build_model() -> NumpyModel:  # runs inside the study: what runs beside it now is seen
        for child in psutil.Process().children(recursive=True):
            try:
                command_lines.append(" ".join(child.cmdline()))
            except psutil.Error:
                continue
        return NumpyModel(5, 3)

    with MlflowServer(tmp_path / "server") as server:
        uri = server.url.replace("http://", f"http://alice:{PASSWORD}@")
        with caplog.at_level(logging.DEBUG):
            result = tune(
                build_model, blobs(n=200), space=SPACE, n_trials=2, max_epochs=2, tracking=uri,
                experiment="planted", progress="always", storage=str(tmp_path / "studies.db"),
            )  # fmt: skip
            assert result.mlflow_run_id is not None
            assert main(["report", "planted", "--tracking-uri", uri]) == 0
        server_files = [p for p in (tmp_path / "server").rglob("*") if p.is_file() and p != server.log_path]

    printed = capfd.readouterr()
    assert "Chosen configuration" in printed.out  # the report was printed, from the server
    texts = {
        "stdout": printed.out,
        "stderr": printed.err,
        "log records": caplog.text,
        "report": result.report() + result.to_markdown(),
        "command lines": "\n".join(command_lines),
    }
    ours = [p for p in tmp_path.rglob("*") if p.is_file() and "server" not in p.relative_to(tmp_path).parts]
    assert command_lines and ours and server_files
    for secret in (*_forms(PASSWORD), *_forms(TOKEN)):
        for where, text in texts.items():
            assert secret not in text, f"{secret!r} in the {where}"
        for path in [*ours, *server_files]:
            assert secret.encode() not in path.read_bytes(), f"{secret!r} in {path}"


def test_a_token_in_the_query_string_is_refused_without_being_shown():
    with pytest.raises(ConfigError, match=r"query string.*MLFLOW_TRACKING_TOKEN") as caught:
        tune(NumpyModel, blobs(n=50), tracking=f"http://127.0.0.1:5000/?token={TOKEN}", progress=False)
    assert TOKEN not in str(caught.value)

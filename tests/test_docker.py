"""docker/: what can be checked without a Docker daemon.

``docker-compose config`` (Debian's docker-compose 1.29, which works offline) validates compose.yaml;
the Dockerfiles install extras that pyproject.toml defines and run the commands the Ray tests run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE = shutil.which("docker-compose")


def compose(*args: str, token: str | None = "test-token") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_BACKEND"))}
    if token is not None:
        env["RAY_AUTH_TOKEN"] = token
    return subprocess.run(
        [COMPOSE or "docker-compose", "-f", str(DOCKER / "compose.yaml"), *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


@pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose is not installed (apt-get install docker-compose)"
)
def test_compose_file_is_valid_and_wires_the_cluster():
    done = compose("--profile", "postgres", "--profile", "gpu", "config")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    assert set(services) == {"mlflow", "postgres", "ray-head", "ray-worker", "ray-gpu-worker"}
    head, worker = services["ray-head"], services["ray-worker"]
    assert head["command"][:4] == ["ray", "start", "--head", "--block"]  # as tests/ray_head.py starts it
    assert "--address=ray-head:6379" in worker["command"] and "--port=6379" in head["command"]
    assert any(str(p).startswith("127.0.0.1:8265:8265") for p in head["ports"])
    for service in (head, worker, services["ray-gpu-worker"]):
        env = service["environment"]
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000" and env["RAY_AUTH_MODE"] == "token"
        assert env["RAY_AUTH_TOKEN"] == "test-token"
    assert head["environment"]["REGTUNER_STORAGE"].startswith("sqlite:////data/")
    assert "--backend-store-uri=sqlite:////mlflow/mlflow.db" in services["mlflow"]["command"]
    gpu = services["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


@pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose is not installed (apt-get install docker-compose)"
)
def test_compose_refuses_to_start_a_cluster_without_a_token():
    done = compose("config", token=None)
    assert done.returncode != 0 and "set RAY_AUTH_TOKEN" in done.stderr


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfiles_install_extras_that_exist(name):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    text = (DOCKER / name).read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = re.findall(r'"\.\[([a-z,\-]+)\]"', text)
    assert wanted, f"{name} installs no regtuner extras"
    for group in wanted:
        assert set(group.split(",")) <= set(extras), group
    assert "ray" in wanted[0].split(",")  # the Ray head and workers, with the Jobs API
    for path in re.findall(r"^COPY (\S+) ", text, flags=re.MULTILINE):
        assert (ROOT / path).exists(), path


@pytest.mark.skipif(
    COMPOSE is None, reason="docker-compose is not installed (apt-get install docker-compose)"
)
def test_services_restart_and_wait_for_what_they_need():
    services = yaml.safe_load(compose("--profile", "postgres", "--profile", "gpu", "config").stdout)[
        "services"
    ]
    assert all(s.get("restart") == "unless-stopped" for s in services.values())
    for name in ("ray-worker", "ray-gpu-worker"):
        assert services[name]["depends_on"] == {"ray-head": {"condition": "service_healthy"}}
    assert "8265/api/version" in " ".join(services["ray-head"]["healthcheck"]["test"])
    mlflow = services["mlflow"]
    assert mlflow["entrypoint"][:2] == ["sh", "-c"] and "until python" in mlflow["entrypoint"][2]
    assert mlflow["environment"]["MLFLOW_BACKEND_URI"] == "sqlite:////mlflow/mlflow.db"
    assert any("postgres-init.sql" in v for v in services["postgres"]["volumes"])
    assert "CREATE DATABASE studies" in (DOCKER / "postgres-init.sql").read_text()


def test_images_pin_the_versions_the_tests_ran_and_install_them_before_the_code():
    from importlib.metadata import PackageNotFoundError, version

    pins = dict(
        line.split("==") for line in (DOCKER / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )  # fmt: skip
    for name in ("ray", "keras", "mlflow", "optuna", "torch", "kornia", "scikit-learn", "tensorflow-cpu"):
        try:
            installed = version(name).split("+")[0]
        except PackageNotFoundError:
            continue
        assert pins[name] == installed, (
            f"docker/constraints.txt pins {name}=={pins[name]}, tests ran {installed}"
        )
    for name in ("Dockerfile", "Dockerfile.gpu"):
        text = (DOCKER / name).read_text()
        assert text.count("-c constraints.txt") >= 3  # torch, the extras, regtuner itself
        assert text.index('".[') < text.index("COPY tuner ./tuner")  # a code edit keeps the big layer
    assert (ROOT / ".dockerignore").exists() and "tests" in (ROOT / ".dockerignore").read_text()

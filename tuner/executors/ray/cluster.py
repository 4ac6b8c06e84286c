"""Joining Ray and checking, before any trial, that the cluster can run the study as configured."""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuner.errors import ConfigError

__all__ = ["parse_resources", "connect", "check_cluster", "is_local_uri", "auth_token"]

_ALIASES = {"cpu": "cpu", "cpus": "cpu", "gpu": "gpu", "gpus": "gpu", "memory": "memory"}


def parse_resources(value: Mapping[str, Any] | None) -> dict[str, float]:
    """``resources_per_trial`` validated: ``{"cpu": 2, "gpu": 0.5}`` (defaults: 1 CPU, no GPU).

    Other keys are Ray custom resources. A GPU share is a fraction of one device (< 1) or whole GPUs.
    """
    if value is None:
        return {"cpu": 1.0, "gpu": 0.0}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"resources_per_trial must be a mapping such as {{'cpu': 2, 'gpu': 0.5}}, got {value!r}."
        )
    out: dict[str, float] = {"cpu": 1.0, "gpu": 0.0}
    for key, amount in value.items():
        name = _ALIASES.get(str(key).lower(), str(key))
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
            raise ConfigError(f"resources_per_trial[{key!r}] must be a number, got {amount!r}.")
        if amount < 0:
            raise ConfigError(f"resources_per_trial[{key!r}] must be >= 0, got {amount!r}.")
        out[name] = float(amount)
    if out["gpu"] > 1 and not out["gpu"].is_integer():
        raise ConfigError(
            f"resources_per_trial['gpu'] = {out['gpu']:g}: Ray gives a trial a share of one GPU (< 1) "
            "or whole GPUs (1, 2, ...); use e.g. 0.5 or 2."
        )
    if out["cpu"] == 0 and out["gpu"] == 0:
        raise ConfigError("resources_per_trial asks for no CPU and no GPU; give each trial at least one.")
    return out


def connect(address: str | None) -> bool:
    """Join Ray: the session already open in this process, else ``address`` (None: a running local
    Ray or a new one; ``"auto"``: the cluster this node belongs to; ``ray://host:port``: Ray Client).

    Returns True when this call started the connection (the caller shuts it down afterwards).
    """
    import ray

    if ray.is_initialized():
        return False
    _token_mode()
    main = threading.current_thread() is threading.main_thread()
    stop = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(address=address, logging_level=logging.WARNING, configure_logging=True)
        if stop not in (None, signal.SIG_DFL, signal.SIG_IGN):
            # ray.init sets SIGTERM to sys.exit; the caller's own handler (`regtuner run`: SIGTERM as
            # Ctrl-C, so that the running trial and the study end as KILLED in MLflow) stays
            signal.signal(signal.SIGTERM, stop)
    except ConnectionError as exc:
        where = "a running Ray cluster on this node" if address == "auto" else f"Ray at {address!r}"
        raise ConfigError(
            f"address={address!r}: could not connect to {where} ({exc}). Start one with "
            "`ray start --head`, check the address (the GCS port, 6379 by default, or ray://HOST:10001 "
            "for Ray Client), or pass address=None to start Ray on this machine."
        ) from None
    except Exception as exc:
        if type(exc).__name__ == "AuthenticationError":
            raise ConfigError(
                f"address={address!r}: the cluster requires its authentication token. Copy it from "
                "the head (`ray get-auth-token` there) into ~/.ray/auth_token here, or set RAY_AUTH_TOKEN, "
                "and set RAY_AUTH_MODE=token."
            ) from None
        raise
    return True


def auth_token() -> str | None:
    """The Ray authentication token from where Ray's own CLI reads it (``$RAY_AUTH_TOKEN``, the file
    ``$RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``), or None."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), str(Path.home() / ".ray" / "auth_token")):
        if path and os.path.isfile(path):
            try:
                text = Path(path).read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if text:
                return text
    return None


def _token_mode() -> None:
    """Send the token when this machine has one and ``RAY_AUTH_MODE`` is not set.

    Ray 2.60 heads run with token authentication once a token exists, and a client joins them only
    with ``RAY_AUTH_MODE=token``; a head without authentication ignores the token, so a default head
    "just works" either way. The token itself stays where Ray reads it.
    """
    if "RAY_AUTH_MODE" not in os.environ and auth_token() is not None:
        os.environ["RAY_AUTH_MODE"] = "token"
    try:  # Ray caches its configuration and the token: read them again (an earlier session may differ)
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except Exception:  # an older Ray without token authentication: nothing to refresh
        pass


def is_local_uri(uri: str | None) -> bool:
    """True for stores that live in this machine's files (MLflow's default, file:, sqlite:)."""
    if not uri:
        return True
    scheme = urllib.parse.urlsplit(uri).scheme.lower().split("+")[0]
    return scheme in ("", "file", "sqlite") or len(scheme) == 1


def check_cluster(
    resources: Mapping[str, float], tracking_uri: str | None, tracked: bool, storage: str, client: bool
) -> int:
    """Raise ConfigError when no node can hold a trial, or when workers cannot reach the stores.

    Returns how many trials the cluster holds at once (its alive nodes, as they are now).
    """
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    wanted = {"CPU": resources.get("cpu", 0.0), "GPU": resources.get("gpu", 0.0)}
    wanted.update({k: v for k, v in resources.items() if k not in ("cpu", "gpu", "memory")})
    capacity = sum(_trials_on(n.get("Resources", {}), wanted) for n in nodes)
    if capacity == 0:
        have = "; ".join(
            ", ".join(f"{k}={n.get('Resources', {}).get(k, 0):g}" for k in wanted) for n in nodes
        )
        raise ConfigError(
            f"resources_per_trial={dict(resources)} fits on no node of this Ray cluster (nodes have: "
            f"{have or 'none alive'}). Ask for less per trial, or add nodes that have it."
        )
    # only the driver writes MLflow: a local store serves every node, except under Ray Client, whose
    # Tune driver (and with it the tracker) runs on the cluster's head
    if tracked and client and is_local_uri(tracking_uri):
        raise ConfigError(
            f"tracking store {tracking_uri or '(MLflow default: ./mlflow.db)'} is a local file, but with a "
            "ray:// address the Tune driver, which writes MLflow, runs on the cluster's head. Run an MLflow "
            "server the head can reach and pass tracking='http://HOST:5000' (see docker/README.md), "
            "tracking=False, or submit the study with `regtuner submit` so it runs on the head."
        )
    if client and storage.startswith("sqlite:"):
        raise ConfigError(
            f"storage={storage} is a SQLite file on this machine, but with a ray:// address the Tune "
            "driver runs on the cluster's head. Pass storage= a database URL the head can reach "
            "(postgresql://...), or submit the study with `regtuner submit` so it runs on the head."
        )
    return capacity


def _trials_on(have: Mapping[str, float], wanted: Mapping[str, float]) -> int:
    """How many trials asking ``wanted`` fit side by side in a node that has ``have``."""
    counts = [int(have.get(k, 0.0) // v + 1e-9) for k, v in wanted.items() if v > 0]
    return min(counts) if counts else 0

"""Joining a Ray cluster, or starting a local one, for the Ray engine.

A local cluster (no address) and a cluster addressed on loopback keep every Ray process on
127.0.0.1 (:func:`loopback_only`). Joining fails with one line that says why: nothing answers at
the address (checked with a plain TCP connect first, since Ray itself retries for minutes), or
the head refused this driver's token (Ray 2.60's token authentication, on by default for
``ray start``; ``auto`` finds the token, an explicit address needs ``RAY_AUTH_MODE=token``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import ray
from ray._private import ray_constants

from tunesmith.errors import ConfigError

SRC = str(Path(__file__).resolve().parents[2])
LOOPBACK = "127.0.0.1"
#: what Ray's core logs when the head refuses the driver's token
_REFUSED_TOKEN = "InvalidAuthToken"


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` means a cluster on this machine's loopback (``None``: a new local one)."""
    if not address:
        return True
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def loopback_only() -> None:
    """Keep a local cluster's processes (GCS, raylets, workers, this driver) on 127.0.0.1.

    Ray 2.60 rewrites a loopback node or GCS address to the machine's outward IP
    (``services.resolve_ip_for_localhost``), even ``_node_ip_address="127.0.0.1"``, so a driver
    of a loopback cluster dials the GCS on an address nothing listens on and hangs. Ray keeps
    loopback only when multi-host clusters are off: the environment variable covers the processes
    Ray starts, the constant covers this one (it read the variable when it imported ray).
    """
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def unreachable(address: str, timeout: float = 3.0) -> str | None:
    """Why nothing answers at ``address``'s host and port (None: something listens there)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not port.isdigit() or not host:
        return None  # "auto" and friends: Ray finds the address itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return f"nothing answers at {host}:{port} ({exc.strerror or exc})"


@contextlib.contextmanager
def _stderr_kept() -> Iterator[Callable[[], str]]:
    """Hold back what this process writes to file descriptor 2 (Ray's C++ core logs there, a
    line a second while it retries) and give it to the caller to read."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lambda: (tmp.seek(0), tmp.read().decode("utf-8", "replace"))[1]
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _join(address: str, runtime_env: dict[str, object]) -> None:
    """``ray.init`` on an existing cluster, or a one-line :class:`ConfigError`."""
    where = f"--ray-address {address}"
    why = unreachable(address)
    if why is not None:
        raise ConfigError(f"{where}: cannot join the cluster: {why}")
    with _stderr_kept() as logged:
        try:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
            return
        except (ConnectionError, RuntimeError, ValueError) as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            said = logged()
    if _REFUSED_TOKEN in said:
        raise ConfigError(
            f"{where}: the head refused this driver's token (Ray token authentication): set "
            "RAY_AUTH_MODE=token with the head's ~/.ray/auth_token here, or start the head "
            "with RAY_AUTH_MODE=disabled"
        )
    raise ConfigError(f"{where}: cannot join the cluster ({reason})")


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local one on 127.0.0.1."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if is_loopback(address):
        loopback_only()
    path = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
    runtime_env: dict[str, object] = {"env_vars": {"PYTHONPATH": path}}
    if address:
        _join(address, runtime_env)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env,
                 log_to_driver=False)  # fmt: skip

"""Joining a Ray cluster, or starting one on this machine, and describing it."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmadfer_cli.model.inference import Bfloat16Mode

INSTALL_HINT = 'the Ray engine needs the "ray" extra: pip install -e ".[ray]" in the clone'


class RayUnavailableError(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached; the message says what to do."""


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


def require_ray() -> None:
    """Raise ``RayUnavailableError`` with how to install Ray when it is missing."""
    if not ray_installed():
        raise RayUnavailableError(INSTALL_HINT)


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (``auto``, ``ray://host:port`` or ``host:port``; none:
    ``RAY_ADDRESS``, else a new local cluster). True when this call started Ray (so it stops it)."""
    require_ray()
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address}" if address else "on this machine"
        hint = ""
        if address and not os.environ.get("RAY_AUTH_MODE"):
            hint = (
                " (a cluster started with `ray start` may require a token: set RAY_AUTH_MODE=token"
                " and, unless this machine has ~/.ray/auth_token, RAY_AUTH_TOKEN)"
            )
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RayUnavailableError(
            f"cannot start or join a Ray cluster {where}: {first}{hint}"
        ) from exc
    return True


@dataclass(frozen=True)
class ClusterInfo:
    """What a cluster offers: alive nodes (name, CPUs, GPUs, object store bytes) and totals."""

    nodes: list[tuple[str, float, float, float]]

    @property
    def cpus(self) -> float:
        return sum(n[1] for n in self.nodes)

    @property
    def gpus(self) -> float:
        return sum(n[2] for n in self.nodes)

    @property
    def object_store_bytes(self) -> float:
        return sum(n[3] for n in self.nodes)


def cluster_info() -> ClusterInfo:
    """The connected cluster's alive nodes and their resources."""
    import ray

    nodes: list[tuple[str, float, float, float]] = []
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        res: dict[str, Any] = node.get("Resources", {})
        name = str(node.get("NodeManagerHostname") or node.get("NodeManagerAddress") or "?")
        nodes.append(
            (name, res.get("CPU", 0.0), res.get("GPU", 0.0), res.get("object_store_memory", 0.0))
        )
    return ClusterInfo(nodes)


def object_store_used() -> int | None:
    """Bytes in the cluster's object stores now (None where Ray does not say)."""
    try:
        from ray._private.internal_api import memory_summary

        summary = memory_summary(stats_only=True)
    except Exception:  # a private API: the figure is a measurement, never needed for results
        return None
    for line in summary.splitlines():
        words = line.split()
        if "Plasma memory usage" in line and len(words) > 4:
            return int(float(words[3]) * 2**20)
    return None


def cluster_precision(precision: str, gpus: float) -> tuple[str, Bfloat16Mode | None]:
    """The precision the service actors run, and how bfloat16 runs there (for ``prepare``; None:
    the driver's own way). On GPUs ``auto`` is bfloat16 (every GPU since Ampere; ask for float16
    on older ones), with the weights cast as GPUs run it best; on CPUs as on this machine's CPU."""
    from mmadfer_cli.model.inference import bfloat16_mode, check_precision, resolve_precision

    if not gpus:
        return resolve_precision(precision, "cpu"), None
    if precision == "auto":
        precision = "bfloat16"
    check_precision(precision, "cuda")
    return precision, bfloat16_mode("cuda")


def disconnect() -> None:
    """Stop the Ray that ``connect`` started here (the cluster itself goes on when joined)."""
    import ray

    ray.shutdown()

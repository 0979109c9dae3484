"""A real Apache Kafka (KRaft) cluster on loopback, installed from Maven Central and run with the machine's Java."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiokafka.errors import KafkaError

from switchboard.errors import KafkaSetupError
from switchboard.localkafka._cluster import LocalCluster
from switchboard.localkafka._jars import ensure_jars, kafka_version
from switchboard.localkafka._probe import produce_and_fetch

__all__ = ["KafkaSetupError", "LocalCluster", "ensure_jars", "external_bootstrap", "kafka_version", "local_cluster"]

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
PORT_ENV = "SWITCHBOARD_KAFKA_PORT"


def project_root() -> Path:
    """The checkout this package runs from (its caches and data live in ignored folders there)."""
    return Path(__file__).resolve().parents[2]


def cache_root() -> Path:
    """Where the broker's jars are kept between runs."""
    return Path(os.environ.get("SWITCHBOARD_CACHE_DIR", project_root() / ".cache"))


def local_cluster(name: str = "dev", brokers: int = 1, base_port: int | None = None) -> LocalCluster:
    """The project's local cluster called `name`, with its data under var/kafka/NAME."""
    port = base_port if base_port is not None else int(os.environ.get(PORT_ENV, "19092"))
    heap = 512 if brokers == 1 else 384
    return LocalCluster(project_root() / "var" / "kafka" / name, brokers=brokers, base_port=port, heap_mb=heap)


def external_bootstrap(timeout: float = 15.0) -> str | None:
    """KAFKA_BOOTSTRAP_SERVERS if set, after checking that it really accepts produce and fetch."""
    servers = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not servers:
        return None
    try:
        asyncio.run(produce_and_fetch(servers, replication=-1, timeout=timeout))  # -1: min(3, brokers)
    except (KafkaError, OSError, TimeoutError) as error:
        raise KafkaSetupError(
            f"{BOOTSTRAP_ENV}={servers} is unreachable or does not accept produce and fetch "
            f"({type(error).__name__}: {error or 'timed out'}). Check the address, or unset {BOOTSTRAP_ENV} "
            "to use the project's own local broker."
        ) from error
    return servers

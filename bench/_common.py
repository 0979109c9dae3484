"""What every benchmark shares: the machine line, a broker of its own, and a process's peak memory."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from switchboard.localkafka import cache_root, external_bootstrap, local_cluster


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def print_machine() -> None:
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def benchmark_broker(name: str, base_port: int) -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS if set, else a single-node local broker of this benchmark's own, always stopped."""
    bootstrap = external_bootstrap()
    if bootstrap is not None:
        print(f"broker: KAFKA_BOOTSTRAP_SERVERS={bootstrap}")
        yield bootstrap
        return
    cluster = local_cluster(name, base_port=base_port)
    try:
        cluster.start(cache_root())
        print(f"broker: local Apache Kafka {cluster.version}, single node, same machine ({cluster.bootstrap_servers})")
        yield cluster.bootstrap_servers
    finally:
        cluster.stop()

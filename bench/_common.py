"""What every benchmark shares: the machine line, a broker of its own (and its pids), and a process's peak memory."""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from switchboard.localkafka import LocalCluster, cache_root, external_bootstrap, local_cluster


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def print_machine() -> None:
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")


def own_cpu_seconds() -> float:
    """CPU seconds of this process so far, every thread counted."""
    times = os.times()
    return times.user + times.system


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


PORT_ENV = "SWITCHBOARD_BENCH_PORT"  # moves a benchmark's own broker off its fixed port (a shared machine)


@dataclass(frozen=True)
class BenchBroker:
    """The broker a benchmark runs on: its bootstrap servers and, when it is the benchmark's own, its processes."""

    bootstrap: str
    cluster: LocalCluster | None = None  # None: KAFKA_BOOTSTRAP_SERVERS, somebody else's

    def pids(self) -> list[int] | None:
        """The live broker processes (the java of each node, from its broker.pid); None for an external cluster,
        whose CPU this machine cannot see."""
        if self.cluster is None:
            return None
        pids = [_read_pid(node.pid_file) for node in self.cluster.nodes]
        return [pid for pid in pids if pid is not None and Path(f"/proc/{pid}").exists()]


def _read_pid(file: Path) -> int | None:
    try:
        return int(file.read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def benchmark_broker(name: str, base_port: int) -> Iterator[BenchBroker]:
    """KAFKA_BOOTSTRAP_SERVERS if set, else a single-node local broker of this benchmark's own, always stopped (on
    `base_port`, or SWITCHBOARD_BENCH_PORT's when set, and the port above it for its controller)."""
    bootstrap = external_bootstrap()
    if bootstrap is not None:
        print(f"broker: KAFKA_BOOTSTRAP_SERVERS={bootstrap}")
        yield BenchBroker(bootstrap)
        return
    cluster = local_cluster(name, base_port=int(os.environ.get(PORT_ENV, base_port)))
    # Every run on an empty broker: the same start each time, and the last run's topics (a suite leaves about
    # 100 MB of them, and their partitions would be the broker's to keep) are not carried from run to run.
    cluster.stop()
    shutil.rmtree(cluster.directory, ignore_errors=True)
    try:
        cluster.start(cache_root())
        print(f"broker: local Apache Kafka {cluster.version}, single node, same machine ({cluster.bootstrap_servers})")
        yield BenchBroker(cluster.bootstrap_servers, cluster)
    finally:
        cluster.stop()

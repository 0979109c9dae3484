"""Starting and stopping a local KRaft cluster of one or three combined broker/controller nodes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiokafka.errors import KafkaError

from switchboard.errors import KafkaSetupError
from switchboard.localkafka._jars import ensure_jars, kafka_version
from switchboard.localkafka._java import java_executable
from switchboard.localkafka._probe import cluster_size, produce_and_fetch

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
JVM_OPTS_ENV = "SWITCHBOARD_KAFKA_JVM_OPTS"


@dataclass(frozen=True)
class Node:
    """One combined broker/controller process and where it keeps its files."""

    node_id: int
    client_port: int
    controller_port: int
    directory: Path

    @property
    def address(self) -> str:
        return f"{HOST}:{self.client_port}"

    @property
    def log_file(self) -> Path:
        return self.directory / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.directory / "broker.pid"


class LocalCluster:
    """A KRaft cluster on loopback whose data lives under `directory` (an ignored folder of the project)."""

    def __init__(self, directory: Path, brokers: int = 1, base_port: int = 19092, heap_mb: int = 512) -> None:
        if brokers not in (1, 3):
            raise KafkaSetupError(f"a local cluster has 1 or 3 brokers, not {brokers}")
        self.directory = directory
        self.heap_mb = heap_mb
        self.nodes = [
            Node(i + 1, base_port + 2 * i, base_port + 2 * i + 1, directory / f"node-{i + 1}") for i in range(brokers)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def replication_factor(self) -> int:
        return len(self.nodes)

    @property
    def version(self) -> str:
        return kafka_version()

    def start(self, cache_root: Path) -> None:
        """Installs the jars if needed, formats fresh nodes, starts them and waits until produce and fetch work."""
        if self.is_running():
            self.wait_ready()
            return
        java = java_executable()
        libs = ensure_jars(cache_root)
        self._check_ports_free()
        cluster_id = self._cluster_id()
        for node in self.nodes:
            self._write_config(node)
            self._format(java, libs, node, cluster_id)
        for node in self.nodes:
            self._launch(java, libs, node)
        self.wait_ready()

    def stop(self) -> None:
        """Stops every node: a controlled shutdown first, SIGKILL for a node that does not finish in time."""
        pids = [pid for pid in (self._pid(node) for node in self.nodes) if pid is not None]
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        for node in self.nodes:
            node.pid_file.unlink(missing_ok=True)

    def stop_node(self, node_id: int, hard: bool = False) -> None:
        """Stops one node (for failover tests); `hard` sends SIGKILL at once."""
        node = self.nodes[node_id - 1]
        pid = self._pid(node)
        if pid is None:
            return
        _signal(pid, signal.SIGKILL if hard else signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal(pid, signal.SIGKILL)
        node.pid_file.unlink(missing_ok=True)

    def start_node(self, node_id: int, cache_root: Path) -> None:
        """Restarts one stopped node and waits until the whole cluster serves again."""
        node = self.nodes[node_id - 1]
        if self._pid(node) is None:
            self._launch(java_executable(), ensure_jars(cache_root), node)
        self.wait_ready()

    def is_running(self) -> bool:
        return all(self._pid(node) is not None for node in self.nodes)

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Blocks until every node is registered and a record round-trips with acks=all."""
        deadline = time.monotonic() + timeout
        last_error = "no attempt yet"
        while time.monotonic() < deadline:
            self._raise_if_a_node_died()
            try:
                asyncio.run(self._ready_once())
                return
            except (KafkaError, OSError, TimeoutError, _NotAllBrokers) as error:
                last_error = f"{type(error).__name__}: {error}"
            time.sleep(0.5)
        raise KafkaSetupError(
            f"the local Kafka broker did not come up within {timeout:.0f}s ({last_error}).\n{self.log_tails()}"
        )

    async def _ready_once(self) -> None:
        for node in self.nodes:
            _connectable(node.client_port)
        brokers = await cluster_size(self.bootstrap_servers, timeout=5.0)
        if brokers < len(self.nodes):
            raise _NotAllBrokers(f"{brokers} of {len(self.nodes)} brokers registered")
        await produce_and_fetch(self.bootstrap_servers, self.replication_factor, timeout=10.0)

    def reported_metadata_version(self) -> str:
        """The metadata.version the running broker wrote in its own log (e.g. 4.4-IV2), or 'unknown'."""
        log = self.nodes[0].log_file
        text = log.read_text(errors="replace") if log.exists() else ""
        found = re.search(r"at metadata\.version (\S+)|metadataVersion=Optional\[([^\]]+)\]", text)
        return next((group for group in found.groups() if group), "unknown") if found else "unknown"

    def log_tails(self, lines: int = 25) -> str:
        """The last lines of every node's log, for error messages."""
        parts = []
        for node in self.nodes:
            text = node.log_file.read_text(errors="replace").splitlines() if node.log_file.exists() else []
            parts.append(f"--- last lines of {node.log_file} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def _raise_if_a_node_died(self) -> None:
        for node in self.nodes:
            if node.pid_file.exists() and self._pid(node) is None:
                raise KafkaSetupError(f"Kafka node {node.node_id} exited during start-up.\n{self.log_tails()}")

    def _check_ports_free(self) -> None:
        for node in self.nodes:
            for port in (node.client_port, node.controller_port):
                if not _port_free(port):
                    raise KafkaSetupError(
                        f"port {port} on {HOST} is already in use, so the local Kafka broker cannot start. "
                        f"Stop whatever holds it (`ss -ltnp 'sport = :{port}'` shows it; an earlier broker stops "
                        "with `switchboard kafka stop`), choose another base port with SWITCHBOARD_KAFKA_PORT, "
                        "or use an existing cluster through KAFKA_BOOTSTRAP_SERVERS."
                    )

    def _cluster_id(self) -> str:
        id_file = self.directory / "cluster.id"
        if not id_file.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            # KRaft wants a base64url UUID of 22 characters, as `kafka-storage random-uuid` prints.
            id_file.write_text(_random_cluster_id())
        return id_file.read_text().strip()

    def _write_config(self, node: Node) -> None:
        node.directory.mkdir(parents=True, exist_ok=True)
        (node.directory / "server.properties").write_text(_server_properties(node, self.nodes))

    def _format(self, java: str, libs: Path, node: Node, cluster_id: str) -> None:
        if (node.directory / "data" / "meta.properties").exists():
            return
        command = [java, "-cp", f"{libs}/*", *_log_options(), "kafka.tools.StorageTool", "format",
                   f"--cluster-id={cluster_id}",  # in one: an id may start with "-" (base64url), not an option
                   "-c", str(node.directory / "server.properties")]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise KafkaSetupError(f"formatting Kafka node {node.node_id} failed:\n{done.stdout}{done.stderr}")

    def _launch(self, java: str, libs: Path, node: Node) -> None:
        command = [java, f"-Xmx{self.heap_mb}m", f"-Xms{self.heap_mb // 2}m", "-XX:+UseG1GC", *_jvm_options(),
                   "-cp", f"{libs}/*", *_log_options(), "kafka.Kafka", str(node.directory / "server.properties")]
        with node.log_file.open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        node.pid_file.write_text(str(process.pid))
        print(f"switchboard: started Kafka {kafka_version()} node {node.node_id} on {node.address} "
              f"(pid {process.pid}, log {node.log_file})", file=sys.stderr)

    def _pid(self, node: Node) -> int | None:
        try:
            pid = int(node.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None


# The JIT's first tier only. A local broker shares a small machine with the whole platform, and in its first
# minutes the C2 compiler took about half its CPU (11 of 19.7 CPU seconds in a 4,000-message benchmark run); with
# C1 alone the broker cost 0.62 ms of CPU a message instead of 1.41-1.65, about what C2 costs once warm (0.48-0.74).
# A production broker runs long and is configured elsewhere; `-XX:TieredStopAtLevel=4` in the variable restores C2.
DEFAULT_JVM_OPTIONS = ("-XX:TieredStopAtLevel=1",)


def _jvm_options() -> list[str]:
    """JVM options for the local brokers: the defaults, then `SWITCHBOARD_KAFKA_JVM_OPTS` (after, so they win)."""
    return [*DEFAULT_JVM_OPTIONS, *shlex.split(os.environ.get(JVM_OPTS_ENV, ""))]


class _NotAllBrokers(Exception):
    """Fewer brokers registered than the cluster has nodes (still starting)."""


def _server_properties(node: Node, nodes: list[Node]) -> str:
    voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in nodes)
    replicas = len(nodes)
    settings = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{HOST}:{node.client_port},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{node.address}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": node.directory / "data",
        # Topics are created explicitly with their partition counts and retention; a typo never makes one.
        "auto.create.topics.enable": "false",
        "default.replication.factor": replicas,
        "min.insync.replicas": 2 if replicas >= 3 else 1,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": 2 if replicas >= 3 else 1,
        "transaction.state.log.num.partitions": 10,
        # Local runs start consumers right after the broker: no reason to delay the first rebalance.
        "group.initial.rebalance.delay.ms": 0,
        "num.partitions": 1,
        "log.segment.bytes": 64 * 1024 * 1024,
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _log_options() -> list[str]:
    config = resources.files("switchboard.localkafka") / "log4j2.properties"
    return [f"-Dlog4j2.configurationFile={config}", "-Dlog4j2.disable.jmx=true"]


def _random_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _connectable(port: int) -> None:
    """Raises OSError until the port accepts TCP, so that Kafka clients are only tried on a listening broker."""
    with socket.create_connection((HOST, port), timeout=1.0):
        pass


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _reap(pid: int) -> None:
    # A node started by this process stays a zombie after it exits until we collect its status.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _is_zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    return False


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)

"""The local broker's configuration and its clear errors for bad set-up, checked without starting Java."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from switchboard.errors import KafkaSetupError
from switchboard.localkafka import LocalCluster, external_bootstrap
from switchboard.localkafka._cluster import _jvm_options, _server_properties
from switchboard.localkafka._java import java_executable


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_three_broker_cluster_replicates_three_ways_with_min_isr_two(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, brokers=3, base_port=45000)
    configs = [_properties(_server_properties(node, cluster.nodes)) for node in cluster.nodes]
    assert {c["node.id"] for c in configs} == {"1", "2", "3"}
    assert {c["controller.quorum.voters"] for c in configs} == {"1@127.0.0.1:45001,2@127.0.0.1:45003,3@127.0.0.1:45005"}
    assert all(c["default.replication.factor"] == "3" and c["min.insync.replicas"] == "2" for c in configs)
    assert all(c["offsets.topic.replication.factor"] == "3" for c in configs)
    assert cluster.bootstrap_servers == "127.0.0.1:45000,127.0.0.1:45002,127.0.0.1:45004"


def test_single_broker_listens_on_loopback_only_and_never_auto_creates_topics(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, brokers=1, base_port=45100)
    config = _properties(_server_properties(cluster.nodes[0], cluster.nodes))
    assert config["listeners"] == "PLAINTEXT://127.0.0.1:45100,CONTROLLER://127.0.0.1:45101"
    assert config["auto.create.topics.enable"] == "false"
    assert config["min.insync.replicas"] == "1"
    assert config["log.dirs"] == str(tmp_path / "node-1" / "data")


def test_only_one_or_three_brokers(tmp_path: Path) -> None:
    with pytest.raises(KafkaSetupError, match="1 or 3 brokers"):
        LocalCluster(tmp_path, brokers=2)


def test_port_in_use_is_reported_with_the_port(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cluster = LocalCluster(tmp_path, brokers=1, base_port=port)
        with pytest.raises(KafkaSetupError, match=f"port {port} on 127.0.0.1 is already in use"):
            cluster._check_ports_free()


def test_missing_java_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk-here"))
    with pytest.raises(KafkaSetupError, match="Java 17 or newer is needed"):
        java_executable()


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_home = tmp_path / "jdk8"
    (fake_home / "bin").mkdir(parents=True)
    java = fake_home / "bin" / "java"
    java.write_text('#!/bin/sh\necho \'openjdk version "1.8.0_392"\' >&2\n')
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(fake_home))
    with pytest.raises(KafkaSetupError, match="Kafka 4 needs Java 17"):
        java_executable()


def test_unreachable_bootstrap_servers_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]  # nothing listens here once the socket closes
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port}")
    with pytest.raises(KafkaSetupError, match=f"KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{free_port} is unreachable"):
        external_bootstrap(timeout=3.0)


def test_no_bootstrap_variable_means_local_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert external_bootstrap() is None


def test_extra_jvm_options_come_from_the_environment_after_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_KAFKA_JVM_OPTS", "-XX:TieredStopAtLevel=4  -Dname='two words'")
    assert _jvm_options() == ["-XX:TieredStopAtLevel=1", "-XX:TieredStopAtLevel=4", "-Dname=two words"]
    monkeypatch.delenv("SWITCHBOARD_KAFKA_JVM_OPTS")
    assert _jvm_options() == ["-XX:TieredStopAtLevel=1"]  # C1 only unless the variable says otherwise

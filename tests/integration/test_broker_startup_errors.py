"""A broker that cannot come up is reported with the tail of its own log, not left hanging."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.errors import KafkaSetupError
from switchboard.localkafka import LocalCluster, cache_root
from tests.ports import shifted


def test_broker_that_dies_at_start_is_reported_with_its_log(tmp_path: Path, kafka_libs: Path) -> None:
    # A 2 MB heap is too small for the JVM to start Kafka: a real start-up failure, with a real log.
    cluster = LocalCluster(tmp_path / "broken", brokers=1, base_port=shifted(21192), heap_mb=2)
    with pytest.raises(KafkaSetupError) as failure:
        cluster.start(cache_root())
    message = str(failure.value)
    assert "exited during start-up" in message or "did not come up" in message
    assert f"last lines of {tmp_path / 'broken' / 'node-1' / 'broker.log'}" in message
    assert "Error occurred during initialization of VM" in message  # the JVM's own words, from the log
    assert not cluster.is_running()

"""The three-broker KRaft cluster keeps accepting acks=all writes with one broker down, and loses nothing."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from switchboard.kafka_io import new_producer
from switchboard.localkafka import LocalCluster, cache_root, local_cluster
from switchboard.topics import TopicSpec, ensure_topics
from tests.ports import shifted

BASE_PORT = shifted(21292)  # below the ephemeral range 32768-60999, like every port we listen on


@pytest.fixture(scope="module")
def cluster(kafka_libs: Path) -> Iterator[LocalCluster]:
    three = local_cluster("test-ha", brokers=3, base_port=BASE_PORT)
    three.stop()
    shutil.rmtree(three.directory, ignore_errors=True)
    three.start(cache_root())
    try:
        yield three
    finally:
        three.stop()


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = new_producer(bootstrap, request_timeout_ms=20_000)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, value, key=value) for value in values])
    finally:
        await producer.stop()


async def _read(bootstrap: str, topic: str, count: int) -> set[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    seen: set[bytes] = set()
    try:
        while len(seen) < count:
            batches = await consumer.getmany(timeout_ms=15_000)
            assert batches, f"nothing more to read after {len(seen)} of {count}"
            seen.update(r.value for batch in batches.values() for r in batch)
    finally:
        await consumer.stop()
    return seen


async def test_writes_continue_with_one_broker_down(cluster: LocalCluster) -> None:
    topic = f"it-ha-{uuid.uuid4().hex[:8]}"
    await ensure_topics(cluster.bootstrap_servers, [TopicSpec(topic, partitions=3)])
    before = [f"before-{n}".encode() for n in range(100)]
    await _produce(cluster.bootstrap_servers, topic, before)

    await asyncio.to_thread(cluster.stop_node, 3)  # the cluster API is synchronous (scripts use it)
    during = [f"during-{n}".encode() for n in range(100)]
    survivors = ",".join(node.address for node in cluster.nodes[:2])
    await _produce(survivors, topic, during)  # acks=all with min.insync.replicas=2: two copies suffice

    await asyncio.to_thread(cluster.start_node, 3, cache_root())
    assert await _read(cluster.bootstrap_servers, topic, 200) == set(before + during)

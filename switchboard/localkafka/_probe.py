"""Readiness: a cluster is ready when a record produced with acks=all can be fetched back."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

READINESS_TOPIC = "__switchboard_readiness"


async def cluster_size(bootstrap: str, timeout: float) -> int:
    """How many brokers the cluster's metadata lists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await asyncio.wait_for(admin.start(), timeout)
    try:
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout)
        return len(cluster["brokers"])
    finally:
        await admin.close()


async def produce_and_fetch(bootstrap: str, replication: int, timeout: float) -> None:
    """Writes one record with acks=all and reads it back; raises if either side fails."""
    await _ensure_readiness_topic(bootstrap, replication, timeout)
    marker = uuid.uuid4().bytes
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=int(timeout * 1000))
    await asyncio.wait_for(producer.start(), timeout)
    try:
        sent = await asyncio.wait_for(producer.send_and_wait(READINESS_TOPIC, marker), timeout)
    finally:
        await producer.stop()
    await _fetch_exactly(bootstrap, TopicPartition(READINESS_TOPIC, sent.partition), sent.offset, marker, timeout)


async def _ensure_readiness_topic(bootstrap: str, replication: int, timeout: float) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await asyncio.wait_for(admin.start(), timeout)
    try:
        if replication <= 0:
            replication = min(3, len((await admin.describe_cluster())["brokers"]))
        await admin.create_topics([NewTopic(READINESS_TOPIC, 1, replication)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def _fetch_exactly(bootstrap: str, tp: TopicPartition, offset: int, marker: bytes, timeout: float) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await asyncio.wait_for(consumer.start(), timeout)
    try:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        record = await asyncio.wait_for(consumer.getone(), timeout)
    finally:
        await consumer.stop()
    if record.value != marker:
        raise KafkaError(f"readiness probe read back {record.value!r}, expected {marker!r}")


def probe(bootstrap: str, replication: int = 1, timeout: float = 10.0) -> None:
    """Synchronous wrapper of produce_and_fetch for scripts and fixtures."""
    asyncio.run(produce_and_fetch(bootstrap, replication, timeout))

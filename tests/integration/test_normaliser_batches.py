"""The normaliser's batched writes on a real broker: each record where a per-record send puts it, in order."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors._normaliser_batches import BatchWriter, Record
from switchboard.kafka_io import MURMUR2_PARTITIONER, new_producer
from switchboard.topics import TopicSpec, ensure_topics

PARTITIONS = 6


async def read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[int, bytes | None, bytes, list[str]]]:
    """(partition, key, value, header names) of every record, partition by partition in offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    seen: list[tuple[int, bytes | None, bytes, list[str]]] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        async with asyncio.timeout(60):  # a record missing fails the test instead of hanging it
            while len(seen) < expected:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    seen.extend((r.partition, r.key, r.value, [name for name, _ in r.headers]) for r in records)
    finally:
        await consumer.stop()
    return seen


async def test_each_key_lands_on_its_murmur2_partition_in_order(kafka_bootstrap: str, unique_prefix: str) -> None:
    topic = unique_prefix + "batched"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, PARTITIONS, 1)])
    # Small batches, so that one partition's records span several of them and still keep their order.
    producer = new_producer(kafka_bootstrap, max_batch_size=1024)
    await producer.start()
    keys = [f"contact-{n % 9}".encode() for n in range(120)]
    records = [Record(topic, key, f"{n:04d}".encode() * 40, [("raw-source", b"{}")]) for n, key in enumerate(keys)]
    try:
        futures = await BatchWriter(producer).write(records)
        for future in futures:
            await future  # acknowledged
    finally:
        await producer.stop()
    seen = await read_all(kafka_bootstrap, topic, len(records))
    assert len(seen) == len(records)
    partitions = list(range(PARTITIONS))
    for partition, key, _, headers in seen:
        assert partition == MURMUR2_PARTITIONER(key, partitions, partitions)
        assert headers == ["raw-source"]
    for key in set(keys):
        written = [r.value for r in records if r.key == key]
        assert [value for _, k, value, _ in seen if k == key] == written
    assert len(futures) > PARTITIONS  # the 1 KiB batches did split

"""Small producer and consumer helpers shared by the demo, the tests and the benchmarks."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2


class Murmur2Partitioner:
    """aiokafka's default choice of partition (murmur2 of the key, as the Java client), each key's hash remembered.

    aiokafka's murmur2 is pure Python (about 10 µs a key), and the keys repeat: every event of a message is keyed by
    its contact, every job by its sender. Keyless records go to a random partition, as aiokafka's do.
    """

    def __init__(self, remember: int = 100_000) -> None:
        self._hashes: dict[bytes, int] = {}
        self._remember = remember

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._remember:
                self._hashes.clear()  # a bound, not an LRU: refilling costs one hash per key
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


# Keyed records must land where faust and the Java clients put the same key: murmur2, pinned here on purpose
# so that a change of aiokafka's default can never move a recipient's messages to another partition.
MURMUR2_PARTITIONER = Murmur2Partitioner()


Headers = list[tuple[str, bytes]]


async def send_in_batches(producer: AIOKafkaProducer, topic: str, partition: int,
                          records: Iterable[tuple[bytes | None, bytes, Headers]]) -> list[asyncio.Future[Any]]:
    """Hands one partition's records to the producer as record batches, each as full as `max_batch_size` allows, in
    order: a produce call per batch instead of a `send` (a future, a partition lookup) per record. Returns the
    futures of their delivery."""
    futures: list[asyncio.Future[Any]] = []
    batch = producer.create_batch()
    for key, value, headers in records:
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            # Full: this batch goes out, the record starts the next.
            futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record for {topic} is larger than the producer's max_batch_size")
    if batch.record_count():
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


def new_producer(bootstrap: str, **options: Any) -> AIOKafkaProducer:
    """A producer with Switchboard's durability defaults: acks=all, idempotence, murmur2 partitioning."""
    defaults: dict[str, Any] = {"acks": "all", "enable_idempotence": True, "partitioner": MURMUR2_PARTITIONER}
    return AIOKafkaProducer(bootstrap_servers=bootstrap, **{**defaults, **options})


async def produce_json(bootstrap: str, topic: str, records: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Sends (key, value) pairs as JSON with acks=all and idempotence; returns how many were acknowledged."""
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        futures = [await producer.send(topic, json.dumps(value).encode(), key=key.encode()) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures)


async def collect_json(
    bootstrap: str,
    topic: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """Reads a topic from the start until `done(values)` holds; raises TimeoutError with what it saw otherwise."""
    return await collect(bootstrap, topic, done, json.loads, timeout)


async def collect(
    bootstrap: str,
    topic: str,
    done: Callable[[list[Any]], bool],
    read: Callable[[bytes], Any],
    timeout: float = 60.0,
) -> list[Any]:
    """Reads a topic from the start, each value through `read`, until `done(values)` holds (else TimeoutError)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    values: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(values):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{topic}: condition not met after {timeout:.0f}s; saw {len(values)} records")
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000))
            values.extend(read(r.value) for records in batches.values() for r in records)
    finally:
        await consumer.stop()
    return values

"""The audit's reads from Kafka: one key's records from the start of its partitions (or a time), and single records."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from switchboard.kafka_io import MURMUR2_PARTITIONER
from switchboard.log_reads import LogRecord, OnRead, Pointer, log_record, read_partitions

__all__ = ["Pointer", "fetch_records", "pointer_of", "read_key"]

_FETCH_SECONDS = 30.0  # a record the broker says exists but does not hand over within this is reported missing


def pointer_of(value: Any) -> Pointer | None:
    """A {"topic", "partition", "offset"} object (a dict, or JSON bytes of one) as a Pointer; None if it is not one."""
    if isinstance(value, bytes | str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, Mapping):
        return None
    topic, partition, offset = value.get("topic"), value.get("partition"), value.get("offset")
    if isinstance(topic, str) and isinstance(partition, int) and isinstance(offset, int):
        return topic, partition, offset
    return None


async def read_key(bootstrap: str, topics: Iterable[str], key: str, since: datetime | None = None,
                   progress: OnRead | None = None) -> dict[str, list[LogRecord]]:
    """Every record with this key on each topic, in offset order, up to the end the topic had when asked; with
    `since`, only those from the first record stamped at or after it. `progress(read, total)` after each fetch.

    A key lives in one partition (murmur2, as our producers and Java's place it), so only that one is read.
    """
    names = list(topics)
    consumer = AIOKafkaConsumer(*names, bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()  # subscribing (without a group) fetches the topics' metadata; then we assign instead
    try:
        assigned = {topic: _partition_of(consumer, topic, key) for topic in names}
        consumer.unsubscribe()
        partitions = [tp for tp in assigned.values() if tp is not None]
        found: dict[str, list[LogRecord]] = {topic: [] for topic in assigned}
        if partitions:
            wanted = key.encode()
            for record in await read_partitions(consumer, partitions, lambda r: r.key == wanted, since, progress):
                found[record.topic].append(record)
        return found
    finally:
        await consumer.stop()


async def fetch_records(bootstrap: str, pointers: Iterable[Pointer]) -> dict[Pointer, LogRecord]:
    """The records at these positions; a position that holds nothing (deleted by retention) is left out."""
    wanted = sorted(set(pointers))
    if not wanted:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = sorted({TopicPartition(topic, partition) for topic, partition, _ in wanted})
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        found: dict[Pointer, LogRecord] = {}
        for topic, partition, offset in wanted:
            tp = TopicPartition(topic, partition)
            if offset < ends[tp]:
                record = await _record_at(consumer, tp, offset)
                if record is not None:
                    found[record.pointer] = record
        return found
    finally:
        await consumer.stop()


def _partition_of(consumer: AIOKafkaConsumer, topic: str, key: str) -> TopicPartition | None:
    partitions = sorted(consumer.partitions_for_topic(topic) or [])
    if not partitions:
        return None
    return TopicPartition(topic, MURMUR2_PARTITIONER(key.encode(), partitions, partitions))


async def _record_at(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> LogRecord | None:
    consumer.seek(tp, offset)
    deadline = asyncio.get_running_loop().time() + _FETCH_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        batch = (await consumer.getmany(tp, timeout_ms=1000, max_records=1)).get(tp, [])
        if batch:
            return log_record(batch[0]) if batch[0].offset == offset else None  # compacted or deleted away
    return None

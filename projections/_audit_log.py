"""The audit's reads from Kafka: one key's records from the start of its partitions (or a time), and single records."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from switchboard.kafka_io import MURMUR2_PARTITIONER

__all__ = ["LogRecord", "OnRead", "Pointer", "fetch_records", "pointer_of", "read_key", "read_topics"]

Pointer = tuple[str, int, int]  # topic, partition, offset
OnRead = Callable[[int, int], None]  # records read so far, records to read
_FETCH_SECONDS = 30.0  # a record the broker says exists but does not hand over within this is reported missing


@dataclass(frozen=True)
class LogRecord:
    """One Kafka record as the audit needs it."""

    topic: str
    partition: int
    offset: int
    at: datetime  # the record's timestamp
    key: str | None
    value: bytes | None
    headers: Mapping[str, bytes]

    @property
    def position(self) -> str:
        """topic-partition@offset: enough to fetch the record again."""
        return f"{self.topic}-{self.partition}@{self.offset}"

    @property
    def pointer(self) -> Pointer:
        """(topic, partition, offset)."""
        return self.topic, self.partition, self.offset


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
            for record in await _read_to_end(consumer, partitions, lambda r: r.key == wanted, since, progress):
                found[record.topic].append(record)
        return found
    finally:
        await consumer.stop()


async def read_topics(bootstrap: str, topics: Iterable[str], since: datetime | None = None,
                      progress: OnRead | None = None) -> dict[str, list[LogRecord]]:
    """Every record of each topic, in offset order per partition, up to the end the topic had when asked; with
    `since`, from each partition's first record stamped at or after it. A topic that does not exist has none."""
    names = list(topics)
    consumer = AIOKafkaConsumer(*names, bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()  # as read_key: subscribing fetches the metadata, then the partitions are assigned
    try:
        partitions = [TopicPartition(topic, partition) for topic in names
                      for partition in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.unsubscribe()
        found: dict[str, list[LogRecord]] = {topic: [] for topic in names}
        if partitions:
            for record in await _read_to_end(consumer, partitions, lambda _: True, since, progress):
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


async def _read_to_end(consumer: AIOKafkaConsumer, partitions: list[TopicPartition],
                       keep: Callable[[ConsumerRecord[bytes, bytes]], bool], since: datetime | None,
                       progress: OnRead | None) -> list[LogRecord]:
    """The partitions' records that `keep` passes, up to their ends now. `keep` sees the raw record before anything
    is built: a partition holds every other contact of a key's hash and the partition clock's ticks, by the
    million."""
    consumer.assign(partitions)
    ends = await consumer.end_offsets(partitions)
    starts = await _starts(consumer, partitions, since, ends)
    for tp, start in starts.items():
        consumer.seek(tp, start)
    total = sum(ends[tp] - starts[tp] for tp in partitions)
    records: list[LogRecord] = []
    open_ = [tp for tp in partitions if ends[tp] > starts[tp]]
    while open_:
        batches = await consumer.getmany(*open_, timeout_ms=1000, max_records=50_000)
        records.extend(_record(record) for batch in batches.values() for record in batch
                       if record.offset < ends[TopicPartition(record.topic, record.partition)] and keep(record))
        positions = {tp: min(await consumer.position(tp), ends[tp]) for tp in open_}
        open_ = [tp for tp in open_ if positions[tp] < ends[tp]]
        if progress is not None:
            progress(total - sum(ends[tp] - positions[tp] for tp in open_), total)
    return records


async def _starts(consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since: datetime | None,
                  ends: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Where each partition's read begins: its first record kept, or its first stamped at or after `since`."""
    first = await consumer.beginning_offsets(partitions)
    if since is None:
        return dict(first)
    at_ms = math.ceil(since.timestamp() * 1000 - 1e-6)  # records are stamped in whole milliseconds
    stamped = await consumer.offsets_for_times(dict.fromkeys(partitions, at_ms))
    return {tp: ends[tp] if stamped[tp] is None else max(first[tp], stamped[tp].offset) for tp in partitions}


async def _record_at(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> LogRecord | None:
    consumer.seek(tp, offset)
    deadline = asyncio.get_running_loop().time() + _FETCH_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        batch = (await consumer.getmany(tp, timeout_ms=1000, max_records=1)).get(tp, [])
        if batch:
            return _record(batch[0]) if batch[0].offset == offset else None  # compacted or deleted away
    return None


def _record(record: ConsumerRecord[bytes, bytes]) -> LogRecord:
    key = record.key.decode(errors="replace") if record.key is not None else None
    return LogRecord(record.topic, record.partition, record.offset,
                     datetime.fromtimestamp(record.timestamp / 1000, UTC), key, record.value, dict(record.headers))

"""Reading Kafka topics to their current ends, whole, from a time, or only the records a predicate keeps."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

__all__ = ["LogRecord", "OnRead", "Pointer", "log_record", "read_partitions", "read_topics"]

OnRead = Callable[[int, int], None]  # records read so far, records to read
Pointer = tuple[str, int, int]  # topic, partition, offset


@dataclass(frozen=True)
class LogRecord:
    """One Kafka record, decoded no further than its key and timestamp."""

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

    def header(self, name: str) -> str | None:
        """A header's value as text, None when the record has no such header."""
        value = self.headers.get(name)
        return None if value is None else value.decode(errors="replace")

    @property
    def pointer(self) -> Pointer:
        """(topic, partition, offset)."""
        return self.topic, self.partition, self.offset


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
            for record in await read_partitions(consumer, partitions, lambda _: True, since, progress):
                found[record.topic].append(record)
        return found
    finally:
        await consumer.stop()


async def read_partitions(consumer: AIOKafkaConsumer, partitions: list[TopicPartition],
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
        records.extend(log_record(record) for batch in batches.values() for record in batch
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


def log_record(record: ConsumerRecord[bytes, bytes]) -> LogRecord:
    """A consumed record as a LogRecord."""
    key = record.key.decode(errors="replace") if record.key is not None else None
    return LogRecord(record.topic, record.partition, record.offset,
                     datetime.fromtimestamp(record.timestamp / 1000, UTC), key, record.value, dict(record.headers))

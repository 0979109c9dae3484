"""Where ingested events go: the EventSink seam, a Kafka sink (acks=all, idempotent, murmur2) and an in-memory one."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from switchboard.kafka_io import MURMUR2_PARTITIONER, new_producer

__all__ = ["EventSink", "InMemoryEventSink", "KafkaEventSink", "OutgoingRecord", "Placement", "SinkUnavailable"]


@dataclass(frozen=True)
class OutgoingRecord:
    """One Kafka record to write."""

    topic: str
    key: bytes
    value: bytes = field(repr=False)
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Placement:
    """Where the broker stored a record."""

    topic: str
    partition: int
    offset: int


class SinkUnavailable(Exception):
    """The records could not be stored; some of them may have been (a retry yields the same event ids)."""


class EventSink(abc.ABC):
    """Durable storage of records; `produce` returns only once every record is acknowledged, in order."""

    @abc.abstractmethod
    async def produce(self, records: Sequence[OutgoingRecord]) -> list[Placement]:
        """Stores the records and says where each landed; raises SinkUnavailable when it cannot."""


@dataclass
class InMemoryEventSink(EventSink):
    """Keeps records in a list, partitioned with murmur2 like Kafka; `unavailable` refuses like a dead broker."""

    partitions: int = 6
    unavailable: bool = False
    records: list[tuple[OutgoingRecord, Placement]] = field(default_factory=list)

    async def produce(self, records: Sequence[OutgoingRecord]) -> list[Placement]:
        """Appends every record, or none when `unavailable`."""
        if self.unavailable:
            raise SinkUnavailable("in-memory sink set unavailable")
        placements = [self._place(record) for record in records]
        self.records.extend(zip(records, placements, strict=True))
        return placements

    def _place(self, record: OutgoingRecord) -> Placement:
        everything = list(range(self.partitions))
        partition = MURMUR2_PARTITIONER(record.key, everything, everything)
        offset = sum(1 for _, p in self.records if (p.topic, p.partition) == (record.topic, partition))
        return Placement(record.topic, partition, offset)


class KafkaEventSink(EventSink):
    """Writes with switchboard.kafka_io's producer: acks=all, idempotence, murmur2 on the record key."""

    def __init__(self, bootstrap: str, **producer_options: object) -> None:
        self.bootstrap = bootstrap
        self._options = producer_options
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connects the producer."""
        producer = new_producer(self.bootstrap, **self._options)
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        """Flushes and stops the producer."""
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    def client(self) -> Any:
        """The producer's aiokafka client once started (readiness probes it), else None."""
        return self._producer.client if self._producer is not None else None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.stop()

    async def produce(self, records: Sequence[OutgoingRecord]) -> list[Placement]:
        """Sends every record, then waits for all the broker's acknowledgements."""
        if self._producer is None:
            raise RuntimeError("KafkaEventSink is not started")
        try:
            futures = [await self._producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                       for r in records]
            metadata = await asyncio.gather(*futures)
        except KafkaError as error:
            raise SinkUnavailable(f"{type(error).__name__}: {error}") from error
        return [Placement(m.topic, m.partition, m.offset) for m in metadata]

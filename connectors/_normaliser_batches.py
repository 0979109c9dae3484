"""The normaliser's writes as one record batch per partition: a produce call per batch, not per record."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from switchboard.kafka_io import MURMUR2_PARTITIONER, send_in_batches

__all__ = ["BatchWriter", "Record"]


@dataclass(frozen=True, slots=True)
class Record:
    """One record to write, already encoded."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class BatchWriter:
    """Collects a batch's records by partition, then hands each partition's batch to the producer at once.

    The partition is the producer's own choice for the key (murmur2, as new_producer pins it), so a contact's
    commands land where per-record sends put them; records keep their order within a partition.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._partitions: dict[str, list[int]] = {}

    async def write(self, records: list[Record]) -> list[asyncio.Future[Any]]:
        """Queues every record; the futures resolve once the broker acknowledged each batch (acks=all)."""
        by_partition: dict[tuple[str, int], list[Record]] = {}
        for record in records:
            partition = await self._partition(record.topic, record.key)
            by_partition.setdefault((record.topic, partition), []).append(record)
        futures: list[asyncio.Future[Any]] = []
        for (topic, partition), queued in by_partition.items():
            futures.extend(await self._send(topic, partition, queued))
        return futures

    async def _partition(self, topic: str, key: bytes | None) -> int:
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(await self._producer.partitions_for(topic))
        chosen: int = MURMUR2_PARTITIONER(key, partitions, partitions)
        return chosen

    async def _send(self, topic: str, partition: int, records: list[Record]) -> list[asyncio.Future[Any]]:
        return await send_in_batches(self._producer, topic, partition, ((r.key, r.value, r.headers) for r in records))

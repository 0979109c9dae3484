"""Feeding the demo's inputs to Kafka: records in batches per partition, acknowledged before `send` returns."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from switchboard.kafka_io import MURMUR2_PARTITIONER, new_producer, send_in_batches

__all__ = ["Feed", "json_records"]


def json_records(records: Iterable[tuple[str, dict[str, Any]]]) -> list[tuple[str, bytes]]:
    return [(key, json.dumps(value).encode()) for key, value in records]


class Feed:
    """One producer for the run. `send` appends keyed records to one batch per partition (murmur2, as faust and
    the Java clients place keys), as many full batches as they fill (`send_in_batches`), and awaits every batch's
    acknowledgement: the order of a key's records is kept."""

    def __init__(self, bootstrap: str) -> None:
        self._producer: AIOKafkaProducer = new_producer(bootstrap, linger_ms=5, max_batch_size=512 * 1024)

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, topic: str, records: Sequence[tuple[str, bytes]]) -> int:
        """Produces `records` (key, value) to `topic`; returns how many were acknowledged."""
        if not records:
            return 0
        partitions = sorted(await self._producer.partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, value in records:
            raw = key.encode()
            by_partition.setdefault(MURMUR2_PARTITIONER(raw, partitions, partitions), []).append((raw, value))
        sent = await asyncio.gather(*(self._partition(topic, p, items) for p, items in by_partition.items()))
        return sum(sent)

    async def _partition(self, topic: str, partition: int, items: list[tuple[bytes, bytes]]) -> int:
        """The partition's records as full batches in order (a key's records stay in order), all acknowledged."""
        sent = await send_in_batches(self._producer, topic, partition, ((key, value, []) for key, value in items))
        await asyncio.gather(*sent)
        return len(items)

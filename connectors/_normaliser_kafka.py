"""The normaliser's Kafka plumbing: the contact topic read into the address index on demand, and topic checks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from connectors._normaliser_index import AddressIndex
from schemas import CodecError, DecodedEvent, decode
from switchboard.errors import SwitchboardError
from switchboard.followers import topic_partitions

__all__ = ["ContactFollower", "RevokeGate", "require_topics"]

_log = logging.getLogger("connectors.normaliser")


async def require_topics(bootstrap: str, creators: dict[str, str]) -> None:
    """Raises SwitchboardError naming the first missing topic and the command that creates it."""
    for topic, creator in creators.items():
        try:
            await topic_partitions(bootstrap, topic)
        except SwitchboardError:
            raise SwitchboardError(f"topic {topic} does not exist at {bootstrap}: `{creator}` creates it") from None


class ContactFollower:
    """Keeps an AddressIndex equal to the fold of the contact topic, read up to its end whenever asked.

    Not a background follower: `sync()` runs before every batch that has inbound messages, so each one sees
    every contact registered before it was normalised (a contact registered in the same instant may be missed,
    and its sender then gets a contact of its own). No consumer group: every normaliser needs every contact.
    """

    def __init__(self, bootstrap: str, topic: str, index: AddressIndex, *, catch_up_seconds: float = 120.0,
                 poll_seconds: float = 0.2) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self.index = index
        self._catch_up_seconds = catch_up_seconds
        self._poll_ms = int(poll_seconds * 1000)
        self._partitions: list[TopicPartition] = []
        self._consumer: AIOKafkaConsumer | None = None
        self.applied = 0

    async def start(self) -> None:
        """Reads the topic from the beginning to its current end."""
        self._partitions = await topic_partitions(self._bootstrap, self._topic)
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        self._consumer = consumer
        await consumer.start()
        consumer.assign(self._partitions)
        await consumer.seek_to_beginning(*self._partitions)
        await self.sync()

    async def sync(self) -> None:
        """Applies every contact event written before the call; TimeoutError after catch_up_seconds."""
        consumer = self._require()
        ends = await consumer.end_offsets(self._partitions)
        await asyncio.wait_for(self._read_to(consumer, ends), self._catch_up_seconds)

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    async def _read_to(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(timeout_ms=self._poll_ms)
            for records in batches.values():
                for record in records:
                    self._apply(record)

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            decoded = decode(record.value) if record.value is not None else None
        except CodecError as error:
            _log.warning("%s[%d]@%d is not a Switchboard event (%s): not in the address index", record.topic,
                         record.partition, record.offset, type(error).__name__)
            return
        if isinstance(decoded, DecodedEvent) and self.index.apply(decoded):
            self.applied += 1

    def _require(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("ContactFollower is not started")
        return self._consumer


class RevokeGate(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped; subscribe() checks isinstance
    """Holds a rebalance until the batch under way is written and committed, so its records are not redone."""

    def __init__(self, wait_for_batch: Callable[[], Awaitable[None]]) -> None:
        self._wait_for_batch = wait_for_batch

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._wait_for_batch()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None

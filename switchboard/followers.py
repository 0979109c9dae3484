"""A small event topic folded into memory: read to its end on start, then followed, in every process that needs it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas import CodecError, DecodedEvent, UnknownEvent, decode
from switchboard.errors import SwitchboardError

__all__ = ["EventFollower", "topic_partitions"]

log = logging.getLogger(__name__)

Apply = Callable[[DecodedEvent], object]


async def topic_partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    """The topic's partitions; a clear error when it does not exist (brokers do not auto-create topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        descriptions = await admin.describe_topics([topic])
    finally:
        await admin.close()
    found = [p["partition"] for d in descriptions if d["topic"] == topic and d["error_code"] == 0
             for p in d["partitions"]]
    if not found:
        raise SwitchboardError(f"topic {topic} does not exist at {bootstrap}: create the event topics first "
                               "(`switchboard topics create`)")
    return [TopicPartition(topic, partition) for partition in sorted(found)]


class EventFollower:
    """Hands every event of a topic to `apply`, in log order per partition: to its end on start, then as it grows
    (in the background, or up to the end as of each `sync()` when started with `follow=False`).

    For topics that every instance needs whole (tenants, templates, contacts): each start folds the topic from the
    beginning instead of keeping state, and no consumer group is used. `what` names the fold in log lines.
    """

    def __init__(self, bootstrap: str, topic: str, apply: Apply, what: str, *, poll_seconds: float = 0.5,
                 catch_up_seconds: float = 120.0) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._apply_event = apply
        self._what = what
        self._poll_ms = int(poll_seconds * 1000)
        self._catch_up_seconds = catch_up_seconds
        self._partitions: list[TopicPartition] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._follow: asyncio.Task[None] | None = None

    async def start(self, *, follow: bool = True) -> None:
        """Returns once every event written before the call is applied; then follows new ones unless told not to."""
        self._partitions = await topic_partitions(self._bootstrap, self._topic)
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        self._consumer = consumer
        await consumer.start()
        consumer.assign(self._partitions)
        await consumer.seek_to_beginning(*self._partitions)
        await self.sync()
        if follow:
            self._follow = asyncio.create_task(self._follow_forever(consumer), name=f"follow {self._topic}")

    async def sync(self) -> None:
        """Applies every event written before the call; TimeoutError after catch_up_seconds."""
        if self._consumer is None:
            raise RuntimeError(f"the follower of {self._topic} is not started")
        await asyncio.wait_for(self._catch_up(self._consumer), self._catch_up_seconds)

    async def followed(self) -> None:
        """Waits while the follower follows; raises what stopped it (CancelledError after `stop`)."""
        if self._follow is not None:
            await self._follow

    def check(self) -> None:
        """Raises what stopped the follower, if it stopped: a stale fold must not go unnoticed."""
        if self._follow is not None and self._follow.done() and not self._follow.cancelled():
            error = self._follow.exception()
            if error is not None:
                raise error

    async def stop(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follow
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _catch_up(self, consumer: AIOKafkaConsumer) -> None:
        ends = await consumer.end_offsets(self._partitions)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            await self._poll(consumer)

    async def _follow_forever(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            await self._poll(consumer)

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        batches = await consumer.getmany(timeout_ms=self._poll_ms)
        for records in batches.values():
            for record in records:
                self._apply(record)

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        try:
            decoded = decode(record.value) if record.value is not None else None
        except CodecError as error:
            log.warning("%s is not a Switchboard event (%s): ignored by %s", where, type(error).__name__, self._what)
            return
        if isinstance(decoded, UnknownEvent):
            log.warning("%s: %s; %s ignores it until this build knows it", where, decoded.reason, self._what)
        elif decoded is not None:
            self._apply_event(decoded)

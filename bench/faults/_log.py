"""Reading a topic from the start, up to the end offsets of the moment or continuously, keeping every record."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

STOP_GRACE_SECONDS: Final = 5.0  # a consumer's stop takes milliseconds; longer, its fetch task is cancelled again


@dataclass(frozen=True)
class Record:
    """One record as the checker needs it: where it sits, its key, value and headers."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


@dataclass
class TopicLog:
    """Every record of a topic read so far; `follow` keeps reading in the background, `until_end` up to now."""

    bootstrap: str
    topic: str
    records: list[Record] = field(default_factory=list)
    on_record: Callable[[Record], None] | None = None
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    max_partition_fetch_bytes=4 * 1024 * 1024, request_timeout_ms=60_000)
        await consumer.start()
        self._consumer = consumer
        await self._assign()

    async def _assign(self) -> bool:
        """Reads the topic's partitions from the beginning; False while the topic is not known (yet)."""
        assert self._consumer is not None
        parts = await self._partitions()
        if parts:
            self._consumer.assign(parts)
            await self._consumer.seek_to_beginning(*parts)
        return bool(parts)

    async def _partitions(self) -> list[TopicPartition]:
        """The topic's partitions; none when it does not exist (after a few metadata refreshes)."""
        assert self._consumer is not None
        ids = self._consumer.partitions_for_topic(self.topic)
        for _ in range(5):  # metadata for a topic just created may take a round trip
            if ids:
                break
            await self._consumer._client.force_metadata_update()  # aiokafka has no public refresh
            await asyncio.sleep(0.2)
            ids = self._consumer.partitions_for_topic(self.topic)
        return [TopicPartition(self.topic, p) for p in sorted(ids or ())]

    def follow(self) -> None:
        """Keeps reading in the background until `stop`."""
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            await self._poll()

    async def _poll(self) -> None:
        assert self._consumer is not None
        # A topic created just before may not be in the broker's metadata yet (seconds on a loaded machine): it is
        # looked up again every round. A follower that gave up at start read nothing for a whole scenario, which
        # then timed out with every message settled in the log (a CI run of the quick state-loss scenario).
        if not self._consumer.assignment() and not await self._assign():
            await asyncio.sleep(0.5)
            return
        try:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
        except KafkaError:  # a broker going away mid-fetch (the broker-restart scenario): asked again next round
            await asyncio.sleep(0.2)
            return
        for records in batches.values():
            for r in records:
                record = Record(r.partition, r.offset, r.key, r.value or b"", dict(r.headers or ()))
                self.records.append(record)
                if self.on_record is not None:
                    self.on_record(record)

    async def until_end(self) -> list[Record]:
        """Reads (when not following) until every partition's end offset of this moment is behind us."""
        assert self._consumer is not None
        parts = await self._partitions()
        if not parts:
            return self.records
        ends = await self._consumer.end_offsets(parts)
        while not await self._reached(ends):
            if self._task is None:
                await self._poll()
            else:
                await asyncio.sleep(0.1)  # the background task reads; positions say when it is there
        return self.records

    async def _reached(self, ends: dict[TopicPartition, int]) -> bool:
        assert self._consumer is not None
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return False
        return True

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        if self._consumer is not None:
            await stop_consumer(self._consumer)
            self._consumer = None


async def stop_task(task: asyncio.Task[Any], grace: float = STOP_GRACE_SECONDS) -> None:
    """Cancels a reading task, and again every `grace` seconds while it swallows the cancel (an aiokafka call inside
    it can, #983): a cleanup that awaited it once could wait for ever, past pytest's timeout, leaving children."""
    task.cancel()
    await _nudged(task, task.cancel, grace)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()  # the task's own error, if it ended with one, is raised here


async def stop_consumer(consumer: Any, grace: float = STOP_GRACE_SECONDS) -> None:
    """consumer.stop(), cancelling its fetch task again for as long as the stop hangs.

    aiokafka's fetch routine can swallow the cancellation its close() sends (it suppresses CancelledError while it
    awaits its own requests, aiokafka #983), and close() then waits for it forever: two fault-suite runs in CI hung
    there until pytest's 600 s timeout, after their scenario had passed. A second cancel lands elsewhere and ends it.
    """
    stopping = asyncio.ensure_future(consumer.stop())
    await _nudged(stopping, lambda: _cancel_fetch(consumer), grace)
    await stopping


async def _nudged(waited: asyncio.Future[Any], nudge: Callable[[], object], grace: float) -> None:
    """Returns once `waited` is done, calling `nudge` every `grace` seconds until it is."""
    while not (await asyncio.wait({waited}, timeout=grace))[0]:
        nudge()


def _cancel_fetch(consumer: Any) -> None:
    fetcher = getattr(consumer, "_fetcher", None)  # aiokafka has no public handle on it
    if fetcher is not None:
        fetcher._fetch_task.cancel()


async def read_topic(bootstrap: str, topic: str) -> list[Record]:
    """Every record of the topic up to its end offsets now."""
    log = TopicLog(bootstrap, topic)
    await log.start()
    try:
        return await log.until_end()
    finally:
        await log.stop()


def headers_text(record: Record) -> dict[str, str]:
    return {name: value.decode(errors="replace") for name, value in record.headers.items()}


def as_json(record: Record) -> Any:
    return json.loads(record.value)

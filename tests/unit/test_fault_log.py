"""The fault suite's topic readers: one stops even when a fetch swallows a cancel, one finds a late topic."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition

from bench.faults._log import TopicLog, stop_consumer, stop_task


class _Fetcher:
    """aiokafka's fetcher as it hangs: the routine swallows the cancel close() sends, then waits on."""

    def __init__(self) -> None:
        self.cancels_seen = 0
        self._fetch_task = asyncio.ensure_future(self._routine())

    async def _routine(self) -> None:
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancels_seen += 1
                if self.cancels_seen > 1:
                    raise  # the second cancel lands outside the suppressing block

    async def close(self) -> None:
        self._fetch_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._fetch_task


class _Consumer:
    def __init__(self) -> None:
        self._fetcher = _Fetcher()

    async def stop(self) -> None:
        await self._fetcher.close()


async def test_a_stop_whose_cancel_was_swallowed_still_ends() -> None:
    consumer = _Consumer()
    await asyncio.wait_for(stop_consumer(consumer, grace=0.05), 5)
    assert consumer._fetcher._fetch_task.done()
    assert consumer._fetcher.cancels_seen == 2


class _LateTopicConsumer:
    """A consumer whose broker learns of the topic only after `unknown_for` metadata lookups."""

    def __init__(self, unknown_for: int) -> None:
        self.unknown_for, self._assigned = unknown_for, set[TopicPartition]()
        self._client = self
        self.served = False

    async def force_metadata_update(self) -> None:
        self.unknown_for -= 1

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {0} if self.unknown_for <= 0 else None

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._assigned = set(partitions)

    def assignment(self) -> set[TopicPartition]:
        return self._assigned

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        return None

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        if self.served:
            return {}
        self.served = True
        record = SimpleNamespace(partition=0, offset=0, key=b"k", value=b"v", headers=())
        return {TopicPartition("t", 0): [record]}


async def test_a_follower_started_before_the_topic_is_known_reads_it_once_it_is() -> None:
    log = TopicLog("unused", "t")
    log._consumer = _LateTopicConsumer(unknown_for=8)  # longer than start's lookups
    assert not await log._assign()
    for _ in range(10):  # each round that finds no topic sleeps 0.5 s: a few rounds are plenty
        if log.records:
            break
        await log._poll()
    assert [(r.partition, r.offset, r.value) for r in log.records] == [(0, 0, b"v")]


async def test_a_reading_task_that_swallows_its_first_cancel_is_still_stopped() -> None:
    cancels = 0

    async def reading() -> None:
        nonlocal cancels
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancels += 1
                if cancels > 1:
                    raise

    task = asyncio.ensure_future(reading())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task, grace=0.05), 5)
    assert (task.done(), cancels) == (True, 2)

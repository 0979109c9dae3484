"""Fixes for faust-streaming defects that lose records, applied once before any app is built."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from mode.utils.queues import FlowControlEvent

__all__ = ["apply", "seek_to_committed_or_beginning"]

_APPLIED = False
_FAUST_SEEK_TO_COMMITTED = AIOKafkaConsumerThread.seek_to_committed


def _resume_without_clearing(self: FlowControlEvent) -> None:
    """FlowControlEvent.resume, minus the queue clearing that drops records fetched after the seek.

    faust-streaming 0.15.3 ends recovery with resume_partitions() -> perform_seek() -> flow_control.resume()
    (tables/recovery.py). Records fetched during the seek round trip are queued for the agent and the
    consumer's read offset moves past them; resume() then clears the queues, so they are never processed
    and their offsets are committed with the next ones: lost. Found by tests/integration/
    test_faust_table_restore.py (about one run in five). Stale records of the previous assignment are still
    dropped by the explicit flow_control.clear() faust calls when partitions are revoked and assigned, and a
    stale record that survives is a redelivery, which the agents' offset-keyed state already absorbs.
    """
    self._suspend.clear()
    self._resume.set()


Committed = dict[TopicPartition, int | None]


async def seek_to_committed_or_beginning(consumer: AIOKafkaConsumer,
                                         positioned_elsewhere: Collection[str] = ()) -> Committed:
    """Seeks every assigned partition to its committed offset, and one without any (or at 0) to its beginning,
    except the partitions of `positioned_elsewhere`: faust's table changelogs, which the group never commits and
    which faust's recovery positions itself (read from the start again, they would put old rows back).

    aiokafka's seek_to_committed leaves a partition without a committed offset where it is. faust relies on that
    seek to re-read what it fetched and threw away: its getmany() drops the records of partitions it holds paused
    (table recovery after an assignment, transport/consumer.py), and its revoke handler forgets the acks of the
    partitions it gives up before its last commit, so a partition can change hands with nothing committed. The new
    owner then fetched from the beginning, dropped those records while recovering, and its seek left the position
    past them: requests written while a second worker joined were never applied (docs/FAULTS.md, "The loss at a
    worker's join"; tests/integration/test_pipeline_join.py). Read again instead, they are redeliveries the
    rows' applied offsets absorb (streams/pipeline/_guard.py).
    """
    committed: Committed = await consumer.seek_to_committed()
    never_committed = [tp for tp, offset in committed.items() if not offset and tp.topic not in positioned_elsewhere]
    if never_committed:
        await consumer.seek_to_beginning(*never_committed)
    return committed


async def _seek_to_committed(self: AIOKafkaConsumerThread) -> Mapping[Any, int]:
    """faust's seek for its perform_seek(), rewinding never-committed partitions where the reset policy is earliest
    (with "latest" such a partition is meant to start at the end, and faust's own seek is kept)."""
    if self.app.conf.consumer_auto_offset_reset != "earliest":
        return await _FAUST_SEEK_TO_COMMITTED(self)
    changelogs = self.app.tables.changelog_topics
    return await self.call_thread(  # type: ignore[no-any-return]
        seek_to_committed_or_beginning, self._ensure_consumer(), changelogs)


def apply() -> None:
    """Installs the fixes (idempotent)."""
    global _APPLIED
    if not _APPLIED:
        FlowControlEvent.resume = _resume_without_clearing  # type: ignore[method-assign]
        AIOKafkaConsumerThread.seek_to_committed = _seek_to_committed  # type: ignore[method-assign]
        _APPLIED = True

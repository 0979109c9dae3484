"""The send API's Kafka side: first-claim-wins idempotency on sb.api.requests, and outcomes from the events."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from connectors._ingest_sink import EventSink, OutgoingRecord, Placement
from schemas import EVENT_TOPICS, DecodedEvent, decode
from switchboard import tracing
from switchboard.topics import TopicSpec

__all__ = ["CLAIMS_TOPIC", "COMMANDS_TOPIC", "OUTCOMES", "Claim", "SendLog", "claims_topic_spec"]

CLAIMS_TOPIC: Final = "sb.api.requests"
COMMANDS_TOPIC: Final = "sb.commands"
# Keys are honoured as long as their claim is kept: a week, as the commands themselves.
CLAIMS_RETENTION_MS: Final = 7 * 24 * 3600 * 1000
# The events that end the pipeline's part for a message, and the status a synchronous send answers with.
# MessageFailed is not one: a retry or a fallback follows it, and a final failure is a dead letter.
OUTCOMES: Final[Mapping[str, str]] = {"MessageAcceptedByProvider": "accepted", "MessageDeadLettered": "dead_lettered",
                                      "MessageSuppressed": "suppressed", "MessageExpired": "expired"}
_log = logging.getLogger("projections.api")


def claims_topic_spec(prefix: str, partitions: int, replication: int = -1) -> TopicSpec:
    return TopicSpec(prefix + CLAIMS_TOPIC, partitions, replication,
                     {"cleanup.policy": "delete", "retention.ms": str(CLAIMS_RETENTION_MS)})


@dataclass(frozen=True)
class Claim:
    """The first claim of a message id in the log: the body digest it was made with, and where it lies."""

    digest: str
    partition: int
    offset: int


@dataclass
class _Tail:
    """What the shared consumer has read: the first claim per message id, and how far each partition is read."""

    claims: dict[str, Claim] = field(default_factory=dict)
    read_to: dict[int, int] = field(default_factory=dict)  # claims partition -> next offset to read
    waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = field(default_factory=dict)
    moved: asyncio.Condition = field(default_factory=asyncio.Condition)


class SendLog:
    """Writes claims and commands with acks=all; one consumer per process reads the claims and the outcomes."""

    def __init__(self, bootstrap: str, sink: EventSink, prefix: str = "") -> None:
        self.bootstrap, self.sink, self.prefix = bootstrap, sink, prefix
        self.claims_topic, self.commands_topic = prefix + CLAIMS_TOPIC, prefix + COMMANDS_TOPIC
        self.events_topic = prefix + EVENT_TOPICS["message"].name
        self._tail = _Tail()
        self.last_error: str | None = None

    async def claim(self, requests: Sequence[tuple[str, str]]) -> list[tuple[Claim, bool]]:
        """Claims (message id, digest) pairs: each id's first claim, and whether it is ours, once read back.

        Every API process reads the same log in the same order, so all agree which claim came first: a
        second body for a key is refused by any replica, however close together the two requests were.
        """
        records = [OutgoingRecord(self.claims_topic, mid.encode(), json.dumps({"message_id": mid, "digest": d})
                                  .encode()) for mid, d in requests]
        placements = await self.sink.produce(records)
        await self._read_past(placements)
        firsts = [self._tail.claims[mid] for mid, _ in requests]
        return [(first, (first.partition, first.offset) == (mine.partition, mine.offset))
                for first, mine in zip(firsts, placements, strict=True)]

    async def command(self, records: Sequence[tuple[str, dict[str, Any]]]) -> list[Placement]:
        """Writes `request` commands keyed by contact id; returns once the broker has them all (acks=all)."""
        return await self.sink.produce([OutgoingRecord(self.commands_topic, key.encode(), json.dumps(value).encode(),
                                                       tuple(tracing.record_headers(value.get("trace_id"))))
                                        for key, value in records])

    def expect(self, message_id: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the message's outcome; register it before the command is written, `forget` it after."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._tail.waiters.setdefault(message_id, []).append(future)
        return future

    def forget(self, message_id: str, future: asyncio.Future[dict[str, Any]]) -> None:
        waiting = self._tail.waiters.get(message_id, [])
        if future in waiting:
            waiting.remove(future)
        if not waiting:
            self._tail.waiters.pop(message_id, None)

    async def _read_past(self, placements: Sequence[Placement]) -> None:
        async with self._tail.moved:
            await self._tail.moved.wait_for(lambda: all(
                self._tail.read_to.get(p.partition, 0) > p.offset for p in placements))

    async def run(self, retry_after: float = 1.0) -> None:
        """The shared consumer, until cancelled; after a Kafka error it starts again from the claims' beginning."""
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.last_error = f"{type(error).__name__}: {error}"
                _log.warning("api: the send log's consumer failed, restarting: %s", self.last_error)
                self._tail.read_to.clear()
            await asyncio.sleep(retry_after)

    async def _consume(self) -> None:
        """Claims from the start of their retention, outcomes from now on."""
        partitions = await _partitions(self.bootstrap, self.claims_topic, self.events_topic)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    fetch_max_wait_ms=50, auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*[tp for tp in partitions if tp.topic == self.claims_topic])
            await consumer.seek_to_end(*[tp for tp in partitions if tp.topic == self.events_topic])
            self.last_error = None
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                self._apply(batches, {tp: await consumer.position(tp) for tp in partitions
                                      if tp.topic == self.claims_topic})
                async with self._tail.moved:
                    self._tail.moved.notify_all()
        finally:
            await consumer.stop()

    def _apply(self, batches: Mapping[TopicPartition, list[Any]], positions: Mapping[TopicPartition, int]) -> None:
        for tp, records in batches.items():
            for record in records:
                if tp.topic == self.claims_topic:
                    self._claimed(record)
                else:
                    self._event(record.value)
        for tp, position in positions.items():
            self._tail.read_to[tp.partition] = position

    def _claimed(self, record: Any) -> None:
        try:
            value = json.loads(record.value)
            self._tail.claims.setdefault(value["message_id"], Claim(value["digest"], record.partition, record.offset))
        except (ValueError, KeyError, TypeError):
            _log.warning("api: unreadable claim at %s/%s", record.partition, record.offset)

    def _event(self, raw: bytes) -> None:
        if not self._tail.waiters:
            return  # nobody waits: no need to decode the stream
        try:
            decoded = decode(raw)
        except Exception:  # an event this process cannot read is the projections' concern, not a send's
            return
        if not isinstance(decoded, DecodedEvent) or decoded.event_type not in OUTCOMES:
            return
        envelope = decoded.payload["envelope"]
        for future in self._tail.waiters.pop(str(envelope["aggregate_id"]), []):
            if not future.done():
                future.set_result({"status": OUTCOMES[decoded.event_type], "event_type": decoded.event_type,
                                   "reason": decoded.payload.get("reason")})


async def _partitions(bootstrap: str, *topics: str) -> list[TopicPartition]:
    """Every partition of the topics; subscribing a consumer without a group fetches their metadata."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        found = [TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic)
                                                                              or ())]
    finally:
        await consumer.stop()
    missing = [topic for topic in topics if not any(tp.topic == topic for tp in found)]
    if missing:
        raise RuntimeError(f"no partitions for {', '.join(missing)}: create the topics first")
    return found

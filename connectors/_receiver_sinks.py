"""Where the webhook receiver writes: the RawWebhookSink interface, a Kafka sink (acks=all) and an in-memory one."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from aiokafka import AIOKafkaProducer

from switchboard.kafka_io import new_producer
from switchboard.topics import AUDIT_LOG_CONFIG, TopicSpec, ensure_topics

__all__ = [
    "CONTENT_SHA256",
    "MAX_RECORD_BYTES",
    "RAW_TOPIC",
    "REJECTS_TOPIC",
    "InMemoryWebhookSink",
    "KafkaWebhookSink",
    "RawWebhookSink",
    "SinkRecord",
    "digest_partition",
]

RAW_TOPIC: Final = "sb.webhooks.raw"
REJECTS_TOPIC: Final = "sb.rejects"
CONTENT_SHA256: Final = "content-sha256"  # record header with the body's hex sha256; also the record key
# A 1 MiB body plus its headers is over Kafka's default 1 MiB record limit: both topics and the producer allow 2 MiB.
MAX_RECORD_BYTES: Final = 2 * 1024 * 1024
# Webhooks answered at once share a produce request: each waits up to this long for others to join its batch
# (aiokafka keeps one request in flight per broker, so under load batches form anyway; the linger also batches
# a steady trickle). A few ms against a provider's answer budget of seconds.
LINGER_MS: Final = 5


class RawWebhookSink(abc.ABC):
    """Durable storage of received webhook bodies; a method returns only once the record is stored."""

    @abc.abstractmethod
    async def accept(self, channel: str, raw: bytes, headers: Mapping[str, str]) -> None:
        """Stores a verified body exactly as received; headers carry channel, received_at, content-sha256."""

    @abc.abstractmethod
    async def reject(self, channel: str, reason: str, raw: bytes, headers: Mapping[str, str]) -> None:
        """Keeps a refused request for audit: the reason, the headers that matter and the (bounded) body."""


@dataclass(frozen=True)
class SinkRecord:
    """One record as a sink received it; `reason` is None for accepted bodies."""

    channel: str
    raw: bytes
    headers: Mapping[str, str]
    reason: str | None = None


@dataclass
class InMemoryWebhookSink(RawWebhookSink):
    """Keeps records in lists, for unit tests; `changed` is notified after every write."""

    accepted: list[SinkRecord] = field(default_factory=list)
    rejected: list[SinkRecord] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def accept(self, channel: str, raw: bytes, headers: Mapping[str, str]) -> None:
        """Appends to `accepted`."""
        async with self.changed:
            self.accepted.append(SinkRecord(channel, raw, dict(headers)))
            self.changed.notify_all()

    async def reject(self, channel: str, reason: str, raw: bytes, headers: Mapping[str, str]) -> None:
        """Appends to `rejected`."""
        async with self.changed:
            self.rejected.append(SinkRecord(channel, raw, dict(headers), reason))
            self.changed.notify_all()

    async def holding(self, count: int, timeout: float = 10.0) -> None:
        """Returns once `count` records (accepted and rejected) are held; TimeoutError after `timeout`."""
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: len(self.accepted) + len(self.rejected) >= count),
                                   timeout)


def digest_partition(sha256_hex: str, partitions: int) -> int:
    """The partition of a raw body's record: its digest's first 32 bits, modulo the partitions.

    The key is a uniform hash already, so a duplicate still lands beside its twin, whichever replica received it;
    aiokafka's murmur2 (pure Python) over the 64-character key was an eighth of the receiver's CPU. Nothing reads
    these topics by key, so the Java client's placement does not matter here, unlike for the domain topics.
    """
    return int(sha256_hex[:8], 16) % partitions


class KafkaWebhookSink(RawWebhookSink):
    """Writes to the raw and rejects topics (audit logs, created at start) with acks=all and idempotence."""

    def __init__(self, bootstrap: str, raw_topic: str = RAW_TOPIC, rejects_topic: str = REJECTS_TOPIC, *,
                 prefix: str = "", partitions: int = 6, replication: int = -1, linger_ms: int = LINGER_MS) -> None:
        self.bootstrap = bootstrap
        self.raw_topic = prefix + raw_topic
        self.rejects_topic = prefix + rejects_topic
        self.partitions = partitions
        self.replication = replication
        self.linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None

    def topic_specs(self) -> list[TopicSpec]:
        """Both topics kept forever, never compacted, allowing records of up to MAX_RECORD_BYTES."""
        config = {**AUDIT_LOG_CONFIG, "max.message.bytes": str(MAX_RECORD_BYTES)}
        return [TopicSpec(name, self.partitions, self.replication, config)
                for name in (self.raw_topic, self.rejects_topic)]

    async def start(self) -> None:
        """Creates the topics if missing, then starts the producer."""
        await ensure_topics(self.bootstrap, self.topic_specs())
        producer = new_producer(self.bootstrap, max_request_size=MAX_RECORD_BYTES, linger_ms=self.linger_ms)
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

    async def accept(self, channel: str, raw: bytes, headers: Mapping[str, str]) -> None:
        """One record keyed by the body's sha256 (a duplicate lands next to its twin); returns after the ack."""
        await self._write(self.raw_topic, raw, headers)

    async def reject(self, channel: str, reason: str, raw: bytes, headers: Mapping[str, str]) -> None:
        """One record on the rejects topic, keyed like accepted ones; returns after the ack."""
        await self._write(self.rejects_topic, raw, {**headers, "reason": reason})

    async def _write(self, topic: str, raw: bytes, headers: Mapping[str, str]) -> None:
        if self._producer is None:
            raise RuntimeError("KafkaWebhookSink is not started")
        digest = headers[CONTENT_SHA256]
        record_headers = [(name, value.encode()) for name, value in headers.items()]
        await self._producer.send_and_wait(topic, raw, key=digest.encode(), headers=record_headers,
                                           partition=digest_partition(digest, self.partitions))

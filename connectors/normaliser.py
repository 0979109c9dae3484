"""The webhook normaliser: raw provider webhooks from sb.webhooks.raw as pipeline commands, at least once."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from connectors._items import NormalizedItem
from connectors._normaliser_batches import BatchWriter, Record
from connectors._normaliser_index import AddressIndex, auto_external_ref, normal_address
from connectors._normaliser_kafka import RevokeGate, require_topics
from connectors._normaliser_map import (
    RECEIPT_STATUSES,
    DriverCache,
    ItemMapper,
    Mapped,
    Output,
    OutputKind,
    Source,
    Unparseable,
    dead_letter,
    inbound_command,
    receipt_command,
)
from connectors._receiver_sinks import RAW_TOPIC
from streams.pipeline._runtime import Topics
from streams.pipeline._templates import TemplateTopics
from switchboard import tracing
from switchboard.config import PipelineConfig, PipelineWatcher
from switchboard.followers import EventFollower
from switchboard.kafka_io import new_producer
from switchboard.observability import ConsumerLag, Observability, kafka_reachable, serve_endpoints, until_stopped

__all__ = [
    "RAW_SOURCE_HEADER",
    "RECEIPT_STATUSES",
    "AddressIndex",
    "ItemMapper",
    "Normaliser",
    "NormaliserConfig",
    "NormaliserStats",
    "auto_external_ref",
    "inbound_command",
    "normal_address",
    "receipt_command",
    "run_normaliser",
]

_log = logging.getLogger(__name__)
# Header on every record the normaliser writes: {"topic", "partition", "offset"} of the raw webhook it came from.
RAW_SOURCE_HEADER: Final = "raw-source"
# The producer's batch size: a poll's commands for one partition fit in one batch; under the topics' 1 MiB limit.
BATCH_BYTES: Final = 512 * 1024
Batches = Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


@dataclass(frozen=True)
class NormaliserConfig:
    """Where the normaliser reads and writes, and the pipeline declaration its channels and tenants come from."""

    bootstrap: str
    topic_prefix: str = ""
    group: str = "switchboard-normaliser"
    config_path: Path = Path("pipeline.toml")
    poll_seconds: float = 0.2
    max_records: int = 500  # raw records per batch: their outputs are written, then the batch is committed
    catch_up_seconds: float = 120.0  # reading the contact topic to its end, at start and before inbound batches
    web_host: str = "127.0.0.1"
    web_port: int | None = None  # /healthz, /readyz and /metrics; None: not served
    ready_lag: int = 10_000  # /readyz answers 503 while a raw partition is further behind than this

    @property
    def raw_topic(self) -> str:
        return self.topic_prefix + RAW_TOPIC

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def template_commands(self) -> str:
        return TemplateTopics(self.topic_prefix).commands


@dataclass
class NormaliserStats:
    """What the normaliser did so far; tests wait on these, the command prints them when it stops."""

    records: int = 0
    commands: int = 0
    dead_letters: int = 0
    foreign_receipts: int = 0  # receipts without a reference of ours (sent from elsewhere): skipped
    new_contacts: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)  # commands by kind

    def count(self, mapped: Mapped) -> None:
        """Adds one raw record's result."""
        self.records += 1
        self.foreign_receipts += mapped.foreign_receipts
        self.new_contacts += mapped.new_contacts
        for output in mapped.outputs:
            if output.kind is not OutputKind.DEAD_LETTER:
                self.commands += 1
                kind = str(output.value["kind"])
                self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            else:
                self.dead_letters += 1


@dataclass(frozen=True)
class _Parsed:
    """One raw record read: its items, or the dead letter that parks it whole."""

    source: Source
    driver: str
    items: list[NormalizedItem]
    parked: Output | None = None
    span: tracing.TraceParent | None = None  # the receiver's span of the webhook


class Normaliser:
    """A consumer group on the raw topic; each batch's commands and dead letters are acknowledged, then committed.

    At least once: a crash before the commit re-reads the batch, and since every command id is derived from the
    webhook item, the writer sees the same command again and changes nothing. A failed write stops run() without
    committing past it.
    """

    def __init__(self, config: NormaliserConfig, *, pipeline: Callable[[], PipelineConfig] | None = None) -> None:
        self.config = config
        self.stats = NormaliserStats()
        self.ready = asyncio.Event()
        self._watcher = PipelineWatcher(config.config_path) if pipeline is None else None
        self._drivers = DriverCache()
        self.index = AddressIndex()
        self._mapper = ItemMapper(pipeline or self._current, self._drivers, self.index)
        # Not followed in the background: synced before every batch that has inbound messages, so each one sees
        # every contact registered before it was normalised (one registered in the same instant may be missed, and
        # its sender then gets a contact of its own).
        self._contacts = EventFollower(config.bootstrap, config.topics.contact_events, self.index.apply,
                                       "the address index", poll_seconds=0.2, catch_up_seconds=config.catch_up_seconds)
        self._batch = asyncio.Lock()  # held while a batch is written and committed; a rebalance waits for it
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._writer: BatchWriter | None = None
        self.observability = self._observability()
        self._stage = self.observability.stage("normaliser")

    def _observability(self) -> Observability:
        """Ready once the address index has caught up, Kafka answers and the raw topic's lag is under the bar."""
        observability = Observability("normaliser")
        self.lag = ConsumerLag(lambda: self._consumer)
        observability.registry.register(self.lag)
        readiness = observability.readiness
        readiness.add("kafka", lambda: kafka_reachable(lambda: self._consumer._client if self._consumer else None))
        readiness.add_flag("contacts_index", self.ready.is_set, "address index caught up with the contact topic")
        readiness.add_lag(self.lag, self.config.ready_lag)
        return observability

    def stop(self) -> None:
        """Asks run() to return after the batch under way."""
        self._stopping.set()

    async def run(self) -> None:
        """Runs until stop(); raises what made a write fail (nothing is committed past it)."""
        try:
            consumer = await self._start()
            self.ready.set()
            while not self._stopping.is_set():
                await self._poll(consumer)
        finally:
            await self._shutdown()

    def _current(self) -> PipelineConfig:
        assert self._watcher is not None
        return self._watcher.current

    async def _start(self) -> AIOKafkaConsumer:
        topics = self.config.topics
        await require_topics(self.config.bootstrap, {
            self.config.raw_topic: "switchboard receiver", topics.commands: "switchboard pipeline",
            topics.contact_events: "switchboard pipeline", topics.deadletters: "switchboard pipeline",
            self.config.template_commands: "switchboard pipeline"})
        if self._watcher is not None:
            self._watcher.start()
        # A whole poll's commands for one partition go out as one batch (up to max_records raw records' worth).
        self._producer = new_producer(self.config.bootstrap, max_batch_size=BATCH_BYTES)
        await self._producer.start()
        self._writer = BatchWriter(self._producer)
        await self._contacts.start(follow=False)  # the index first: inbound senders are looked up in every contact
        consumer = AIOKafkaConsumer(bootstrap_servers=self.config.bootstrap, group_id=self.config.group,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        consumer.subscribe([self.config.raw_topic], listener=RevokeGate(self._batch_finished))
        self._consumer = consumer
        await consumer.start()
        return consumer

    async def _batch_finished(self) -> None:
        async with self._batch:
            pass

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        batches: Batches = await consumer.getmany(timeout_ms=int(self.config.poll_seconds * 1000),
                                                  max_records=self.config.max_records)
        if not batches:
            return
        async with self._batch:
            await self._normalise(batches)
            await self._commit(consumer, {tp: records[-1].offset + 1 for tp, records in batches.items() if records})
            for tp, records in batches.items():
                if records:
                    self.lag.done(tp.topic, tp.partition, records[-1].offset)

    async def _normalise(self, batches: Batches) -> None:
        # The raw topic is keyed by the body's hash, so one message's receipts sit on different partitions: within
        # a batch they are taken in the order the receiver accepted them, not partition by partition.
        records = sorted((record for records in batches.values() for record in records), key=_received_at)
        parsed = [self._parse(record) for record in records]
        if any(self._mapper.needs_addresses(one.driver, one.items) for one in parsed):
            await self._contacts.sync()  # every contact registered so far is known before an address is looked up
        outputs: list[Record] = []
        for one in parsed:
            with self._stage.observe(), tracing.use(one.span):
                mapped = Mapped([one.parked]) if one.parked else self._mapper.map(one.source, one.driver, one.items)
                self.stats.count(mapped)
                outputs.extend(self._record(output, one.source) for output in mapped.outputs)
        assert self._writer is not None
        # One batch per partition for the whole poll, acknowledged by every in-sync replica before the offsets move.
        await asyncio.gather(*await self._writer.write(outputs))

    def _parse(self, record: ConsumerRecord[bytes, bytes]) -> _Parsed:
        headers = {name: value.decode(errors="replace") for name, value in record.headers}
        source = Source(record.topic, record.partition, record.offset, record.key.decode() if record.key else None)
        driver = headers.get("channel", "")
        # Records written before tracing (or by hand) have none; no new trace then, so that normalising the log again
        # yields the very same commands.
        span = tracing.from_record_headers(record.headers)
        try:
            return _Parsed(source, driver, self._mapper.parse(driver, headers, record.value), span=span)
        except Unparseable as error:
            with tracing.use(span):
                _log.warning("raw webhook at %s parked: %s", source.pointer(), error)
            return _Parsed(source, driver, [], dead_letter(source, driver or None, str(error)), span)

    def _record(self, output: Output, source: Source) -> Record:
        span = tracing.current()
        if output.kind is OutputKind.COMMAND:
            topic, value = self.config.topics.commands, output.value
        elif output.kind is OutputKind.TEMPLATE_COMMAND:
            topic, value = self.config.template_commands, output.value
        else:
            topic, value = self.config.topics.deadletters, {**output.value, "at": time.time()}
            self.observability.counts.dead_letters.labels("normaliser").inc()
        if output.kind is OutputKind.DEAD_LETTER and span is not None:
            value = {**value, "trace_id": span.trace_id}
        # Commands keep the webhook's trace in their headers only: the same item delivered twice, or normalised
        # again, must give the very same command (a receipt's value names only its message's own trace).
        body = json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
        # The raw record's position rides in a header, not the body: the command stays the same for every copy of
        # a webhook posted twice (its id says it is one fact), while each copy names the bytes it came from. A
        # receipt of a traced message continues the message's trace; the webhook's span is linked in the headers.
        headers = [(RAW_SOURCE_HEADER, json.dumps(source.pointer(), separators=(",", ":")).encode()),
                   *tracing.record_headers(value.get("trace_id"))]
        return Record(topic, output.key.encode() if output.key else None, body, headers)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except KafkaError as error:
            # The group moved the partitions meanwhile: their new owner normalises the batch again, which yields
            # the same command ids, so the writer changes nothing twice.
            _log.warning("offset commit failed (%s); the batch will be normalised again", type(error).__name__)

    async def _shutdown(self) -> None:
        self._stopping.set()
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
        await self._contacts.stop()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
        await self._drivers.aclose()
        if self._watcher is not None:
            await self._watcher.stop()


def _received_at(record: ConsumerRecord[bytes, bytes]) -> int:
    """The receiver's `received_at` header (epoch ms); 0 when missing or unreadable."""
    value = next((value for name, value in record.headers if name == "received_at"), b"")
    return int(value) if value.isdigit() else 0


async def run_normaliser(config: NormaliserConfig, stop: asyncio.Event | None = None) -> None:
    """Runs the normaliser until `stop` is set (by default: SIGINT or SIGTERM; the `switchboard normaliser` command)."""
    normaliser = Normaliser(config)
    stopper = asyncio.create_task(until_stopped(stop))
    stopper.add_done_callback(lambda _: normaliser.stop())
    announce = asyncio.create_task(_announce(normaliser))
    endpoints = None
    if config.web_port is not None:
        endpoints = await serve_endpoints(normaliser.observability, config.web_host, config.web_port)
    try:
        await normaliser.run()
    finally:
        announce.cancel()
        stopper.cancel()
        if endpoints is not None:
            await endpoints.cleanup()
        print(f"normaliser stopped: {normaliser.stats}", flush=True)


async def _announce(normaliser: Normaliser) -> None:
    await normaliser.ready.wait()
    config, topics = normaliser.config, normaliser.config.topics
    print(f"webhook normaliser: reading {config.raw_topic} as group {config.group}, contacts from "
          f"{topics.contact_events} ({len(normaliser.index)} addresses), commands to {topics.commands} and "
          f"{config.template_commands}, "
          f"dead letters to {topics.deadletters}", flush=True)

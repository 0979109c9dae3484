"""Status callbacks fed from Kafka: message status events POSTed to each tenant's URL, at least once, in order."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from connectors._feeder_events import STATUS_EVENT_TYPES, FeederStats, RecentMap, StatusRecord, status_record
from connectors._feeder_kafka import RevokeListener, TenantFollower, topic_partitions
from connectors._feeder_lanes import INVALID_CALLBACK_URL, NO_SIGNING_SECRET, DeliveryLanes
from connectors._feeder_offsets import OffsetTracker
from connectors._feeder_registry import CallbackRegistry
from connectors._feeder_secrets import ENV_PREFIX, CallbackSecrets, secret_env_var
from connectors._transport import AiohttpTransport, Transport
from connectors.callback_deadletters import DEAD_LETTER_TOPIC, sink_to_use
from connectors.callbacks import CallbackDispatcher, DeadLetterSink
from schemas import EVENT_TOPICS, CodecError, UnknownEvent, decode
from streams.policies.backoff import RetryPolicy
from switchboard import tracing
from switchboard.observability import ConsumerLag, Observability, kafka_reachable, serve_endpoints, until_stopped

__all__ = [
    "ENV_PREFIX",
    "INVALID_CALLBACK_URL",
    "NO_SIGNING_SECRET",
    "STATUS_EVENT_TYPES",
    "CallbackFeeder",
    "CallbackRegistry",
    "CallbackSecrets",
    "FeederConfig",
    "FeederStats",
    "OffsetTracker",
    "run_callback_feeder",
    "secret_env_var",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeederConfig:
    """Where the feeder reads and writes, and how hard it tries (no secrets: those come from CallbackSecrets)."""

    bootstrap: str
    topic_prefix: str = ""
    group: str = "switchboard-callbacks"
    secrets_dir: Path | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_concurrency: int = 16  # requests in flight at once, over all messages
    max_in_flight: int = 1000  # records taken and not yet finished; fetching pauses above it
    memory: int = 100_000  # event ids remembered to drop redeliveries, and given-up messages
    poll_seconds: float = 0.2
    drain_seconds: float = 10.0  # on stop, how long deliveries under way may still finish
    dead_letter_partitions: int = 6
    http_timeout: float = 10.0
    web_host: str = "127.0.0.1"
    web_port: int | None = None  # /healthz, /readyz and /metrics; None: not served
    ready_lag: int = 10_000  # /readyz answers 503 while a partition of the message topic is further behind

    @property
    def message_topic(self) -> str:
        return f"{self.topic_prefix}{EVENT_TOPICS['message'].name}"

    @property
    def tenant_topic(self) -> str:
        return f"{self.topic_prefix}{EVENT_TOPICS['tenant'].name}"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}{DEAD_LETTER_TOPIC}"


class CallbackFeeder:
    """Consumes the message topic in a consumer group and delivers status events through DeliveryLanes.

    At least once: a partition's offset is committed only past records that are finished (delivered, dead-lettered
    or not a callback), whatever order messages finish in. A redelivered event (same envelope event id, within
    `memory`) is not sent again. Any failure to deliver or dead-letter stops the feeder without committing past it.
    """

    def __init__(self, config: FeederConfig, *, secrets: CallbackSecrets | None = None,
                 transport: Transport | None = None, dead_letters: DeadLetterSink | None = None) -> None:
        self.config = config
        self.registry = CallbackRegistry()
        self.stats = FeederStats()
        self.ready = asyncio.Event()
        self._transport = transport if transport is not None else AiohttpTransport(timeout=config.http_timeout)
        self._own_transport = transport is None
        sink, self._kafka_sink = sink_to_use(dead_letters, config.bootstrap, config.dead_letter_topic,
                                             config.dead_letter_partitions)
        dispatcher = CallbackDispatcher(self._transport, config.retry, sink, max_concurrency=config.max_concurrency)
        lookup = (secrets if secrets is not None else CallbackSecrets(config.secrets_dir)).lookup
        self._lanes = DeliveryLanes(dispatcher, sink, lookup, memory=config.memory, stats=self.stats)
        self._tenants = TenantFollower(config.bootstrap, config.tenant_topic, self.registry)
        self._offsets: OffsetTracker[TopicPartition] = OffsetTracker()
        self._finished_ids: RecentMap[str, bool] = RecentMap(config.memory)
        self._pending_ids: dict[str, asyncio.Task[None]] = {}
        self._tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self._in_flight = 0
        self._failure: BaseException | None = None
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self.observability = self._observability()
        self._stage = self.observability.stage("callbacks")

    def _observability(self) -> Observability:
        """Ready once the tenants' URLs are read, Kafka answers and the message topic's lag is under the bar."""
        observability = Observability("callbacks")
        self.lag = ConsumerLag(lambda: self._consumer)
        observability.registry.register(self.lag)
        readiness = observability.readiness
        readiness.add("kafka", lambda: kafka_reachable(lambda: self._consumer._client if self._consumer else None))
        readiness.add_flag("tenants", self.ready.is_set, "callback URLs read from the tenant topic")
        readiness.add_lag(self.lag, self.config.ready_lag)
        observability.before_scrape.append(self._count_stats)
        self._counted = FeederStats()
        return observability

    def _count_stats(self) -> None:
        """Moves the lanes' dead letters and retries since the last scrape into the Prometheus counters."""
        counts, stats = self.observability.counts, self.stats
        counts.dead_letters.labels("callbacks").inc(stats.dead_lettered - self._counted.dead_lettered)
        counts.retries.labels("callbacks").inc(stats.retries - self._counted.retries)
        self._counted = FeederStats(dead_lettered=stats.dead_lettered, retries=stats.retries)

    def stop(self) -> None:
        """Asks run() to return: deliveries under way get drain_seconds, finished ones are committed."""
        self._stopping.set()

    async def run(self) -> None:
        """Runs until stop(); raises what made a delivery or dead letter fail (nothing is committed past it)."""
        try:
            consumer = await self._start()
            self.ready.set()
            while not self._stopping.is_set():
                await self._poll(consumer)
        finally:
            await self._shutdown()
        self._raise_failure()  # one that came with the stop, or while draining

    async def _start(self) -> AIOKafkaConsumer:
        # The registry first: events are matched against every URL set before the feeder started.
        await self._tenants.start()
        # A subscription to a missing topic would wait silently; this names it and stops.
        await topic_partitions(self.config.bootstrap, self.config.message_topic)
        if self._kafka_sink is not None:
            await self._kafka_sink.start()
        consumer = AIOKafkaConsumer(bootstrap_servers=self.config.bootstrap, group_id=self.config.group,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        consumer.subscribe([self.config.message_topic], listener=RevokeListener(self._release))
        self._consumer = consumer
        await consumer.start()
        return consumer

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        self._raise_failure()
        self._tenants.check()
        room = self.config.max_in_flight - self._in_flight
        self._throttle(consumer, room > 0)
        batches = await consumer.getmany(timeout_ms=int(self.config.poll_seconds * 1000), max_records=max(room, 1))
        for records in batches.values():
            for record in records:
                self._take(record)
        await self._commit()

    @staticmethod
    def _throttle(consumer: AIOKafkaConsumer, open_: bool) -> None:
        """Pauses fetching while too much is in flight; getmany keeps being called, so the group keeps us."""
        if open_:
            consumer.resume(*consumer.paused())
        else:
            consumer.pause(*consumer.assignment())

    def _take(self, record: ConsumerRecord[bytes, bytes]) -> None:
        tp = TopicPartition(record.topic, record.partition)
        self.stats.records += 1
        self._offsets.start(tp, record.offset)
        with tracing.use(tracing.from_record_headers(record.headers)):  # the delivery task inherits the event's span
            task = self._route(record)
        if task is None:
            self._offsets.finish(tp, record.offset)
            return
        self._in_flight += 1
        self._tasks.setdefault(tp, set()).add(task)
        task.add_done_callback(functools.partial(self._finished, tp, record.offset, time.perf_counter()))

    def _route(self, record: ConsumerRecord[bytes, bytes]) -> asyncio.Task[None] | None:
        """The task that finishes this record, or None when there is nothing to send."""
        status = self._status(record)
        if status is None:
            return None
        self.stats.status_events += 1
        if status.event_id in self._finished_ids or status.event_id in self._pending_ids:
            self.stats.duplicates += 1
            return self._pending_ids.get(status.event_id)  # a copy still under way finishes with the original
        url = self.registry.url(status.callback.tenant_id)
        if url is None:
            self.stats.without_url += 1
            return None
        task = self._lanes.submit(url, status.callback)
        self._pending_ids[status.event_id] = task
        task.add_done_callback(functools.partial(self._settled, status.event_id))
        return task

    def _status(self, record: ConsumerRecord[bytes, bytes]) -> StatusRecord | None:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        try:
            decoded = decode(record.value) if record.value is not None else None
        except CodecError as error:
            self.stats.undecodable += 1
            log.warning("%s is not a Switchboard event (%s): no callback", where, type(error).__name__)
            return None
        if isinstance(decoded, UnknownEvent):
            self.stats.undecodable += 1
            log.warning("%s: %s; no callback for it until this build knows it", where, decoded.reason)
            return None
        return None if decoded is None else status_record(decoded)

    def _settled(self, event_id: str, task: asyncio.Task[None]) -> None:
        self._pending_ids.pop(event_id, None)
        if not task.cancelled() and task.exception() is None:
            self._finished_ids.put(event_id, True)

    def _finished(self, tp: TopicPartition, offset: int, started: float, task: asyncio.Task[None]) -> None:
        self._in_flight -= 1
        self._tasks.get(tp, set()).discard(task)
        if task.cancelled():
            return  # its partition was revoked: the new owner delivers it
        error = task.exception()
        if error is None:
            self._offsets.finish(tp, offset)
            self._stage.done(time.perf_counter() - started)
            return
        self._stage.error()
        if self._failure is None:
            self._failure = error
            log.error("a status callback could be neither delivered nor dead-lettered (%s); stopping without "
                      "committing past it", type(error).__name__)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _commit(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        offsets = {tp: offset for tp, offset in self._offsets.advanced().items() if tp in assigned}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as error:
            # A rebalance under way or a coordinator moving: not marked committed, so the next poll tries again,
            # and if the partition moves meanwhile its new owner redelivers from the last commit (at least once).
            log.warning("offset commit failed (%s); retried on the next poll", type(error).__name__)
            return
        self._offsets.mark_committed(offsets)
        for tp, next_offset in offsets.items():
            self.lag.done(tp.topic, tp.partition, next_offset - 1)

    async def _release(self, revoked: set[TopicPartition]) -> None:
        """Before the group hands partitions on: commit what is finished, cancel what is not."""
        await self._commit()
        tasks = {task for tp in revoked for task in self._tasks.pop(tp, set())}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for tp in revoked:
            self._offsets.forget(tp)
        if revoked:
            log.info("%d partition(s) revoked, %d delivery task(s) under way cancelled", len(revoked), len(tasks))

    async def _shutdown(self) -> None:
        self._stopping.set()
        await self._drain()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        await self._tenants.stop()
        if self._kafka_sink is not None:
            await self._kafka_sink.stop()
        if self._own_transport:
            await self._transport.aclose()

    async def _drain(self) -> None:
        """Lets deliveries under way finish (bounded), commits the finished prefix, cancels the rest."""
        pending = {task for tasks in self._tasks.values() for task in tasks}
        if pending and self._failure is None:
            await asyncio.wait(pending, timeout=self.config.drain_seconds)
        await self._commit()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


async def run_callback_feeder(config: FeederConfig, stop: asyncio.Event | None = None) -> None:
    """Runs the feeder until `stop` is set (by default: SIGINT or SIGTERM; the `switchboard callbacks` command)."""
    feeder = CallbackFeeder(config)
    stopper = asyncio.create_task(until_stopped(stop))
    stopper.add_done_callback(lambda _: feeder.stop())
    announce = asyncio.create_task(_announce(feeder))
    endpoints = None
    if config.web_port is not None:
        endpoints = await serve_endpoints(feeder.observability, config.web_host, config.web_port)
    try:
        await feeder.run()
    finally:
        announce.cancel()
        stopper.cancel()
        if endpoints is not None:
            await endpoints.cleanup()


async def _announce(feeder: CallbackFeeder) -> None:
    await feeder.ready.wait()
    config = feeder.config
    print(f"status callbacks: reading {config.message_topic} as group {config.group}, URLs from "
          f"{config.tenant_topic}, dead letters to {config.dead_letter_topic}", flush=True)

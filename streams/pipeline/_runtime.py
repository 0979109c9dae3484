"""The pipeline's agents on faust: a batch of records in, effects out, awaited, then state written."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import time
import weakref
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

import faust
from faust.streams import _current_event
from faust.types import EventT
from prometheus_client import CollectorRegistry

from aggregates import Channel, Contact, Message, to_record
from connectors import LocalErrorCode, Outcome, ProviderError, SendResult
from schemas import DecodedEvent, TraceContext, decode, encode
from streams.observability import DispatchMetrics, StageMetrics
from streams.pipeline._commands import CommandError, check_command, check_job
from streams.pipeline._dispatch import BreakerSettings, Dispatcher, SenderState
from streams.pipeline._drivers import DriverPool, limits_for, outbound
from streams.pipeline._fence import Fence
from streams.pipeline._guard import ClusterIdentity, is_redelivery, mark_applied
from streams.pipeline._rows import LiveRows, Outbox, write_rows
from streams.pipeline._state import ContactRow
from streams.pipeline._template_gate import TemplateGate
from streams.pipeline._timers import TimerIndex
from streams.pipeline._writer import Effects, Writer
from switchboard import tracing
from switchboard.config import PipelineConfig

__all__ = ["Runtime", "Topics"]

_log = logging.getLogger(__name__)
Pending = list[Awaitable[Any]]


@dataclass(frozen=True)
class Topics:
    """The pipeline's topic names under one prefix."""

    prefix: str = ""

    def __getattr__(self, name: str) -> str:
        names = {"commands": "sb.commands", "dispatch": "sb.dispatch", "message_events": "sb.events.message",
                 "contact_events": "sb.events.contact", "business_events": "sb.events.business",
                 "deadletters": "sb.deadletters"}
        if name not in names:
            raise AttributeError(name)
        return self.prefix + names[name]


@dataclass
class _Batch:
    """State rows touched by one batch, each with an event of its partition (faust writes its changelog there)."""

    rows: dict[str, tuple[Any, EventT[Any]]] = field(default_factory=dict)
    # Each contact row pickled after its last command: the image to roll back to if the next command fails,
    # and what is written to the table at the end (so a row is pickled once per command, not twice).
    images: dict[str, bytes] = field(default_factory=dict)
    pending: Pending = field(default_factory=list)
    read: dict[str, Any] = field(default_factory=dict)  # index rows as read: one left unchanged is not rewritten
    cluster: str = ""  # the cluster the batch's offsets belong to (_guard.py), asked once per batch
    outbox: Outbox | None = None  # the writer's events and jobs, produced as one record batch per partition


class Runtime:
    """Holds the tables, the pure stages and the producer; the agents in app.py call its batch methods."""

    def __init__(self, app: faust.App, topics: Topics, config: Any, tables: dict[str, Any],
                 metrics: dict[str, StageMetrics], send_concurrency: int,
                 cluster: ClusterIdentity, fence: Fence, dispatch_metrics: DispatchMetrics | None = None) -> None:
        self.app, self.topics, self._config, self.cluster, self.fence = app, topics, config, cluster, fence
        self.contacts = tables["contacts"]
        self.timers = TimerIndex(self._timers_of)  # in memory, rebuilt from the contact rows (_timers.py)
        self.live = LiveRows()  # contact rows as written last: read back without unpickling
        self.senders, self.sender_index = tables["senders"], tables["sender_index"]
        self.dispatched = tables["dispatched"]  # "message:attempt" -> outcome: a job is never sent twice
        self.metrics = metrics
        self.dispatch_metrics = dispatch_metrics or DispatchMetrics(CollectorRegistry())
        self.writer = Writer(lambda: self.config)
        self.dispatcher = Dispatcher(self._breaker_settings)
        self.drivers = DriverPool(send_concurrency)
        self.templates = TemplateGate()  # folded from sb.events.template by a follower (app.py)

    def _breaker_settings(self) -> BreakerSettings:
        d = self.config.dispatch
        return BreakerSettings(d.breaker_window, d.breaker_min_calls, d.breaker_error_rate, d.breaker_open_seconds)

    def partitions_revoked(self, revoked: set[Any]) -> None:
        """A rebalance took partitions away: gauges about sender accounts on them are no longer ours to report,
        in-flight marks made before it are another incarnation's (`Dispatcher.new_incarnation`), and their timers
        are no longer ours to fire."""
        self.dispatch_metrics.forget_partitions({tp.partition for tp in revoked if tp.topic == self.topics.dispatch})
        self.dispatcher.new_incarnation()
        self._forget_contacts({tp.partition for tp in revoked if tp.topic == self.topics.commands})

    def partitions_assigned(self, assigned: set[Any]) -> None:
        """A rebalance gave partitions: their timers are rebuilt from the restored rows at their first tick
        (another worker may have changed them since this one last held them)."""
        self._forget_contacts({tp.partition for tp in assigned if tp.topic == self.topics.commands})

    def _forget_contacts(self, partitions: set[int]) -> None:
        self.timers.forget(partitions)
        self.live.forget(partitions)

    def _timers_of(self, partition: int) -> list[tuple[str, float]]:
        """Every contact row of one partition with its next timer: read once per assignment, not per tick."""
        store = self.contacts.data
        timers = []
        for key, value in store._visible_items(store._db_for_partition(partition)):
            due = pickle.loads(value).next_timer()
            if due is not None:
                timers.append((store._decode_key(key), due))
        return timers

    async def watcher_stop(self) -> None:
        """Stops polling the declaration file."""
        await self._config.stop()

    @property
    def config(self) -> PipelineConfig:
        """The current pipeline declaration (hot-reloaded by the watcher)."""
        return self._config.current  # type: ignore[no-any-return]

    # -- triggers: business events become `trigger` commands for the contact's writer ----------------------------

    async def triggers_batch(self, events: Sequence[EventT[Any]]) -> None:
        pending: Pending = []
        for event in events:
            with self.metrics["triggers"].observe():
                await self._trigger_one(event, pending)
        await asyncio.gather(*pending)

    async def _trigger_one(self, event: EventT[Any], pending: Pending) -> None:
        try:
            decoded = decode(bytes(event.value))
        except Exception as error:  # any undecodable record is parked with its reason, never dropped
            pending.append(await self._dead_letter(None, {"stage": "triggers", "reason": f"undecodable: {error}",
                                                          "source": _source(event)}))
            return
        if not isinstance(decoded, DecodedEvent):  # a schema id this worker does not know: parked, not skipped,
            # so a trigger it should fire can be replayed once the worker knows the type
            pending.append(await self._dead_letter(None, {"stage": "triggers", "reason": decoded.reason,
                                                          "source": _source(event)}))
            return
        envelope, record = decoded.payload["envelope"], decoded.payload
        with tracing.use(tracing.from_record_headers(event.message.headers, envelope.get("trace_id"))):
            for trigger in self.config.triggers:
                if trigger.event == decoded.event_type and trigger.tenant == envelope["tenant_id"]:
                    command = _trigger_command(trigger.name, decoded.event_type, record)
                    # Where the business event sits, so an audit can show the very record that fired the trigger.
                    command["source"] = _source(event)
                    pending.append(await self._send_command(command))

    # -- the contact writer --------------------------------------------------------------------------------------

    async def writer_batch(self, events: Sequence[EventT[Any]]) -> None:
        generation = await self.fence.begin("writer")
        if generation is None:
            return  # expelled from the group: the new owner applies these records to the rows as they really are
        outbox = Outbox(cast(Any, self.app.producer)._ensure_producer())  # aiokafka's producer under faust's
        batch = _Batch(cluster=await self.cluster.id(), outbox=outbox)
        for event in events:
            # Per record, not only per batch: a worker frozen mid-batch (and expelled meanwhile) must not go on to
            # emit events from rows the new owner has moved past; those would contradict its own at the same versions.
            if not await self.fence.holds(generation, "writer"):
                self._drop_unwritten(batch)  # and the outbox's events are never sent
                return
            with self.metrics["writer"].observe():
                await self._write_one(event, batch)
        batch.pending.extend(await outbox.send())
        await asyncio.gather(*batch.pending)  # outputs are durable before any state that says they were made
        if not await self.fence.holds(generation, "writer"):  # an expelled worker's rows would overwrite newer ones
            self._drop_unwritten(batch)
            return
        await self._store(self.contacts, None, batch)
        for contact_id, (row, event) in batch.rows.items():
            self.live.put(event.message.partition, contact_id, row)

    def _drop_unwritten(self, batch: _Batch) -> None:
        """The batch changed live rows and timers in place without writing them: read them from the store again."""
        self._forget_contacts({event.message.partition for _, event in batch.rows.values()})

    async def _write_one(self, event: EventT[Any], batch: _Batch) -> None:
        _as_current(event)
        try:
            command = check_command(event.value)
        except CommandError as error:
            with tracing.use(tracing.from_record_headers(event.message.headers)):
                batch.pending.append(await self._dead_letter(None, {"stage": "writer", "reason": str(error),
                                                                     "record": _printable(event.value)}))
            return
        # The record's span; for a producer that sets only the command's trace_id, a new span of that trace.
        with tracing.use(tracing.from_record_headers(event.message.headers, command.get("trace_id"))):
            await self._write_checked(event, _traced(command), batch)

    async def _write_checked(self, event: EventT[Any], command: dict[str, Any], batch: _Batch) -> None:
        if command["kind"] == "tick":
            await self._tick_contacts(event, float(command["at"]), command, batch)
        else:
            await self._apply(str(command["contact_id"]), command, event.message.timestamp, event, batch)

    async def _tick_contacts(self, event: EventT[Any], now: float, tick: dict[str, Any], batch: _Batch) -> None:
        for contact_id in self.timers.due(event.message.partition, now):
            await self._apply(contact_id, tick, now, event, batch, redeliverable=False)

    async def _apply(self, contact_id: str, command: dict[str, Any], now: float, event: EventT[Any], batch: _Batch,
                     redeliverable: bool = True) -> None:
        row: ContactRow = self._contact(contact_id, event.message.partition, batch)
        offset, cluster = event.message.offset, batch.cluster
        if redeliverable and is_redelivery(row, offset, cluster):
            return  # a redelivery: the row was written only after this record's outputs were durable
        try:
            effects = self.writer.handle(row, command, now)
        except Exception as error:  # a bug or a contradictory command must not stop the partition
            _log.exception("writer failed on a %s command", command.get("kind"))
            image = batch.images.get(contact_id)
            row = pickle.loads(image) if image is not None else self.contacts.get(contact_id) or ContactRow()
            effects = Effects(dead_letters=[{"contact_id": contact_id, "stage": "writer",
                                             "reason": f"{type(error).__name__}: {error}", "command": command}])
        if redeliverable:
            mark_applied(row, offset, cluster)
        batch.rows[contact_id] = (row, event)
        batch.images[contact_id] = _pickle(row)
        self.timers.set(event.message.partition, contact_id, row.next_timer())
        await self._ship(effects, batch.pending, _cause(command, event), batch.outbox)

    # -- the dispatcher ------------------------------------------------------------------------------------------

    async def dispatch_batch(self, events: Sequence[EventT[Any]]) -> None:
        generation = await self.fence.begin("dispatch")
        if generation is None:
            return  # expelled from the group: the new owner admits and sends these jobs
        batch, touched = _Batch(cluster=await self.cluster.id()), dict[str, EventT[Any]]()
        for event in events:
            if not await self.fence.holds(generation, "dispatch"):  # as in writer_batch: stop at once when expelled
                return
            with self.metrics["dispatch"].observe():
                await self._admit_one(event, batch, touched)
        plan = self._plan(batch, touched)
        await asyncio.gather(*batch.pending)
        batch.pending.clear()
        # Expelled from the group: neither rows nor sends. The new owner sends what we did not mark in flight, and
        # reconciles what we did; a send made now would be one it cannot know about.
        if not await self.fence.holds(generation, "dispatch"):
            return
        await self._store_senders(batch)
        if plan:
            await self.app.producer.flush()  # the in-flight marks are durable before any provider call
            await self._send_all(plan, batch)
            await asyncio.gather(*batch.pending)
            if await self.fence.holds(generation, "dispatch"):  # else the new owner reconciles our marks
                await self._store_senders(batch)

    async def _admit_one(self, event: EventT[Any], batch: _Batch, touched: dict[str, EventT[Any]]) -> None:
        _as_current(event)
        try:
            job = check_job(event.value)
        except CommandError as error:
            with tracing.use(tracing.from_record_headers(event.message.headers)):
                batch.pending.append(await self._dead_letter(None, {"stage": "dispatch", "reason": str(error),
                                                                     "record": _printable(event.value)}))
            return
        with tracing.use(tracing.from_record_headers(event.message.headers, job.get("trace_id"))) as span:
            await self._admit_checked(event, job, batch, touched, span)

    async def _admit_checked(self, event: EventT[Any], job: dict[str, Any], batch: _Batch,
                             touched: dict[str, EventT[Any]], span: tracing.TraceParent | None) -> None:
        if job["kind"] == "tick":
            for key in self._index(self.sender_index, event, batch):
                touched.setdefault(key, event)
            return
        if span is not None:
            job["traceparent"] = str(span)  # kept with the queued job: its send and outcome continue this span
        key = f"{job['channel']}/{job['sender']}"
        state: SenderState = self._row(self.senders, key, batch, SenderState)
        cluster = batch.cluster
        if is_redelivery(state, event.message.offset, cluster):
            return
        if job["kind"] == "probe":
            reply = self.dispatcher.probe(state, job, self._settled_outcome)
        else:
            reply = self.dispatcher.admit(state, job, self._settled, _SenderPages(self.senders, key, event, batch))
        mark_applied(state, event.message.offset, cluster)
        batch.rows[key] = (state, event)
        touched[key] = event
        if reply is not None:
            batch.pending.append(await self._send_command(reply))

    def _settled_outcome(self, job_key: str) -> str | None:
        outcome = self.dispatched.get(job_key)
        return None if outcome is None else str(outcome)

    def _settled(self, job_key: str) -> bool:
        return self._settled_outcome(job_key) is not None

    def _plan(self, batch: _Batch, touched: dict[str, EventT[Any]]) -> list[tuple[str, dict[str, Any]]]:
        plan: list[tuple[str, dict[str, Any]]] = []
        now = time.time()
        for key, event in touched.items():
            _as_current(event)
            state: SenderState = self._row(self.senders, key, batch, SenderState)
            batch.rows[key] = (state, event)
            channel_id, sender_id = key.split("/", 1)
            limits = limits_for(self.config, channel_id, sender_id)
            if limits is None:
                continue  # the sender was removed from the pipeline: its jobs wait until it returns
            lost = self.dispatcher.orphans(state)
            throttles = self.dispatcher.throttles
            pages = _SenderPages(self.senders, key, event, batch)
            sending, refused = self.dispatcher.ready(state, limits, now, pages, self._settled)
            if self.dispatcher.throttles > throttles:
                self.dispatch_metrics.throttled.labels(key).inc()
            batch.pending.extend(self._send_command_soon(reply) for reply in [*lost, *refused])
            plan.extend((key, job) for job in sending)
            self.dispatch_metrics.sender_state(key, event.message.partition, state.queued,
                                               state.breaker.state(now) != "closed")
            self._reindex(self._index(self.sender_index, event, batch), key, 0.0 if _busy(state) else None)
        return plan

    async def _send_all(self, plan: list[tuple[str, dict[str, Any]]], batch: _Batch) -> None:
        results = await asyncio.gather(*(self._send_one(key, job) for key, job in plan))
        now = time.time()
        for (key, job), result in zip(plan, results, strict=True):
            state, event = batch.rows[key]
            _as_current(event)
            self.dispatch_metrics.outcomes.labels(job["channel"], result.outcome.value).inc()
            with tracing.use(_job_span(job)):
                _log.info("message %s attempt %s via %s: %s", job["message_id"], job["attempt"], key,
                          result.outcome.value)
                batch.pending.append(await self._send_command(self.dispatcher.settle(state, job, result, now)))

    async def _send_one(self, key: str, job: dict[str, Any]) -> Any:
        with tracing.use(_job_span(job)):  # the driver's log lines and its HTTP call to the provider carry the span
            return await self._send_job(key, job)

    async def _send_job(self, key: str, job: dict[str, Any]) -> Any:
        channel_id, sender_id = key.split("/", 1)
        channel = self.config.channel(channel_id)
        sender = channel.sender(sender_id) if channel is not None else None
        if channel is None or sender is None:
            return SendResult(Outcome.PERMANENT_FAILURE, job["message_id"],
                              error=ProviderError("local.invalid_message", f"sender {key} is no longer declared"))
        refusal = self._template_refusal(job, channel.kind)
        if refusal is not None:  # the provider would refuse it (WhatsApp's 132015/132016): fall back at once
            return SendResult(Outcome.PERMANENT_FAILURE, job["message_id"],
                              error=ProviderError(LocalErrorCode.TEMPLATE_NOT_SENDABLE, refusal))
        driver = self.drivers.driver(self.config, channel_id)
        return await self.drivers.send(driver, outbound(job, sender.address))

    def _template_refusal(self, job: dict[str, Any], channel: Channel) -> str | None:
        content = job["content"]
        if content["type"] != "template" or not job.get("tenant"):
            return None
        return self.templates.refusal(job["tenant"], channel, content["name"], content["language"])

    # -- shared plumbing -----------------------------------------------------------------------------------------

    def _contact(self, contact_id: str, partition: int, batch: _Batch) -> ContactRow:
        if contact_id in batch.rows:
            return batch.rows[contact_id][0]  # type: ignore[no-any-return]
        live = self.live.get(partition, contact_id)
        return live if live is not None else self._row(self.contacts, contact_id, batch, ContactRow)  # type: ignore[no-any-return]

    def _row(self, table: Any, key: str, batch: _Batch, factory: type) -> Any:
        if key in batch.rows:
            return batch.rows[key][0]
        stored = table.get(key)
        return stored if stored is not None else factory()

    def _index(self, table: Any, event: EventT[Any], batch: _Batch) -> dict[str, float]:
        """The partition's index row (contacts with timers, senders with work): one row per source partition."""
        key = f"~index:{event.message.partition}"
        if key not in batch.rows:
            batch.read[key] = table.get(key) or {}
            batch.rows[key] = (dict(batch.read[key]), event)
        return batch.rows[key][0]  # type: ignore[no-any-return]

    @staticmethod
    def _reindex(index: dict[str, float], key: str, due: float | None) -> None:
        if due is None:
            index.pop(key, None)
        else:
            index[key] = due

    async def _store(self, table: Any, index_table: Any, batch: _Batch) -> None:
        """Writes the batch's rows, each once (its last image), to the partition of the record that changed it."""
        pages: list[tuple[str, int, bytes | None]] = []
        rows: list[tuple[str, int, bytes | None]] = []
        dropped: list[tuple[str, int, bytes | None]] = []
        index_rows: list[tuple[str, int, bytes | None]] = []
        for key, (value, event) in batch.rows.items():
            if key in batch.read and batch.read[key] == value:
                continue  # an index row the batch left as it was (most ticks): rewriting it would change nothing
            if value is _DROPPED:
                dropped.append((key, event.message.partition, None))
                continue
            image = batch.images.get(key)
            row = (key, event.message.partition, image if image is not None else _pickle(value))
            (index_rows if key.startswith("~index:") else pages if _PAGE in key else rows).append(row)
        # One changelog partition keeps this order: a sender's row is durable only after the pages it counts, and
        # a page is deleted only after the row that no longer counts it (a batch applied again finds them as left).
        await write_rows(self.app.producer, table, [*pages, *rows, *dropped])
        if index_rows:
            await write_rows(self.app.producer, index_table, index_rows)

    async def _store_senders(self, batch: _Batch) -> None:
        settled: list[tuple[str, int, bytes]] = []
        for value, event in batch.rows.values():
            if isinstance(value, SenderState) and value.settled:
                settled.extend((job_key, event.message.partition, _pickle(outcome))
                               for job_key, outcome in value.settled.items())
                value.settled.clear()
        if settled:
            await write_rows(self.app.producer, self.dispatched, settled)
        await self._store(self.senders, self.sender_index, batch)

    async def _ship(self, effects: Effects, pending: Pending, cause: str | None = None,
                    outbox: Outbox | None = None) -> None:
        span = tracing.current()
        for emitted in effects.events:
            if isinstance(emitted.event, Message.RetryScheduled):
                self.dispatch_metrics.retries.labels("writer").inc()
            # An event of a message without a trace of its own belongs to the trace of the record that caused it.
            trace_id = emitted.trace_id or (span.trace_id if span is not None else None)
            record = to_record(emitted.aggregate, emitted.event, TraceContext(trace_id=trace_id, causation_id=cause))
            topic = self.topics.message_events if isinstance(emitted.aggregate, Message) else \
                self.topics.contact_events
            key = str(emitted.aggregate.contact_id if isinstance(emitted.aggregate, Message) else emitted.aggregate.id)
            # Built by our own aggregates: encoded without the second, pure-Python check (kept at ingestion).
            value = encode(record.event, record.event_type, validate=False)
            await self._queue(pending, outbox, topic, key, value, trace_id)
        for job in effects.jobs:
            await self._queue(pending, outbox, self.topics.dispatch, f"{job['channel']}/{job['sender']}", _json(job),
                              job.get("trace_id"))
        for letter in effects.dead_letters:
            pending.append(await self._dead_letter(letter.get("message_id") or letter.get("contact_id"), letter))

    async def _send_command(self, command: dict[str, Any]) -> Awaitable[Any]:
        return await self._produce(self.topics.commands, str(command["contact_id"]), _json(command),
                                   command.get("trace_id"))

    async def _send_command_soon(self, command: dict[str, Any]) -> Any:
        return await (await self._send_command(command))

    async def _dead_letter(self, key: str | None, letter: dict[str, Any]) -> Awaitable[Any]:
        self.dispatch_metrics.dead_letters.labels(str(letter.get("stage", "unknown"))).inc()
        span = tracing.current()
        letter = {"worker": os.environ.get("SWITCHBOARD_WORKER", ""), "at": time.time(),
                  "trace_id": span.trace_id if span is not None else None, **letter}
        _log.warning("dead letter from %s: %s", letter.get("stage"), letter.get("reason"))
        return await self._produce(self.topics.deadletters, key, _json(letter))

    async def _queue(self, pending: Pending, outbox: Outbox | None, topic: str, key: str, value: bytes,
                     trace_id: str | None) -> None:
        """Into the batch's outbox (its headers taken now, in the record's span), else produced at once."""
        if outbox is None:
            pending.append(await self._produce(topic, key, value, trace_id))
        else:
            await outbox.add(topic, key.encode(), value, tracing.record_headers(trace_id))

    async def _produce(self, topic: str, key: str | None, value: bytes, trace_id: str | None = None) -> Awaitable[Any]:
        """Sends one record with its trace headers: a child span of the record being handled (of `trace_id`'s
        trace when that is another one, e.g. a message's events while a receipt of a webhook's trace is applied)."""
        headers = tracing.record_headers(trace_id)
        return await self.app.producer.send(topic, None if key is None else key.encode(), value, None, None,
                                            headers or None)


_PAGE: Final = "~spill:"  # in a `senders` key: a page of a lane's jobs, "<channel>/<sender>~spill:<lane>:<page>"
_DROPPED: Final = object()  # a page the batch deletes


class _SenderPages:
    """A sender's spill pages (`_spill.py`) as rows of the `senders` table, written with the batch's other rows."""

    def __init__(self, table: Any, sender: str, event: EventT[Any], batch: _Batch) -> None:
        self._table, self._sender, self._event, self._batch = table, sender, event, batch

    def load(self, lane: int, page: int) -> list[dict[str, Any]]:
        key = self._key(lane, page)
        if key in self._batch.rows:
            jobs = self._batch.rows[key][0]
            return [] if jobs is _DROPPED else jobs
        return list(self._table.get(key) or [])

    def store(self, lane: int, page: int, jobs: list[dict[str, Any]]) -> None:
        self._batch.rows[self._key(lane, page)] = (jobs, self._event)

    def drop(self, lane: int, page: int) -> None:
        self._batch.rows[self._key(lane, page)] = (_DROPPED, self._event)

    def _key(self, lane: int, page: int) -> str:
        return f"{self._sender}{_PAGE}{lane}:{page}"


def _trigger_command(trigger: str, event_type: str, record: dict[str, Any]) -> dict[str, Any]:
    envelope = record["envelope"]
    tenant, customer = envelope["tenant_id"], str(record.get("customer_id", ""))
    return {"kind": "trigger", "v": 1, "command_id": envelope["event_id"], "tenant": tenant,
            "contact_id": str(Contact.create_id(tenant, customer)), "trigger": trigger, "event_type": event_type,
            "event": json.loads(json.dumps({k: v for k, v in record.items() if k != "envelope"}, default=str)),
            "trace_id": envelope.get("trace_id")}


def _cause(command: dict[str, Any], event: EventT[Any]) -> str:
    """The envelope's causation id: the command's id, or for a clock tick (it has none) where the tick sits."""
    if command.get("command_id"):
        return str(command["command_id"])
    return f"tick:{event.message.topic}-{event.message.partition}@{event.message.offset}"


def _traced(command: dict[str, Any]) -> dict[str, Any]:
    """The command with the trace of its record's headers when its value names none (a producer that sets only the
    header, e.g. an API using the HTTP middleware): a new message then belongs to the request's trace."""
    span = tracing.current()
    if command.get("trace_id") or span is None or command.get("kind") == "tick":
        return command
    return {**command, "trace_id": span.trace_id}


def _job_span(job: dict[str, Any]) -> tracing.TraceParent | None:
    """The span a queued job was admitted in (or a new span of its trace, for a job queued before tracing)."""
    span = tracing.parse(job.get("traceparent"))
    return span if span is not None else tracing.from_record_headers(None, job.get("trace_id"))


def _busy(state: SenderState) -> bool:
    return bool(state.queued or state.inflight)


def _as_current(event: EventT[Any]) -> None:
    """Makes `event` faust's current event, so table writes go to its partition's changelog.

    Inside a take_events() batch faust's current event is whichever record was buffered last; a table write
    would then land in that record's changelog partition, not the key's (faust/tables/base.py _send_changelog).
    """
    _current_event.set(weakref.ref(event))


def _pickle(value: Any) -> bytes:
    """A row as the tables' codec writes it (app.py `_StateCodec`)."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def _source(event: EventT[Any]) -> dict[str, Any]:
    """Where a record sits, so a dead letter points back at the exact bytes."""
    return {"topic": event.message.topic, "partition": event.message.partition, "offset": event.message.offset}


def _printable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):  # a raw record that is not a command: its JSON, else its text
        try:
            return json.loads(value)
        except ValueError:
            return bytes(value[:2000]).decode(errors="replace")
    return value if isinstance(value, dict | list | str | int | float) or value is None else repr(value)[:2000]

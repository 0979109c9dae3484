"""Status callbacks fed from Kafka: a flaky receiver gets every event in order, signed; no secret means no send."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID, uuid4

from aiohttp import web
from eventsourcing.domain import AggregateEvent

from aggregates import Channel, FailureClass, Message, MessageCategory, ReceiptStatus, Tenant, to_record
from connectors import SignatureInvalid, SignatureMissing
from connectors.callback_feeder import NO_SIGNING_SECRET, CallbackFeeder, FeederConfig
from connectors.callbacks import EVENT_ID_HEADER, verify_callback
from connectors.testing import wait_until
from schemas import encode, make_envelope, route
from streams.policies.backoff import RetryPolicy
from switchboard.kafka_io import MURMUR2_PARTITIONER, collect_json, new_producer
from switchboard.serving import Served, serve
from switchboard.topics import ensure_topics, event_topic_specs
from tests.integration.conftest import until_committed
from tests.integration.webhook_stack import switchboard

SECRET = "whsec_integration_secret"
PHONE = "+4712345678"
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=5, base_seconds=0.05, cap_seconds=0.2)  # the receiver fails 2 attempts per event
Event = tuple[str, dict[str, Any]]  # (event type, Avro event dict)


class FlakyReceiver:
    """A business system on 127.0.0.1: verifies every signature, answers 500 to the first 2 attempts of each event."""

    def __init__(self, secret: str, failures_per_event: int = 2) -> None:
        self.secret = secret
        self.failures_per_event = failures_per_event
        self.gate = asyncio.Event()  # requests wait here until it is set (open from the start by default)
        self.gate.set()
        self.held = 0
        self.attempts: Counter[str] = Counter()
        self.accepted: list[dict[str, Any]] = []  # in arrival order, each event once
        self.invalid = 0
        self.url = ""
        self._served: Served | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/status", self._post)
        self._served = await serve(app, access_log=None, shutdown_timeout=1.0)
        self.url = f"{self._served.url}/status"

    async def stop(self) -> None:
        if self._served is not None:
            await self._served.close()

    def sequences(self, message_id: str) -> list[int]:
        return [a["sequence"] for a in self.accepted if a["message_id"] == message_id]

    async def _post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.held += 1
        await self.gate.wait()
        try:
            verify_callback(request.headers, raw, self.secret)
        except (SignatureMissing, SignatureInvalid) as refused:
            self.invalid += 1
            return web.Response(status=refused.http_status)
        event_id = request.headers[EVENT_ID_HEADER]
        self.attempts[event_id] += 1
        if self.attempts[event_id] <= self.failures_per_event:
            return web.Response(status=500)
        if all(a["event_id"] != event_id for a in self.accepted):
            self.accepted.append(json.loads(raw))
        return web.json_response({"ok": True})


@asynccontextmanager
async def flaky_receiver() -> AsyncIterator[FlakyReceiver]:
    receiver = FlakyReceiver(SECRET)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@asynccontextmanager
async def running(feeder: CallbackFeeder) -> AsyncIterator[CallbackFeeder]:
    """Runs the feeder in the background until the block ends; its failure, if any, fails the test."""
    task = asyncio.create_task(feeder.run())
    try:
        await wait_until(lambda: feeder.ready.is_set() or task.done(), 60, what="the feeder to start")
        if task.done():
            task.result()
        yield feeder
    finally:
        feeder.stop()
        await asyncio.wait_for(task, 60)


def url_set(tenant_id: str, url: str, version: int = 1) -> Event:
    """CallbackUrlSet as the tenant admin writes it (built by hand: the aggregate accepts https only)."""
    envelope = make_envelope(aggregate_type="Tenant", aggregate_id=tenant_id, aggregate_version=version,
                             occurred_at=AT, tenant_id=tenant_id)
    return "CallbackUrlSet", {"envelope": envelope, "kind": "message_status", "url": url}


def new_message(tenant_id: str, key: str, contact_id: UUID | None = None) -> Message:
    message = Message.request(tenant_id=tenant_id, contact_id=contact_id or uuid4(), category=MessageCategory.UTILITY,
                              idempotency_key=key, body="Your order shipped", preferred_channel=Channel.WHATSAPP)
    message.render("Your order shipped")
    message.route(Channel.WHATSAPP, "phone-1", PHONE)
    message.attempt_dispatch()
    return message


def delivered_message(tenant_id: str, key: str = "delivered", contact_id: UUID | None = None) -> Message:
    """Accepted, sent, delivered, read: versions 5-8 are status events."""
    message = new_message(tenant_id, key, contact_id)
    message.accept("wamid.delivered")
    for n, status in enumerate([ReceiptStatus.SENT, ReceiptStatus.DELIVERED, ReceiptStatus.READ]):
        message.record_receipt(status, "wamid.delivered", AT + timedelta(seconds=n))
    return message


def fallen_back_message(tenant_id: str) -> Message:
    """Failed on WhatsApp (5), fell back (6) to SMS, accepted (9), sent (10), delivered (11)."""
    message = new_message(tenant_id, "fallback")
    message.record_failure(FailureClass.PERMANENT, AT, provider_code="131026")
    message.fall_back(Channel.SMS, "whatsapp undeliverable")
    message.route(Channel.SMS, "sms-1", PHONE)
    message.attempt_dispatch()
    message.accept("SM123")
    message.record_receipt(ReceiptStatus.SENT, "SM123", AT + timedelta(seconds=5))
    message.record_receipt(ReceiptStatus.DELIVERED, "SM123", AT + timedelta(seconds=6))
    return message


def contacts_on_every_partition(partitions: int = 3) -> list[UUID]:
    """One contact id per partition of the message topic (its key), so every consumer of a group gets records."""
    found: dict[int, UUID] = {}
    while len(found) < partitions:
        contact = uuid4()
        found.setdefault(MURMUR2_PARTITIONER(str(contact).encode(), list(range(partitions)), list(range(partitions))),
                         contact)
    return [found[p] for p in range(partitions)]


def events_of(message: Message) -> list[Event]:
    events = message.collect_events()
    assert all(isinstance(e, AggregateEvent) for e in events)
    return [(r.event_type, r.event) for r in (to_record(message, cast(AggregateEvent, e)) for e in events)]


def interleaved(*streams: list[Event]) -> list[Event]:
    """Round robin over the messages: their records land on different partitions in mixed order."""
    longest = max(len(stream) for stream in streams)
    return [stream[i] for i in range(longest) for stream in streams if i < len(stream)]


async def produce(bootstrap: str, prefix: str, events: list[Event]) -> None:
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        for event_type, event in events:
            where = route(event_type, event)
            await producer.send_and_wait(f"{prefix}{where.topic}", encode(event, event_type), key=where.key.encode())
    finally:
        await producer.stop()


def write_secret(root: Path, tenant_id: str) -> None:
    (root / "callbacks").mkdir(exist_ok=True)
    (root / "callbacks" / tenant_id).write_text(f"{SECRET}\n", encoding="utf-8")


def config_for(bootstrap: str, prefix: str, secrets_dir: Path) -> FeederConfig:
    return FeederConfig(bootstrap, topic_prefix=prefix, group=f"{prefix}callbacks", secrets_dir=secrets_dir,
                        retry=FAST, poll_seconds=0.1, http_timeout=5.0)


async def test_a_flaky_receiver_gets_every_event_in_order_signed_and_unsigned_tenants_are_dead_lettered(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path) -> None:
    await ensure_topics(kafka_bootstrap, event_topic_specs(partitions=3, prefix=unique_prefix))
    signed, unsigned = str(Tenant.create_id("acme")), str(Tenant.create_id("globex"))
    write_secret(tmp_path, signed)  # globex has a URL and no secret anywhere
    first, second, orphan = delivered_message(signed), fallen_back_message(signed), delivered_message(unsigned)
    records = interleaved(events_of(first), events_of(second), events_of(orphan))
    duplicate = next(r for r in records if r[0] == "MessageSent" and r[1]["envelope"]["aggregate_id"] == str(first.id))
    records.insert(records.index(duplicate) + 2, duplicate)  # a producer retry: the same event twice in the log
    config = config_for(kafka_bootstrap, unique_prefix, tmp_path)

    async with flaky_receiver() as receiver:
        await produce(kafka_bootstrap, unique_prefix, [url_set(signed, receiver.url),
                                                       url_set(unsigned, receiver.url)])
        await produce(kafka_bootstrap, unique_prefix, records)
        async with running(CallbackFeeder(config)) as feeder:
            await wait_until(lambda: len(receiver.accepted) >= 9, 60, what="9 callbacks accepted")
            letters = await collect_json(kafka_bootstrap, config.dead_letter_topic, lambda seen: len(seen) >= 4)
            await until_committed(kafka_bootstrap, config.group, config.message_topic)

    assert receiver.sequences(str(first.id)) == [5, 6, 7, 8]
    assert receiver.sequences(str(second.id)) == [5, 6, 9, 10, 11]
    assert [a["event_type"] for a in receiver.accepted if a["message_id"] == str(second.id)] == [
        "MessageFailed", "MessageFallbackTriggered", "MessageAcceptedByProvider", "MessageSent", "MessageDelivered"]
    assert receiver.invalid == 0
    assert set(receiver.attempts.values()) == {3}  # 2 refused + 1 accepted each, the duplicate record not sent
    assert len(receiver.attempts) == 9
    assert feeder.stats.duplicates == 1
    assert all(a["tenant_id"] == signed for a in receiver.accepted)

    assert [(letter["event"]["message_id"], letter["event"]["sequence"]) for letter in letters] == [
        (str(orphan.id), n) for n in (5, 6, 7, 8)]
    assert {(letter["reason"], letter["cause"], letter["attempts"]) for letter in letters} == {
        (NO_SIGNING_SECRET, "unsendable", 0)}
    assert SECRET not in json.dumps(letters)
    assert PHONE not in json.dumps(letters) + json.dumps(receiver.accepted)


async def test_urls_set_while_running_are_followed_and_a_restart_resumes_after_the_commits(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path) -> None:
    await ensure_topics(kafka_bootstrap, event_topic_specs(partitions=3, prefix=unique_prefix))
    tenant = str(Tenant.create_id("initech"))
    write_secret(tmp_path, tenant)
    config = config_for(kafka_bootstrap, unique_prefix, tmp_path)
    message = delivered_message(tenant)
    events = events_of(message)
    read = events.pop()  # MessageRead comes after the restart

    async with flaky_receiver() as receiver:
        async with running(CallbackFeeder(config)) as feeder:
            await produce(kafka_bootstrap, unique_prefix, [url_set(tenant, receiver.url)])
            await wait_until(lambda: feeder.registry.url(tenant) == receiver.url, 30, what="the URL to be followed")
            await produce(kafka_bootstrap, unique_prefix, events)
            await wait_until(lambda: len(receiver.accepted) >= 3, 60, what="3 callbacks accepted")
            await until_committed(kafka_bootstrap, config.group, config.message_topic)
        async with running(CallbackFeeder(config)) as restarted:
            await produce(kafka_bootstrap, unique_prefix, [read])
            await wait_until(lambda: len(receiver.accepted) >= 4, 60, what="the 4th callback accepted")
            await until_committed(kafka_bootstrap, config.group, config.message_topic)

    assert receiver.sequences(str(message.id)) == [5, 6, 7, 8]
    assert restarted.stats.records == 1  # it started from the committed offsets: nothing was read twice
    assert set(receiver.attempts.values()) == {3}


async def test_a_rebalance_hands_deliveries_under_way_to_the_new_owner_and_order_holds(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path) -> None:
    await ensure_topics(kafka_bootstrap, event_topic_specs(partitions=3, prefix=unique_prefix))
    tenant = str(Tenant.create_id("umbrella"))
    write_secret(tmp_path, tenant)
    config = config_for(kafka_bootstrap, unique_prefix, tmp_path)
    messages = [delivered_message(tenant, f"m-{n}", contact) for n, contact in enumerate(contacts_on_every_partition())]
    records = interleaved(*map(events_of, messages))

    async with flaky_receiver() as receiver:
        receiver.gate.clear()  # the first attempts stay under way while the group rebalances
        await produce(kafka_bootstrap, unique_prefix, [url_set(tenant, receiver.url)])
        await produce(kafka_bootstrap, unique_prefix, records)
        async with running(CallbackFeeder(config)) as first:
            await wait_until(lambda: receiver.held >= 3, 60, what="a first attempt per message under way")
            async with running(CallbackFeeder(config)) as second:
                # the second member only reads once the group has revoked and reassigned the partitions
                await wait_until(lambda: second.stats.records > 0, 60, what="the rebalance")
                receiver.gate.set()
                await wait_until(lambda: len(receiver.accepted) >= 12, 60, what="12 callbacks accepted")
                await until_committed(kafka_bootstrap, config.group, config.message_topic)

    for message in messages:
        assert receiver.sequences(str(message.id)) == [5, 6, 7, 8]
    assert receiver.invalid == 0
    # what was under way at the rebalance was cancelled and read again by the partitions' new owners
    assert first.stats.records + second.stats.records > len(records)


async def test_callbacks_given_up_while_the_endpoint_was_down_are_redelivered_in_order_once_it_is_back(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path) -> None:
    await ensure_topics(kafka_bootstrap, event_topic_specs(partitions=3, prefix=unique_prefix))
    tenant, elsewhere = str(Tenant.create_id("umbrella")), str(Tenant.create_id("hooli"))
    write_secret(tmp_path, tenant)
    first, second, other = delivered_message(tenant), fallen_back_message(tenant), delivered_message(elsewhere)
    config = config_for(kafka_bootstrap, unique_prefix, tmp_path)
    before = datetime.now(UTC) - timedelta(seconds=5)
    common = ("--bootstrap", kafka_bootstrap, "--topic-prefix", unique_prefix, "--secrets-dir", str(tmp_path))

    async with flaky_receiver() as receiver:
        receiver.failures_per_event = 10**6  # down: every attempt answers 500 until the policy gives up
        await produce(kafka_bootstrap, unique_prefix, [url_set(tenant, receiver.url), url_set(elsewhere,
                                                                                              receiver.url)])
        await produce(kafka_bootstrap, unique_prefix, interleaved(events_of(first), events_of(second),
                                                                  events_of(other)))
        async with running(CallbackFeeder(config)):
            letters = await collect_json(kafka_bootstrap, config.dead_letter_topic, lambda seen: len(seen) >= 13)
        assert receiver.accepted == []

        receiver.failures_per_event = 0  # back up
        code, dry = await switchboard("redeliver-callbacks", *common, "--since", before.isoformat(), "--dry-run")
        assert (code, receiver.accepted) == (0, [])
        assert "would redeliver 13 event(s) of 3 message(s) from 13 dead letter(s)" in dry
        assert "not sendable: 4 the tenant has no signing secret" in dry  # hooli has a URL and no secret
        code, output = await switchboard("redeliver-callbacks", *common, "--since", before.isoformat())
        assert code == 1, output  # hooli's 4 could not be sent: not complete
        assert "redelivered 9 of 13 event(s)" in output
        again_code, again = await switchboard("redeliver-callbacks", *common, "--message", str(first.id))

    assert {letter["cause"] for letter in letters} >= {"exhausted", "skipped"}
    assert receiver.sequences(str(first.id)) == [5, 6, 7, 8]  # in order, each once (the receiver dedupes)
    assert receiver.sequences(str(second.id)) == [5, 6, 9, 10, 11]
    assert receiver.invalid == 0  # signed with the tenant's secret
    assert (again_code, "redelivered 4 of 4 event(s) of 1 message(s)" in again) == (0, True), again

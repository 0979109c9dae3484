"""Receipts and inbound messages end to end: simulator → receiver → sb.webhooks.raw → normaliser → pipeline."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from aggregates import Channel, Contact, Message, Template
from connectors import SIGNATURE_HEADER, ChannelDriver, OutboundMessage, Text, hub_signature
from connectors.normaliser import Normaliser, NormaliserConfig
from connectors.receiver import KafkaWebhookSink, ReceiverConfig, build_receiver_app
from connectors.whatsapp import ENV_ACCESS_TOKEN, ENV_APP_SECRET, WhatsAppDriver
from connectors.whatsapp_simulator import SentMessage, WhatsAppSimulator, status_object, status_webhook_body
from schemas import DecodedEvent, decode
from streams.pipeline._runtime import Topics
from streams.pipeline._templates import TemplateTopics
from streams.pipeline.app import PipelineSettings
from switchboard.followers import topic_partitions
from switchboard.kafka_io import collect, collect_json, produce_json
from switchboard.serving import serving
from switchboard.topics import ensure_topics
from switchboard.workers import WorkerProcess
from tests.integration.pipeline_support import (
    TENANT,
    gate_refuses,
    message_events,
    request,
    send_commands,
    types,
    until_logged,
    write_pipeline,
)

SENDER = "105954558954427"  # the WhatsApp sender address (phone_number_id) that write_pipeline declares
ACCESS_TOKEN, APP_SECRET = "e2e-access-token", "e2e-app-secret"
STATUSES = ("MessageSent", "MessageDelivered", "MessageRead")
Events = list[tuple[str, dict[str, Any]]]


@dataclass
class Stack:
    """Everything running for this module: the simulator, the receiver, a pipeline worker and the normaliser."""

    bootstrap: str
    prefix: str
    receiver_url: str
    simulator: WhatsAppSimulator
    worker: WorkerProcess[PipelineSettings]
    normaliser: Normaliser
    task: asyncio.Task[None]

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    def alive(self) -> None:
        """Fails with the worker's log or the normaliser's error as soon as either has stopped."""
        assert self.worker.is_running(), self.worker.log_tail()
        if self.task.done():
            self.task.result()
            pytest.fail("the normaliser stopped")


@dataclass(frozen=True)
class NormaliserCommand:
    """`switchboard normaliser` as a WorkerProcess runs it."""

    bootstrap: str
    prefix: str
    group: str
    config: str
    worker_name: str = "normaliser"

    def command_line(self) -> list[str]:
        return ["normaliser", "--bootstrap", self.bootstrap, "--topic-prefix", self.prefix, "--group", self.group,
                "--config", self.config]


@asynccontextmanager
async def receiver(sink: KafkaWebhookSink, driver: ChannelDriver | None = None) -> AsyncIterator[str]:
    """The receiver app on an ephemeral port with one channel's driver (by default WhatsApp's, secrets from the
    environment, as `switchboard receiver`): that channel's webhook URL. The driver is closed afterwards."""
    driver = driver or WhatsAppDriver.from_settings({})
    try:
        async with serving(build_receiver_app(ReceiverConfig({driver.channel: driver}), sink),
                           shutdown_timeout=1.0) as url:
            yield f"{url}/webhooks/{driver.channel}"
    finally:
        await driver.aclose()


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    prefix, directory = f"it-receipts-{uuid.uuid4().hex[:8]}-", tmp_path_factory.mktemp("receipts")
    with pytest.MonkeyPatch.context() as env:
        # The receiver, the pipeline subprocess and the normaliser read WhatsApp's secrets from the environment.
        env.setenv(ENV_ACCESS_TOKEN, ACCESS_TOKEN)
        env.setenv(ENV_APP_SECRET, APP_SECRET)
        sink = KafkaWebhookSink(kafka_bootstrap, prefix=prefix, partitions=3)
        async with sink, receiver(sink) as url, WhatsAppSimulator(
                access_token=ACCESS_TOKEN, app_secret=APP_SECRET, webhook_url=url,
                phone_numbers={SENDER: "15550001111"}, pair_window=None, enforce_window=False,
                mps_limit=None) as simulator:
            config = write_pipeline(directory, driver="whatsapp", settings=f'base_url = "{simulator.url}"')
            settings = PipelineSettings(bootstrap=kafka_bootstrap, data_dir=str(directory / "state"),
                                        config_path=str(config), app_id=f"{prefix}pipeline", topic_prefix=prefix)
            await ensure_topics(kafka_bootstrap, settings.topic_specs())
            worker = WorkerProcess(settings, directory / "pipeline.log")
            worker.start()
            normaliser = Normaliser(NormaliserConfig(kafka_bootstrap, prefix, f"{prefix}normaliser", config))
            task = asyncio.create_task(normaliser.run())
            try:
                yield Stack(kafka_bootstrap, prefix, url, simulator, worker, normaliser, task)
            finally:
                normaliser.stop()
                await asyncio.wait_for(task, 30)
                worker.kill()


async def until(condition: Callable[[], bool], stack: Stack, what: str, timeout: float = 60.0) -> None:
    """Polls a condition with a deadline; fails at once if a part of the stack has died."""
    deadline = time.monotonic() + timeout
    while not condition():
        stack.alive()
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(0.05)


def message_id(key: str) -> str:
    return str(Message.create_id(TENANT, key))


async def events_of(stack: Stack, key: str, done: Callable[[Events], bool]) -> Events:
    """The events of one message (requested with this idempotency key) once `done` holds for them."""
    wanted = message_id(key)
    per_message = await message_events(stack.bootstrap, stack.prefix, lambda got: done(got.get(wanted, [])))
    stack.alive()
    return per_message[wanted]


def has_statuses(events: Events) -> bool:
    return set(STATUSES) <= set(types(events))


def decoded(raw: bytes) -> DecodedEvent:
    event = decode(raw)
    assert isinstance(event, DecodedEvent)
    return event


async def contact_events(stack: Stack, done: Callable[[list[DecodedEvent]], bool]) -> list[DecodedEvent]:
    found: list[DecodedEvent] = await collect(stack.bootstrap, stack.topics.contact_events, done, decoded, 90.0)
    stack.alive()
    return found


def of_contact(events: list[DecodedEvent], contact_id: str, event_type: str) -> list[dict[str, Any]]:
    return [e.payload for e in events if e.event_type == event_type and e.payload["envelope"]["aggregate_id"] ==
            contact_id]


async def test_a_message_reaches_sent_delivered_and_read(stack: Stack) -> None:
    await send_commands(stack.bootstrap, stack.prefix, [request("e2e-reader", "e2e-read-1")])
    events = await events_of(stack, "e2e-read-1", has_statuses)
    [wamid] = [m.wamid for m in stack.simulator.sent_messages
               if m.body.get("biz_opaque_callback_data", "").endswith(message_id("e2e-read-1"))]
    for event_type in STATUSES:
        [event] = [value for kind, value in events if kind == event_type]
        assert event["provider_message_id"] == wamid


async def test_duplicated_and_reordered_receipts_yield_one_event_per_status(stack: Stack) -> None:
    simulator = stack.simulator
    simulator.config = replace(simulator.config, duplicate_rate=1.0, reorder_rate=1.0)
    try:
        await send_commands(stack.bootstrap, stack.prefix, [request("e2e-shuffled", "e2e-shuffled-1")])
        applied = await receipt_commands(stack, message_id("e2e-shuffled-1"), count=4)  # one receipt posted twice
    finally:
        simulator.config = replace(simulator.config, duplicate_rate=0.0, reorder_rate=0.0)
    assert len({command["command_id"] for command in applied}) == 3, applied  # the duplicate has the same id
    events = await settled_events(stack, "e2e-shuffled", "e2e-shuffled-1")
    counts = Counter(types(events))
    order = [command["status"] for command in applied]  # as the writer applies them: one partition, in order
    assert [counts[status] for status in STATUSES] == [1, 1, 1], (order, types(events))


async def test_a_delivered_receipt_after_read_still_counts(stack: Stack) -> None:
    simulator, key = stack.simulator, "e2e-late-delivered"
    simulator.webhook_url = None  # this message's receipts are posted by the test, in an order it chooses
    try:
        await send_commands(stack.bootstrap, stack.prefix, [request("e2e-late", key)])
        await until(lambda: sent_message(stack, key) is not None, stack, "the send reaching the simulator")
    finally:
        simulator.webhook_url = stack.receiver_url
    sent = sent_message(stack, key)
    assert sent is not None
    async with aiohttp.ClientSession() as http:
        for count, status in enumerate(("sent", "read", "delivered"), start=1):
            body = json.dumps(status_webhook_body("200000000000001", SENDER, "15550001111", [status_object(
                sent.wamid, status, int(time.time()), sent.recipient,
                callback_data=str(sent.body["biz_opaque_callback_data"]))])).encode()
            answer = await http.post(stack.receiver_url, data=body,
                                     headers={SIGNATURE_HEADER: hub_signature(body, APP_SECRET)})
            assert answer.status == 200
            await receipt_commands(stack, message_id(key), count)  # one at a time: the writer sees this order
    counts = Counter(types(await settled_events(stack, "e2e-late", key)))
    assert [counts[status] for status in STATUSES] == [1, 1, 1]


def sent_message(stack: Stack, key: str) -> SentMessage | None:
    """What the simulator accepted for the message requested with this key."""
    wanted = message_id(key)
    return next((m for m in stack.simulator.sent_messages
                 if str(m.body.get("biz_opaque_callback_data", "")).endswith(wanted)), None)


async def settled_events(stack: Stack, ref: str, key: str) -> Events:
    """A message's events once the writer has applied every command sent so far for its contact.

    A later request of the same contact is the marker: its events follow all of the message's events on the
    contact's partition of the message topic.
    """
    marker = f"{key}-marker"
    await send_commands(stack.bootstrap, stack.prefix, [request(ref, marker)])
    per_message = await message_events(stack.bootstrap, stack.prefix, lambda got: message_id(marker) in got)
    stack.alive()
    return per_message[message_id(key)]


async def receipt_commands(stack: Stack, wanted: str, count: int) -> list[dict[str, Any]]:
    """The normaliser's receipt commands for one message, in topic order, once `count` of them are there."""
    def receipts(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [v for v in values if v.get("kind") == "receipt" and v["message_id"] == wanted]

    values = await collect_json(stack.bootstrap, stack.topics.commands, lambda v: len(receipts(v)) >= count, 90.0)
    stack.alive()
    return receipts(values)


async def test_stop_revokes_the_marketing_consent_of_every_contact_with_that_number(stack: Stack) -> None:
    phone = "+4917099900001"  # one phone, two of the CRM's contacts (a household)
    contacts = {ref: str(Contact.create_id(TENANT, ref)) for ref in ("e2e-stopper", "e2e-stopper-spouse")}
    grants = [(contact_id, {"kind": "consent", "v": 1, "command_id": f"consent-{ref}", "tenant": TENANT,
                            "contact_id": contact_id, "action": "grant", "channel": "whatsapp",
                            "category": "marketing", "source": "e2e",
                            "contact": {"external_ref": ref, "addresses": {"whatsapp": phone}}})
              for ref, contact_id in contacts.items()]
    await produce_json(stack.bootstrap, stack.topics.commands, grants)
    await contact_events(stack, lambda found: all(of_contact(found, c, "ConsentGranted") for c in contacts.values()))

    await stack.simulator.simulate_inbound(phone.lstrip("+"), "STOP", phone_number_id=SENDER)
    found = await contact_events(stack, lambda found: all(of_contact(found, c, "ConsentRevoked")
                                                          for c in contacts.values()))
    for contact_id in contacts.values():
        [revoked] = of_contact(found, contact_id, "ConsentRevoked")
        assert (revoked["channel"], revoked["category"], revoked["source"]) == ("whatsapp", "marketing",
                                                                                 "inbound:stop")
    # The message itself is recorded once, on the contact the address index gives it to; the other only opted out.
    [inbound] = [payload for contact_id in contacts.values()
                 for payload in of_contact(found, contact_id, "InboundMessageReceived")]
    assert (inbound["text"], inbound["address"]) == ("STOP", phone)


async def test_an_unknown_sender_becomes_a_contact(stack: Stack) -> None:
    contact_id = str(Contact.create_id(TENANT, "whatsapp:+4917099900002"))
    await stack.simulator.simulate_inbound("4917099900002", "hello", phone_number_id=SENDER)
    found = await contact_events(stack, lambda found: bool(of_contact(found, contact_id, "InboundMessageReceived")))
    [registered] = of_contact(found, contact_id, "ContactRegistered")
    assert registered["addresses"] == {"whatsapp": "+4917099900002"}
    assert of_contact(found, contact_id, "InboundMessageReceived")[0]["text"] == "hello"


async def test_receipts_of_messages_sent_elsewhere_are_skipped(stack: Stack) -> None:
    before = stack.normaliser.stats.foreign_receipts
    async with WhatsAppDriver.from_settings({"base_url": stack.simulator.url}) as driver:
        result = await driver.send(OutboundMessage("order-7001", SENDER, "+4917099900003", Text("sent by hand")))
    assert result.accepted, result
    await until(lambda: stack.normaliser.stats.foreign_receipts >= before + 3, stack, "three foreign receipts")


async def test_a_review_of_a_template_never_published_reaches_the_template_writer(stack: Stack) -> None:
    stack.simulator.simulate_template_status(4242, "order_shipped", "en", "APPROVED")

    def parked(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [v for v in values if v.get("stage") == "templates" and v.get("template_id") == "4242"]

    letters = parked(await collect_json(stack.bootstrap, stack.topics.deadletters, lambda v: bool(parked(v)), 60.0))
    assert "was never registered" in letters[0]["reason"]  # tests/integration/test_template_updates.py: the rest



async def test_a_template_meta_paused_falls_back_to_sms_without_a_request_to_meta(stack: Stack) -> None:
    """Meta's pause webhook reaches the template writer through the receiver and the normaliser; the worker's gate
    then fails the template's sends before the request. Without the gate the simulator would refuse with 132015."""
    template = str(Template.create_id(TENANT, Channel.WHATSAPP, "login_code"))
    publish = {"kind": "template_version", "v": 1, "command_id": "publish-login-code", "aggregate_id": template,
               "tenant": TENANT, "channel": "whatsapp", "name": "login_code", "category": "authentication",
               "locale": "en", "body": "Your code is {{1}}."}
    await produce_json(stack.bootstrap, TemplateTopics(stack.prefix).commands, [(template, publish)])
    stack.simulator.simulate_template_status(4343, "login_code", "en", "PAUSED", reason="LOW_QUALITY")
    await until_logged(stack.worker, gate_refuses("login_code"))
    await send_commands(stack.bootstrap, stack.prefix, [request(
        "otp-user", "otp-paused", category="authentication", template="login_code", parameters={"code": "271828"})])
    events = await events_of(stack, "otp-paused", lambda got: "MessageAcceptedByProvider" in types(got))
    [fallback] = [value for kind, value in events if kind == "MessageFallbackTriggered"]
    assert (fallback["from_channel"], fallback["to_channel"]) == ("whatsapp", "sms")
    assert "local.template_not_sendable" in fallback["reason"]
    assert stack.simulator.counters.rejected[132015] == 0


async def test_switchboard_normaliser_normalising_the_log_again_changes_nothing(stack: Stack) -> None:
    """A second group (the `switchboard normaliser` command) reads the whole raw topic again: same command ids,
    and the writer records nothing twice."""
    spec = NormaliserCommand(stack.bootstrap, stack.prefix, f"{stack.prefix}replay", stack.worker.config.config_path)
    before = {v["command_id"] for v in await everything(stack.bootstrap, stack.topics.commands, json.loads)
              if v.get("kind") == "receipt"}
    process = WorkerProcess(spec, Path(stack.worker.log_file).with_name("normaliser.log"))
    process.start()
    try:
        await until(lambda: "webhook normaliser: reading" in process.log_tail() or not process.is_running(), stack,
                    "the normaliser's banner")
        assert process.is_running(), process.log_tail()
        raw_topic = f"{stack.prefix}sb.webhooks.raw"
        await committed(stack, spec.group, raw_topic, await end_offsets(stack.bootstrap, raw_topic))
        commands = await end_offsets(stack.bootstrap, stack.topics.commands)
        await committed(stack, f"{stack.prefix}pipeline", stack.topics.commands, commands)
    finally:
        assert process.stop() == 0, process.log_tail()
    assert "normaliser stopped: NormaliserStats(" in process.log_tail()

    values = await everything(stack.bootstrap, stack.topics.commands, json.loads)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for value in values:
        if value.get("kind") == "receipt":
            by_id.setdefault(value["command_id"], []).append(value)
    assert before
    assert all(len(by_id[command_id]) >= 2 for command_id in before)  # normalised twice...
    assert all(copy == copies[0] for copies in by_id.values() for copy in copies)  # ...into the same commands
    await no_event_twice(stack)


async def no_event_twice(stack: Stack) -> None:
    """Every receipt status, acceptance, registration, consent change and inbound message recorded at most once."""
    seen_ids: set[str] = set()
    per_message: dict[str, Counter[str]] = {}
    for event in await everything(stack.bootstrap, stack.topics.message_events, decoded):
        if event.payload["envelope"]["event_id"] not in seen_ids:
            seen_ids.add(event.payload["envelope"]["event_id"])
            per_message.setdefault(event.payload["envelope"]["aggregate_id"], Counter())[event.event_type] += 1
    assert per_message
    for counts in per_message.values():
        assert all(counts[kind] <= 1 for kind in (*STATUSES, "MessageRequested", "MessageAcceptedByProvider")), counts
    contacts = await everything(stack.bootstrap, stack.topics.contact_events, decoded)
    unique = {e.payload["envelope"]["event_id"]: e for e in contacts}.values()
    seen = Counter((e.payload["envelope"]["aggregate_id"], e.event_type, e.payload.get("provider_message_id"),
                    e.payload.get("category")) for e in unique)
    assert max(seen.values()) == 1, seen


async def everything(bootstrap: str, topic: str, read: Callable[[bytes], Any]) -> list[Any]:
    """Every record of the topic up to its current end."""
    total = sum((await end_offsets(bootstrap, topic)).values())
    return await collect(bootstrap, topic, lambda values: len(values) >= total, read, 60.0)


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    partitions = await topic_partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return ends


async def committed(stack: Stack, group: str, topic: str, ends: dict[TopicPartition, int]) -> None:
    """Waits until the group has committed at least `ends` on every partition of the topic."""
    assert ends, f"{topic} has no partitions"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    deadline = time.monotonic() + 90.0
    try:
        while True:
            offsets = await admin.list_consumer_group_offsets(group)
            behind = {tp: end for tp, end in ends.items() if end > 0 and
                      (tp not in offsets or offsets[tp].offset < end)}
            if not behind:
                return
            stack.alive()
            assert time.monotonic() < deadline, f"{group} has not committed {topic} up to {behind}"
            await asyncio.sleep(0.2)  # the coordinator has no push notification for commits
    finally:
        await admin.close()

"""One trace id from POST /v1/events through the pipeline, the provider and the receipts: every record, every log."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from aggregates import Contact, Message
from connectors.ingest import EVENTS_PATH, business_topic_spec, signed_headers
from connectors.whatsapp import ENV_ACCESS_TOKEN, ENV_APP_SECRET
from connectors.whatsapp_simulator import WhatsAppSimulator
from schemas import DecodedEvent, decode
from streams.pipeline._runtime import Topics
from streams.pipeline.app import PipelineSettings
from switchboard import tracing
from switchboard.kafka_io import produce_json
from switchboard.topics import ensure_topics
from switchboard.workers import WorkerProcess
from tests.integration import pipeline_support
from tests.integration.conftest import StartPipeline
from tests.integration.pipeline_support import TENANT, request, send_commands, terminal_count, write_pipeline

SENDER = "105954558954427"
PHONE = "+4917012345678"
CUSTOMER = "c-trace"
ACCESS_TOKEN, APP_SECRET, INGEST_SECRET = "trace-access-token", "trace-app-secret", "trace-ingest-secret"
STATUSES = {"MessageSent", "MessageDelivered", "MessageRead"}
TRIGGER = """
[[triggers]]
name = "order-notice"
tenant = "acme"
event = "OrderPlaced"
template = "order_shipped"
variables = { order_id = "event.order_id" }
"""
Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


@dataclass(frozen=True)
class Command:
    """A `switchboard` service as a WorkerProcess runs it."""

    worker_name: str
    args: tuple[str, ...]

    def command_line(self) -> list[str]:
        return list(self.args)


@dataclass
class Platform:
    """The services as child processes (JSON logs in their files) and the simulator in the test's process."""

    bootstrap: str
    prefix: str
    ingest_url: str
    simulator: WhatsAppSimulator
    processes: dict[str, WorkerProcess[Command] | WorkerProcess[PipelineSettings]]

    def alive(self) -> None:
        for name, process in self.processes.items():
            assert process.pid is None or process.is_running(), f"{name} stopped:\n{process.log_tail()}"


async def until(condition: Callable[[], Any], platform: Platform, what: str, timeout: float = 90.0) -> Any:
    """Polls with a deadline; fails at once if a service has died."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        platform.alive()
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(0.1)
    return found


def announced_url(process: WorkerProcess[Any]) -> str | None:
    text = process.log_file.read_text(errors="replace") if process.log_file.exists() else ""
    found = re.search(r"on (http://127\.0\.0\.1:\d+)", text)
    return found.group(1) if found else None


@pytest.fixture(scope="module")
async def platform(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    prefix, directory = f"it-trace-{uuid.uuid4().hex[:8]}-", tmp_path_factory.mktemp("trace")
    secrets = {ENV_ACCESS_TOKEN: ACCESS_TOKEN, ENV_APP_SECRET: APP_SECRET, "TRACE_INGEST_SECRET": INGEST_SECRET,
               "SWITCHBOARD_LOG_LEVEL": "INFO"}
    clients = directory / "clients.json"
    clients.write_text(json.dumps({"erp-1": {"tenant": TENANT, "secret_env": "TRACE_INGEST_SECRET"}}))
    async with WhatsAppSimulator(access_token=ACCESS_TOKEN, app_secret=APP_SECRET, webhook_url=None,
                                 phone_numbers={SENDER: "15550001111"}, pair_window=None, enforce_window=False,
                                 mps_limit=None) as simulator:
        config = write_pipeline(directory, driver="whatsapp", settings=f'base_url = "{simulator.url}"',
                                extra=TRIGGER)
        settings = PipelineSettings(bootstrap=kafka_bootstrap, data_dir=str(directory / "state"),
                                    config_path=str(config), app_id=f"{prefix}pipeline", topic_prefix=prefix)
        await ensure_topics(kafka_bootstrap, [*settings.topic_specs(), business_topic_spec(prefix, 6)])
        env = {**secrets, "SWITCHBOARD_PIPELINE": str(config)}
        processes: dict[str, Any] = {
            "pipeline": WorkerProcess(settings, directory / "pipeline.log", env=env),
            "receiver": WorkerProcess(Command("receiver", (
                "receiver", "--bootstrap", kafka_bootstrap, "--port", "0", "--topic-prefix", prefix)),
                directory / "receiver.log", env=env),
            "normaliser": WorkerProcess(Command("normaliser", (
                "normaliser", "--bootstrap", kafka_bootstrap, "--topic-prefix", prefix, "--group",
                f"{prefix}normaliser", "--config", str(config))), directory / "normaliser.log",
                env={**env, "SWITCHBOARD_LOG_LEVEL": "DEBUG"}),  # its line per receipt is at DEBUG
            "ingest": WorkerProcess(Command("ingest", (
                "ingest", "--bootstrap", kafka_bootstrap, "--port", "0", "--topic-prefix", prefix,
                "--clients-file", str(clients))), directory / "ingest.log", env=env),
        }
        for name, process in processes.items():
            if name != "normaliser":
                process.start()
        try:
            platform = Platform(kafka_bootstrap, prefix, "", simulator, processes)
            receiver_url = await until(lambda: announced_url(processes["receiver"]), platform, "receiver up")
            processes["normaliser"].start()  # the receiver has created the raw topic it reads
            simulator.webhook_url = f"{receiver_url}/webhooks/whatsapp"
            platform.ingest_url = await until(lambda: announced_url(processes["ingest"]), platform, "ingest up")
            yield platform
        finally:
            for process in processes.values():
                if process.pid is not None:
                    process.stop()


async def post_order(platform: Platform, traceparent: str) -> tuple[int, str | None]:
    body = json.dumps({"type": "OrderPlaced", "event": {
        "envelope": {"aggregate_type": "Order", "aggregate_id": "o-trace-1", "aggregate_version": 1,
                     "occurred_at": "2026-03-01T09:30:00Z", "tenant_id": TENANT},
        "order_id": "o-trace-1", "customer_id": CUSTOMER,
        "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_minor": 500}], "total_minor": 500,
        "currency": "EUR"}}).encode()
    headers = {**signed_headers("erp-1", INGEST_SECRET, int(time.time()), "POST", EVENTS_PATH, body),
               "Content-Type": "application/json", tracing.HEADER: traceparent}
    async with aiohttp.ClientSession() as session, session.post(platform.ingest_url + EVENTS_PATH, data=body,
                                                                headers=headers) as response:
        return response.status, response.headers.get(tracing.HEADER)


async def read_all(bootstrap: str, topics: list[str]) -> list[Record]:
    """Every record of the topics up to their current ends."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()  # subscribed: the topics' metadata is fetched, then their partitions are assigned
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        consumer.unsubscribe()
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Record] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


def message_events(records: list[Record], message_id: str) -> list[tuple[Record, DecodedEvent]]:
    found = []
    for record in records:
        decoded = decode(record.value)
        if isinstance(decoded, DecodedEvent) and decoded.payload["envelope"]["aggregate_id"] == message_id:
            found.append((record, decoded))
    return found


def header_trace(record: Record) -> str | None:
    span = tracing.from_record_headers(record.headers)
    return span.trace_id if span is not None else None


def json_values(records: list[Record]) -> list[tuple[Record, dict[str, Any]]]:
    return [(r, v) for r in records if isinstance(v := json.loads(r.value), dict)]


async def test_one_trace_id_follows_an_order_through_every_stage_and_the_receipts(platform: Platform) -> None:
    trace_id, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    contact_id = str(Contact.create_id(TENANT, CUSTOMER))
    topics = Topics(platform.prefix)
    await produce_json(platform.bootstrap, topics.commands, [(contact_id, {
        "kind": "contact", "v": 1, "command_id": "trace-contact", "tenant": TENANT, "contact_id": contact_id,
        "contact": {"external_ref": CUSTOMER, "addresses": {"whatsapp": PHONE, "sms": PHONE}}})])

    status, answered = await post_order(platform, f"00-{trace_id}-{caller_span}-01")
    assert status == 202
    span = tracing.parse(answered)
    assert span is not None
    assert span.trace_id == trace_id
    assert span.span_id != caller_span

    message_topic = topics.message_events

    async def read_events() -> list[tuple[Record, DecodedEvent]]:
        records = await read_all(platform.bootstrap, [message_topic])
        return [(r, d) for r, d in ((r, decode(r.value)) for r in records) if isinstance(d, DecodedEvent)
                and d.payload["envelope"]["trace_id"] == trace_id]

    deadline = time.monotonic() + 120
    events = await read_events()
    while not {d.event_type for _, d in events} >= STATUSES:
        platform.alive()
        assert time.monotonic() < deadline, f"no read receipt: {[d.event_type for _, d in events]}"
        await asyncio.sleep(0.2)
        events = await read_events()
    message_id = events[0][1].payload["envelope"]["aggregate_id"]
    assert message_id == str(Message.create_id(TENANT, events[0][1].payload["idempotency_key"]))
    await until(lambda: not platform.simulator.pending_webhooks, platform, "every receipt posted")

    all_topics = [topics.business_events, topics.commands, topics.dispatch, topics.message_events,
                  platform.prefix + "sb.webhooks.raw"]
    records = await read_all(platform.bootstrap, all_topics)
    by_topic: dict[str, list[Record]] = {t: [r for r in records if r.topic == t] for t in all_topics}

    # Every event about the message, delivered and read included: envelope and header carry the trace.
    about = message_events(by_topic[topics.message_events], message_id)
    assert {d.event_type for _, d in about} >= STATUSES
    for record, decoded in about:
        assert decoded.payload["envelope"]["trace_id"] == trace_id, decoded.event_type
        assert header_trace(record) == trace_id, decoded.event_type

    # The business event the request wrote.
    [order] = [r for r in by_topic[topics.business_events] if b"o-trace-1" in r.value]
    assert header_trace(order) == trace_id
    order_event = decode(order.value)
    assert isinstance(order_event, DecodedEvent)
    assert order_event.payload["envelope"]["trace_id"] == trace_id

    # Each command about the message: the trigger, the send outcome, every receipt.
    commands = [(r, v) for r, v in json_values(by_topic[topics.commands])
                if v.get("message_id") == message_id or v.get("command_id") == order_event.payload["envelope"][
                    "event_id"]]
    kinds = [v["kind"] for _, v in commands]
    assert {"trigger", "outcome"} <= set(kinds), kinds
    assert kinds.count("receipt") >= 3, kinds
    for record, value in commands:
        assert header_trace(record) == trace_id, value["kind"]
        assert value["trace_id"] == trace_id, value["kind"]

    # The dispatch job, and the provider call it made.
    jobs = [(r, v) for r, v in json_values(by_topic[topics.dispatch]) if v.get("message_id") == message_id]
    assert jobs
    for record, value in jobs:
        assert header_trace(record) == trace_id
        assert value["trace_id"] == trace_id
    [sent] = [m for m in platform.simulator.sent_messages if m.recipient == PHONE.lstrip("+")]
    sent_span = tracing.parse(sent.traceparent)
    assert sent_span is not None
    assert sent_span.trace_id == trace_id

    # The raw webhooks keep the receiver's own traces; each receipt command links the one it came from.
    webhook_spans = {str(tracing.from_record_headers(r.headers)) for r in by_topic[platform.prefix + "sb.webhooks.raw"]}
    for record, value in commands:
        if value["kind"] == "receipt":
            link = dict(record.headers)[tracing.LINK_HEADER].decode()
            assert link in webhook_spans
            assert trace_id not in link  # the webhook's own trace, linked

    # `switchboard trace` finds exactly those records.
    path = trace_command(platform, trace_id)
    positions = {(s["topic"], s["position"]) for s in path}
    expected = [r for r, _ in about] + [order] + [r for r, _ in commands] + [r for r, _ in jobs]
    assert {(r.topic, f"{r.partition}@{r.offset}") for r in expected} <= positions
    assert [s["time"] for s in path] == sorted(s["time"] for s in path)

    # Every log line of each service that mentions the message (or the order) is JSON with the trace id.
    assert_logs(platform, trace_id, message_id)


def trace_command(platform: Platform, trace_id: str) -> list[dict[str, Any]]:
    result = subprocess.run([sys.executable, "-m", "switchboard.cli", "trace", trace_id, "--bootstrap",
                             platform.bootstrap, "--topic-prefix", platform.prefix, "--json"],
                            capture_output=True, text=True, timeout=120, check=True)
    assert result.stderr == ""  # progress goes to a terminal only: captured output stays free of it
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def assert_logs(platform: Platform, trace_id: str, message_id: str) -> None:
    mentions: dict[str, int] = {}
    for name, process in platform.processes.items():
        text = process.log_file.read_text(errors="replace")
        assert PHONE.lstrip("+") not in text, f"{name} logged the phone number"
        lines = [line for line in text.splitlines() if message_id in line or trace_id in line]
        for line in lines:
            entry = json.loads(line)
            assert entry["trace_id"] == trace_id, (name, line)
            assert {"time", "level", "logger", "message", "span_id"} <= set(entry)
        mentions[name] = len(lines)
    # The request's access log line is written after its handler, and still in its span.
    ingest_lines = [json.loads(line) for line in platform.processes["ingest"].log_file.read_text().splitlines()
                    if line.startswith("{")]
    [access] = [entry for entry in ingest_lines if "POST /v1/events" in entry["message"]]
    assert access["trace_id"] == trace_id
    # The ingest request, the worker's send (driver and dispatcher) and the normaliser's receipts all logged it.
    assert mentions["ingest"] >= 1, mentions
    assert mentions["pipeline"] >= 2, mentions
    assert mentions["normaliser"] >= 3, mentions


def test_a_malformed_trace_id_is_a_clear_error() -> None:
    result = subprocess.run([sys.executable, "-m", "switchboard.cli", "trace", "not-a-trace", "--bootstrap",
                             "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "not a trace id: expected 32 hex digits" in result.stderr


async def test_a_command_without_trace_headers_continues_the_trace_id_in_its_json(
        kafka_bootstrap: str, unique_prefix: str, tmp_path: Path, start_pipeline: StartPipeline) -> None:
    # A producer that cannot set Kafka headers names the trace in the command itself. The writer and the
    # dispatcher then start their spans in that trace, so every record they write carries it in its header too.
    await start_pipeline(write_pipeline(tmp_path))
    trace_id = uuid.uuid4().hex
    key, command = request("headerless", "headerless-1")
    await send_commands(kafka_bootstrap, unique_prefix, [(key, {**command, "trace_id": trace_id})])  # no headers
    await pipeline_support.message_events(kafka_bootstrap, unique_prefix,
                                          lambda got: sum(map(terminal_count, got.values())) >= 1)
    topics = Topics(unique_prefix)
    records = await read_all(kafka_bootstrap, [topics.message_events, topics.dispatch])
    jobs = [r for r, v in json_values([r for r in records if r.topic == topics.dispatch]) if v["kind"] != "tick"]
    events = [(r, d) for r in records if r.topic == topics.message_events
              and isinstance(d := decode(r.value), DecodedEvent)]
    assert jobs
    assert "MessageAcceptedByProvider" in {d.event_type for _, d in events}
    # Each record is a child span of the record that caused it (it names its parent), not a span without one.
    for record, decoded in events:
        assert decoded.payload["envelope"]["trace_id"] == trace_id, decoded.event_type
        assert header_trace(record) == trace_id, decoded.event_type
        assert tracing.PARENT_HEADER in dict(record.headers), decoded.event_type
    for job in jobs:
        assert header_trace(job) == trace_id
        assert tracing.PARENT_HEADER in dict(job.headers)

"""ERP ingestion on a real broker: accepted events decode from the topic; refused requests leave it untouched."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from connectors.ingest import (
    EVENTS_PATH,
    IngestClients,
    KafkaEventSink,
    business_topic_spec,
    ingest_app,
    signed_headers,
)
from connectors.sdk import KafkaEventProducer, SwitchboardClient
from schemas import DecodedEvent, decode, event_id
from switchboard.config import default_path, load
from switchboard.kafka_io import MURMUR2_PARTITIONER
from switchboard.serving import serving as serve_app
from switchboard.topics import ensure_topics

SECRET = "it-secret"
CLIENTS = IngestClients.of({"erp-1": ("acme", SECRET)})
PARTITIONS = 3
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def order_placed(order: str = "o-1001", version: int = 1, tenant: str = "acme") -> dict[str, Any]:
    return {
        "envelope": {"aggregate_type": "Order", "aggregate_id": order, "aggregate_version": version,
                     "occurred_at": "2026-03-01T09:30:00Z", "tenant_id": tenant},
        "order_id": order, "customer_id": "c-42",
        "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_minor": 500}], "total_minor": 500, "currency": "EUR",
    }


@asynccontextmanager
async def serving(bootstrap: str, prefix: str, *middlewares: Any) -> AsyncIterator[str]:
    """The ingestion app with a Kafka sink on 127.0.0.1 and an ephemeral port; yields its base URL."""
    await ensure_topics(bootstrap, [business_topic_spec(prefix, PARTITIONS)])
    async with KafkaEventSink(bootstrap) as sink:
        app = ingest_app(sink, CLIENTS, topic_prefix=prefix)
        app.middlewares.extend(middlewares)
        async with serve_app(app, shutdown_timeout=1.0) as url:
            yield url


async def end_offsets(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(wanted)).items()}
    finally:
        await consumer.stop()


async def read_all(bootstrap: str, topic: str, expected: int, partitions: int = PARTITIONS,
                   timeout: float = 30.0) -> list[ConsumerRecord]:
    """Every record of the topic, which must hold exactly `expected` (its end offsets say so)."""
    ends = await end_offsets(bootstrap, topic, partitions)
    assert sum(ends.values()) == expected, ends
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected:
            assert time.monotonic() < deadline, f"{topic}: {len(records)} of {expected} records after {timeout}s"
            batches = await consumer.getmany(timeout_ms=1000)
            records.extend(r for batch in batches.values() for r in batch)
    finally:
        await consumer.stop()
    return records


async def post(url: str, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(url + EVENTS_PATH, data=raw, headers=headers) as answer:
        return answer.status, await answer.json()


def signed(raw: bytes, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    return {**signed_headers("erp-1", secret, stamp, "POST", EVENTS_PATH, raw), "Content-Type": "application/json"}


async def test_a_signed_event_is_on_the_topic_keyed_and_decodable(kafka_bootstrap: str, unique_prefix: str) -> None:
    topic = unique_prefix + "sb.events.business"
    raw = json.dumps({"type": "OrderPlaced", "event": order_placed()}).encode()
    async with serving(kafka_bootstrap, unique_prefix) as url:
        status, answer = await post(url, raw, signed(raw))
    assert status == 202
    [accepted] = answer["accepted"]
    [record] = await read_all(kafka_bootstrap, topic, 1)
    assert (accepted["topic"], accepted["partition"], accepted["offset"]) == (topic, record.partition, record.offset)
    assert record.key == b"o-1001"
    everything = list(range(PARTITIONS))
    assert record.partition == MURMUR2_PARTITIONER(b"o-1001", everything, everything)
    decoded = decode(record.value)
    assert isinstance(decoded, DecodedEvent)
    assert decoded.event_type == "OrderPlaced"
    assert decoded.payload["envelope"]["event_id"] == accepted["event_id"] == event_id("Order", "o-1001", 1)
    assert decoded.payload["envelope"]["tenant_id"] == "acme"


async def test_refused_requests_produce_nothing(kafka_bootstrap: str, unique_prefix: str) -> None:
    topic = unique_prefix + "sb.events.business"
    good = json.dumps({"type": "OrderPlaced", "event": order_placed()}).encode()
    invalid = order_placed()
    invalid["items"][0]["quantity"] = "one"
    cases = {
        "missing signature": (good, {"Content-Type": "application/json"}, 401, "missing_signature"),
        "bad signature": (good, signed(good, secret="guess"), 403, "bad_signature"),
        "expired timestamp": (good, signed(good, at=int(time.time()) - 301), 401, "timestamp_expired"),
        "oversized": (b" " * (1024 * 1024 + 1), {}, 413, "body_too_large"),
        "wrong tenant": (json.dumps({"type": "OrderPlaced", "event": order_placed(tenant="globex")}).encode(), {},
                         403, "tenant_mismatch"),
        "schema-invalid": (json.dumps({"type": "OrderPlaced", "event": invalid}).encode(), {}, 422,
                           "schema_violation"),
        "not a business event": (json.dumps({"type": "MessageSent", "event": order_placed()}).encode(), {}, 422,
                                 "event_type_not_allowed"),
    }
    async with serving(kafka_bootstrap, unique_prefix) as url:
        before = await end_offsets(kafka_bootstrap, topic)
        for name, (raw, headers, status, code) in cases.items():
            got_status, answer = await post(url, raw, headers or signed(raw))
            assert (got_status, answer["error"]["code"]) == (status, code), name
        assert await end_offsets(kafka_bootstrap, topic) == before == dict.fromkeys(range(PARTITIONS), 0)
        assert (await post(url, good, signed(good)))[0] == 202  # the same server still accepts a good one
    assert sum((await end_offsets(kafka_bootstrap, topic)).values()) == 1


def losing_first_answer() -> Any:
    """Stores the event, then answers 504 the first time, like a proxy timing out on a slow ack."""
    lost = [False]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if not lost[0]:
            lost[0] = True
            return web.json_response({"error": {"code": "gateway_timeout", "message": "", "details": []}}, status=504)
        return response

    return middleware


async def test_an_sdk_retry_with_the_same_key_stores_one_event(kafka_bootstrap: str, unique_prefix: str) -> None:
    topic = unique_prefix + "sb.events.business"
    async with serving(kafka_bootstrap, unique_prefix, losing_first_answer()) as url, \
            SwitchboardClient(url, "erp-1", SECRET, backoff_base=0.05) as client:
        accepted = await client.send_event("OrderPlaced", order_placed(), idempotency_key="order-o-1001-v1")
    [record] = await read_all(kafka_bootstrap, topic, 1)
    decoded = decode(record.value)
    assert isinstance(decoded, DecodedEvent)
    assert decoded.payload["envelope"]["event_id"] == accepted.event_id


async def test_after_a_restart_a_retry_repeats_the_event_id(kafka_bootstrap: str, unique_prefix: str) -> None:
    """The per-process cache is gone after a restart; the record is written again with the same event_id."""
    topic = unique_prefix + "sb.events.business"
    answers = []
    for _ in range(2):
        async with serving(kafka_bootstrap, unique_prefix) as url, SwitchboardClient(url, "erp-1", SECRET) as client:
            answers.append(await client.send_event("OrderPlaced", order_placed(), idempotency_key="same-key"))
    records = await read_all(kafka_bootstrap, topic, 2)
    ids = set()
    for record in records:
        decoded = decode(record.value)
        assert isinstance(decoded, DecodedEvent)
        ids.add(decoded.payload["envelope"]["event_id"])
    assert ids == {answers[0].event_id} == {answers[1].event_id}
    assert {r.partition for r in records} == {answers[0].partition}  # same key, same partition: consumers dedupe


async def test_direct_production_writes_the_same_record(kafka_bootstrap: str, unique_prefix: str) -> None:
    topic = unique_prefix + "sb.events.business"
    await ensure_topics(kafka_bootstrap, [business_topic_spec(unique_prefix, PARTITIONS)])
    async with KafkaEventProducer(kafka_bootstrap, topic_prefix=unique_prefix) as producer:
        accepted = await producer.send("OrderPlaced", order_placed("o-77"))
    [record] = await read_all(kafka_bootstrap, topic, 1)
    assert (record.key, record.partition, record.offset) == (b"o-77", accepted.partition, accepted.offset)
    decoded = decode(record.value)
    assert isinstance(decoded, DecodedEvent)
    assert decoded.payload["envelope"]["event_id"] == accepted.event_id == event_id("Order", "o-77", 1)


async def test_the_ingest_command_serves_signed_events(kafka_bootstrap: str, unique_prefix: str,
                                                       tmp_path: Path) -> None:
    clients = tmp_path / "clients.json"
    clients.write_text(json.dumps({"erp-1": {"tenant": "acme", "secret_env": "IT_INGEST_SECRET"}}))
    command = [sys.executable, "-m", "switchboard.cli", "ingest", "--bootstrap", kafka_bootstrap, "--port", "0",
               "--topic-prefix", unique_prefix, "--clients-file", str(clients)]
    server = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                  env={**os.environ, "IT_INGEST_SECRET": SECRET})
    try:
        assert server.stdout is not None
        line = (await asyncio.wait_for(server.stdout.readline(), 60)).decode()
        url = line.split(" on ", 1)[1].split(EVENTS_PATH)[0]
        async with SwitchboardClient(url, "erp-1", SECRET) as client:
            accepted = await client.send_event("OrderPlaced", order_placed("o-cli"))
    finally:
        server.terminate()
        assert await asyncio.wait_for(server.wait(), 30) == 0
    partitions = load(default_path()).streams.partitions  # the command lays the topic out as pipeline.toml says
    [record] = await read_all(kafka_bootstrap, unique_prefix + "sb.events.business", 1, partitions)
    assert (record.key, record.offset) == (b"o-cli", accepted.offset)

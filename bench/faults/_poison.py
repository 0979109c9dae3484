"""Bad inputs for the poison scenario: malformed records on every input topic, bad webhooks, invalid events."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bench.faults._ledger import Poison, Refusal
from bench.faults._stack import TENANT, Platform
from connectors import SIGNATURE_HEADER, hub_signature
from connectors.ingest import EVENTS_PATH, IngestClients, KafkaEventSink, ingest_app, signed_headers
from connectors.sdk import IngestError, KafkaEventProducer
from schemas import encode, event_id
from switchboard._demo_stack import DemoSecrets
from switchboard.kafka_io import new_producer
from switchboard.serving import serving

INGEST_CLIENT, INGEST_SECRET = "erp-faults", "faults-ingest-secret"  # this scenario's own, in-process server


def _marker(topic: str, n: int) -> str:
    return f"poison-{topic.rsplit('sb.', 1)[-1]}-{n}-{uuid.uuid4().hex[:6]}"


def _order_placed(order: str) -> dict[str, Any]:
    return {"envelope": {"aggregate_type": "Order", "aggregate_id": order, "aggregate_version": 1,
                         "occurred_at": "2026-03-01T09:30:00Z", "tenant_id": TENANT},
            "order_id": order, "customer_id": "customer-1",
            "items": [{"sku": "SKU-1", "quantity": 1, "unit_price_minor": 500}], "total_minor": 500,
            "currency": "EUR"}


def _bad_records(topic: str) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(what, marker, value, headers) of the malformed records for one input topic; each value holds its marker."""
    one, two, three = (_marker(topic, n) for n in range(3))
    if topic.endswith("sb.events.business"):
        event = _order_placed(f"o-{two}")
        at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
        event["envelope"].update(event_id=event_id("Order", f"o-{two}", 1), occurred_at=at)
        valid = encode(event, "OrderPlaced")
        return [("not Avro", one, f"\x07{one} is not an event".encode(), {}),
                ("schema-invalid: truncated Avro", two, valid[: len(valid) // 2] + two.encode(), {}),
                ("unknown schema id", three, b"\x00\x7f\xff\xff\x01" + three.encode(), {})]
    if topic.endswith("sb.webhooks.raw"):
        return [("not JSON", one, f"{{{one} not json".encode(), {"channel": "whatsapp"}),
                ("no channel header", two, json.dumps({"object": "whatsapp_business_account", "m": two}).encode(), {}),
                ("not a webhook", three, json.dumps({"entry": three}).encode(), {"channel": "whatsapp"})]
    return [("not JSON", one, b"\xff" + f"{one} not json".encode(), {}),
            ("a JSON list", two, json.dumps([two]).encode(), {}),
            ("a command lacking fields", three, json.dumps({"kind": "request", "v": 1, "note": three}).encode(), {})]


async def _produce_bad(platform: Platform) -> None:
    producer = new_producer(platform.bootstrap)
    await producer.start()
    try:
        for suffix in ("sb.commands", "sb.dispatch", "sb.events.business", "sb.commands.template",
                       "sb.webhooks.raw"):
            topic = platform.prefix + suffix
            for what, marker, value, headers in _bad_records(topic):
                meta = await producer.send_and_wait(topic, value, key=b"poison",
                                                    headers=[(k, v.encode()) for k, v in headers.items()])
                platform.ledger.poison.append(Poison(topic, marker, what, (meta.partition, meta.offset)))
    finally:
        await producer.stop()


async def _bad_webhooks(platform: Platform, secrets: DemoSecrets) -> None:
    """Signed but malformed (400), unsigned (401) and wrongly signed (403) POSTs to the receiver."""
    malformed = b'{"object": "whatsapp_business_account", "entry": [ broken'
    cases = [("malformed webhook", malformed, {SIGNATURE_HEADER: hub_signature(malformed, secrets.app_secret)}, 400),
             ("unsigned webhook", b'{"object": "whatsapp_business_account", "entry": []}', {}, 401),
             ("wrongly signed webhook", b'{"object": "whatsapp_business_account", "entry": [{}]}',
              {SIGNATURE_HEADER: "sha256=" + "0" * 64}, 403)]
    async with aiohttp.ClientSession() as http:
        for what, body, headers, expected in cases:
            async with http.post(platform.receiver_url, data=body,
                                 headers={**headers, "Content-Type": "application/json"}) as answer:
                refusal = Refusal("receiver", what, answer.status, _code(answer.status, expected),
                                  hashlib.sha256(body).hexdigest())
                platform.ledger.refusals.append(refusal)


def _code(status: int, expected: int) -> str:
    return f"as expected ({expected})" if status == expected else ""


@asynccontextmanager
async def _ingest(platform: Platform) -> AsyncIterator[str]:
    async with KafkaEventSink(platform.bootstrap) as sink:
        app = ingest_app(sink, IngestClients.of({INGEST_CLIENT: (TENANT, INGEST_SECRET)}), topic_prefix=platform.prefix)
        async with serving(app, shutdown_timeout=1.0) as url:
            yield f"{url}{EVENTS_PATH}"


async def _bad_events(platform: Platform) -> None:
    """Through the ingestion API: a schema-invalid event (422), an unsigned one (401), and one good event (202);
    through the SDK's direct producer: a schema-invalid event, refused before it leaves."""
    invalid = _order_placed("o-invalid")
    invalid["items"][0]["quantity"] = "one"
    bodies = [("schema-invalid event", {"type": "OrderPlaced", "event": invalid}, True, 422),
              ("unsigned event", {"type": "OrderPlaced", "event": _order_placed("o-unsigned")}, False, 401),
              ("good event", {"type": "OrderPlaced", "event": _order_placed("o-good")}, True, 202)]
    async with _ingest(platform) as url, aiohttp.ClientSession() as http:
        for what, body, sign, expected in bodies:
            raw = json.dumps(body).encode()
            headers = signed_headers(INGEST_CLIENT, INGEST_SECRET, int(time.time()), "POST", EVENTS_PATH, raw) \
                if sign else {}
            async with http.post(url, data=raw, headers={**headers, "Content-Type": "application/json"}) as answer:
                answered = await answer.json()
            if expected == 202 and answer.status == 202:
                platform.ledger.accepted_inputs["business events through ingest"] += 1
                continue
            code = answered.get("error", {}).get("code", "") if answer.status == expected else ""
            platform.ledger.refusals.append(Refusal("ingest", what, answer.status, code))
    async with KafkaEventProducer(platform.bootstrap, topic_prefix=platform.prefix) as producer:
        try:
            await producer.send("OrderPlaced", invalid)
            platform.ledger.refusals.append(Refusal("sdk", "schema-invalid event, direct produce", 0, ""))
        except IngestError as error:  # the SDK refuses it before anything is produced
            platform.ledger.refusals.append(Refusal("sdk", "schema-invalid event, direct produce", 0,
                                                    type(error).__name__))


async def inject_poison(platform: Platform, secrets: DemoSecrets) -> None:
    """Every kind of bad input, each recorded in the ledger with where it went."""
    await _produce_bad(platform)
    await _bad_webhooks(platform, secrets)
    await _bad_events(platform)

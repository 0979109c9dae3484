"""POST /v1/events over real HTTP (aiohttp's test server) with the in-memory sink: every answer and every record."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.ingest import (
    CODES,
    EVENTS_PATH,
    IdempotencyCache,
    IngestClients,
    InMemoryEventSink,
    ingest_app,
    signed_headers,
)
from schemas import DecodedEvent, decode, event_id
from switchboard import tracing
from switchboard.kafka_io import MURMUR2_PARTITIONER
from switchboard.observability import Observability

NOW = 1_760_000_000
SECRET = "erp-secret-1"
CLIENTS = IngestClients.of({"erp-1": ("acme", SECRET), "erp-2": ("globex", "erp-secret-2")})
DOCS = Path(__file__).resolve().parents[3] / "docs" / "CONNECTORS.md"


def order_placed(order: str = "o-1001", version: int = 1, tenant: str = "acme", **changes: Any) -> dict[str, Any]:
    """An OrderPlaced as an ERP would send it in JSON (no event_id: the server derives it)."""
    event: dict[str, Any] = {
        "envelope": {"aggregate_type": "Order", "aggregate_id": order, "aggregate_version": version,
                     "occurred_at": "2026-03-01T09:30:00.250Z", "tenant_id": tenant},
        "order_id": order, "customer_id": "c-42",
        "items": [{"sku": "SKU-1", "name": "Kettle", "quantity": 2, "unit_price_minor": 1999}],
        "total_minor": 3998, "currency": "EUR",
    }
    event.update(changes)
    return event


def body_of(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def signed(raw: bytes, client: str = "erp-1", secret: str = SECRET, at: int = NOW,
           key: str | None = None) -> dict[str, str]:
    """The three signature headers, and an Idempotency-Key when given."""
    headers = {**signed_headers(client, secret, at, "POST", EVENTS_PATH, raw), "Content-Type": "application/json"}
    return headers if key is None else {**headers, "Idempotency-Key": key}


@dataclass
class Running:
    client: TestClient[web.Request, web.Application]
    sink: InMemoryEventSink

    async def post(self, raw: bytes, headers: Mapping[str, str]) -> tuple[int, Any]:
        answer = await self.client.post(EVENTS_PATH, data=raw, headers=headers)
        return answer.status, await answer.json()

    async def send(self, payload: Any, client: str = "erp-1", secret: str = SECRET, at: int = NOW,
                   key: str | None = None) -> tuple[int, Any]:
        raw = body_of(payload)
        return await self.post(raw, signed(raw, client, secret, at, key))


@asynccontextmanager
async def serving(sink: InMemoryEventSink | None = None, **options: Any) -> AsyncIterator[Running]:
    sink = sink if sink is not None else InMemoryEventSink()
    app = ingest_app(sink, CLIENTS, clock=lambda: NOW + 0.4, **options)
    async with TestClient(TestServer(app)) as client:
        yield Running(client, sink)


async def test_a_signed_event_is_produced_keyed_by_aggregate_before_202() -> None:
    async with serving(topic_prefix="t-") as r:
        status, answer = await r.send({"type": "OrderPlaced", "event": order_placed()})
        assert status == 202
        [(record, placement)] = r.sink.records
        expected_id = event_id("Order", "o-1001", 1)
        assert answer == {"accepted": [{"event_id": expected_id, "topic": "t-sb.events.business",
                                        "partition": placement.partition, "offset": 0}]}
        assert (record.topic, record.key) == ("t-sb.events.business", b"o-1001")
        assert placement.partition == MURMUR2_PARTITIONER(b"o-1001", list(range(6)), list(range(6)))
        decoded = decode(record.value)
        assert isinstance(decoded, DecodedEvent)
        assert decoded.event_type == "OrderPlaced"
        assert decoded.payload["envelope"]["event_id"] == expected_id
        assert decoded.payload["envelope"]["occurred_at"].isoformat() == "2026-03-01T09:30:00.250000+00:00"
        headers = dict(record.headers)
        span = tracing.parse(headers.pop(tracing.HEADER))
        assert span is not None
        assert span.trace_id == decoded.payload["envelope"]["trace_id"]
        assert headers.pop(tracing.PARENT_HEADER) != span.span_id.encode()
        assert headers == {"event-type": b"OrderPlaced", "event-id": expected_id.encode(), "source": b"client:erp-1"}


async def test_a_batch_is_produced_in_order_and_answered_in_order() -> None:
    events = [{"type": "OrderPlaced", "event": order_placed(f"o-{i}")} for i in range(3)]
    events.append({"type": "CustomerTierChanged", "event": {
        "envelope": {**order_placed()["envelope"], "aggregate_type": "Customer", "aggregate_id": "c-42"},
        "customer_id": "c-42", "new_tier": "gold"}})
    async with serving() as r:
        status, answer = await r.send({"events": events})
        assert status == 202
        assert [a["event_id"] for a in answer["accepted"]] == [
            *(event_id("Order", f"o-{i}", 1) for i in range(3)), event_id("Customer", "c-42", 1)]
        assert [rec.key for rec, _ in r.sink.records] == [b"o-0", b"o-1", b"o-2", b"c-42"]


async def test_a_given_event_id_must_be_the_derived_one() -> None:
    good = order_placed()
    good["envelope"]["event_id"] = event_id("Order", "o-1001", 1)
    bad = order_placed()
    bad["envelope"]["event_id"] = "my-own-id"
    async with serving() as r:
        assert (await r.send({"type": "OrderPlaced", "event": good}))[0] == 202
        status, answer = await r.send({"type": "OrderPlaced", "event": bad})
        assert (status, answer["error"]["code"]) == (422, "schema_violation")
        assert answer["error"]["details"][0]["field"] == "event.envelope.event_id"
        assert len(r.sink.records) == 1


async def test_timestamps_may_be_epoch_milliseconds() -> None:
    event = order_placed()
    event["envelope"]["occurred_at"] = 1_772_357_400_250
    async with serving() as r:
        assert (await r.send({"type": "OrderPlaced", "event": event}))[0] == 202
        decoded = decode(r.sink.records[0][0].value)
        assert isinstance(decoded, DecodedEvent)
        assert decoded.payload["envelope"]["occurred_at"].isoformat() == "2026-03-01T09:30:00.250000+00:00"


async def refused(payload: Any = None, *, raw: bytes | None = None, headers: Mapping[str, str] | None = None,
                  **options: Any) -> tuple[int, str, list[Any]]:
    """Status, code and details of a request that must be refused, after checking nothing was produced."""
    raw = raw if raw is not None else body_of(payload)
    async with serving(**options) as r:
        status, answer = await r.post(raw, headers if headers is not None else signed(raw))
        assert r.sink.records == []
    assert set(answer) == {"error"}
    assert set(answer["error"]) == {"code", "message", "details"}
    assert answer["error"]["message"]
    assert CODES[answer["error"]["code"]] == status
    return status, answer["error"]["code"], answer["error"]["details"]


ONE = body_of({"type": "OrderPlaced", "event": order_placed()})


async def test_missing_headers_are_401() -> None:
    for missing in ("X-Switchboard-Client", "X-Switchboard-Timestamp", "X-Switchboard-Signature"):
        headers = {k: v for k, v in signed(ONE).items() if k != missing}
        assert (await refused(raw=ONE, headers=headers))[:2] == (401, "missing_signature")


async def test_an_unknown_client_is_401() -> None:
    assert (await refused(raw=ONE, headers=signed(ONE, client="nobody")))[:2] == (401, "unknown_client")


async def test_a_wrong_secret_or_a_changed_body_is_403() -> None:
    assert (await refused(raw=ONE, headers=signed(ONE, secret="guess")))[:2] == (403, "bad_signature")
    assert (await refused(raw=ONE + b" ", headers=signed(ONE)))[:2] == (403, "bad_signature")
    other_path = {**signed(ONE), "X-Switchboard-Signature": signed_headers(
        "erp-1", SECRET, NOW, "POST", "/v1/messages", ONE)["X-Switchboard-Signature"]}
    assert (await refused(raw=ONE, headers=other_path))[:2] == (403, "bad_signature")


async def test_timestamps_outside_five_minutes_are_401() -> None:
    for at in (NOW - 301, NOW + 302):
        assert (await refused(raw=ONE, headers=signed(ONE, at=at)))[:2] == (401, "timestamp_expired")
    not_a_number = {**signed(ONE), "X-Switchboard-Timestamp": "yesterday"}
    assert (await refused(raw=ONE, headers=not_a_number))[:2] == (401, "timestamp_expired")
    async with serving() as r:
        assert (await r.send({"type": "OrderPlaced", "event": order_placed()}, at=NOW - 299))[0] == 202


async def test_a_body_over_the_limit_is_413_declared_or_streamed() -> None:
    big = body_of({"type": "OrderPlaced", "event": order_placed(), "pad": "x" * 2000})
    assert (await refused(raw=big, headers=signed(big), max_body_bytes=1000))[:2] == (413, "body_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
        for start in range(0, len(big), 256):
            yield big[start:start + 256]

    async with serving(max_body_bytes=1000) as r:
        answer = await r.client.post(EVENTS_PATH, data=chunks(), headers=signed(big))
        assert (answer.status, (await answer.json())["error"]["code"]) == (413, "body_too_large")
        assert r.sink.records == []


async def test_the_default_limit_is_one_mebibyte() -> None:
    big = b" " * (1024 * 1024 + 1)
    assert (await refused(raw=big, headers=signed(big)))[:2] == (413, "body_too_large")


async def test_malformed_json_is_400() -> None:
    for raw in (b"{not json", b"\xff\xfe", b""):
        assert (await refused(raw=raw, headers=signed(raw)))[:2] == (400, "malformed_json")


async def test_a_body_of_the_wrong_shape_is_422_naming_where() -> None:
    cases: dict[str, list[Any]] = {
        "": [{"type": "OrderPlaced"}, [1, 2], {"type": "OrderPlaced", "event": {}, "extra": 1}],
        "events": [{"events": []}, {"events": {"type": "OrderPlaced"}}],
        "events[1]": [{"events": [{"type": "OrderPlaced", "event": order_placed()}, {"event": {}}]}],
    }
    for field, payloads in cases.items():
        for payload in payloads:
            status, code, details = await refused(payload)
            assert (status, code, details[0]["field"]) == (422, "schema_violation", field), payload


async def test_more_than_500_events_is_413() -> None:
    events = [{"type": "OrderPlaced", "event": order_placed(f"o-{i}")} for i in range(501)]
    assert (await refused({"events": events}))[:2] == (413, "too_many_events")


async def test_only_business_event_types_are_accepted() -> None:
    for event_type in ("MessageSent", "TenantRegistered", "NoSuchEvent", 7, "switchboard.contact.ConsentGranted"):
        status, code, details = await refused({"type": event_type, "event": order_placed()})
        assert (status, code) == (422, "event_type_not_allowed"), event_type
        assert "OrderPlaced" in details[0]["allowed"]
    async with serving() as r:
        assert (await r.send({"type": "switchboard.business.OrderPlaced", "event": order_placed()}))[0] == 202


async def test_schema_violations_name_every_bad_event_and_its_field() -> None:
    bad_quantity = order_placed()
    bad_quantity["items"][0]["quantity"] = "two"
    no_version = order_placed()
    del no_version["envelope"]["aggregate_version"]
    naive = order_placed()
    naive["envelope"]["occurred_at"] = "2026-03-01T09:30:00"
    events = [{"type": "OrderPlaced", "event": e} for e in (order_placed(), bad_quantity, no_version, naive)]
    status, code, details = await refused({"events": events})
    assert (status, code) == (422, "schema_violation")
    assert [(d["index"], d["field"]) for d in details] == [
        (1, "events[1].event.items[0].quantity"),
        (2, "events[2].event.envelope.aggregate_version"),
        (3, "events[3].event.envelope.occurred_at"),
    ]
    unknown_field = order_placed(coupon="X")
    assert (await refused({"type": "OrderPlaced", "event": unknown_field}))[2][0]["field"] == "event.coupon"


async def test_a_client_may_only_write_its_own_tenant() -> None:
    mixed = [{"type": "OrderPlaced", "event": order_placed()},
             {"type": "OrderPlaced", "event": order_placed("o-2", tenant="globex")}]
    status, code, details = await refused({"events": mixed})
    assert (status, code, details) == (403, "tenant_mismatch", [{"index": 1,
                                                                 "field": "events[1].event.envelope.tenant_id"}])


async def test_a_retry_with_the_same_key_gets_the_first_answer_and_produces_nothing() -> None:
    raw = body_of({"type": "OrderPlaced", "event": order_placed()})
    async with serving() as r:
        first = await r.client.post(EVENTS_PATH, data=raw, headers=signed(raw, key="k-1"))
        again = await r.client.post(EVENTS_PATH, data=raw, headers=signed(raw, at=NOW + 1,
                                                                          key="k-1"))
        assert (first.status, again.status) == (202, 202)
        assert await first.json() == await again.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert len(r.sink.records) == 1


async def test_a_key_reused_with_another_body_is_409() -> None:
    async with serving() as r:
        assert (await r.send({"type": "OrderPlaced", "event": order_placed()}, key="k"))[0] == 202
        status, answer = await r.send({"type": "OrderPlaced", "event": order_placed("o-2")}, key="k")
        assert (status, answer["error"]["code"]) == (409, "idempotency_key_reused")
        assert len(r.sink.records) == 1


async def test_keys_are_per_client() -> None:
    async with serving() as r:
        other = order_placed(tenant="globex")
        first = await r.send({"type": "OrderPlaced", "event": order_placed()}, key="k")
        second = await r.send({"type": "OrderPlaced", "event": other}, client="erp-2", secret="erp-secret-2",
                              key="k")
        assert (first[0], second[0]) == (202, 202)
        assert len(r.sink.records) == 2


async def test_refusals_are_not_remembered_under_the_key() -> None:
    async with serving() as r:
        r.sink.unavailable = True
        first = await r.send({"type": "OrderPlaced", "event": order_placed()}, key="k")
        r.sink.unavailable = False
        second = await r.send({"type": "OrderPlaced", "event": order_placed()}, key="k")
        assert (first[0], first[1]["error"]["code"], second[0]) == (503, "kafka_unavailable", 202)
        assert len(r.sink.records) == 1


async def test_an_invalid_idempotency_key_is_400() -> None:
    headers = signed(ONE, key="has space")
    assert (await refused(raw=ONE, headers=headers))[:2] == (400, "invalid_idempotency_key")


def test_the_cache_forgets_the_least_recently_used_key() -> None:
    cache = IdempotencyCache(capacity=2)
    for key in ("a", "b"):
        cache.store("erp-1", key, "sha", {"accepted": [key]})
    assert cache.lookup("erp-1", "a", "sha") == {"accepted": ["a"]}  # a is now the most recent
    cache.store("erp-1", "c", "sha", {"accepted": ["c"]})
    assert (cache.lookup("erp-1", "b", "sha"), len(cache)) == (None, 2)


async def test_kafka_down_is_503_with_retry_after() -> None:
    async with serving(InMemoryEventSink(unavailable=True)) as r:
        raw = body_of({"type": "OrderPlaced", "event": order_placed()})
        answer = await r.client.post(EVENTS_PATH, data=raw, headers=signed(raw))
        assert (answer.status, answer.headers["Retry-After"]) == (503, "1")
        assert (await answer.json())["error"]["code"] == "kafka_unavailable"


class StallingSink(InMemoryEventSink):
    """A broker that never acknowledges."""

    async def produce(self, records: Any) -> Any:
        await asyncio.sleep(60)


async def test_a_broker_that_does_not_acknowledge_in_time_is_503() -> None:
    status, code, _ = await refused({"type": "OrderPlaced", "event": order_placed()}, sink=StallingSink(),
                                    write_timeout=0.2)
    assert (status, code) == (503, "kafka_unavailable")


async def test_other_paths_and_methods_answer_in_the_same_error_shape() -> None:
    async with serving() as r:
        missing = await r.client.post("/v1/nothing", data=b"{}")
        wrong_method = await r.client.get(EVENTS_PATH)
        assert (missing.status, (await missing.json())["error"]["code"]) == (404, "not_found")
        assert (wrong_method.status, (await wrong_method.json())["error"]["code"]) == (405, "method_not_allowed")


class ExplodingSink(InMemoryEventSink):
    async def produce(self, records: Any) -> Any:
        raise RuntimeError("disk full near +15551234567")


async def test_an_unexpected_failure_is_500_and_the_log_masks_numbers(caplog: Any) -> None:
    async with serving(ExplodingSink()) as r:
        status, answer = await r.send({"type": "OrderPlaced", "event": order_placed()})
    assert (status, answer["error"]["code"]) == (500, "internal_error")
    assert "+15551234567" not in caplog.text
    assert "+15*******67" in caplog.text


async def test_logs_carry_codes_not_event_values(caplog: Any) -> None:
    caplog.set_level("INFO", logger="connectors.ingest")
    event = order_placed(customer_id="+15551234567", total_minor="+15557654321")  # a str where a long belongs
    async with serving() as r:
        _status, answer = await r.send({"type": "OrderPlaced", "event": event})
    assert "15557654321" in json.dumps(answer)  # the caller sees its own value...
    assert "refused 422 schema_violation for client erp-1" in caplog.text
    assert "5555" not in caplog.text  # ...the log does not


def documented_codes() -> dict[str, int]:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("### Ingestion error codes\n")
    section = text[start:text.find("\n#", start + 5)]
    return {code: int(status) for status, code in re.findall(r"^\| (\d{3}) \| `(\w+)` \|", section, re.MULTILINE)}


def test_the_docs_list_every_error_code_with_its_status() -> None:
    assert documented_codes() == dict(CODES)



async def test_writes_are_the_ingest_stage_and_requests_are_counted_by_route_and_status() -> None:
    observability = Observability("ingest")
    async with serving(observability=observability) as r:
        assert (await r.send({"type": "OrderPlaced", "event": order_placed()}))[0] == 202
        r.sink.unavailable = True
        assert (await r.send({"type": "OrderPlaced", "event": order_placed("o-2")}))[0] == 503
        assert (await r.client.get("/readyz")).status == 200  # an in-memory sink needs no Kafka
    sample = observability.registry.get_sample_value
    assert sample("switchboard_stage_events_total", {"stage": "ingest"}) == 1
    assert sample("switchboard_stage_errors_total", {"stage": "ingest"}) == 1
    route = {"route": EVENTS_PATH, "method": "POST"}
    assert sample("switchboard_http_requests_total", {**route, "status": "202"}) == 1
    assert sample("switchboard_http_requests_total", {**route, "status": "503"}) == 1

"""The producer SDK against the real ingestion app on 127.0.0.1: signing, retries with one key, errors."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.ingest import InMemoryEventSink, OutgoingRecord, Placement, SinkUnavailable, ingest_app
from connectors.sdk import Accepted, IngestError, KafkaEventProducer, SwitchboardClient
from schemas import event_id
from tests.unit.connectors.test_ingest import CLIENTS, NOW, SECRET, order_placed

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FlakySink(InMemoryEventSink):
    """A broker that refuses the first `failures` writes."""

    failures: int = 0

    async def produce(self, records: Sequence[OutgoingRecord]) -> list[Placement]:
        if self.failures:
            self.failures -= 1
            raise SinkUnavailable("not now")
        return await super().produce(records)


@dataclass
class Seen:
    """Every request's headers as the server got them, and the delays the client slept."""

    headers: list[dict[str, str]] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


def recording(seen: Seen, lose_first_answers: int = 0, drop_first_connections: int = 0) -> Any:
    """Records headers; can process a request and then lose its answer, like a proxy timing out."""
    state = {"lose": lose_first_answers, "drop": drop_first_connections}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.headers.append(dict(request.headers))
        response = await handler(request)
        if state["lose"]:
            state["lose"] -= 1
            return web.json_response({"error": {"code": "upstream_timeout", "message": "lost", "details": []}},
                                     status=504)
        if state["drop"] and request.transport is not None:
            state["drop"] -= 1
            request.transport.close()
        return response

    return middleware


@asynccontextmanager
async def sdk(sink: InMemoryEventSink | None = None, seen: Seen | None = None, *, retries: int = 5,
              **middleware: int) -> AsyncIterator[tuple[SwitchboardClient, InMemoryEventSink, Seen]]:
    sink = sink if sink is not None else InMemoryEventSink()
    seen = seen if seen is not None else Seen()
    app = ingest_app(sink, CLIENTS, clock=lambda: NOW)
    app.middlewares.append(recording(seen, **middleware))
    async with TestServer(app) as server:
        client = SwitchboardClient(str(server.make_url("/")), "erp-1", SECRET, retries=retries,
                                   rng=random.Random(7), sleep=seen.sleep, clock=lambda: NOW)
        async with client:
            yield client, sink, seen


async def test_send_event_returns_where_the_event_landed() -> None:
    event = order_placed()
    event["envelope"]["occurred_at"] = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)  # datetimes are sent as ISO 8601
    async with sdk() as (client, sink, seen):
        accepted = await client.send_event("OrderPlaced", event)
    assert accepted == Accepted(event_id("Order", "o-1001", 1), "sb.events.business", sink.records[0][1].partition, 0)
    assert seen.headers[0]["X-Switchboard-Client"] == "erp-1"
    assert seen.headers[0]["Idempotency-Key"]  # one is made up when the caller gives none


async def test_send_events_answers_in_order() -> None:
    async with sdk() as (client, _, _):
        accepted = await client.send_events([("OrderPlaced", order_placed(f"o-{i}")) for i in range(3)], "batch-1")
    assert [a.event_id for a in accepted] == [event_id("Order", f"o-{i}", 1) for i in range(3)]


async def test_a_lost_answer_is_retried_with_the_same_key_and_stored_once() -> None:
    async with sdk(lose_first_answers=2) as (client, sink, seen):
        accepted = await client.send_event("OrderPlaced", order_placed(), idempotency_key="erp-order-o-1001-v1")
    assert len(seen.headers) == 3
    assert {h["Idempotency-Key"] for h in seen.headers} == {"erp-order-o-1001-v1"}
    assert len(sink.records) == 1
    assert accepted.event_id == event_id("Order", "o-1001", 1)


async def test_a_dropped_connection_is_retried_with_the_same_key() -> None:
    async with sdk(drop_first_connections=1) as (client, sink, seen):
        await client.send_event("OrderPlaced", order_placed())
    assert len(seen.headers) == 2
    assert seen.headers[0]["Idempotency-Key"] == seen.headers[1]["Idempotency-Key"]
    assert len(sink.records) == 1


async def test_kafka_unavailable_is_retried_with_jittered_exponential_backoff() -> None:
    async with sdk(FlakySink(failures=3)) as (client, sink, seen):
        await client.send_event("OrderPlaced", order_placed())
    assert len(sink.records) == 1
    assert len(seen.delays) == 3
    # full jitter under a doubling ceiling; the server's Retry-After of 1 s is a floor
    assert all(1.0 <= delay <= max(1.0, 0.5 * 2 ** n) for n, delay in enumerate(seen.delays))


async def test_retries_run_out_with_the_servers_code() -> None:
    async with sdk(InMemoryEventSink(unavailable=True), retries=2) as (client, _, seen):
        with pytest.raises(IngestError) as raised:
            await client.send_event("OrderPlaced", order_placed())
    assert (raised.value.code, raised.value.status, len(seen.headers)) == ("kafka_unavailable", 503, 3)


async def test_a_refusal_is_raised_at_once_with_code_status_and_details() -> None:
    bad = order_placed()
    bad["items"][0]["quantity"] = 2.5
    async with sdk() as (client, _, seen):
        with pytest.raises(IngestError) as raised:
            await client.send_event("OrderPlaced", bad)
    error = raised.value
    assert (error.code, error.status, len(seen.headers)) == ("schema_violation", 422, 1)
    assert error.details[0]["field"] == "event.items[0].quantity"
    assert "schema_violation" in str(error)


async def test_a_wrong_secret_is_bad_signature() -> None:
    async with sdk() as (client, _, _):
        wrong = SwitchboardClient(client.url.removesuffix("/v1/events"), "erp-1", "guess", clock=lambda: NOW)
        async with wrong:
            with pytest.raises(IngestError) as raised:
                await wrong.send_event("OrderPlaced", order_placed())
    assert (raised.value.code, raised.value.status) == ("bad_signature", 403)


@asynccontextmanager
async def answering(*answers: web.Response) -> AsyncIterator[str]:
    """A stand-in server giving these answers in turn (for proxies' answers our server never gives)."""
    queue = list(answers)

    async def handler(request: web.Request) -> web.Response:
        return queue.pop(0)

    app = web.Application()
    app.router.add_post("/v1/events", handler)
    async with TestServer(app) as server:
        yield str(server.make_url("/"))


async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    busy = {"error": {"code": "rate_limited", "message": "slow down", "details": []}}
    ok = {"accepted": [{"event_id": "e", "topic": "t", "partition": 0, "offset": 0}]}
    seen = Seen()
    answers = (web.json_response(busy, status=429, headers={"Retry-After": "7"}),
               web.json_response(busy, status=429, headers={"Retry-After": "600"}),
               web.json_response(ok, status=202))
    async with answering(*answers) as url, SwitchboardClient(url, "erp-1", SECRET, sleep=seen.sleep,
                                                             backoff_cap=30) as client:
        assert (await client.send_event("OrderPlaced", order_placed())).event_id == "e"
    assert seen.delays == [7.0, 30.0]


async def test_an_answer_that_is_not_ours_is_bad_response_and_not_retried() -> None:
    seen = Seen()
    async with answering(web.Response(status=500, text="<html>oops</html>")) as url, \
            SwitchboardClient(url, "erp-1", SECRET, sleep=seen.sleep) as client:
        with pytest.raises(IngestError) as raised:
            await client.send_event("OrderPlaced", order_placed())
    assert (raised.value.code, raised.value.status, seen.delays) == ("bad_response", 500, [])


async def test_no_server_is_a_network_error_after_the_retries() -> None:
    seen = Seen()
    async with SwitchboardClient("http://127.0.0.1:9", "erp-1", SECRET, retries=2, sleep=seen.sleep) as client:
        with pytest.raises(IngestError) as raised:
            await client.send_event("OrderPlaced", order_placed())
    assert (raised.value.code, raised.value.status, len(seen.delays)) == ("network_error", None, 2)


async def test_naive_datetimes_and_oversized_batches_fail_before_sending() -> None:
    event = order_placed()
    event["envelope"]["occurred_at"] = datetime(2026, 3, 1, 9, 30)
    async with SwitchboardClient("http://127.0.0.1:9", "erp-1", SECRET, retries=0) as client:
        with pytest.raises(ValueError, match="naive datetime"):
            await client.send_event("OrderPlaced", event)
        with pytest.raises(ValueError, match="1 to 500"):
            await client.send_events([("OrderPlaced", order_placed(f"o-{i}")) for i in range(501)])


def test_the_secret_stays_out_of_repr() -> None:
    assert SECRET not in repr(SwitchboardClient("http://127.0.0.1:9", "erp-1", SECRET))


async def test_direct_production_checks_events_before_touching_kafka() -> None:
    producer = KafkaEventProducer("127.0.0.1:9")  # never started: every case fails before a record is sent
    with pytest.raises(IngestError) as not_business:
        await producer.send("MessageSent", order_placed())
    bad = order_placed()
    del bad["currency"]
    with pytest.raises(IngestError) as invalid:
        await producer.send("OrderPlaced", bad)
    assert (not_business.value.code, not_business.value.status) == ("event_type_not_allowed", None)
    assert (invalid.value.code, invalid.value.details[0]["field"]) == ("schema_violation", "events[0].event.currency")

"""Delivery lanes: per-message order across separate submits, the dead-letter tail rule, no unsigned callbacks."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime

import pytest

from connectors import InMemoryTransport, Secret, TransportRequest, TransportResponse
from connectors._feeder_lanes import INVALID_CALLBACK_URL, NO_SIGNING_SECRET, DeliveryLanes
from connectors.callbacks import (
    EVENT_ID_HEADER,
    CallbackDispatcher,
    CallbackEvent,
    DeadLetter,
    DeadLetterCause,
    InMemoryDeadLetterSink,
    verify_callback,
)
from streams.policies.backoff import RetryPolicy

URL = "https://erp.example/status?token=abc"
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SECRETS = {"acme": Secret("whsec_acme")}


def event(message_id: str, sequence: int, tenant_id: str = "acme") -> CallbackEvent:
    return CallbackEvent(message_id, tenant_id, "MessageDelivered", sequence, AT, {"n": sequence})


async def no_wait(seconds: float) -> None:
    return None  # delays are the policy's business; these tests are about order


def lanes(transport: InMemoryTransport, sink: InMemoryDeadLetterSink | None = None,
          attempts: int = 3) -> tuple[DeliveryLanes, InMemoryDeadLetterSink]:
    sink = sink if sink is not None else InMemoryDeadLetterSink()
    dispatcher = CallbackDispatcher(transport, RetryPolicy(max_attempts=attempts), sink, sleep=no_wait,
                                    rng=random.Random(3))
    return DeliveryLanes(dispatcher, sink, SECRETS.get, memory=100), sink


def sent_ids(transport: InMemoryTransport) -> list[str]:
    return [request.headers[EVENT_ID_HEADER] for request in transport.requests]


async def test_separate_submits_of_one_message_go_out_in_order_behind_a_slow_first() -> None:
    gate = asyncio.Event()

    async def answer(request: TransportRequest) -> TransportResponse:
        if request.headers[EVENT_ID_HEADER] == "m-1:1":
            await gate.wait()
        return TransportResponse(200, {}, b"")

    transport = InMemoryTransport(handler=answer)
    lane, sink = lanes(transport)
    first, second = lane.submit(URL, event("m-1", 1)), lane.submit(URL, event("m-1", 2))
    other = lane.submit(URL, event("m-2", 1))
    await other  # another message is not held up by m-1
    assert sent_ids(transport) == ["m-1:1", "m-2:1"]
    gate.set()
    await asyncio.gather(first, second)
    assert sent_ids(transport) == ["m-1:1", "m-2:1", "m-1:2"]
    assert (lane.stats.delivered, sink.letters) == (3, [])


async def test_after_a_dead_letter_later_submits_of_the_message_are_skipped_not_sent() -> None:
    transport = InMemoryTransport(handler=lambda r: TransportResponse(410 if r.headers[EVENT_ID_HEADER] == "m-1:2"
                                                                      else 200, {}, b""))
    lane, sink = lanes(transport)
    await asyncio.gather(lane.submit(URL, event("m-1", 1)), lane.submit(URL, event("m-1", 2)))
    await lane.submit(URL, event("m-1", 3))  # a later poll, a separate submit: still never sent
    await lane.submit(URL, event("m-9", 1))
    assert sent_ids(transport) == ["m-1:1", "m-1:2", "m-9:1"]
    assert [(d.event.event_id, d.cause) for d in sink.letters] == [
        ("m-1:2", DeadLetterCause.REJECTED), ("m-1:3", DeadLetterCause.SKIPPED)]
    assert sink.letters[1].reason == "not sent: earlier event m-1:2 was dead-lettered"
    assert lane.given_up(URL, "m-1")
    assert not lane.given_up(URL, "m-9")
    assert (lane.stats.delivered, lane.stats.dead_lettered) == (2, 2)


async def test_every_attempt_is_signed_with_the_tenants_secret() -> None:
    transport = InMemoryTransport.scripted([TransportResponse(503, {}, b""), TransportResponse(200, {}, b"")])
    lane, _ = lanes(transport)
    await lane.submit(URL, event("m-1", 1))
    for request in transport.requests:
        assert request.body is not None
        verify_callback(request.headers, request.body, "whsec_acme")
    assert len(transport.requests) == 2


async def test_without_a_secret_nothing_is_sent_and_the_tenant_is_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    transport = InMemoryTransport(handler=lambda r: TransportResponse(200, {}, b""))
    lane, sink = lanes(transport)
    with caplog.at_level(logging.WARNING):
        for task in [lane.submit(URL, event("m-1", 1, "globex")), lane.submit(URL, event("m-1", 2, "globex")),
                     lane.submit(URL, event("m-2", 1, "globex"))]:
            await task
    assert transport.requests == []
    assert [(d.event.event_id, d.cause, d.reason, d.attempts) for d in sink.letters] == [
        ("m-1:1", DeadLetterCause.UNSENDABLE, NO_SIGNING_SECRET, 0),
        ("m-1:2", DeadLetterCause.UNSENDABLE, NO_SIGNING_SECRET, 0),
        ("m-2:1", DeadLetterCause.UNSENDABLE, NO_SIGNING_SECRET, 0)]
    warnings = [r for r in caplog.records if "no signing secret" in r.getMessage()]
    assert len(warnings) == 1
    assert "SWITCHBOARD_CALLBACK_SECRET_GLOBEX" in warnings[0].getMessage()
    assert "token=abc" not in caplog.text


async def test_a_message_dead_lettered_for_a_missing_secret_stays_given_up_once_the_secret_exists() -> None:
    secrets: dict[str, Secret] = {}
    transport = InMemoryTransport(handler=lambda r: TransportResponse(200, {}, b""))
    sink = InMemoryDeadLetterSink()
    dispatcher = CallbackDispatcher(transport, RetryPolicy(max_attempts=2), sink, sleep=no_wait)
    lane = DeliveryLanes(dispatcher, sink, secrets.get, memory=100)
    await lane.submit(URL, event("m-1", 1))
    secrets["acme"] = Secret("whsec_acme")  # configured later: m-1:2 must not arrive without m-1:1
    await lane.submit(URL, event("m-1", 2))
    await lane.submit(URL, event("m-2", 1))
    assert sent_ids(transport) == ["m-2:1"]
    assert [(d.event.event_id, d.reason) for d in sink.letters] == [
        ("m-1:1", NO_SIGNING_SECRET), ("m-1:2", "not sent: earlier event m-1:1 was dead-lettered")]


async def test_an_unusable_url_is_dead_lettered_not_sent() -> None:
    transport = InMemoryTransport(handler=lambda r: TransportResponse(200, {}, b""))
    lane, sink = lanes(transport)
    await lane.submit("ftp://files.example/x", event("m-1", 1))
    assert transport.requests == []
    assert [(d.reason, d.target_url, d.cause) for d in sink.letters] == [
        (INVALID_CALLBACK_URL, "ftp://files.example/x", DeadLetterCause.UNSENDABLE)]


class BrokenSink:
    """A dead-letter sink whose broker is gone."""

    async def put(self, letter: DeadLetter) -> None:
        raise ConnectionError("broker unreachable")


async def test_when_dead_lettering_fails_the_rest_of_the_lane_fails_too_and_is_not_sent() -> None:
    transport = InMemoryTransport(handler=lambda r: TransportResponse(410, {}, b""))
    dispatcher = CallbackDispatcher(transport, RetryPolicy(max_attempts=1), BrokenSink(), sleep=no_wait)
    lane = DeliveryLanes(dispatcher, BrokenSink(), SECRETS.get, memory=100)
    first, second = lane.submit(URL, event("m-1", 1)), lane.submit(URL, event("m-1", 2))
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    assert sent_ids(transport) == ["m-1:1"]


async def test_cancelling_a_later_event_leaves_the_earlier_one_running() -> None:
    gate = asyncio.Event()

    async def answer(request: TransportRequest) -> TransportResponse:
        await gate.wait()
        return TransportResponse(200, {}, b"")

    transport = InMemoryTransport(handler=answer)
    lane, _ = lanes(transport)
    first, second = lane.submit(URL, event("m-1", 1)), lane.submit(URL, event("m-1", 2))
    await asyncio.sleep(0)  # let both tasks start: the second now waits behind the first
    second.cancel()
    gate.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    assert sent_ids(transport) == ["m-1:1"]

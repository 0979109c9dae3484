"""Status callbacks: signing, per-message order under retries, dead letters, concurrency, a real HTTP receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest
from aiohttp import web

from connectors import (
    AiohttpTransport,
    InMemoryTransport,
    Secret,
    SignatureInvalid,
    SignatureMissing,
    TransportError,
    TransportRequest,
    TransportResponse,
    TransportTimeout,
)
from connectors.callbacks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CallbackDispatcher,
    CallbackEvent,
    CallbackSigner,
    CallbackTarget,
    DeadLetterCause,
    DeadLetterSink,
    InMemoryDeadLetterSink,
    callback_signature,
    is_permanent_status,
    verify_callback,
)
from streams.policies.backoff import RetryPolicy
from switchboard.serving import Served, serve

SECRET = "whsec_test"
NOW = 1_700_000_000
URL = "https://erp.example.com/switchboard/status?token=abc"
TARGET = CallbackTarget(URL, Secret(SECRET))
OK = TransportResponse(200, {}, b"")
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def events(message_id: str, count: int = 3, tenant_id: str = "tenant-1") -> list[CallbackEvent]:
    kinds = ["MessageAcceptedByProvider", "MessageSent", "MessageDelivered", "MessageRead", "MessageFailed"]
    return [CallbackEvent(message_id, tenant_id, kinds[i % len(kinds)], i + 1, AT, {"n": i + 1}) for i in range(count)]


def event_id(request: TransportRequest) -> str:
    return request.headers[EVENT_ID_HEADER]


class Sleeps:
    """An injected sleep: records the delays, never waits."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def dispatcher(transport: InMemoryTransport | AiohttpTransport, *, policy: RetryPolicy | None = None,
               sink: InMemoryDeadLetterSink | None = None, sleeps: Sleeps | None = None,
               max_concurrency: int = 16, seed: int = 7) -> CallbackDispatcher:
    return CallbackDispatcher(transport, policy or RetryPolicy(max_attempts=5, base_seconds=1.0, cap_seconds=30.0),
                              sink if sink is not None else InMemoryDeadLetterSink(), clock=lambda: NOW,
                              sleep=sleeps or Sleeps(), rng=random.Random(seed), max_concurrency=max_concurrency)


# --- signatures -------------------------------------------------------------------------------------------------


def test_signature_matches_an_independently_computed_vector() -> None:
    body = b'{"event_id":"m-1:1"}'
    independent = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    # pinned as well (openssl dgst -sha256 -hmac whsec_test over '1700000000.{"event_id":"m-1:1"}')
    assert independent == "1e48e3583a45b20ea72f8b25cb25b51ed80417d6af3515b003c8d2c6c9921144"
    assert callback_signature(Secret(SECRET), NOW, body) == f"v1={independent}"
    assert CallbackSigner(lambda: NOW + 0.9).sign(Secret(SECRET), body) == {
        TIMESTAMP_HEADER: "1700000000", SIGNATURE_HEADER: f"v1={independent}"}


def test_verify_callback_accepts_a_signed_body_within_the_window() -> None:
    body = events("m-1")[0].to_json()
    headers = CallbackSigner(lambda: NOW).sign(Secret(SECRET), body)
    assert verify_callback(headers, body, SECRET, now=NOW) == NOW
    assert verify_callback({k.lower(): v for k, v in headers.items()}, body, Secret(SECRET), now=NOW + 300) == NOW
    assert verify_callback(headers, body, SECRET.encode(), now=NOW - 300) == NOW
    rotated = {**headers, SIGNATURE_HEADER: f"v1={'0' * 64}, {headers[SIGNATURE_HEADER]}"}
    assert verify_callback(rotated, body, SECRET, now=NOW) == NOW


@pytest.mark.parametrize(("change", "error"), [
    ("no signature", SignatureMissing),
    ("no timestamp", SignatureMissing),
    ("other body", SignatureInvalid),
    ("other secret", SignatureInvalid),
    ("stale", SignatureInvalid),
    ("future", SignatureInvalid),
    ("timestamp not a number", SignatureInvalid),
    ("other timestamp", SignatureInvalid),
    ("no version", SignatureInvalid),
])
def test_verify_callback_rejects(change: str, error: type[Exception]) -> None:
    body = b'{"event_id":"m-1:1"}'
    headers = CallbackSigner(lambda: NOW).sign(Secret(SECRET), body)
    secret, now = SECRET, float(NOW)
    if change == "no signature":
        del headers[SIGNATURE_HEADER]
    elif change == "no timestamp":
        del headers[TIMESTAMP_HEADER]
    elif change == "other body":
        body = body.replace(b"1", b"2")
    elif change == "other secret":
        secret = "whsec_other"
    elif change == "stale":
        now = NOW + 301
    elif change == "future":
        now = NOW - 301
    elif change == "timestamp not a number":
        headers[TIMESTAMP_HEADER] = "1.7e9"
    elif change == "other timestamp":
        headers[TIMESTAMP_HEADER] = str(NOW + 1)
    elif change == "no version":
        headers[SIGNATURE_HEADER] = headers[SIGNATURE_HEADER].removeprefix("v1=")
    with pytest.raises(error):
        verify_callback(headers, body, secret, now=now)


def test_target_and_dead_letters_never_show_the_secret() -> None:
    assert SECRET not in repr(TARGET)
    assert SECRET not in str(TARGET)
    with pytest.raises(ValueError, match="http"):
        CallbackTarget("ftp://erp.example.com/x", Secret(SECRET))


def test_event_body_and_validation() -> None:
    event = events("m-1")[0]
    assert event.event_id == "m-1:1"
    assert json.loads(event.to_json()) == {
        "event_id": "m-1:1", "message_id": "m-1", "tenant_id": "tenant-1", "event_type": "MessageAcceptedByProvider",
        "sequence": 1, "occurred_at": "2026-11-25T12:00:00+00:00", "payload": {"n": 1}}
    with pytest.raises(ValueError, match="timezone"):
        CallbackEvent("m-1", "t", "MessageSent", 1, datetime(2026, 1, 1), {})
    with pytest.raises(ValueError, match="sequence"):
        CallbackEvent("m-1", "t", "MessageSent", -1, AT, {})


async def test_deliver_refuses_mixed_messages_and_unordered_sequences() -> None:
    transport = InMemoryTransport(handler=lambda request: OK)
    sender = dispatcher(transport)
    with pytest.raises(ValueError, match="one message"):
        await sender.deliver(TARGET, [*events("m-1", 1), *events("m-2", 1)])
    with pytest.raises(ValueError, match="increase"):
        await sender.deliver(TARGET, list(reversed(events("m-1", 2))))
    assert transport.requests == []
    assert (await sender.deliver(TARGET, [])).requests == 0


def test_permanent_statuses() -> None:
    assert [s for s in (200, 301, 400, 401, 404, 408, 409, 410, 422, 429, 500, 503) if is_permanent_status(s)] == [
        400, 401, 404, 409, 410, 422]


# --- delivery over an in-memory transport -------------------------------------------------------------------------


async def test_delivers_in_order_with_signed_idempotent_requests() -> None:
    transport = InMemoryTransport(handler=lambda request: OK)
    sink = InMemoryDeadLetterSink()
    report = await dispatcher(transport, sink=sink).deliver(TARGET, events("m-1"))
    assert report.complete
    assert report.requests == 3
    assert [e.event_id for e in report.delivered] == ["m-1:1", "m-1:2", "m-1:3"]
    assert [event_id(r) for r in transport.requests] == ["m-1:1", "m-1:2", "m-1:3"]
    for request, event in zip(transport.requests, events("m-1"), strict=True):
        assert (request.method, request.url, request.body) == ("POST", URL, event.to_json())
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-Switchboard-Delivery-Attempt"] == "1"
        assert verify_callback(request.headers, request.body or b"", SECRET, now=NOW) == NOW
        assert SECRET not in repr(request.headers)
    assert sink.letters == []


async def test_retries_the_same_event_before_sending_the_next() -> None:
    failures: dict[str, list[TransportResponse | TransportError]] = {
        "m-1:1": [TransportResponse(503, {}, b""), TransportTimeout("slow")],
        "m-1:2": [TransportError("reset", maybe_sent=True), TransportResponse(500, {}, b"")]}

    def handler(request: TransportRequest) -> TransportResponse:
        pending = failures.get(event_id(request), [])
        if pending:
            outcome = pending.pop(0)
            if isinstance(outcome, TransportError):
                raise outcome
            return outcome
        return OK

    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=5, base_seconds=1.0, cap_seconds=30.0)
    transport = InMemoryTransport(handler=handler)
    report = await dispatcher(transport, policy=policy, sleeps=sleeps, seed=42).deliver(TARGET, events("m-1"))
    assert report.complete
    assert [event_id(r) for r in transport.requests] == ["m-1:1"] * 3 + ["m-1:2"] * 3 + ["m-1:3"]
    assert [r.headers["X-Switchboard-Delivery-Attempt"] for r in transport.requests] == list("1231231")
    expected = random.Random(42)
    assert sleeps.delays == [policy.delay(n, expected) for n in (1, 2, 1, 2)]
    assert report.requests == 7


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 302])
async def test_transient_statuses_are_retried(status: int) -> None:
    transport = InMemoryTransport.scripted([TransportResponse(status, {"Retry-After": "1"}, b"")])
    transport.handler = lambda request: OK
    sink = InMemoryDeadLetterSink()
    report = await dispatcher(transport, sink=sink).deliver(TARGET, events("m-1", 2))
    assert report.complete
    assert [event_id(r) for r in transport.requests] == ["m-1:1", "m-1:1", "m-1:2"]
    assert sink.letters == []


async def test_a_retry_waits_as_long_as_the_receiver_asks_up_to_the_policy_s_cap() -> None:
    busy = [TransportResponse(429, {"Retry-After": "45"}, b""), TransportResponse(503, {"Retry-After": "9999"}, b""),
            TransportResponse(503, {"Retry-After": "soon"}, b"")]
    transport = InMemoryTransport.scripted(busy)
    transport.handler = lambda request: OK
    policy, sleeps = RetryPolicy(max_attempts=5, base_seconds=1.0, factor=2.0, cap_seconds=120.0), Sleeps()
    report = await dispatcher(transport, policy=policy, sleeps=sleeps).deliver(TARGET, events("m-1"))
    assert report.complete
    assert sleeps.delays[:2] == [45.0, 120.0]  # as asked; a day asked for is held to the cap
    assert sleeps.delays[2] <= policy.ceiling(3)  # an unreadable Retry-After: the policy's own jittered delay


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
async def test_permanent_4xx_dead_letters_the_event_and_the_rest_of_the_message(status: int) -> None:
    def handler(request: TransportRequest) -> TransportResponse:
        return TransportResponse(status, {}, b"no") if event_id(request) == "m-1:2" else OK

    transport = InMemoryTransport(handler=handler)
    sink = InMemoryDeadLetterSink()
    sleeps = Sleeps()
    report = await dispatcher(transport, sink=sink, sleeps=sleeps).deliver(TARGET, events("m-1", 4))
    assert [event_id(r) for r in transport.requests] == ["m-1:1", "m-1:2"]  # 3 and 4 are never sent
    assert sleeps.delays == []
    assert [e.event_id for e in report.delivered] == ["m-1:1"]
    assert list(report.dead_letters) == sink.letters
    assert [(d.event.event_id, d.cause, d.attempts, d.last_status) for d in sink.letters] == [
        ("m-1:2", DeadLetterCause.REJECTED, 1, status),
        ("m-1:3", DeadLetterCause.SKIPPED, 0, None),
        ("m-1:4", DeadLetterCause.SKIPPED, 0, None)]
    assert f"HTTP {status}" in sink.letters[0].reason
    assert "m-1:2" in sink.letters[1].reason
    assert all(d.target_url == URL and SECRET not in repr(d) for d in sink.letters)


async def test_max_attempts_dead_letters_with_the_last_status_and_attempts() -> None:
    transport = InMemoryTransport(handler=lambda request: TransportResponse(503, {}, b""))
    sink = InMemoryDeadLetterSink()
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=3, base_seconds=0.5, cap_seconds=5.0)
    report = await dispatcher(transport, policy=policy, sink=sink, sleeps=sleeps).deliver(TARGET, events("m-1", 2))
    assert [event_id(r) for r in transport.requests] == ["m-1:1"] * 3
    assert len(sleeps.delays) == 2
    assert all(0 <= d <= policy.ceiling(n) for n, d in enumerate(sleeps.delays, 1))
    first, rest = sink.letters
    assert (first.cause, first.attempts, first.last_status) == (DeadLetterCause.EXHAUSTED, 3, 503)
    assert "HTTP 503" in first.reason
    assert "3 attempts" in first.reason
    assert (rest.event.event_id, rest.cause) == ("m-1:2", DeadLetterCause.SKIPPED)
    assert report.requests == 3
    assert not report.complete


async def test_max_attempts_after_timeouts_names_the_timeout() -> None:
    transport = InMemoryTransport.scripted([TransportError("refused", maybe_sent=False), TransportTimeout("10 s")])
    sink = InMemoryDeadLetterSink()
    await dispatcher(transport, policy=RetryPolicy(max_attempts=2), sink=sink).deliver(TARGET, events("m-1", 1))
    (letter,) = sink.letters
    assert (letter.cause, letter.attempts, letter.last_status) == (DeadLetterCause.EXHAUSTED, 2, None)
    assert "timeout" in letter.reason
    assert "2 attempts" in letter.reason


async def test_logs_carry_neither_the_secret_nor_the_query_string(caplog: pytest.LogCaptureFixture) -> None:
    transport = InMemoryTransport(handler=lambda request: TransportResponse(500, {}, b""))
    with caplog.at_level(logging.INFO, logger="connectors.callbacks"):
        await dispatcher(transport, policy=RetryPolicy(max_attempts=2)).deliver(TARGET, events("m-1", 2))
    assert "m-1:1" in caplog.text
    assert "https://erp.example.com/switchboard/status" in caplog.text
    assert SECRET not in caplog.text
    assert "token=abc" not in caplog.text


async def test_messages_are_delivered_concurrently_but_each_in_order() -> None:
    limit, messages = 3, [f"m-{n}" for n in range(8)]
    in_flight, peak = 0, 0
    changed = asyncio.Condition()
    flaky = random.Random(3)

    async def handler(request: TransportRequest) -> TransportResponse:
        nonlocal in_flight, peak
        async with changed:
            in_flight += 1
            peak = max(peak, in_flight)
            changed.notify_all()
            # the first wave waits until `limit` messages are in flight at once: proves they overlap
            await asyncio.wait_for(changed.wait_for(lambda: peak >= limit), 5)
        await asyncio.sleep(0)  # stays in flight across a scheduling point: an unbounded dispatcher would exceed limit
        in_flight -= 1
        return TransportResponse(503, {}, b"") if flaky.random() < 0.3 else OK

    transport = InMemoryTransport(handler=handler)
    sink = InMemoryDeadLetterSink()
    sender = dispatcher(transport, sink=sink, max_concurrency=limit, policy=RetryPolicy(max_attempts=50))
    reports = await sender.deliver_all((TARGET, events(m, 4)) for m in messages)
    assert peak == limit  # concurrent, and never more than the bound
    assert sink.letters == []
    assert all(r.complete for r in reports)
    sent: dict[str, list[int]] = defaultdict(list)
    for request in transport.requests:
        message, _, sequence = event_id(request).partition(":")
        sent[message].append(int(sequence))
    for message in messages:
        deduped = [s for i, s in enumerate(sent[message]) if i == 0 or sent[message][i - 1] != s]
        assert deduped == [1, 2, 3, 4], (message, sent[message])  # retries repeat an event, never skip back
    interleaved = [event_id(r).partition(":")[0] for r in transport.requests]
    assert interleaved != sorted(interleaved, key=messages.index)  # messages really overlapped


async def test_two_deliveries_for_the_same_message_stay_in_call_order() -> None:
    transport = InMemoryTransport.scripted([TransportResponse(503, {}, b"")] * 2)
    transport.handler = lambda request: OK
    sender = dispatcher(transport)
    first, second = events("m-1", 4)[:2], events("m-1", 4)[2:]
    await asyncio.gather(sender.deliver(TARGET, first), sender.deliver(TARGET, second))
    assert [event_id(r) for r in transport.requests] == ["m-1:1"] * 3 + ["m-1:2", "m-1:3", "m-1:4"]


def test_in_memory_sink_is_a_dead_letter_sink() -> None:
    assert isinstance(InMemoryDeadLetterSink(), DeadLetterSink)


# --- over HTTP, against a real receiver -------------------------------------------------------------------------


class FlakyReceiver:
    """A business system on 127.0.0.1: answers 503 to the first 2 attempts of every event, verifies signatures."""

    def __init__(self, secret: str, failures_per_event: int = 2) -> None:
        self.secret = secret
        self.failures_per_event = failures_per_event
        self.seen: Counter[str] = Counter()
        self.accepted: list[dict[str, object]] = []  # deduped by event id, in arrival order
        self.invalid = 0
        self._changed = asyncio.Condition()
        self._served: Served | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/callbacks", self._post)
        self._served = await serve(app, access_log=None, shutdown_timeout=1.0)
        self.url = f"{self._served.url}/callbacks"

    async def stop(self) -> None:
        if self._served is not None:
            await self._served.close()

    async def wait_for_count(self, count: int, timeout: float = 10.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.accepted) >= count), timeout)

    async def _post(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            verify_callback(request.headers, raw, self.secret)  # the real clock: the dispatcher signs with it too
        except (SignatureMissing, SignatureInvalid) as refused:
            self.invalid += 1
            return web.Response(status=refused.http_status)
        event_id = request.headers[EVENT_ID_HEADER]
        self.seen[event_id] += 1
        if self.seen[event_id] <= self.failures_per_event:
            return web.Response(status=503)
        document = json.loads(raw)
        assert document["event_id"] == event_id
        async with self._changed:
            if all(a["event_id"] != event_id for a in self.accepted):  # a receiver dedupes by event id
                self.accepted.append(document)
            self._changed.notify_all()
        return web.json_response({"ok": True})


async def test_real_http_receiver_gets_every_event_once_in_order_with_valid_signatures() -> None:
    receiver = FlakyReceiver(SECRET)
    await receiver.start()
    transport = AiohttpTransport(timeout=5.0)
    sleeps = Sleeps()
    sink = InMemoryDeadLetterSink()
    try:
        sender = CallbackDispatcher(transport, RetryPolicy(max_attempts=4), sink, sleep=sleeps,
                                    rng=random.Random(1), max_concurrency=3)
        target = CallbackTarget(receiver.url, Secret(SECRET))
        batches = {f"m-{n}": events(f"m-{n}", 3, tenant_id="tenant-9") for n in range(5)}
        reports = await sender.deliver_all((target, batch) for batch in batches.values())
        await receiver.wait_for_count(15)
    finally:
        await transport.aclose()
        await receiver.stop()
    assert all(r.complete for r in reports)
    assert sink.letters == []
    assert receiver.invalid == 0
    assert receiver.seen == Counter({e.event_id: 3 for batch in batches.values() for e in batch})
    assert len(sleeps.delays) == 2 * 15
    ids = [str(a["event_id"]) for a in receiver.accepted]
    assert sorted(ids) == sorted(e.event_id for batch in batches.values() for e in batch)  # each exactly once
    for message, batch in batches.items():
        assert [a["sequence"] for a in receiver.accepted if a["message_id"] == message] == [1, 2, 3]
        assert [a for a in receiver.accepted if a["message_id"] == message] == [json.loads(e.to_json()) for e in batch]

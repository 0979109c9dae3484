"""The webhook receiver over real HTTP (aiohttp's test server) with an in-memory sink: every answer and record."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors import SIGNATURE_HEADER, InMemoryTransport, SecretSource
from connectors._receiver_http import FailuresAccessLogger
from connectors.receiver import CONTENT_SHA256, InMemoryWebhookSink, ReceiverConfig, build_receiver_app
from connectors.twilio_sms import TwilioSmsDriver
from connectors.whatsapp import WhatsAppDriver
from connectors.whatsapp_simulator import status_object, status_webhook_body
from switchboard.serving import serving
from tests.contract.sms_support import WEBHOOK_URL as SMS_WEBHOOK_URL
from tests.contract.sms_support import config as sms_config
from tests.contract.sms_support import expected_signature
from tests.contract.whatsapp_support import APP_SECRET, VERIFY_TOKEN, driver_config, signed

URL = "/webhooks/whatsapp"
LIMIT = 4096


class FailingSink(InMemoryWebhookSink):
    """Refuses to store the next `failures` accepted bodies, like a broker that is down."""

    failures = 1

    async def accept(self, channel: str, raw: bytes, headers: Mapping[str, str]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable for +15551234567")
        await super().accept(channel, raw, headers)


@dataclass
class Running:
    client: TestClient[web.Request, web.Application]
    sink: InMemoryWebhookSink


@asynccontextmanager
async def receiver(sink: InMemoryWebhookSink | None = None) -> AsyncIterator[Running]:
    sink = sink if sink is not None else InMemoryWebhookSink()
    driver = WhatsAppDriver(driver_config())
    app = build_receiver_app(ReceiverConfig({"whatsapp": driver}, max_body_bytes=LIMIT), sink)
    async with TestClient(TestServer(app)) as client:
        yield Running(client, sink)
    await driver.aclose()


def receipt_body(status: str = "delivered") -> bytes:
    statuses = [status_object("wamid.X1", status, 1_760_000_000, "15551234567", callback_data="order-1")]
    return json.dumps(status_webhook_body("200000000000001", "100000000000001", "15550001111", statuses)).encode()


async def test_handshake_echoes_the_challenge() -> None:
    async with receiver() as r:
        query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
        answer = await r.client.get(URL, params=query)
        assert (answer.status, await answer.text()) == (200, "1158201444")


async def test_handshake_with_a_wrong_token_is_403() -> None:
    async with receiver() as r:
        query = {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}
        answer = await r.client.get(URL, params=query)
        assert answer.status == 403
        assert await answer.json() == {"error": "handshake_rejected"}


async def test_a_signed_post_is_stored_byte_for_byte_before_200() -> None:
    raw = receipt_body() + b"\n"  # bytes as sent, whitespace included: a re-encoding would break the signature
    async with receiver() as r:
        answer = await r.client.post(URL, data=raw, headers=signed(raw))
        assert answer.status == 200
        [record] = r.sink.accepted
        assert record.raw == raw
        assert record.channel == "whatsapp"
        assert record.headers["signature-verified"] == "true"
        assert record.headers[CONTENT_SHA256] == hashlib.sha256(raw).hexdigest()
        assert int(record.headers["received_at"]) > 1_700_000_000_000
        assert not r.sink.rejected
        WhatsAppDriver(driver_config()).verify_webhook(signed(record.raw), record.raw)


async def test_a_duplicate_gets_the_same_sha() -> None:
    raw = receipt_body()
    async with receiver() as r:
        for _ in range(2):
            assert (await r.client.post(URL, data=raw, headers=signed(raw))).status == 200
        assert len({record.headers[CONTENT_SHA256] for record in r.sink.accepted}) == 1


async def test_missing_signature_is_401_and_kept_as_a_reject() -> None:
    raw = receipt_body()
    async with receiver() as r:
        answer = await r.client.post(URL, data=raw, headers={"Content-Type": "application/json",
                                                             "User-Agent": "probe/1"})
        assert answer.status == 401
        assert await answer.json() == {"error": "signature_missing"}
        [reject] = r.sink.rejected
        assert (reject.reason, reject.raw) == ("signature_missing", raw)
        assert reject.headers["signature-present"] == "false"
        assert reject.headers["user-agent"] == "probe/1"
        assert reject.headers["content-type"] == "application/json"
        assert reject.headers[CONTENT_SHA256] == hashlib.sha256(raw).hexdigest()
        assert reject.headers["status"] == "401"
        assert not r.sink.accepted


async def test_wrong_signature_is_403_and_kept_as_a_reject() -> None:
    raw = receipt_body()
    async with receiver() as r:
        answer = await r.client.post(URL, data=raw, headers=signed(raw, secret="not-" + APP_SECRET))
        assert answer.status == 403
        [reject] = r.sink.rejected
        assert (reject.reason, reject.headers["signature-present"]) == ("signature_invalid", "true")
        assert not r.sink.accepted


async def test_signed_but_malformed_is_400_and_kept_as_a_reject() -> None:
    async with receiver() as r:
        for raw in (b"{not json", b'{"object": "page", "entry": []}'):
            answer = await r.client.post(URL, data=raw, headers=signed(raw))
            assert answer.status == 400
        assert [x.reason for x in r.sink.rejected] == ["malformed_webhook", "malformed_webhook"]
        assert [x.raw for x in r.sink.rejected] == [b"{not json", b'{"object": "page", "entry": []}']
        assert not r.sink.accepted


async def test_oversize_is_413_whether_declared_or_streamed() -> None:
    raw = b"x" * (LIMIT + 1)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 1000):
            yield raw[start:start + 1000]

    async with receiver() as r:
        declared = await r.client.post(URL, data=raw, headers=signed(raw))
        streamed = await r.client.post(URL, data=chunks(), headers=signed(raw))  # chunked: no Content-Length
        assert (declared.status, streamed.status) == (413, 413)
        assert [x.reason for x in r.sink.rejected] == ["body_too_large", "body_too_large"]
        assert {x.headers["body-truncated"] for x in r.sink.rejected} == {"true"}
        assert all(len(x.raw) <= LIMIT + 1 for x in r.sink.rejected)
        assert not r.sink.accepted


async def test_a_body_at_the_limit_is_accepted() -> None:
    base = receipt_body()
    raw = base + b" " * (LIMIT - len(base))
    async with receiver() as r:
        assert (await r.client.post(URL, data=raw, headers=signed(raw))).status == 200
        assert [x.raw for x in r.sink.accepted] == [raw]


async def test_unknown_channel_is_404_and_writes_nothing() -> None:
    raw = receipt_body()
    async with receiver() as r:
        post = await r.client.post("/webhooks/telegram", data=raw, headers=signed(raw))
        get = await r.client.get("/webhooks/telegram", params={"hub.mode": "subscribe"})
        assert (post.status, get.status) == (404, 404)
        assert await post.json() == {"error": "unknown_channel"}
        assert not r.sink.accepted
        assert not r.sink.rejected


async def test_a_failing_sink_is_500_then_the_next_request_works(caplog: pytest.LogCaptureFixture) -> None:
    raw = receipt_body()
    async with receiver(FailingSink()) as r:
        failed = await r.client.post(URL, data=raw, headers=signed(raw))
        assert failed.status == 500
        assert await failed.json() == {"error": "internal_error"}
        assert not r.sink.accepted
        assert "+15551234567" not in caplog.text
        assert "ConnectionError" in caplog.text
        retried = await r.client.post(URL, data=raw, headers=signed(raw))
        assert retried.status == 200
        assert [x.raw for x in r.sink.accepted] == [raw]


async def test_a_failing_reject_write_still_answers_the_rejection() -> None:
    class BrokenRejects(InMemoryWebhookSink):
        async def reject(self, channel: str, reason: str, raw: bytes, headers: Mapping[str, str]) -> None:
            raise ConnectionError("down")

    async with receiver(BrokenRejects()) as r:
        assert (await r.client.post(URL, data=b"{}", headers={SIGNATURE_HEADER: "sha256=00"})).status == 403


async def test_a_missing_app_secret_is_500_not_a_reject() -> None:
    config = replace(driver_config(), app_secret=SecretSource("SB_TEST_UNSET_SECRET", environ={}))
    app = build_receiver_app(ReceiverConfig({"whatsapp": WhatsAppDriver(config)}), sink := InMemoryWebhookSink())
    async with TestClient(TestServer(app)) as client:
        raw = receipt_body()
        answer = await client.post(URL, data=raw, headers=signed(raw))
        assert answer.status == 500
    assert (sink.accepted, sink.rejected) == ([], [])


async def test_the_access_log_keeps_refusals_not_accepted_webhooks(caplog: pytest.LogCaptureFixture) -> None:
    driver = WhatsAppDriver(driver_config())
    app = build_receiver_app(ReceiverConfig({"whatsapp": driver}, max_body_bytes=LIMIT), InMemoryWebhookSink())
    raw = receipt_body()
    try:
        async with serving(app, access_log_class=FailuresAccessLogger) as base:  # as run_receiver serves it
            with caplog.at_level(logging.INFO, logger="aiohttp.access"):
                async with aiohttp.ClientSession() as session:
                    async with session.post(f"{base}{URL}", data=raw, headers=signed(raw)) as answer:
                        assert answer.status == 200
                    async with session.post(f"{base}{URL}", data=raw,
                                            headers={"X-Hub-Signature-256": "sha256=00"}) as answer:
                        assert answer.status == 403
    finally:
        await driver.aclose()
    lines = [record.getMessage() for record in caplog.records if record.name == "aiohttp.access"]
    assert len(lines) == 1, lines
    assert "POST /webhooks/whatsapp" in lines[0]
    assert " 403 " in lines[0]


async def test_a_twilio_status_callback_is_verified_with_its_query_and_stored_with_it() -> None:
    # The send's StatusCallback is webhook_url with our reference; Twilio signs the URL it posts to, query included.
    sms = TwilioSmsDriver(sms_config(), transport=InMemoryTransport())
    sink = InMemoryWebhookSink()
    app = build_receiver_app(ReceiverConfig({"sms": sms}, max_body_bytes=LIMIT), sink)
    body = urlencode({"MessageSid": "SM1", "MessageStatus": "delivered", "AccountSid": "AC1"}).encode()
    query = "tenant=acme&sb_ref=c.m.t"
    signature = {"Content-Type": "application/x-www-form-urlencoded",
                 "X-Twilio-Signature": expected_signature(f"{SMS_WEBHOOK_URL.split('?')[0]}?{query}", body)}
    async with TestClient(TestServer(app)) as client:
        accepted = await client.post(f"/webhooks/sms?{query}", data=body, headers=signature)
        forged = await client.post("/webhooks/sms?tenant=acme&sb_ref=c.other.t", data=body,
                                   headers={**signature, "X-Switchboard-Query": query})  # a client's header is not ours
    assert (accepted.status, forged.status) == (200, 403)
    [record] = sink.accepted
    assert record.headers["query"] == query

"""The Twilio simulator against our SMS driver and receiver: Twilio's answers, and signed status callbacks."""

from __future__ import annotations

from base64 import b64encode
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp.test_utils import TestServer

from connectors import OutboundMessage, Outcome, ReceiptItem, ReceiptStatus, SecretSource, Text
from connectors._callback_reference import with_callback_reference
from connectors.receiver import InMemoryWebhookSink, ReceiverConfig, build_receiver_app
from connectors.twilio_simulator import TwilioSimulator, TwilioSimulatorConfig
from connectors.twilio_sms import TwilioSmsConfig, TwilioSmsDriver
from tests.contract.sms_support import ACCOUNT_SID, AUTH_TOKEN, FROM, RECIPIENT

UNREACHABLE = "+15557654321"


@dataclass
class Running:
    simulator: TwilioSimulator
    driver: TwilioSmsDriver
    sink: InMemoryWebhookSink


@asynccontextmanager
async def twilio(token: str = AUTH_TOKEN) -> AsyncIterator[Running]:
    """The simulator, and our receiver (its Twilio driver verifying callbacks) on a real port."""
    sink = InMemoryWebhookSink()
    config = TwilioSimulatorConfig(ACCOUNT_SID, AUTH_TOKEN, interval=0.01, undeliverable=frozenset({UNREACHABLE}))
    async with TwilioSimulator(config) as simulator:
        receiving = TwilioSmsDriver(_config(simulator, token, "http://127.0.0.1:1/webhooks/sms"))
        server = TestServer(build_receiver_app(ReceiverConfig({"sms": receiving}), sink))
        await server.start_server()
        public = str(server.make_url("/webhooks/sms?tenant=acme"))
        receiving.config = _config(simulator, token, public)  # the receiver's URL is known once it listens
        driver = TwilioSmsDriver(_config(simulator, token, public))
        try:
            yield Running(simulator, driver, sink)
        finally:
            await driver.aclose()
            await receiving.aclose()
            await server.close()


def _config(simulator: TwilioSimulator, token: str, webhook_url: str) -> TwilioSmsConfig:
    return TwilioSmsConfig(base_url=simulator.url, webhook_url=webhook_url, account_sid=SecretSource.of(ACCOUNT_SID),
                           auth_token=SecretSource.of(token))


async def test_a_send_is_accepted_and_its_status_callbacks_reach_the_receiver_signed_and_named() -> None:
    async with twilio() as t:
        result = await t.driver.send(OutboundMessage("c.m", FROM, RECIPIENT, Text("Your order shipped")))
        await t.sink.holding(2)
    assert (result.outcome, result.provider_status) == (Outcome.ACCEPTED, "queued")
    assert t.sink.rejected == []  # every callback passed the signature check over its URL
    receipts = [item for record in t.sink.accepted
                for item in with_callback_reference(t.driver.parse_webhook(record.raw), record.headers["query"])]
    assert [(r.status, r.message_id, r.provider_message_id) for r in receipts if isinstance(r, ReceiptItem)] == [
        (ReceiptStatus.SENT, "c.m", result.provider_message_id),
        (ReceiptStatus.DELIVERED, "c.m", result.provider_message_id)]
    assert t.simulator.counters.callbacks_posted == 2


async def test_an_unreachable_handset_ends_undelivered_with_30003() -> None:
    async with twilio() as t:
        await t.driver.send(OutboundMessage("c.m", FROM, UNREACHABLE, Text("hi")))
        await t.sink.holding(2)
    last = t.driver.parse_webhook(t.sink.accepted[-1].raw)[0]
    assert isinstance(last, ReceiptItem)
    assert (last.status, [error.code for error in last.errors]) == (ReceiptStatus.FAILED, ["30003"])


async def test_wrong_credentials_stop_the_account_and_bad_requests_get_twilio_s_codes() -> None:
    async with twilio(token="wrong") as t:
        refused = await t.driver.send(OutboundMessage("c.m", FROM, RECIPIENT, Text("hi")))
        async with aiohttp.ClientSession() as session:
            answer = await session.post(f"{t.simulator.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
                                        data={"To": "12345", "From": FROM, "Body": "hi"}, headers={
                                            "Authorization": "Basic " + b64encode(
                                                f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()})
            body = await answer.json()
    assert (refused.outcome, refused.error.code if refused.error else None) == (Outcome.STOP_ACCOUNT, "20003")
    assert (answer.status, body["code"]) == (400, 21211)
    assert "12345" not in body["message"]
    assert t.simulator.counters.refused == {20003: 1, 21211: 1}

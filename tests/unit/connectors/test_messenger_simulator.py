"""The Messenger simulator against our Messenger driver and receiver: Graph's answers, and the page's webhooks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from aiohttp.test_utils import TestServer

from connectors import OutboundMessage, Outcome, ReceiptItem, ReceiptStatus, SecretSource, Text
from connectors.messenger import MessengerDriver
from connectors.messenger_simulator import MessengerSimulator, MessengerSimulatorConfig
from connectors.receiver import InMemoryWebhookSink, ReceiverConfig, build_receiver_app
from tests.contract.messenger_support import APP_SECRET, PAGE_ID, PAGE_TOKEN, PSID, config

GONE = "6789012345678999"


@dataclass
class Running:
    simulator: MessengerSimulator
    driver: MessengerDriver
    sink: InMemoryWebhookSink


@asynccontextmanager
async def messenger(token: str = PAGE_TOKEN, mids: bool = True) -> AsyncIterator[Running]:
    """Our receiver (its Messenger driver verifying signatures) on a real port, and the simulator posting to it."""
    sink = InMemoryWebhookSink()
    receiving = MessengerDriver(config())
    server = TestServer(build_receiver_app(ReceiverConfig({"messenger": receiving}), sink))
    await server.start_server()
    page = MessengerSimulatorConfig(PAGE_ID, PAGE_TOKEN, APP_SECRET, webhook_url=str(server.make_url(
        "/webhooks/messenger")), interval=0.01, delivery_mids=mids, unavailable=frozenset({GONE}))
    async with MessengerSimulator(page) as simulator:
        driver = MessengerDriver(replace(config(simulator.url), page_token=SecretSource.of(token)))
        try:
            yield Running(simulator, driver, sink)
        finally:
            await driver.aclose()
            await receiving.aclose()
            await server.close()


async def test_a_send_is_echoed_delivered_and_read_by_signed_webhooks() -> None:
    async with messenger() as m:
        result = await m.driver.send(OutboundMessage("c.m", PAGE_ID, PSID, Text("Your order shipped")))
        await m.sink.holding(3)
    assert result.outcome is Outcome.ACCEPTED
    assert m.sink.rejected == []  # every webhook passed the signature check
    items = [item for record in m.sink.accepted for item in m.driver.parse_webhook(record.raw)]
    receipts = [(r.status, r.message_id, r.provider_message_id, r.watermark) for r in items
                if isinstance(r, ReceiptItem)]
    assert receipts[:2] == [(ReceiptStatus.SENT, "c.m", result.provider_message_id, False),  # the echo: our id
                            (ReceiptStatus.DELIVERED, None, result.provider_message_id, False)]  # by its mid
    assert [(status, watermark) for status, _, _, watermark in receipts[2:]] == [
        (ReceiptStatus.DELIVERED, True), (ReceiptStatus.READ, True)]
    assert all(isinstance(r, ReceiptItem) and r.recipient_id == PSID for r in items)
    assert m.simulator.messages[str(result.provider_message_id)]["message"] == {"text": "Your order shipped",
                                                                               "metadata": "c.m"}


async def test_without_mids_a_delivery_is_its_watermark_only() -> None:
    async with messenger(mids=False) as m:
        await m.driver.send(OutboundMessage("c.m", PAGE_ID, PSID, Text("hi")))
        await m.sink.holding(3)
    delivered = m.driver.parse_webhook(m.sink.accepted[1].raw)
    assert [(r.status, r.watermark) for r in delivered if isinstance(r, ReceiptItem)] == [
        (ReceiptStatus.DELIVERED, True)]


async def test_a_bad_token_stops_the_account_and_an_unavailable_user_fails_for_good() -> None:
    async with messenger(token="wrong") as m:
        refused = await m.driver.send(OutboundMessage("c.m", PAGE_ID, PSID, Text("hi")))
    async with messenger() as m:
        gone = await m.driver.send(OutboundMessage("c.m", PAGE_ID, GONE, Text("hi")))
        counters = m.simulator.counters
    assert (refused.outcome, refused.error.code if refused.error else None) == (Outcome.STOP_ACCOUNT, "190")
    assert (gone.outcome, gone.error.code if gone.error else None) == (Outcome.PERMANENT_FAILURE, "551")
    assert (counters.refused, counters.accepted, counters.webhooks_posted) == ({551: 1}, 0, 0)

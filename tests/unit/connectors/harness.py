"""A running simulator, a driver pointed at it and a webhook receiver verifying with that driver, all on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from connectors import NormalizedItem, ReceiptItem, ReceiptStatus
from connectors.testing import WebhookReceiver
from connectors.whatsapp import WhatsAppDriver
from connectors.whatsapp_simulator import WhatsAppSimulator
from tests.contract.whatsapp_support import ACCESS_TOKEN, APP_SECRET, driver_config


@dataclass
class Harness:
    simulator: WhatsAppSimulator
    driver: WhatsAppDriver
    receiver: WebhookReceiver

    def receipts(self, message_id: str) -> list[ReceiptItem]:
        """Receipts received so far for our message id, in arrival order."""
        return [i for i in self.receiver.items if isinstance(i, ReceiptItem) and i.message_id == message_id]

    def statuses(self, message_id: str) -> list[ReceiptStatus]:
        return [r.status for r in self.receipts(message_id)]

    async def wait_for_receipts(self, message_id: str, count: int, timeout: float = 5.0) -> list[ReceiptItem]:
        """Waits on the receiver's condition until `count` receipts for the message arrived."""
        def enough(items: list[NormalizedItem]) -> bool:
            return len(self.receipts(message_id)) >= count

        await self.receiver.wait_for(enough, timeout)
        return self.receipts(message_id)


@asynccontextmanager
async def running(*, driver_timeout: float = 5.0, **options: Any) -> AsyncIterator[Harness]:
    """Starts the three pieces with ephemeral ports; stops them in reverse order, draining webhooks first."""
    simulator = WhatsAppSimulator(access_token=ACCESS_TOKEN, app_secret=APP_SECRET, **options)
    await simulator.start()
    driver = WhatsAppDriver(replace(driver_config(simulator.url), timeout=driver_timeout))
    receiver = WebhookReceiver(driver)
    await receiver.start()
    simulator.webhook_url = receiver.url
    try:
        yield Harness(simulator, driver, receiver)
    finally:
        await simulator.stop()
        await receiver.stop()
        await driver.aclose()

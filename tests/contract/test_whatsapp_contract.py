"""The WhatsApp driver passes the channel-driver contract in memory and over HTTP against the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connectors.testing import ContractBackend, ReceiptContract, WebhookReceiver
from connectors.whatsapp import WhatsAppDriver
from connectors.whatsapp_simulator import WhatsAppSimulator
from tests.contract.whatsapp_support import (
    ACCESS_TOKEN,
    APP_SECRET,
    RECIPIENT,
    MemoryBackend,
    SimulatorBackend,
    driver_config,
)


class TestWhatsAppInMemory(ReceiptContract):
    """The driver over an InMemoryTransport that answers like Meta."""

    driver_class = WhatsAppDriver

    @pytest.fixture
    def contract_backend(self) -> ContractBackend:
        return MemoryBackend()


class TestWhatsAppAgainstSimulator(ReceiptContract):
    """The driver over real HTTP on 127.0.0.1 (ephemeral ports) against the simulator and a webhook receiver."""

    driver_class = WhatsAppDriver

    @pytest.fixture
    async def contract_backend(self) -> AsyncIterator[ContractBackend]:
        simulator = WhatsAppSimulator(access_token=ACCESS_TOKEN, app_secret=APP_SECRET, seed=7)
        await simulator.start()
        driver = WhatsAppDriver(driver_config(simulator.url))
        receiver = WebhookReceiver(driver)
        await receiver.start()
        simulator.webhook_url = receiver.url
        simulator.open_window(RECIPIENT)
        yield SimulatorBackend(simulator, receiver, driver)
        await simulator.stop()
        await receiver.stop()
        await driver.aclose()

"""The Messenger driver passes the channel-driver contract over an InMemoryTransport answering like the Send API."""

from __future__ import annotations

import pytest

from connectors.messenger import MessengerDriver
from connectors.testing import ContractBackend, ReceiptContract
from tests.contract.messenger_support import MessengerBackend


class TestMessengerInMemory(ReceiptContract):
    """The Messenger driver against a fake Send API; the sent receipt is the message_echoes webhook."""

    driver_class = MessengerDriver

    @pytest.fixture
    def contract_backend(self) -> ContractBackend:
        return MessengerBackend()

"""The Telegram driver passes the channel-driver contract over an InMemoryTransport answering like the Bot API."""

from __future__ import annotations

import pytest

from connectors.telegram import TelegramDriver
from connectors.testing import ChannelDriverContract, ContractBackend
from tests.contract.telegram_support import TelegramBackend


class TestTelegramInMemory(ChannelDriverContract):
    """The Telegram driver against a fake sendMessage."""

    driver_class = TelegramDriver

    @pytest.fixture
    def contract_backend(self) -> ContractBackend:
        return TelegramBackend()

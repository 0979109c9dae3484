"""The LINE driver passes the channel-driver contract over an InMemoryTransport answering like the Messaging API."""

from __future__ import annotations

import pytest

from connectors.line import LineDriver
from connectors.testing import ChannelDriverContract, ContractBackend
from tests.contract.line_support import LineBackend


class TestLineInMemory(ChannelDriverContract):
    """The LINE driver against a fake push endpoint."""

    driver_class = LineDriver

    @pytest.fixture
    def contract_backend(self) -> ContractBackend:
        return LineBackend()

"""The Twilio SMS driver passes the channel-driver contract over an InMemoryTransport answering like Twilio."""

from __future__ import annotations

import pytest

from connectors.testing import ContractBackend, ReceiptContract
from connectors.twilio_sms import TwilioSmsDriver
from tests.contract.sms_support import SmsBackend


class TestTwilioSmsInMemory(ReceiptContract):
    """The SMS driver against a fake Messages API; receipts are matched by MessageSid."""

    driver_class = TwilioSmsDriver

    @pytest.fixture
    def contract_backend(self) -> ContractBackend:
        return SmsBackend()

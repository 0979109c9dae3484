"""The fourth-party echo driver passes the same contract as WhatsApp: the contract is channel-neutral."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import cast

import pytest

from connectors import (
    ChannelDriver,
    InMemoryTransport,
    OutboundMessage,
    Outcome,
    ProviderError,
    ReceiptItem,
    ReceiptStatus,
    SendResult,
    Text,
    TransportRequest,
    TransportResponse,
)
from connectors.testing import ContractBackend, ReceiptContract, WebhookCase
from tests.unit.connectors.plugins import ECHO_PROJECT

SECRET = "echo-secret"
CODE_FOR = {Outcome.RETRY_LATER: "throttled", Outcome.RETRY_RECIPIENT_LATER: "recipient_busy",
            Outcome.NEEDS_TEMPLATE: "window_closed", Outcome.PERMANENT_FAILURE: "bad_request",
            Outcome.STOP_ACCOUNT: "banned"}


def sign(body: bytes) -> dict[str, str]:
    return {"X-Echo-Signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}


def receipts(*rows: tuple[str, str, str]) -> bytes:
    return json.dumps({"receipts": [{"id": i, "status": s, "ref": r, "at": 1700000000} for i, s, r in rows]}).encode()


class EchoProvider:
    """The echo service: accepts texts, or refuses with a queued error code."""

    def __init__(self) -> None:
        self.errors: deque[str] = deque()
        self.refs: dict[str, str] = {}

    def __call__(self, request: TransportRequest) -> TransportResponse:
        if self.errors:
            return TransportResponse(400, {}, json.dumps({"error": self.errors.popleft()}).encode())
        sent = json.loads(request.body or b"{}")
        provider_id = f"echo-{len(self.refs) + 1}"
        self.refs[provider_id] = sent["ref"]
        return TransportResponse(200, {}, json.dumps({"id": provider_id}).encode())


class EchoBackend(ContractBackend):
    def __init__(self, driver: ChannelDriver, provider: EchoProvider) -> None:
        self.driver, self.provider = driver, provider

    def sample_message(self, message_id: str) -> OutboundMessage:
        return OutboundMessage(message_id, "echo-account", "+15550000000", Text("hello"))

    def invalid_message(self, message_id: str) -> OutboundMessage:
        return OutboundMessage(message_id, "echo-account", "+15550000000", Text("x" * 161))

    async def fail_next_send(self, outcome: Outcome) -> None:
        self.provider.errors.append(CODE_FOR[outcome])

    def classification_cases(self) -> Sequence[tuple[ProviderError, Outcome]]:
        return [(ProviderError(code), outcome) for outcome, code in CODE_FOR.items()]

    def signed_headers(self, raw_body: bytes) -> dict[str, str]:
        return sign(raw_body)

    def webhook_cases(self) -> Sequence[WebhookCase]:
        return [WebhookCase("sent and delivered", receipts(("e1", "sent", "m1"), ("e1", "delivered", "m1")),
                            (ReceiptItem, ReceiptItem), (ReceiptStatus.SENT, ReceiptStatus.DELIVERED))]

    async def receipt_webhook(self, result: SendResult) -> tuple[Mapping[str, str], bytes]:
        assert result.provider_message_id is not None
        body = receipts((result.provider_message_id, "sent", self.provider.refs[result.provider_message_id]))
        return sign(body), body


def _echo_driver_class() -> type[ChannelDriver]:
    """The fourth-party driver class, imported from its project folder and then forgotten again."""
    sys.path.insert(0, str(ECHO_PROJECT))
    try:
        return cast(type[ChannelDriver], importlib.import_module("sb_echo_driver").EchoDriver)
    finally:
        sys.path.remove(str(ECHO_PROJECT))
        sys.modules.pop("sb_echo_driver", None)


class TestEchoDriver(ReceiptContract):
    driver_class = _echo_driver_class()

    @pytest.fixture
    def contract_backend(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[ContractBackend]:
        monkeypatch.syspath_prepend(str(ECHO_PROJECT))
        module = importlib.import_module("sb_echo_driver")
        provider = EchoProvider()
        driver = module.EchoDriver.from_settings({"base_url": "https://echo.invalid", "secret": SECRET},
                                                 transport=InMemoryTransport(handler=provider))
        yield EchoBackend(driver, provider)
        sys.modules.pop("sb_echo_driver", None)

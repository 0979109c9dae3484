"""Messenger test material shared by the contract and unit tests: a fake Send API, samples and webhook cases."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from connectors import (
    SIGNATURE_HEADER,
    InboundItem,
    InMemoryTransport,
    OutboundMessage,
    Outcome,
    ProviderError,
    ReceiptItem,
    ReceiptStatus,
    SecretSource,
    SendResult,
    Text,
    TransportRequest,
    TransportResponse,
    UnhandledItem,
    hub_signature,
)
from connectors.messenger import MessengerConfig, MessengerDriver
from connectors.testing import ContractBackend, WebhookCase

DATA = Path(__file__).parent / "data" / "messenger"
PAGE_TOKEN = "contract-messenger-page-token"
APP_SECRET = "contract-messenger-app-secret"
VERIFY_TOKEN = "contract-messenger-verify-token"
PAGE_ID = "104400000000001"
PSID = "6789012345678901"

# Graph API error bodies as the Send API returns them (Messenger Platform "Error Codes").
ERRORS: Mapping[Outcome, tuple[int, dict[str, Any]]] = {
    Outcome.RETRY_LATER: (400, {"error": {"message": "(#613) Calls to this api have exceeded the rate limit.",
                                          "type": "OAuthException", "code": 613, "fbtrace_id": "AtraceRate"}}),
    Outcome.NEEDS_TEMPLATE: (400, {"error": {"message": "(#10) This message is sent outside of allowed window.",
                                             "type": "OAuthException", "code": 10, "error_subcode": 2018278,
                                             "fbtrace_id": "AtraceWindow"}}),
    Outcome.PERMANENT_FAILURE: (400, {"error": {"message": "(#551) This person isn't available right now.",
                                                "type": "OAuthException", "code": 551, "error_subcode": 1545041,
                                                "fbtrace_id": "AtraceGone"}}),
    Outcome.STOP_ACCOUNT: (401, {"error": {"message": "Error validating access token: Session has expired.",
                                           "type": "OAuthException", "code": 190, "error_subcode": 463,
                                           "fbtrace_id": "AtraceToken"}}),
}
_I, _R, _U, _S = InboundItem, ReceiptItem, UnhandledItem, ReceiptStatus
CASES: Sequence[tuple[str, tuple[type, ...], tuple[ReceiptStatus, ...]]] = (
    ("message_text", (_I,), ()),
    ("message_quick_reply", (_I,), ()),
    ("message_attachment", (_I,), ()),
    ("message_echo", (_R,), (_S.SENT,)),
    ("delivery", (_R, _R, _R), (_S.DELIVERED, _S.DELIVERED, _S.DELIVERED)),  # two mids, then the watermark
    ("read", (_R,), (_S.READ,)),
    ("batch", (_I, _R, _R, _U), (_S.DELIVERED, _S.READ)),
)


def raw(name: str) -> bytes:
    """A fixture's bytes, exactly as stored."""
    return (DATA / f"{name}.json").read_bytes()


def config(base_url: str = "https://graph.invalid") -> MessengerConfig:
    """A config with fixed test secrets."""
    return MessengerConfig(base_url=base_url, page_token=SecretSource.of(PAGE_TOKEN),
                           app_secret=SecretSource.of(APP_SECRET), verify_token=SecretSource.of(VERIFY_TOKEN))


def signed(raw_body: bytes) -> dict[str, str]:
    """Headers as Meta sends them with this body."""
    return {"Content-Type": "application/json", SIGNATURE_HEADER: hub_signature(raw_body, APP_SECRET)}


def response(status: int, body: Mapping[str, Any]) -> TransportResponse:
    """A JSON answer."""
    return TransportResponse(status, {"Content-Type": "application/json"}, json.dumps(body).encode())


class FakeSendApi:
    """The Send API as an InMemoryTransport handler; remembers accepted bodies to echo them as webhooks."""

    def __init__(self) -> None:
        self.failures: deque[Outcome] = deque()
        self.accepted: dict[str, dict[str, Any]] = {}

    def __call__(self, request: TransportRequest) -> TransportResponse:
        if self.failures:
            return response(*ERRORS[self.failures.popleft()])
        body = json.loads(request.body or b"{}")
        mid = f"m_memory{len(self.accepted) + 1:024d}"
        self.accepted[mid] = body
        return response(200, {"recipient_id": body["recipient"]["id"], "message_id": mid})

    def echo_webhook(self, mid: str) -> bytes:
        """The message_echoes webhook Meta sends for a message our page sent, with its metadata."""
        body = self.accepted[mid]
        event = {"sender": {"id": PAGE_ID}, "recipient": body["recipient"], "timestamp": 1732550580123,
                 "message": {"is_echo": True, "app_id": 1517776481860111, "mid": mid, **body["message"]}}
        return json.dumps({"object": "page", "entry": [{"id": PAGE_ID, "time": 1732550580500,
                                                        "messaging": [event]}]}).encode()


class MessengerBackend(ContractBackend):
    """The Messenger driver over an InMemoryTransport answering like the Send API."""

    def __init__(self) -> None:
        self.api = FakeSendApi()
        self.transport = InMemoryTransport(handler=self.api)
        self.driver = MessengerDriver(config(), transport=self.transport)

    def sample_message(self, message_id: str) -> OutboundMessage:
        return OutboundMessage(message_id, PAGE_ID, PSID, Text("Your order shipped"))

    def invalid_message(self, message_id: str) -> OutboundMessage:
        return OutboundMessage(message_id, PAGE_ID, PSID, Text("x" * 2001))

    async def fail_next_send(self, outcome: Outcome) -> None:
        self.api.failures.append(outcome)

    def classification_cases(self) -> Sequence[tuple[ProviderError, Outcome]]:
        return [
            (ProviderError("613"), Outcome.RETRY_LATER),
            (ProviderError("4"), Outcome.RETRY_LATER),
            (ProviderError("1"), Outcome.RETRY_LATER),
            (ProviderError("2"), Outcome.RETRY_LATER),
            (ProviderError("551"), Outcome.PERMANENT_FAILURE),
            (ProviderError("551", details="1545041"), Outcome.PERMANENT_FAILURE),
            (ProviderError("100", details="2018001"), Outcome.PERMANENT_FAILURE),
            (ProviderError("190", details="463"), Outcome.STOP_ACCOUNT),
            (ProviderError("10"), Outcome.STOP_ACCOUNT),
            (ProviderError("200"), Outcome.STOP_ACCOUNT),
            (ProviderError("230"), Outcome.STOP_ACCOUNT),
            (ProviderError("200", details="2018028"), Outcome.PERMANENT_FAILURE),
            (ProviderError("368"), Outcome.STOP_ACCOUNT),
            (ProviderError("10", details="2018278"), Outcome.NEEDS_TEMPLATE),
            (ProviderError("100", is_transient=True), Outcome.RETRY_LATER),
            (ProviderError("999999", is_transient=True), Outcome.RETRY_LATER),
            (ProviderError("999999", http_status=500), Outcome.RETRY_LATER),
            (ProviderError("999999", http_status=400), Outcome.PERMANENT_FAILURE),
        ]

    def signed_headers(self, raw_body: bytes) -> dict[str, str]:
        return signed(raw_body)

    def webhook_cases(self) -> Sequence[WebhookCase]:
        return [WebhookCase(name, raw(name), expected, statuses) for name, expected, statuses in CASES]

    async def receipt_webhook(self, result: SendResult) -> tuple[Mapping[str, str], bytes]:
        assert result.provider_message_id is not None
        body = self.api.echo_webhook(result.provider_message_id)
        return signed(body), body


def messenger_channel(driver: str = "messenger", settings: str = "") -> str:
    """A `[[channels]]` entry of pipeline.toml for the page PAGE_ID of tenant acme (`settings`: the inside of its
    settings table)."""
    table = f"settings = {{ {settings} }}\n" if settings else ""
    return (f'\n[[channels]]\nid = "messenger"\nkind = "messenger"\ntenant = "acme"\nprovider = "meta-page"\n'
            f'driver = "{driver}"\n{table}[[channels.senders]]\nid = "page-main"\naddress = "{PAGE_ID}"\n'
            f"per_second = 1000\n")

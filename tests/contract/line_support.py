"""LINE test material shared by the contract and unit tests: a fake push endpoint, samples and webhook cases."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from connectors import (
    InboundItem,
    InMemoryTransport,
    OutboundMessage,
    Outcome,
    ProviderError,
    SecretSource,
    SendResult,
    Text,
    TransportRequest,
    TransportResponse,
    UnhandledItem,
)
from connectors.line import RETRY_KEY_HEADER, SIGNATURE_HEADER, LineConfig, LineDriver, line_signature
from connectors.testing import ContractBackend, WebhookCase

DATA = Path(__file__).parent / "data" / "line"
ACCESS_TOKEN = "contract-line-channel-access-token"
CHANNEL_SECRET = "contract-line-channel-secret"
USER_ID = "U4af4980629a1b2c3d4e5f60718293a4b"

# Push error answers (Messaging API "Status codes" and "Error responses": {"message", "details"}).
ERRORS: Mapping[Outcome, tuple[int, dict[str, Any]]] = {
    Outcome.RETRY_LATER: (429, {"message": "Too many requests"}),
    Outcome.PERMANENT_FAILURE: (400, {"message": "The request body has 1 error(s)",
                                      "details": [{"message": "Length must be between 0 and 5000",
                                                   "property": "messages[0].text"}]}),
    Outcome.STOP_ACCOUNT: (401, {"message": "Authentication failed due to the following reason: invalid token. "
                                            "Confirm that the access token in the authorization header is valid."}),
}
CASES: Sequence[tuple[str, tuple[type, ...]]] = (
    ("message_text", (InboundItem,)),
    ("message_image_group", (InboundItem,)),
    ("postback", (InboundItem,)),
    ("follow_message_unfollow", (UnhandledItem, InboundItem, UnhandledItem)),
    ("verification", ()),
)


def raw(name: str) -> bytes:
    """A fixture's bytes, exactly as stored."""
    return (DATA / f"{name}.json").read_bytes()


def config(base_url: str = "https://line.invalid") -> LineConfig:
    """A config with fixed test secrets."""
    return LineConfig(base_url=base_url, access_token=SecretSource.of(ACCESS_TOKEN),
                      channel_secret=SecretSource.of(CHANNEL_SECRET))


def response(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> TransportResponse:
    """A JSON answer with LINE's request id header."""
    return TransportResponse(status, {"Content-Type": "application/json", "x-line-request-id": "req-0001",
                                      **(headers or {})}, json.dumps(body).encode())


class FakeLine:
    """The push endpoint: sentMessages answers, 409 for a retry key seen before, or queued errors."""

    def __init__(self) -> None:
        self.failures: deque[Outcome] = deque()
        self.accepted: dict[str, tuple[str, str]] = {}  # retry key -> (request id, sent message id)

    def __call__(self, request: TransportRequest) -> TransportResponse:
        if self.failures:
            return response(*ERRORS[self.failures.popleft()])
        key = request.headers[RETRY_KEY_HEADER]
        if key in self.accepted:
            request_id, sent = self.accepted[key]
            return response(409, {"message": "The retry key is already accepted",
                                  "sentMessages": [{"id": sent, "quoteToken": "q-earlier"}]},
                            {"x-line-accepted-request-id": request_id})
        request_id, sent = f"req-{len(self.accepted) + 1:04d}", f"46878957789826{len(self.accepted) + 1:04d}"
        self.accepted[key] = (request_id, sent)
        return response(200, {"sentMessages": [{"id": sent, "quoteToken": "q-new"}]}, {"x-line-request-id": request_id})


class LineBackend(ContractBackend):
    """The LINE driver over an InMemoryTransport answering like the Messaging API."""

    def __init__(self) -> None:
        self.line = FakeLine()
        self.transport = InMemoryTransport(handler=self.line)
        self.driver = LineDriver(config(), transport=self.transport)

    def sample_message(self, message_id: str) -> OutboundMessage:
        return OutboundMessage(message_id, "switchboard", USER_ID, Text("Your order shipped"))

    def invalid_message(self, message_id: str) -> OutboundMessage:
        return OutboundMessage(message_id, "switchboard", USER_ID, Text("x" * 5001))

    async def fail_next_send(self, outcome: Outcome) -> None:
        self.line.failures.append(outcome)

    def classification_cases(self) -> Sequence[tuple[ProviderError, Outcome]]:
        return [
            (ProviderError("400", "The request body has 1 error(s)"), Outcome.PERMANENT_FAILURE),
            (ProviderError("401", "Authentication failed"), Outcome.STOP_ACCOUNT),
            (ProviderError("403", "Not authorized to use this endpoint"), Outcome.STOP_ACCOUNT),
            (ProviderError("409", "The retry key is already accepted"), Outcome.ACCEPTED),
            (ProviderError("413", "Request entity too large"), Outcome.PERMANENT_FAILURE),
            (ProviderError("429", "Too many requests"), Outcome.RETRY_LATER),
            (ProviderError("429", "You have reached your monthly limit."), Outcome.STOP_ACCOUNT),
            (ProviderError("500", "Internal server error"), Outcome.RETRY_LATER),
            (ProviderError("503", "Service unavailable"), Outcome.RETRY_LATER),
            (ProviderError("404", "Not found"), Outcome.PERMANENT_FAILURE),
        ]

    def signed_headers(self, raw_body: bytes) -> dict[str, str]:
        return {"Content-Type": "application/json", SIGNATURE_HEADER: line_signature(raw_body, CHANNEL_SECRET)}

    def webhook_cases(self) -> Sequence[WebhookCase]:
        return [WebhookCase(name, raw(name), expected) for name, expected in CASES]

    async def receipt_webhook(self, result: SendResult) -> tuple[Mapping[str, str], bytes]:
        raise AssertionError("LINE sends no receipts; the contract does not ask for one")

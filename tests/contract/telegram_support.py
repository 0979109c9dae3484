"""Telegram test material shared by the contract and unit tests: a fake Bot API, samples and webhook cases."""

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
from connectors.telegram import SECRET_HEADER, TelegramConfig, TelegramDriver
from connectors.testing import ContractBackend, WebhookCase

DATA = Path(__file__).parent / "data" / "telegram"
BOT_TOKEN = "7000000001:AAcontract-bot-token"
WEBHOOK_SECRET = "contract-webhook-secret_1"
CHAT_ID = "123456789"
BOT = {"id": 7000000001, "is_bot": True, "first_name": "Switchboard", "username": "switchboard_bot"}

# Bot API error answers ("Making requests": ok false, error_code, description, parameters.retry_after).
ERRORS: Mapping[Outcome, tuple[int, dict[str, Any]]] = {
    Outcome.RETRY_LATER: (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 7",
                                "parameters": {"retry_after": 7}}),
    Outcome.PERMANENT_FAILURE: (403, {"ok": False, "error_code": 403,
                                      "description": "Forbidden: bot was blocked by the user"}),
    Outcome.STOP_ACCOUNT: (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}),
}
CASES: Sequence[tuple[str, tuple[type, ...]]] = (
    ("message_text", (InboundItem,)),
    ("message_photo_reply", (InboundItem,)),
    ("edited_message", (InboundItem,)),
    ("callback_query", (InboundItem,)),
    ("my_chat_member_blocked", (UnhandledItem,)),
)


def raw(name: str) -> bytes:
    """A fixture's bytes, exactly as stored."""
    return (DATA / f"{name}.json").read_bytes()


def config(base_url: str = "https://telegram.invalid") -> TelegramConfig:
    """A config with fixed test secrets."""
    return TelegramConfig(base_url=base_url, account_id="switchboard_bot", bot_token=SecretSource.of(BOT_TOKEN),
                          webhook_secret=SecretSource.of(WEBHOOK_SECRET))


def response(status: int, body: Mapping[str, Any]) -> TransportResponse:
    """A JSON answer."""
    return TransportResponse(status, {"Content-Type": "application/json"}, json.dumps(body).encode())


class FakeBotApi:
    """sendMessage as an InMemoryTransport handler: Message results, or queued error answers."""

    def __init__(self) -> None:
        self.failures: deque[Outcome] = deque()
        self.next_id = 1400

    def __call__(self, request: TransportRequest) -> TransportResponse:
        if self.failures:
            return response(*ERRORS[self.failures.popleft()])
        body = json.loads(request.body or b"{}")
        self.next_id += 1
        chat = {"id": int(body["chat_id"]), "first_name": "Ada", "type": "private"}
        return response(200, {"ok": True, "result": {"message_id": self.next_id, "from": BOT, "chat": chat,
                                                     "date": 1732550400, "text": body["text"]}})


class TelegramBackend(ContractBackend):
    """The Telegram driver over an InMemoryTransport answering like the Bot API."""

    def __init__(self) -> None:
        self.api = FakeBotApi()
        self.transport = InMemoryTransport(handler=self.api)
        self.driver = TelegramDriver(config(), transport=self.transport)

    def sample_message(self, message_id: str) -> OutboundMessage:
        return OutboundMessage(message_id, "switchboard_bot", CHAT_ID, Text("Your order shipped"))

    def invalid_message(self, message_id: str) -> OutboundMessage:
        return OutboundMessage(message_id, "switchboard_bot", CHAT_ID, Text("x" * 4097))

    async def fail_next_send(self, outcome: Outcome) -> None:
        self.api.failures.append(outcome)

    def classification_cases(self) -> Sequence[tuple[ProviderError, Outcome]]:
        return [
            (ProviderError("400", "Bad Request: chat not found"), Outcome.PERMANENT_FAILURE),
            (ProviderError("403", "Forbidden: bot was blocked by the user"), Outcome.PERMANENT_FAILURE),
            (ProviderError("401", "Unauthorized"), Outcome.STOP_ACCOUNT),
            (ProviderError("404", "Not Found"), Outcome.STOP_ACCOUNT),
            (ProviderError("429", "Too Many Requests: retry after 3"), Outcome.RETRY_LATER),
            (ProviderError("420", "Flood control exceeded"), Outcome.RETRY_LATER),
            (ProviderError("502", "Bad Gateway"), Outcome.RETRY_LATER),
            (ProviderError("418", "I'm a teapot"), Outcome.PERMANENT_FAILURE),
        ]

    def signed_headers(self, raw_body: bytes) -> dict[str, str]:
        return {"Content-Type": "application/json", SECRET_HEADER: WEBHOOK_SECRET}

    def webhook_cases(self) -> Sequence[WebhookCase]:
        return [WebhookCase(name, raw(name), expected) for name, expected in CASES]

    async def receipt_webhook(self, result: SendResult) -> tuple[Mapping[str, str], bytes]:
        raise AssertionError("Telegram sends no receipts; the contract does not ask for one")

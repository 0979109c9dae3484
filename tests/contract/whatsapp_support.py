"""WhatsApp test material shared by the contract, unit and end-to-end tests: samples, cases, backends."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from connectors import (
    SIGNATURE_HEADER,
    AccountErrorItem,
    Buttons,
    InboundItem,
    InMemoryTransport,
    OutboundMessage,
    Outcome,
    ProviderError,
    ReceiptItem,
    ReceiptStatus,
    ReplyButton,
    SecretSource,
    SendResult,
    TemplateUpdateItem,
    Text,
    TransportRequest,
    TransportResponse,
    UnhandledItem,
    hub_signature,
)
from connectors.testing import ContractBackend, WebhookCase, WebhookReceiver
from connectors.whatsapp import WhatsAppConfig, WhatsAppDriver
from connectors.whatsapp_simulator import (
    DEFAULT_PHONE_NUMBER_ID,
    WhatsAppSimulator,
    error_body,
    http_status_for,
    status_object,
    status_webhook_body,
)

DATA = Path(__file__).parent / "data" / "whatsapp"
APP_SECRET = "contract-app-secret"
ACCESS_TOKEN = "contract-access-token"
VERIFY_TOKEN = "contract-verify-token"
RECIPIENT = "+15551234567"

# The reference's table (§3.6), written out independently of connectors._whatsapp_codes so it checks it.
REFERENCE_OUTCOMES: Mapping[int, Outcome] = {
    0: Outcome.STOP_ACCOUNT, 3: Outcome.STOP_ACCOUNT, 10: Outcome.STOP_ACCOUNT, 190: Outcome.STOP_ACCOUNT,
    200: Outcome.STOP_ACCOUNT, 250: Outcome.STOP_ACCOUNT, 299: Outcome.STOP_ACCOUNT,
    4: Outcome.RETRY_LATER, 80007: Outcome.RETRY_LATER, 130429: Outcome.RETRY_LATER,
    131056: Outcome.RETRY_RECIPIENT_LATER, 131048: Outcome.STOP_ACCOUNT, 131049: Outcome.RETRY_RECIPIENT_LATER,
    131064: Outcome.STOP_ACCOUNT, 133016: Outcome.RETRY_LATER, 368: Outcome.STOP_ACCOUNT,
    131031: Outcome.STOP_ACCOUNT, 130497: Outcome.PERMANENT_FAILURE, 1: Outcome.RETRY_LATER, 2: Outcome.RETRY_LATER,
    131000: Outcome.RETRY_LATER, 131016: Outcome.RETRY_LATER, 131057: Outcome.RETRY_LATER,
    100: Outcome.PERMANENT_FAILURE, 131008: Outcome.PERMANENT_FAILURE, 131009: Outcome.PERMANENT_FAILURE,
    131051: Outcome.PERMANENT_FAILURE, 131052: Outcome.PERMANENT_FAILURE, 131053: Outcome.PERMANENT_FAILURE,
    132000: Outcome.PERMANENT_FAILURE, 132001: Outcome.PERMANENT_FAILURE, 132005: Outcome.PERMANENT_FAILURE,
    132007: Outcome.PERMANENT_FAILURE, 132008: Outcome.PERMANENT_FAILURE, 132012: Outcome.PERMANENT_FAILURE,
    132015: Outcome.PERMANENT_FAILURE, 132016: Outcome.PERMANENT_FAILURE, 131047: Outcome.NEEDS_TEMPLATE,
    131026: Outcome.PERMANENT_FAILURE, 130472: Outcome.PERMANENT_FAILURE, 131050: Outcome.PERMANENT_FAILURE,
    131021: Outcome.PERMANENT_FAILURE, 131030: Outcome.PERMANENT_FAILURE, 131042: Outcome.STOP_ACCOUNT,
    131045: Outcome.STOP_ACCOUNT, 131062: Outcome.PERMANENT_FAILURE, 131063: Outcome.PERMANENT_FAILURE,
    132069: Outcome.RETRY_LATER,
}
# One code per outcome, for provoking a send failure.
CODE_FOR: Mapping[Outcome, int] = {
    Outcome.RETRY_LATER: 130429,
    Outcome.RETRY_RECIPIENT_LATER: 131056,
    Outcome.NEEDS_TEMPLATE: 131047,
    Outcome.PERMANENT_FAILURE: 131026,
    Outcome.STOP_ACCOUNT: 131031,
}
_R, _I, _T, _A, _U = ReceiptItem, InboundItem, TemplateUpdateItem, AccountErrorItem, UnhandledItem
_S = ReceiptStatus
CASES: Sequence[tuple[str, tuple[type, ...], tuple[ReceiptStatus, ...]]] = (
    ("status_sent", (_R,), (_S.SENT,)),
    ("status_delivered", (_R,), (_S.DELIVERED,)),
    ("status_read", (_R,), (_S.READ,)),
    ("status_failed", (_R,), (_S.FAILED,)),
    ("status_played", (_R,), (_S.PLAYED,)),
    ("inbound_text", (_I,), ()),
    ("inbound_button_reply", (_I,), ()),
    ("inbound_list_reply", (_I,), ()),
    ("inbound_template_button", (_I,), ()),
    ("inbound_image", (_I,), ()),
    ("inbound_with_error", (_I, _A), ()),
    ("template_status", (_T,), ()),
    ("template_category", (_T,), ()),
    ("template_quality", (_T,), ()),
    ("template_components", (_T,), ()),
    ("batch", (_R, _R, _I, _I, _T, _R, _U), (_S.DELIVERED, _S.READ, _S.SENT)),
)


def raw(name: str) -> bytes:
    """A webhook fixture's bytes, exactly as stored."""
    return (DATA / f"{name}.json").read_bytes()


def webhook_cases() -> list[WebhookCase]:
    """Every stored fixture with the items it must parse into."""
    return [WebhookCase(name, raw(name), expected, statuses) for name, expected, statuses in CASES]


def classification_cases() -> list[tuple[ProviderError, Outcome]]:
    """Every reference code, plus the cases where details, is_transient or the HTTP status decide."""
    cases = [(ProviderError(str(code)), outcome) for code, outcome in REFERENCE_OUTCOMES.items()]
    cases += [
        (ProviderError("131053", details="Downloading media from weblink failed with http code 429"),
         Outcome.RETRY_LATER),
        (ProviderError("131052", details="Media download failed with http code 503"), Outcome.RETRY_LATER),
        (ProviderError("131052", details="Media download failed with http code 404"), Outcome.PERMANENT_FAILURE),
        (ProviderError("100", is_transient=True), Outcome.RETRY_LATER),
        (ProviderError("131047", is_transient=True), Outcome.NEEDS_TEMPLATE),
        (ProviderError("999999", is_transient=True), Outcome.RETRY_LATER),
        (ProviderError("999999", http_status=503), Outcome.RETRY_LATER),
        (ProviderError("999999", http_status=400), Outcome.PERMANENT_FAILURE),
    ]
    return cases


def driver_config(base_url: str = "https://graph.invalid") -> WhatsAppConfig:
    """A config with fixed test secrets."""
    return WhatsAppConfig(base_url=base_url, access_token=SecretSource.of(ACCESS_TOKEN),
                          app_secret=SecretSource.of(APP_SECRET), verify_token=SecretSource.of(VERIFY_TOKEN))


def signed(raw_body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    """Headers as Meta sends them with this body."""
    return {"Content-Type": "application/json", SIGNATURE_HEADER: hub_signature(raw_body, secret)}


def text_message(message_id: str, recipient: str = RECIPIENT, body: str = "Your order shipped") -> OutboundMessage:
    """A free-form text from the default simulator number."""
    return OutboundMessage(message_id, DEFAULT_PHONE_NUMBER_ID, recipient, Text(body))


def too_many_buttons(message_id: str) -> OutboundMessage:
    """Four reply buttons: one over WhatsApp's limit."""
    buttons = tuple(ReplyButton(f"b{i}", f"Option {i}") for i in range(4))
    return OutboundMessage(message_id, DEFAULT_PHONE_NUMBER_ID, RECIPIENT, Buttons("Pick one", buttons))


class FakeMeta:
    """The send endpoint as an in-memory Transport handler: success bodies, or queued Meta errors."""

    def __init__(self) -> None:
        self.failures: deque[int] = deque()
        self.accepted: dict[str, dict[str, Any]] = {}

    def __call__(self, request: TransportRequest) -> TransportResponse:
        body = json.loads(request.body or b"{}")
        if self.failures:
            code = self.failures.popleft()
            return _json_response(http_status_for(code), error_body(code, "provoked by the test", "AfakeTrace"))
        wamid = f"wamid.memory{len(self.accepted) + 1}"
        self.accepted[wamid] = body
        answer = {"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"].lstrip("+")}],
                  "messages": [{"id": wamid, "message_status": "accepted"}]}
        return _json_response(200, answer)

    def status_webhook(self, wamid: str, status: str = "sent") -> bytes:
        """The status webhook Meta would send for an accepted message, echoing its callback data."""
        body = self.accepted[wamid]
        item = status_object(wamid, status, int(time.time()), body["to"].lstrip("+"),
                             callback_data=body.get("biz_opaque_callback_data"))
        webhook = status_webhook_body("200000000000001", DEFAULT_PHONE_NUMBER_ID, "15550001111", [item])
        return json.dumps(webhook).encode()


def _json_response(status: int, body: Mapping[str, Any]) -> TransportResponse:
    return TransportResponse(status, {"Content-Type": "application/json"}, json.dumps(body).encode())


class _WhatsAppBackend(ContractBackend):
    """What both WhatsApp backends share: samples, cases and signing."""

    def sample_message(self, message_id: str) -> OutboundMessage:
        return text_message(message_id)

    def invalid_message(self, message_id: str) -> OutboundMessage:
        return too_many_buttons(message_id)

    def classification_cases(self) -> Sequence[tuple[ProviderError, Outcome]]:
        return classification_cases()

    def signed_headers(self, raw_body: bytes) -> dict[str, str]:
        return signed(raw_body)

    def webhook_cases(self) -> Sequence[WebhookCase]:
        return webhook_cases()


class MemoryBackend(_WhatsAppBackend):
    """The WhatsApp driver over an InMemoryTransport answering like Meta."""

    def __init__(self) -> None:
        self.meta = FakeMeta()
        self.transport = InMemoryTransport(handler=self.meta)
        self.driver = WhatsAppDriver(driver_config(), transport=self.transport)

    async def fail_next_send(self, outcome: Outcome) -> None:
        self.meta.failures.append(CODE_FOR[outcome])

    async def receipt_webhook(self, result: SendResult) -> tuple[Mapping[str, str], bytes]:
        assert result.provider_message_id is not None
        body = self.meta.status_webhook(result.provider_message_id)
        return signed(body), body


class SimulatorBackend(_WhatsAppBackend):
    """The WhatsApp driver over HTTP to the simulator, whose signed webhooks reach a local receiver."""

    def __init__(self, simulator: WhatsAppSimulator, receiver: WebhookReceiver, driver: WhatsAppDriver) -> None:
        self.simulator, self.receiver, self.driver = simulator, receiver, driver

    async def fail_next_send(self, outcome: Outcome) -> None:
        self.simulator.inject_error(CODE_FOR[outcome])

    async def receipt_webhook(self, result: SendResult) -> tuple[Mapping[str, str], bytes]:
        def has_receipt(items: Sequence[object]) -> bool:
            return any(isinstance(i, ReceiptItem) and i.provider_message_id == result.provider_message_id
                       for i in items)

        await self.receiver.wait_for(has_receipt)
        return next((headers, body) for headers, body in self.receiver.bodies
                    if has_receipt(self.driver.parse_webhook(body)))

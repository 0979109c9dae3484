"""A minimal third-party channel driver: JSON over the Transport, HMAC-signed JSON webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Self

from connectors import (
    Capabilities,
    ChannelDriver,
    InvalidMessage,
    LocalErrorCode,
    MalformedWebhook,
    NormalizedItem,
    OutboundMessage,
    Outcome,
    ProviderError,
    ReceiptItem,
    ReceiptStatus,
    SendResult,
    SignatureInvalid,
    SignatureMissing,
    Text,
    Transport,
    TransportError,
    classify_local,
    header_value,
)

SIGNATURE = "X-Echo-Signature"
_OUTCOMES = {
    "throttled": Outcome.RETRY_LATER,
    "recipient_busy": Outcome.RETRY_RECIPIENT_LATER,
    "window_closed": Outcome.NEEDS_TEMPLATE,
    "bad_request": Outcome.PERMANENT_FAILURE,
    "banned": Outcome.STOP_ACCOUNT,
}


class EchoDriver(ChannelDriver):
    """Sends {"ref", "to", "text"} to {base_url}/send; webhooks are {"receipts": [{"id", "status", "ref", "at"}]}."""

    channel = "echo"
    capabilities = Capabilities(receipts=frozenset({ReceiptStatus.SENT, ReceiptStatus.DELIVERED}))

    def __init__(self, base_url: str, secret: str, transport: Transport) -> None:
        self.base_url, self._secret, self._transport = base_url, secret, transport

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], *, transport: Transport | None = None) -> Self:
        if transport is None:
            raise ValueError("the echo driver needs a transport")
        return cls(settings["base_url"], settings.get("secret", ""), transport)

    async def send(self, message: OutboundMessage) -> SendResult:
        if not isinstance(message.content, Text) or len(message.content.body) > 160:
            error = ProviderError(LocalErrorCode.INVALID_MESSAGE, str(InvalidMessage("echo sends text up to 160")))
            return SendResult(Outcome.PERMANENT_FAILURE, message.message_id, error=error)
        body = json.dumps({"ref": message.message_id, "to": message.recipient, "text": message.content.body})
        try:
            reply = await self._transport.request("POST", f"{self.base_url}/send", {}, body.encode())
        except TransportError as failure:
            error = ProviderError(LocalErrorCode.NETWORK, str(failure))
            return SendResult(Outcome.RETRY_LATER, message.message_id, error=error, maybe_sent=failure.maybe_sent)
        answer: dict[str, Any] = json.loads(reply.body)
        if reply.status == 200:
            return SendResult(Outcome.ACCEPTED, message.message_id, str(answer["id"]))
        error = ProviderError(str(answer.get("error")), http_status=reply.status)
        return SendResult(self.classify(error), message.message_id, error=error)

    def classify(self, error: ProviderError) -> Outcome:
        return classify_local(error) or _OUTCOMES.get(error.code, Outcome.PERMANENT_FAILURE)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        received = header_value(headers, SIGNATURE)
        if not received:
            raise SignatureMissing(f"no {SIGNATURE}")
        expected = hmac.new(self._secret.encode(), raw_body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), received.encode("utf-8", "replace")):
            raise SignatureInvalid(f"{SIGNATURE} does not match")

    def parse_webhook(self, raw_body: bytes) -> list[NormalizedItem]:
        try:
            document = json.loads(raw_body)
            receipts = document["receipts"]
        except (ValueError, TypeError, KeyError):
            raise MalformedWebhook("not an echo webhook") from None
        return [ReceiptItem(self.channel, "echo", str(r["id"]), ReceiptStatus(r["status"]),
                            datetime.fromtimestamp(int(r["at"]), tz=UTC), message_id=r.get("ref"))
                for r in receipts]

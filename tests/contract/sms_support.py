"""Twilio SMS test material shared by the contract and unit tests: a fake Messages API, samples, signed callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from connectors import (
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
)
from connectors._callback_reference import QUERY_HEADER
from connectors.testing import ContractBackend, WebhookCase
from connectors.twilio_sms import SIGNATURE_HEADER, TwilioSmsConfig, TwilioSmsDriver

DATA = Path(__file__).parent / "data" / "sms"
ACCOUNT_SID = "AC00000000000000000000000000000001"
AUTH_TOKEN = "contract-twilio-auth-token"
WEBHOOK_URL = "https://hooks.example.com/webhooks/sms?tenant=acme"
FROM = "+15550001111"
RECIPIENT = "+15551234567"

# Twilio REST error bodies ("Twilio API responses": code, message, more_info, status).
ERRORS: Mapping[Outcome, tuple[int, int]] = {
    Outcome.RETRY_LATER: (429, 20429),
    Outcome.RETRY_RECIPIENT_LATER: (400, 30003),
    Outcome.PERMANENT_FAILURE: (400, 21211),
    Outcome.STOP_ACCOUNT: (401, 20003),
}
_I, _R, _U, _S = InboundItem, ReceiptItem, UnhandledItem, ReceiptStatus
CASES: Sequence[tuple[str, tuple[type, ...], tuple[ReceiptStatus, ...]]] = (
    ("status_queued", (_U,), ()),
    ("status_sent", (_R,), (_S.SENT,)),
    ("status_delivered", (_R,), (_S.DELIVERED,)),
    ("status_undelivered", (_R,), (_S.FAILED,)),
    ("status_failed", (_R,), (_S.FAILED,)),
    ("inbound_sms", (_I,), ()),
    ("inbound_mms", (_I,), ()),
)


def raw(name: str) -> bytes:
    """A fixture's bytes, exactly as stored."""
    return (DATA / f"{name}.txt").read_bytes()


def config(base_url: str = "https://twilio.invalid") -> TwilioSmsConfig:
    """A config with fixed test secrets and the public webhook URL."""
    return TwilioSmsConfig(base_url=base_url, webhook_url=WEBHOOK_URL, account_sid=SecretSource.of(ACCOUNT_SID),
                           auth_token=SecretSource.of(AUTH_TOKEN))


def expected_signature(url: str, raw_body: bytes, token: str = AUTH_TOKEN) -> str:
    """Twilio's algorithm written out independently of the driver: URL + sorted name+value, HMAC-SHA1, base64."""
    params = sorted(parse_qsl(raw_body.decode(), keep_blank_values=True))
    data = url + "".join(f"{name}{value}" for name, value in params)
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def signed(raw_body: bytes, url: str = WEBHOOK_URL) -> dict[str, str]:
    """Headers as Twilio sends them with this body to `url` (WEBHOOK_URL: the number's incoming-message URL)."""
    return {"Content-Type": "application/x-www-form-urlencoded",
            SIGNATURE_HEADER: expected_signature(url, raw_body)}


def response(status: int, body: Mapping[str, Any]) -> TransportResponse:
    """A JSON answer."""
    return TransportResponse(status, {"Content-Type": "application/json"}, json.dumps(body).encode())


def error_body(code: int, status: int) -> dict[str, Any]:
    """Twilio's error body."""
    return {"code": code, "message": f"provoked error {code}", "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


class FakeTwilio:
    """Messages create as an InMemoryTransport handler: 201 Message resources, or queued error bodies."""

    def __init__(self) -> None:
        self.failures: deque[Outcome] = deque()
        self.accepted: dict[str, dict[str, str]] = {}

    def __call__(self, request: TransportRequest) -> TransportResponse:
        if self.failures:
            status, code = ERRORS[self.failures.popleft()]
            return response(status, error_body(code, status))
        form = dict(parse_qsl((request.body or b"").decode()))
        sid = f"SM{len(self.accepted) + 1:032x}"
        self.accepted[sid] = form
        return response(201, {"sid": sid, "account_sid": ACCOUNT_SID, "to": form["To"], "from": form.get("From"),
                              "body": form["Body"], "status": "queued", "num_segments": "1",
                              "api_version": "2010-04-01",
                              "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"})

    def status_callback(self, sid: str, status: str = "delivered") -> bytes:
        """The status callback Twilio posts for an accepted message."""
        form = self.accepted[sid]
        return urlencode({"SmsSid": sid, "SmsStatus": status, "MessageStatus": status, "To": form["To"],
                          "MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": form.get("From", ""),
                          "ApiVersion": "2010-04-01"}).encode()


class SmsBackend(ContractBackend):
    """The Twilio SMS driver over an InMemoryTransport answering like the Messages API."""

    def __init__(self) -> None:
        self.api = FakeTwilio()
        self.transport = InMemoryTransport(handler=self.api)
        self.driver = TwilioSmsDriver(config(), transport=self.transport)

    def sample_message(self, message_id: str) -> OutboundMessage:
        return OutboundMessage(message_id, FROM, RECIPIENT, Text("Your order shipped"))

    def invalid_message(self, message_id: str) -> OutboundMessage:
        return OutboundMessage(message_id, FROM, "555-1234", Text("Your order shipped"))

    async def fail_next_send(self, outcome: Outcome) -> None:
        self.api.failures.append(outcome)

    def injectable_failures(self) -> frozenset[Outcome]:
        return frozenset(ERRORS)

    def classification_cases(self) -> Sequence[tuple[ProviderError, Outcome]]:
        return [
            (ProviderError("21211"), Outcome.PERMANENT_FAILURE),
            (ProviderError("21610"), Outcome.PERMANENT_FAILURE),
            (ProviderError("21614"), Outcome.PERMANENT_FAILURE),
            (ProviderError("20429"), Outcome.RETRY_LATER),
            (ProviderError("20003"), Outcome.STOP_ACCOUNT),
            (ProviderError("21606"), Outcome.STOP_ACCOUNT),
            (ProviderError("30003"), Outcome.RETRY_RECIPIENT_LATER),
            (ProviderError("30005"), Outcome.PERMANENT_FAILURE),
            (ProviderError("30007"), Outcome.PERMANENT_FAILURE),
            (ProviderError("30008"), Outcome.RETRY_LATER),
            (ProviderError("99999", http_status=429), Outcome.RETRY_LATER),
            (ProviderError("99999", http_status=503), Outcome.RETRY_LATER),
            (ProviderError("99999", http_status=400), Outcome.PERMANENT_FAILURE),
        ]

    def signed_headers(self, raw_body: bytes) -> dict[str, str]:
        return signed(raw_body)

    def webhook_cases(self) -> Sequence[WebhookCase]:
        return [WebhookCase(name, raw(name), expected, statuses) for name, expected, statuses in CASES]

    async def receipt_webhook(self, result: SendResult) -> tuple[Mapping[str, str], bytes]:
        assert result.provider_message_id is not None
        body = self.api.status_callback(result.provider_message_id)
        # Posted to the send's StatusCallback, as Twilio does; the receiver passes its query along.
        callback = self.api.accepted[result.provider_message_id]["StatusCallback"]
        return {**signed(body, callback), QUERY_HEADER: callback.partition("?")[2]}, body

"""The Facebook Messenger Platform channel driver: the Send API, Graph error classification, signed webhooks.

Send: `POST {base_url}/{version}/me/messages` with `Authorization: Bearer <page access token>` and
`{"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text", "metadata"}}`. Our message id rides
in `message.metadata`, which Meta echoes back in the `message_echoes` webhook: that echo is our `sent` receipt and
the one that carries our id. `delivery` (by `mids`, or only a `watermark`) and `read` (always a watermark: every
message sent before it was read) receipts carry no metadata; they are matched by provider message id, or, for
watermarks, by recipient and time (`provider_message_id` is then `"watermark:<ms>"`).

Webhooks are signed like WhatsApp's (`X-Hub-Signature-256` with the Meta App Secret) and subscribed with the same
GET hub.challenge handshake. `OutboundMessage.recipient` is the page-scoped user id (PSID); `sender` is the page id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Self

from connectors._driver import Capabilities, ChannelDriver, classify_local, retry_by_http_status
from connectors._errors import InvalidMessage, MalformedWebhook
from connectors._http_common import (
    failed,
    json_or_none,
    local_failure,
    log_result,
    parse_retry_after,
    request_or_failure,
    str_or_none,
    utc_from_seconds,
)
from connectors._hub import answer_hub_challenge, verify_hub_signature
from connectors._items import InboundItem, InboundMedia, NormalizedItem, ReceiptItem, ReceiptStatus, UnhandledItem
from connectors._messages import OutboundMessage, Text
from connectors._privacy import MissingSecret, SecretSource
from connectors._results import LocalErrorCode, Outcome, ProviderError, SendResult
from connectors._transport import AiohttpTransport, Transport, TransportResponse

__all__ = ["DEFAULT_BASE_URL", "ENV_APP_SECRET", "ENV_PAGE_TOKEN", "ENV_VERIFY_TOKEN", "GRAPH_API_VERSION",
           "MESSENGER_ERROR_CODES", "MESSENGER_SUBCODES", "TEXT_LIMIT", "MessengerConfig", "MessengerDriver",
           "build_send_body", "parse_messenger_webhook"]

GRAPH_API_VERSION: Final = "v24.0"  # pinned, like the WhatsApp driver's
DEFAULT_BASE_URL: Final = "https://graph.facebook.com"
ENV_PAGE_TOKEN: Final = "SWITCHBOARD_MESSENGER_PAGE_TOKEN"
ENV_APP_SECRET: Final = "SWITCHBOARD_MESSENGER_APP_SECRET"
ENV_VERIFY_TOKEN: Final = "SWITCHBOARD_MESSENGER_VERIFY_TOKEN"
TEXT_LIMIT: Final = 2000  # UTF-8 characters of message.text
METADATA_LIMIT: Final = 1000  # characters of message.metadata
CHANNEL: Final = "messenger"
_SETTINGS = frozenset({"base_url", "api_version", "timeout", "page_token_env", "app_secret_env",
                       "verify_token_env"})

# Graph error code -> outcome (Messenger Platform error codes).
MESSENGER_ERROR_CODES: Final[Mapping[str, Outcome]] = {
    "1": Outcome.RETRY_LATER,  # unknown error; retry a few times
    "2": Outcome.RETRY_LATER,  # service temporarily unavailable
    "4": Outcome.RETRY_LATER,  # application request limit reached
    "613": Outcome.RETRY_LATER,  # calls to this API exceeded the rate limit
    "10": Outcome.STOP_ACCOUNT,  # permission denied (but see subcode 2018278)
    "190": Outcome.STOP_ACCOUNT,  # page access token invalid or expired
    "200": Outcome.STOP_ACCOUNT,  # permissions error (200-299)
    "368": Outcome.STOP_ACCOUNT,  # temporarily blocked for policy violations
    "100": Outcome.PERMANENT_FAILURE,  # invalid parameter (no matching user, bad body)
    "551": Outcome.PERMANENT_FAILURE,  # this person isn't available right now
}
# (code, error_subcode) pairs that decide differently from the code alone.
MESSENGER_SUBCODES: Final[Mapping[tuple[str, str], Outcome]] = {
    ("10", "2018278"): Outcome.NEEDS_TEMPLATE,  # sent outside the 24-hour window: needs a message tag / template
    ("551", "1545041"): Outcome.PERMANENT_FAILURE,  # this person isn't available right now
    ("100", "2018001"): Outcome.PERMANENT_FAILURE,  # no matching user found
    ("200", "2018028"): Outcome.PERMANENT_FAILURE,  # cannot message users who have not opted in (this user only)
}
_RETRY_AFTER: Final[Mapping[str, float]] = {"4": 60.0, "613": 60.0, "1": 5.0, "2": 5.0}

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MessengerConfig:
    """Where the driver sends and where its secrets come from; holds no secret values itself."""

    base_url: str = DEFAULT_BASE_URL
    api_version: str = GRAPH_API_VERSION
    timeout: float = 10.0
    page_token: SecretSource = field(default_factory=lambda: SecretSource(ENV_PAGE_TOKEN))
    app_secret: SecretSource = field(default_factory=lambda: SecretSource(ENV_APP_SECRET))
    verify_token: SecretSource = field(default_factory=lambda: SecretSource(ENV_VERIFY_TOKEN))


def build_send_body(message: OutboundMessage) -> dict[str, Any]:
    """The Send API body; InvalidMessage for what Messenger cannot take."""
    if not isinstance(message.content, Text):
        raise InvalidMessage(f"messenger sends Text only, not {type(message.content).__name__}")
    text = message.content.body
    if not text or len(text) > TEXT_LIMIT:
        raise InvalidMessage(f"messenger text must be 1-{TEXT_LIMIT} characters, got {len(text)}")
    if len(message.message_id) > METADATA_LIMIT:
        raise InvalidMessage(f"our message id is over the {METADATA_LIMIT}-character metadata limit")
    if not message.recipient:
        raise InvalidMessage("messenger needs a page-scoped user id")
    return {"recipient": {"id": message.recipient}, "messaging_type": "RESPONSE",
            "message": {"text": text, "metadata": message.message_id}}


class MessengerDriver(ChannelDriver):
    """Messenger Send API; sent (echo), delivered and read receipts; inbound messages; hub handshake."""

    channel = CHANNEL
    capabilities = Capabilities(
        receipts=frozenset({ReceiptStatus.SENT, ReceiptStatus.DELIVERED, ReceiptStatus.READ}),
        inbound=True,
        session_window=timedelta(hours=24),
        content=frozenset({"Text"}),
        handshake=True,
        outcomes=frozenset({Outcome.ACCEPTED, Outcome.RETRY_LATER, Outcome.NEEDS_TEMPLATE,
                            Outcome.PERMANENT_FAILURE, Outcome.STOP_ACCOUNT}),
        receipts_by_recipient=True,  # delivered and read name the user (and mids or a watermark), not our id
    )

    def __init__(self, config: MessengerConfig | None = None, *, transport: Transport | None = None) -> None:
        self.config = config or MessengerConfig()
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport(timeout=self.config.timeout)

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], *, transport: Transport | None = None) -> Self:
        """Settings: base_url, api_version, timeout, and *_env naming the variables that hold the secrets."""
        unknown = set(settings) - _SETTINGS
        if unknown:
            raise ValueError(f"unknown messenger settings: {', '.join(sorted(unknown))}")
        config = MessengerConfig(
            base_url=settings.get("base_url", DEFAULT_BASE_URL),
            api_version=settings.get("api_version", GRAPH_API_VERSION),
            timeout=float(settings.get("timeout", "10")),
            page_token=SecretSource(settings.get("page_token_env", ENV_PAGE_TOKEN)),
            app_secret=SecretSource(settings.get("app_secret_env", ENV_APP_SECRET)),
            verify_token=SecretSource(settings.get("verify_token_env", ENV_VERIFY_TOKEN)),
        )
        return cls(config, transport=transport)

    def __repr__(self) -> str:
        return f"MessengerDriver(base_url={self.config.base_url!r}, api_version={self.config.api_version!r})"

    @property
    def messages_url(self) -> str:
        """The Send API endpoint."""
        return f"{self.config.base_url.rstrip('/')}/{self.config.api_version}/me/messages"

    async def send(self, message: OutboundMessage) -> SendResult:
        """Sends one text; never raises."""
        result = await self._send(message)
        log_result(_log, CHANNEL, message, result)
        return result

    async def _send(self, message: OutboundMessage) -> SendResult:
        try:
            body = json.dumps(build_send_body(message), ensure_ascii=False).encode()
            token = self.config.page_token.get()
        except (InvalidMessage, MissingSecret) as error:
            return local_failure(message, error)
        headers = {"Authorization": f"Bearer {token.reveal()}", "Content-Type": "application/json"}
        answer = await request_or_failure(
            message, lambda: self._transport.request("POST", self.messages_url, headers, body))
        return answer if isinstance(answer, SendResult) else self._read(message, answer)

    def _read(self, message: OutboundMessage, response: TransportResponse) -> SendResult:
        payload = json_or_none(response.body)
        if 200 <= response.status < 300:
            mid = payload.get("message_id") if isinstance(payload, dict) else None
            if not mid:
                error = ProviderError(LocalErrorCode.BAD_RESPONSE, "success without message_id",
                                      http_status=response.status)
                return failed(message, error, Outcome.RETRY_LATER, maybe_sent=True)
            return SendResult(Outcome.ACCEPTED, message.message_id, str(mid), str_or_none(payload.get("recipient_id")))
        error = _provider_error(payload, response.status)
        retry_after = _RETRY_AFTER.get(error.code) or parse_retry_after(response.headers)
        return failed(message, error, self.classify(error), retry_after=retry_after,
                      maybe_sent=response.status >= 500)

    def classify(self, error: ProviderError) -> Outcome:
        """(code, subcode) first, then the code, 200-299 as permissions, then is_transient and the HTTP status."""
        local = classify_local(error)
        if local is not None:
            return local
        by_subcode = MESSENGER_SUBCODES.get((error.code, error.details or ""))
        if by_subcode is not None:
            return by_subcode
        known = MESSENGER_ERROR_CODES.get(error.code)
        if known is None and error.code.isdigit() and 200 <= int(error.code) <= 299:
            known = Outcome.STOP_ACCOUNT
        if known is not None:
            if known is Outcome.PERMANENT_FAILURE and error.is_transient:
                return Outcome.RETRY_LATER
            return known
        if error.is_transient:
            return Outcome.RETRY_LATER
        return retry_by_http_status(error.http_status)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """X-Hub-Signature-256 over the raw bytes with the app secret (the shared Meta helper)."""
        verify_hub_signature(headers, raw_body, self.config.app_secret.get().reveal())

    def parse_webhook(self, raw_body: bytes) -> list[NormalizedItem]:
        """Every entry and messaging event."""
        return parse_messenger_webhook(raw_body)

    def answer_handshake(self, query: Mapping[str, str]) -> str | None:
        """The hub.challenge to echo when hub.mode is subscribe and hub.verify_token matches."""
        return answer_hub_challenge(query, self.config.verify_token.get().reveal())

    async def aclose(self) -> None:
        """Closes the transport when the driver created it."""
        if self._owns_transport:
            await self._transport.aclose()


def _provider_error(payload: Any, status: int) -> ProviderError:
    """Graph's error body; `details` holds the error_subcode, which decides some outcomes."""
    body = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(body, dict) or "code" not in body:
        return ProviderError(LocalErrorCode.HTTP, f"HTTP {status} without an error body", http_status=status)
    transient = body.get("is_transient")
    return ProviderError(code=str(body["code"]), message=str(body.get("message", "")),
                         details=str_or_none(body.get("error_subcode")), http_status=status,
                         is_transient=transient if isinstance(transient, bool) else None,
                         trace_id=str_or_none(body.get("fbtrace_id")))


def parse_messenger_webhook(raw_body: bytes) -> list[NormalizedItem]:
    """Every entry[].messaging[] event; MalformedWebhook unless the body is a page notification."""
    document = json_or_none(raw_body)
    if not isinstance(document, dict) or document.get("object") != "page" or \
            not isinstance(document.get("entry"), list):
        raise MalformedWebhook("not a Messenger page webhook")
    items: list[NormalizedItem] = []
    for entry in document["entry"]:
        page_id = str(entry.get("id", "")) if isinstance(entry, dict) else ""
        events = entry.get("messaging") if isinstance(entry, dict) else None
        if not isinstance(events, list):
            items.append(UnhandledItem(CHANNEL, "entry", "entry without messaging", page_id,
                                       raw=entry if isinstance(entry, dict) else {"entry": entry}))
            continue
        for event in events:
            try:
                items.extend(_event(event, page_id))
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                items.append(UnhandledItem(CHANNEL, "messaging", f"unreadable: {type(error).__name__}", page_id,
                                           raw=event if isinstance(event, dict) else {"event": event}))
    return items


def _event(event: Mapping[str, Any], page_id: str) -> list[NormalizedItem]:
    sender, recipient = str(event["sender"]["id"]), str(event["recipient"]["id"])
    if isinstance(event.get("message"), dict):
        message = event["message"]
        when = _when(event["timestamp"])
        if message.get("is_echo"):
            # A message our page sent: the sent receipt, with our id back from metadata.
            return [ReceiptItem(CHANNEL, page_id, str(message["mid"]), ReceiptStatus.SENT, when,
                                message_id=str_or_none(message.get("metadata")), recipient_id=recipient)]
        return [_inbound(message, sender, page_id, when, event)]
    if isinstance(event.get("postback"), dict):
        postback = event["postback"]
        return [InboundItem(CHANNEL, page_id, str(postback.get("mid") or f"postback:{sender}:{event['timestamp']}"),
                            sender, _when(event["timestamp"]), "button", payload=str_or_none(postback.get("payload")),
                            title=str_or_none(postback.get("title")), user_id=sender, raw=event)]
    if isinstance(event.get("delivery"), dict):
        delivery = event["delivery"]
        when = _when(delivery["watermark"])
        # The mids (when given) name some messages; the watermark covers every one sent before it, those too.
        return [*(ReceiptItem(CHANNEL, page_id, str(mid), ReceiptStatus.DELIVERED, when, recipient_id=sender)
                  for mid in delivery.get("mids") or ()),
                ReceiptItem(CHANNEL, page_id, f"watermark:{delivery['watermark']}", ReceiptStatus.DELIVERED, when,
                            recipient_id=sender, watermark=True)]
    if isinstance(event.get("read"), dict):
        watermark = event["read"]["watermark"]
        return [ReceiptItem(CHANNEL, page_id, f"watermark:{watermark}", ReceiptStatus.READ, _when(watermark),
                            recipient_id=sender, watermark=True)]
    kinds = [key for key in event if key not in ("sender", "recipient", "timestamp")]
    return [UnhandledItem(CHANNEL, kinds[0] if kinds else "messaging", "event kind not normalised", page_id,
                          raw=event)]


def _inbound(message: Mapping[str, Any], sender: str, page_id: str, when: datetime, event: Mapping[str, Any]
             ) -> InboundItem:
    quick = message.get("quick_reply")
    reply = message.get("reply_to")
    media = None
    kind = "text" if "text" in message else "unsupported"
    attachments = message.get("attachments")
    if isinstance(attachments, list) and attachments and isinstance(attachments[0], dict):
        first = attachments[0]
        kind = str(first.get("type", "attachment"))
        url = (first.get("payload") or {}).get("url")
        media = InboundMedia(kind, str(url or message["mid"]), url=str_or_none(url))
    if isinstance(quick, dict):
        kind = "button"
    return InboundItem(CHANNEL, page_id, str(message["mid"]), sender, when, kind, text=message.get("text"),
                       payload=str_or_none(quick.get("payload")) if isinstance(quick, dict) else None, media=media,
                       reply_to=str_or_none(reply.get("mid")) if isinstance(reply, dict) else None, user_id=sender,
                       raw=event)


def _when(milliseconds: Any) -> datetime:
    when = utc_from_seconds(milliseconds, millis=True)
    if when is None:
        raise ValueError("timestamp")
    return when

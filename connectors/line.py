"""The LINE Messaging API channel driver: push messages, HTTP-status classification, signed webhooks.

Push: `POST {base_url}/v2/bot/message/push` with `Authorization: Bearer <channel access token>` and
`X-Line-Retry-Key`, a UUID derived from our message id (`retry_key`), so a retried push of the same message is
deduplicated by LINE: the repeat is answered 409 with the request id LINE already accepted, which is `accepted`.

LINE sends **no delivery or read receipts** for push messages, so `capabilities.receipts` is empty. Webhooks carry
`x-line-signature` = base64(HMAC-SHA256(channel secret, raw body)), checked in constant time on the exact bytes.
`OutboundMessage.recipient` is a LINE user, group or room id (`U…`/`C…`/`R…`); `sender` labels our channel.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Self

from connectors._driver import Capabilities, ChannelDriver, classify_local
from connectors._errors import InvalidMessage, MalformedWebhook, SignatureInvalid, SignatureMissing
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
from connectors._hub import header_value
from connectors._items import InboundItem, InboundMedia, NormalizedItem, UnhandledItem
from connectors._messages import OutboundMessage, Text
from connectors._privacy import MissingSecret, SecretSource
from connectors._results import LocalErrorCode, Outcome, ProviderError, SendResult
from connectors._transport import AiohttpTransport, Transport, TransportResponse

__all__ = ["DEFAULT_BASE_URL", "ENV_ACCESS_TOKEN", "ENV_CHANNEL_SECRET", "LINE_STATUS_OUTCOMES", "RETRY_KEY_HEADER",
           "SIGNATURE_HEADER", "TEXT_LIMIT", "LineConfig", "LineDriver", "build_send_body", "line_signature",
           "parse_line_webhook", "retry_key"]

DEFAULT_BASE_URL: Final = "https://api.line.me"
ENV_ACCESS_TOKEN: Final = "SWITCHBOARD_LINE_CHANNEL_ACCESS_TOKEN"
ENV_CHANNEL_SECRET: Final = "SWITCHBOARD_LINE_CHANNEL_SECRET"
SIGNATURE_HEADER: Final = "x-line-signature"
RETRY_KEY_HEADER: Final = "X-Line-Retry-Key"
ACCEPTED_REQUEST_HEADER: Final = "x-line-accepted-request-id"
TEXT_LIMIT: Final = 5000  # characters of a text message object
CHANNEL: Final = "line"
# A fixed namespace: the same message id gives the same retry key in every process, forever. Never change it.
RETRY_KEY_NAMESPACE: Final = uuid.UUID("5b2d6c1e-7f3a-5e0b-9c4d-2a1f0e6b8d37")
_SETTINGS = frozenset({"base_url", "timeout", "access_token_env", "channel_secret_env"})

# LINE answers errors with an HTTP status and {"message", "details"}; the status is the code.
LINE_STATUS_OUTCOMES: Final[Mapping[str, Outcome]] = {
    "400": Outcome.PERMANENT_FAILURE,  # invalid request body, unknown recipient id
    "401": Outcome.STOP_ACCOUNT,  # invalid channel access token
    "403": Outcome.STOP_ACCOUNT,  # not authorised to use the endpoint (plan, permission)
    "409": Outcome.ACCEPTED,  # the retry key was already accepted: the earlier push went out
    "410": Outcome.PERMANENT_FAILURE,  # gone
    "413": Outcome.PERMANENT_FAILURE,  # request too large
    "415": Outcome.PERMANENT_FAILURE,  # unsupported media type
    "429": Outcome.RETRY_LATER,  # rate limit (but see MONTHLY_LIMIT)
    "500": Outcome.RETRY_LATER,
}
# 429 "You have reached your monthly limit." is the message quota, not a rate: waiting seconds will not help.
MONTHLY_LIMIT: Final = "monthly limit"

_log = logging.getLogger(__name__)


def retry_key(message_id: str) -> str:
    """The X-Line-Retry-Key for our message id: a UUID (v5) that is the same for every retry of that message."""
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, message_id))


def line_signature(raw_body: bytes, channel_secret: str) -> str:
    """The x-line-signature LINE sends: base64(HMAC-SHA256(channel secret, raw body))."""
    return base64.b64encode(hmac.new(channel_secret.encode(), raw_body, hashlib.sha256).digest()).decode()


@dataclass(frozen=True)
class LineConfig:
    """Where the driver sends and where its secrets come from; holds no secret values itself."""

    base_url: str = DEFAULT_BASE_URL
    timeout: float = 10.0
    access_token: SecretSource = field(default_factory=lambda: SecretSource(ENV_ACCESS_TOKEN))
    channel_secret: SecretSource = field(default_factory=lambda: SecretSource(ENV_CHANNEL_SECRET))


def build_send_body(message: OutboundMessage) -> dict[str, Any]:
    """The push body: one text message object; InvalidMessage for what LINE cannot take."""
    if not isinstance(message.content, Text):
        raise InvalidMessage(f"line sends Text only, not {type(message.content).__name__}")
    text = message.content.body
    if not text or len(text) > TEXT_LIMIT:
        raise InvalidMessage(f"line text must be 1-{TEXT_LIMIT} characters, got {len(text)}")
    if not message.recipient:
        raise InvalidMessage("line needs a user, group or room id")
    item: dict[str, Any] = {"type": "text", "text": text}
    if message.reply_to:
        item["quoteToken"] = message.reply_to  # LINE quotes by the quoteToken of the earlier message
    return {"to": message.recipient, "messages": [item]}


class LineDriver(ChannelDriver):
    """LINE Messaging API push; idempotent by X-Line-Retry-Key; no receipts, inbound messages by webhook."""

    channel = CHANNEL
    capabilities = Capabilities(
        receipts=frozenset(),  # LINE sends no delivery or read receipts for push messages
        inbound=True,
        content=frozenset({"Text"}),
        outcomes=frozenset({Outcome.ACCEPTED, Outcome.RETRY_LATER, Outcome.PERMANENT_FAILURE, Outcome.STOP_ACCOUNT}),
        receipt_message_id=False,
    )

    def __init__(self, config: LineConfig | None = None, *, transport: Transport | None = None) -> None:
        self.config = config or LineConfig()
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport(timeout=self.config.timeout)

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], *, transport: Transport | None = None) -> Self:
        """Settings: base_url, timeout, access_token_env and channel_secret_env naming the variables."""
        unknown = set(settings) - _SETTINGS
        if unknown:
            raise ValueError(f"unknown line settings: {', '.join(sorted(unknown))}")
        config = LineConfig(
            base_url=settings.get("base_url", DEFAULT_BASE_URL),
            timeout=float(settings.get("timeout", "10")),
            access_token=SecretSource(settings.get("access_token_env", ENV_ACCESS_TOKEN)),
            channel_secret=SecretSource(settings.get("channel_secret_env", ENV_CHANNEL_SECRET)),
        )
        return cls(config, transport=transport)

    def __repr__(self) -> str:
        return f"LineDriver(base_url={self.config.base_url!r})"

    @property
    def push_url(self) -> str:
        """The push endpoint."""
        return f"{self.config.base_url.rstrip('/')}/v2/bot/message/push"

    async def send(self, message: OutboundMessage) -> SendResult:
        """Pushes one message with a deterministic retry key; never raises."""
        result = await self._send(message)
        log_result(_log, CHANNEL, message, result)
        return result

    async def _send(self, message: OutboundMessage) -> SendResult:
        try:
            body = json.dumps(build_send_body(message), ensure_ascii=False).encode()
            token = self.config.access_token.get()
        except (InvalidMessage, MissingSecret) as error:
            return local_failure(message, error)
        headers = {"Authorization": f"Bearer {token.reveal()}", "Content-Type": "application/json",
                   RETRY_KEY_HEADER: retry_key(message.message_id)}
        answer = await request_or_failure(
            message, lambda: self._transport.request("POST", self.push_url, headers, body))
        return answer if isinstance(answer, SendResult) else self._read(message, answer)

    def _read(self, message: OutboundMessage, response: TransportResponse) -> SendResult:
        payload = json_or_none(response.body)
        request_id = header_value(response.headers, "x-line-request-id")
        if 200 <= response.status < 300 or response.status == 409:
            sent = _first_sent(payload)
            # On 409 LINE names the request that was accepted first; that is the push that went out.
            accepted_id = header_value(response.headers, ACCEPTED_REQUEST_HEADER)
            provider_id = sent or accepted_id or (request_id if response.status != 409 else None)
            if provider_id is None:
                error = ProviderError(LocalErrorCode.BAD_RESPONSE, "success without sentMessages[0].id",
                                      http_status=response.status)
                return failed(message, error, Outcome.RETRY_LATER, maybe_sent=True)
            status = "duplicate" if response.status == 409 else "sent"
            return SendResult(Outcome.ACCEPTED, message.message_id, provider_id, message.recipient, status)
        if isinstance(payload, dict) and "message" in payload:
            details = payload.get("details")
            detail_text = "; ".join(f"{d.get('property', '')}: {d.get('message', '')}" for d in details
                                    if isinstance(d, dict)) if isinstance(details, list) else None
            error = ProviderError(str(response.status), str(payload["message"]), details=detail_text or None,
                                  http_status=response.status, trace_id=request_id)
        else:
            error = ProviderError(LocalErrorCode.HTTP, f"HTTP {response.status} without a LINE error body",
                                  http_status=response.status, trace_id=request_id)
        return failed(message, error, self.classify(error), retry_after=parse_retry_after(response.headers),
                      maybe_sent=response.status >= 500)

    def classify(self, error: ProviderError) -> Outcome:
        """LINE_STATUS_OUTCOMES by status; 429 'monthly limit' stops the account; other 5xx retry, 4xx fail."""
        local = classify_local(error)
        if local is not None:
            return local
        if error.code == "429" and MONTHLY_LIMIT in error.message.lower():
            return Outcome.STOP_ACCOUNT
        known = LINE_STATUS_OUTCOMES.get(error.code)
        if known is not None:
            return known
        status = int(error.code) if error.code.isdigit() else error.http_status
        if status is not None and status >= 500:
            return Outcome.RETRY_LATER
        return Outcome.PERMANENT_FAILURE

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """x-line-signature over the raw bytes with the channel secret, compared in constant time."""
        received = header_value(headers, SIGNATURE_HEADER)
        if not received:
            raise SignatureMissing(f"no {SIGNATURE_HEADER} header")
        expected = line_signature(raw_body, self.config.channel_secret.get().reveal())
        if not hmac.compare_digest(expected.encode(), received.strip().encode("utf-8", "replace")):
            raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")

    def parse_webhook(self, raw_body: bytes) -> list[NormalizedItem]:
        """Every event: message and postback events become InboundItems, the others UnhandledItems."""
        return parse_line_webhook(raw_body)

    async def aclose(self) -> None:
        """Closes the transport when the driver created it."""
        if self._owns_transport:
            await self._transport.aclose()


def _first_sent(payload: Any) -> str | None:
    sent = payload.get("sentMessages") if isinstance(payload, dict) else None
    first = sent[0] if isinstance(sent, list) and sent and isinstance(sent[0], dict) else {}
    return str_or_none(first.get("id"))


_MEDIA = {"image": "image", "video": "video", "audio": "audio", "file": "document"}


def parse_line_webhook(raw_body: bytes) -> list[NormalizedItem]:
    """Every event of a webhook body; MalformedWebhook when it has no `events` list (an empty list is a ping)."""
    document = json_or_none(raw_body)
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise MalformedWebhook("not a LINE webhook (no events list)")
    destination = str(document.get("destination", ""))
    items: list[NormalizedItem] = []
    for event in document["events"]:
        if not isinstance(event, dict):
            items.append(UnhandledItem(CHANNEL, "event", "event is not an object", destination, raw={"event": event}))
            continue
        try:
            items.append(_event(event, destination))
        except (KeyError, TypeError, ValueError) as error:
            items.append(UnhandledItem(CHANNEL, str(event.get("type", "event")),
                                       f"unreadable: {type(error).__name__}", destination, raw=event))
    return items


def _event(event: Mapping[str, Any], destination: str) -> NormalizedItem:
    kind = event.get("type")
    source = event["source"] if kind in ("message", "postback") else {}
    if kind not in ("message", "postback"):
        return UnhandledItem(CHANNEL, str(kind), "event type not normalised", destination, raw=event)
    when = utc_from_seconds(event["timestamp"], millis=True)
    if when is None:
        raise ValueError("timestamp")
    # Reply to the conversation the event came from: the group or room, else the user.
    conversation = source.get("groupId") or source.get("roomId") or source["userId"]
    if kind == "postback":
        postback = event["postback"]
        return InboundItem(CHANNEL, destination, f"postback:{event['webhookEventId']}", str(conversation), when,
                           "button", payload=str_or_none(postback.get("data")),
                           user_id=str_or_none(source.get("userId")), raw=event)
    message = event["message"]
    message_kind = str(message["type"])
    media = None
    if message_kind in _MEDIA:
        media = InboundMedia(_MEDIA[message_kind], str(message["id"]), filename=message.get("fileName"))
    quoted = message.get("quotedMessageId")
    return InboundItem(CHANNEL, destination, str(message["id"]), str(conversation), when,
                       "text" if message_kind == "text" else _MEDIA.get(message_kind, message_kind),
                       text=message.get("text"), media=media, reply_to=str_or_none(quoted),
                       user_id=str_or_none(source.get("userId")), raw=event)

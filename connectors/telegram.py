"""The Telegram Bot API channel driver: sendMessage, error classification, secret-token webhooks, Update parsing.

Telegram sends **no delivery or read receipts** to bots: a `sendMessage` answer with `"ok": true` is the last
thing we ever learn about an outbound message, so `capabilities.receipts` is empty. Webhooks are authenticated by
the `X-Telegram-Bot-Api-Secret-Token` header (the `secret_token` given to `setWebhook`), a shared secret that does
not cover the body (`capabilities.signed_body` is False); it is compared in constant time.

`OutboundMessage.recipient` is the `chat_id` (a user id, a group id, or `@channelusername`); `sender` is only a
label for our bot. Telegram message ids are unique per chat only, so `provider_message_id` is `"<chat_id>:<id>"`.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Self

from connectors._driver import Capabilities, ChannelDriver, classify_local
from connectors._errors import InvalidMessage, MalformedWebhook, SignatureInvalid, SignatureMissing
from connectors._http_common import failed, json_or_none, local_failure, log_result, request_or_failure, str_or_none
from connectors._hub import header_value
from connectors._items import InboundItem, InboundMedia, NormalizedItem, UnhandledItem
from connectors._messages import OutboundMessage, Text
from connectors._privacy import MissingSecret, SecretSource
from connectors._results import LocalErrorCode, Outcome, ProviderError, SendResult
from connectors._transport import AiohttpTransport, Transport, TransportResponse

__all__ = ["DEFAULT_BASE_URL", "ENV_BOT_TOKEN", "ENV_WEBHOOK_SECRET", "SECRET_HEADER", "TELEGRAM_ERROR_CODES",
           "TEXT_LIMIT", "TelegramConfig", "TelegramDriver", "build_send_body", "parse_telegram_webhook"]

DEFAULT_BASE_URL: Final = "https://api.telegram.org"
ENV_BOT_TOKEN: Final = "SWITCHBOARD_TELEGRAM_BOT_TOKEN"
ENV_WEBHOOK_SECRET: Final = "SWITCHBOARD_TELEGRAM_WEBHOOK_SECRET"
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"
TEXT_LIMIT: Final = 4096  # characters of sendMessage text after entity parsing
CHANNEL: Final = "telegram"
_SETTINGS = frozenset({"base_url", "timeout", "account_id", "bot_token_env", "webhook_secret_env"})

# error_code -> outcome. Telegram's codes are HTTP statuses; the description says more (see classify).
TELEGRAM_ERROR_CODES: Final[Mapping[str, Outcome]] = {
    "400": Outcome.PERMANENT_FAILURE,  # Bad Request: chat not found, message is too long, ...
    "401": Outcome.STOP_ACCOUNT,  # Unauthorized: the bot token is wrong or revoked
    "403": Outcome.PERMANENT_FAILURE,  # Forbidden: bot was blocked by the user / kicked from the group
    "404": Outcome.STOP_ACCOUNT,  # Not Found: the bot token is malformed (the URL names no bot)
    "409": Outcome.PERMANENT_FAILURE,  # Conflict (not on the send path)
    "420": Outcome.RETRY_LATER,  # FLOOD_WAIT
    "429": Outcome.RETRY_LATER,  # Too Many Requests: retry after parameters.retry_after
}
_BLOCKED = ("bot was blocked by the user", "user is deactivated", "bot was kicked")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TelegramConfig:
    """Where the driver sends and where its secrets come from; holds no secret values itself."""

    base_url: str = DEFAULT_BASE_URL
    timeout: float = 10.0
    account_id: str = CHANNEL  # how items name our bot (the bot's username or id)
    bot_token: SecretSource = field(default_factory=lambda: SecretSource(ENV_BOT_TOKEN))
    webhook_secret: SecretSource = field(default_factory=lambda: SecretSource(ENV_WEBHOOK_SECRET))


def build_send_body(message: OutboundMessage) -> dict[str, Any]:
    """The sendMessage JSON body; InvalidMessage for what Telegram cannot take."""
    if not isinstance(message.content, Text):
        raise InvalidMessage(f"telegram sends Text only, not {type(message.content).__name__}")
    text = message.content.body
    if not text or len(text) > TEXT_LIMIT:
        raise InvalidMessage(f"telegram text must be 1-{TEXT_LIMIT} characters, got {len(text)}")
    if not message.recipient:
        raise InvalidMessage("telegram needs a chat_id")
    body: dict[str, Any] = {"chat_id": message.recipient, "text": text,
                            "link_preview_options": {"is_disabled": not message.content.preview_url}}
    if message.reply_to:
        _, _, reply_id = message.reply_to.rpartition(":")
        if not reply_id.isdigit():
            raise InvalidMessage("telegram reply_to must be '<chat_id>:<message_id>'")
        body["reply_parameters"] = {"message_id": int(reply_id)}
    return body


class TelegramDriver(ChannelDriver):
    """Telegram Bot API (`sendMessage`); no delivery receipts exist for bots, inbound messages arrive as Updates."""

    channel = CHANNEL
    capabilities = Capabilities(
        receipts=frozenset(),  # Telegram has no delivery or read receipts for bots
        inbound=True,
        content=frozenset({"Text"}),
        outcomes=frozenset({Outcome.ACCEPTED, Outcome.RETRY_LATER, Outcome.PERMANENT_FAILURE, Outcome.STOP_ACCOUNT}),
        signed_body=False,
        receipt_message_id=False,
    )

    def __init__(self, config: TelegramConfig | None = None, *, transport: Transport | None = None) -> None:
        self.config = config or TelegramConfig()
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport(timeout=self.config.timeout)

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], *, transport: Transport | None = None) -> Self:
        """Settings: base_url, timeout, account_id, and bot_token_env/webhook_secret_env naming the variables."""
        unknown = set(settings) - _SETTINGS
        if unknown:
            raise ValueError(f"unknown telegram settings: {', '.join(sorted(unknown))}")
        config = TelegramConfig(
            base_url=settings.get("base_url", DEFAULT_BASE_URL),
            timeout=float(settings.get("timeout", "10")),
            account_id=settings.get("account_id", CHANNEL),
            bot_token=SecretSource(settings.get("bot_token_env", ENV_BOT_TOKEN)),
            webhook_secret=SecretSource(settings.get("webhook_secret_env", ENV_WEBHOOK_SECRET)),
        )
        return cls(config, transport=transport)

    def __repr__(self) -> str:
        return f"TelegramDriver(base_url={self.config.base_url!r})"

    async def send(self, message: OutboundMessage) -> SendResult:
        """POST {base_url}/bot<token>/sendMessage; never raises."""
        result = await self._send(message)
        log_result(_log, CHANNEL, message, result)
        return result

    async def _send(self, message: OutboundMessage) -> SendResult:
        try:
            body = json.dumps(build_send_body(message), ensure_ascii=False).encode()
            token = self.config.bot_token.get()
        except (InvalidMessage, MissingSecret) as error:
            return local_failure(message, error)
        # The token is part of the URL: the URL is never logged, and transport errors do not carry it.
        url = f"{self.config.base_url.rstrip('/')}/bot{token.reveal()}/sendMessage"
        answer = await request_or_failure(
            message, lambda: self._transport.request("POST", url, {"Content-Type": "application/json"}, body))
        return answer if isinstance(answer, SendResult) else self._read(message, answer)

    def _read(self, message: OutboundMessage, response: TransportResponse) -> SendResult:
        payload = json_or_none(response.body)
        if not isinstance(payload, dict) or "ok" not in payload:
            error = ProviderError(LocalErrorCode.BAD_RESPONSE if response.status < 300 else LocalErrorCode.HTTP,
                                  f"HTTP {response.status} without a Bot API answer", http_status=response.status)
            return failed(message, error, self.classify(error), maybe_sent=response.status >= 500 or
                          response.status < 300)
        if payload["ok"] is True:
            sent = payload.get("result")
            if not isinstance(sent, dict) or "message_id" not in sent:
                error = ProviderError(LocalErrorCode.BAD_RESPONSE, "ok without result.message_id",
                                      http_status=response.status)
                return failed(message, error, Outcome.RETRY_LATER, maybe_sent=True)
            chat = sent.get("chat")
            chat_id = chat.get("id") if isinstance(chat, dict) else None
            chat_id = message.recipient if chat_id is None else chat_id
            return SendResult(Outcome.ACCEPTED, message.message_id, f"{chat_id}:{sent['message_id']}",
                              str(chat_id), provider_status="sent")
        parameters = payload.get("parameters")
        parameters = parameters if isinstance(parameters, dict) else {}
        retry_after = parameters.get("retry_after")
        error = ProviderError(str(payload.get("error_code", response.status)), str(payload.get("description", "")),
                              details=_migrated(parameters), http_status=response.status)
        return failed(message, error, self.classify(error),
                      retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
                      maybe_sent=response.status >= 500, consent_revoked=_blocked(error))

    def classify(self, error: ProviderError) -> Outcome:
        """TELEGRAM_ERROR_CODES; 5xx and unknown 429-like codes retry, any other unknown code fails the message."""
        local = classify_local(error)
        if local is not None:
            return local
        known = TELEGRAM_ERROR_CODES.get(error.code)
        if known is not None:
            return known
        status = int(error.code) if error.code.isdigit() else error.http_status
        if status is not None and (status == 429 or status >= 500):
            return Outcome.RETRY_LATER
        return Outcome.PERMANENT_FAILURE

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """X-Telegram-Bot-Api-Secret-Token equals our webhook secret (constant time); it does not sign the body."""
        received = header_value(headers, SECRET_HEADER)
        if not received:
            raise SignatureMissing(f"no {SECRET_HEADER} header")
        expected = self.config.webhook_secret.get().reveal()
        if not hmac.compare_digest(expected.encode(), received.strip().encode("utf-8", "replace")):
            raise SignatureInvalid(f"{SECRET_HEADER} does not match")

    def parse_webhook(self, raw_body: bytes) -> list[NormalizedItem]:
        """One Update per request: message/edited_message/channel_post and callback_query become InboundItems."""
        return parse_telegram_webhook(raw_body, self.config.account_id)

    async def aclose(self) -> None:
        """Closes the transport when the driver created it."""
        if self._owns_transport:
            await self._transport.aclose()


def _blocked(error: ProviderError) -> bool:
    return error.code == "403" and any(text in error.message.lower() for text in _BLOCKED)


def _migrated(parameters: Mapping[str, Any]) -> str | None:
    chat = parameters.get("migrate_to_chat_id")
    return None if chat is None else f"group migrated to supergroup {chat}"


_MESSAGE_KEYS = ("message", "edited_message", "channel_post", "edited_channel_post", "business_message")
_MEDIA_KEYS = ("document", "audio", "video", "voice", "animation", "sticker", "video_note")


def parse_telegram_webhook(raw_body: bytes, account_id: str = CHANNEL) -> list[NormalizedItem]:
    """The items of one Update; MalformedWebhook when the body is not an Update object."""
    update = json_or_none(raw_body)
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        raise MalformedWebhook("not a Telegram Update (no integer update_id)")
    try:
        for key in _MESSAGE_KEYS:
            if isinstance(update.get(key), dict):
                return [_inbound_message(update[key], account_id, edited=key.startswith("edited"))]
        if isinstance(update.get("callback_query"), dict):
            return [_callback(update["callback_query"], account_id)]
    except (KeyError, TypeError, ValueError) as error:
        return [UnhandledItem(CHANNEL, "update", f"unreadable: {type(error).__name__}", raw=update)]
    kinds = [key for key in update if key != "update_id"]
    return [UnhandledItem(CHANNEL, kinds[0] if kinds else "update", "update kind not normalised", raw=update)]


def _inbound_message(message: Mapping[str, Any], account_id: str, *, edited: bool) -> InboundItem:
    chat_id = message["chat"]["id"]
    sender = message.get("from") or message.get("sender_chat") or message["chat"]
    when = datetime.fromtimestamp(int(message.get("edit_date") or message["date"]), tz=UTC)
    reply = message.get("reply_to_message")
    reply_to = f"{chat_id}:{reply['message_id']}" if isinstance(reply, dict) and "message_id" in reply else None
    kind, media = "text", None
    if isinstance(message.get("photo"), list) and message["photo"]:
        largest = message["photo"][-1]  # Telegram lists the sizes smallest first
        kind, media = "image", InboundMedia("image", str(largest["file_id"]), caption=message.get("caption"))
    else:
        for key in _MEDIA_KEYS:
            if isinstance(message.get(key), dict):
                item = message[key]
                kind = key
                media = InboundMedia(key, str(item["file_id"]), mime_type=item.get("mime_type"),
                                     caption=message.get("caption"), filename=item.get("file_name"))
                break
        else:
            if "text" not in message:
                kind = "unsupported"
    return InboundItem(
        channel=CHANNEL, account_id=account_id, provider_message_id=f"{chat_id}:{message['message_id']}",
        sender=str(chat_id), occurred_at=when, kind=f"edited_{kind}" if edited else kind,
        text=message.get("text"), media=media, reply_to=reply_to,
        profile_name=_name(sender), user_id=str_or_none(sender.get("id")), raw=message)


def _callback(query: Mapping[str, Any], account_id: str) -> InboundItem:
    message = query.get("message") if isinstance(query.get("message"), dict) else None
    user = query["from"]
    chat_id = message["chat"]["id"] if message else user["id"]
    when = datetime.now(UTC)  # a callback query carries no time of its own: the time we read it
    return InboundItem(
        channel=CHANNEL, account_id=account_id, provider_message_id=f"callback:{query['id']}", sender=str(chat_id),
        occurred_at=when, kind="button", payload=str_or_none(query.get("data")),
        reply_to=f"{chat_id}:{message['message_id']}" if message else None, profile_name=_name(user),
        user_id=str(user["id"]), raw=query)


def _name(who: Mapping[str, Any]) -> str | None:
    parts = [who.get("first_name"), who.get("last_name")]
    name = " ".join(str(part) for part in parts if part) or who.get("title") or who.get("username")
    return str_or_none(name)

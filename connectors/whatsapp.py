"""The WhatsApp Cloud API channel driver: sends through a Transport, classifies Meta's codes, parses webhooks."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, Self

from connectors._driver import Capabilities, ChannelDriver
from connectors._errors import InvalidMessage, TransportError, TransportTimeout
from connectors._http_common import failed, local_failure, str_or_none
from connectors._hub import answer_hub_challenge, header_value, verify_hub_signature
from connectors._items import NormalizedItem, ReceiptStatus
from connectors._messages import OutboundMessage
from connectors._privacy import MissingSecret, Secret, SecretSource, mask_phone
from connectors._results import LocalErrorCode, Outcome, ProviderError, SendResult
from connectors._transport import AiohttpTransport, Transport, TransportResponse
from connectors._whatsapp_codes import (
    WHATSAPP_ERROR_CODES,
    CodeRule,
    classify_whatsapp,
    is_throttle,
    retry_after_for,
)
from connectors._whatsapp_payloads import LIMITS, build_send_body
from connectors._whatsapp_webhooks import check_whatsapp_webhook, parse_whatsapp_webhook

__all__ = [
    "DEFAULT_BASE_URL",
    "ENV_ACCESS_TOKEN",
    "ENV_APP_SECRET",
    "ENV_VERIFY_TOKEN",
    "GRAPH_API_VERSION",
    "LIMITS",
    "WHATSAPP_ERROR_CODES",
    "CodeRule",
    "WhatsAppConfig",
    "WhatsAppDriver",
    "build_send_body",
]

# Pinned, never "latest": a new Graph version can change payloads, and we move to it deliberately.
GRAPH_API_VERSION: Final = "v24.0"
DEFAULT_BASE_URL: Final = "https://graph.facebook.com"
ENV_ACCESS_TOKEN: Final = "SWITCHBOARD_WHATSAPP_ACCESS_TOKEN"
ENV_APP_SECRET: Final = "SWITCHBOARD_WHATSAPP_APP_SECRET"
ENV_VERIFY_TOKEN: Final = "SWITCHBOARD_WHATSAPP_VERIFY_TOKEN"
MARKETING_OPT_OUT: Final = "131050"  # a failed receipt's code: the user stopped marketing messages
_TOKEN_EXPIRED = "190"
_SETTINGS = frozenset({"base_url", "api_version", "timeout", "access_token_env", "app_secret_env", "verify_token_env"})

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WhatsAppConfig:
    """Where the driver sends and where its secrets come from; holds no secret values itself."""

    base_url: str = DEFAULT_BASE_URL
    api_version: str = GRAPH_API_VERSION
    timeout: float = 10.0
    access_token: SecretSource = field(default_factory=lambda: SecretSource(ENV_ACCESS_TOKEN))
    app_secret: SecretSource = field(default_factory=lambda: SecretSource(ENV_APP_SECRET))
    verify_token: SecretSource = field(default_factory=lambda: SecretSource(ENV_VERIFY_TOKEN))


class WhatsAppDriver(ChannelDriver):
    """WhatsApp Business Cloud API: OutboundMessage.sender is the business phone_number_id."""

    channel = "whatsapp"
    capabilities = Capabilities(
        receipts=frozenset(ReceiptStatus),
        inbound=True,
        template_updates=True,
        session_window=timedelta(hours=24),
        content=frozenset({"Text", "Media", "Template", "Buttons", "ListMenu"}),
        handshake=True,
    )

    def __init__(self, config: WhatsAppConfig | None = None, *, transport: Transport | None = None) -> None:
        self.config = config or WhatsAppConfig()
        self._owns_transport = transport is None
        self._transport: Transport = transport or AiohttpTransport(timeout=self.config.timeout)

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], *, transport: Transport | None = None) -> Self:
        """Settings: base_url, api_version, timeout, and *_env naming the variables that hold the secrets."""
        unknown = set(settings) - _SETTINGS
        if unknown:
            raise ValueError(f"unknown whatsapp settings: {', '.join(sorted(unknown))}")
        config = WhatsAppConfig(
            base_url=settings.get("base_url", DEFAULT_BASE_URL),
            api_version=settings.get("api_version", GRAPH_API_VERSION),
            timeout=float(settings.get("timeout", "10")),
            access_token=SecretSource(settings.get("access_token_env", ENV_ACCESS_TOKEN)),
            app_secret=SecretSource(settings.get("app_secret_env", ENV_APP_SECRET)),
            verify_token=SecretSource(settings.get("verify_token_env", ENV_VERIFY_TOKEN)),
        )
        return cls(config, transport=transport)

    def __repr__(self) -> str:
        return f"WhatsAppDriver(base_url={self.config.base_url!r}, api_version={self.config.api_version!r})"

    def messages_url(self, phone_number_id: str) -> str:
        """The send endpoint of one business number."""
        return f"{self.config.base_url.rstrip('/')}/{self.config.api_version}/{phone_number_id}/messages"

    async def send(self, message: OutboundMessage) -> SendResult:
        """Sends one message; an expired token (190) is re-read once, so a rotated token file heals without restart."""
        result = await self._send(message)
        _log_result(message, result)
        return result

    async def _send(self, message: OutboundMessage) -> SendResult:
        try:
            body = json.dumps(build_send_body(message), ensure_ascii=False).encode()
            token = self.config.access_token.get()
        except (InvalidMessage, MissingSecret) as error:
            return local_failure(message, error)
        result = await self._attempt(message, body, token)
        if result.error is not None and result.error.code == _TOKEN_EXPIRED:
            fresh = self.config.access_token.get()
            if fresh != token:
                result = await self._attempt(message, body, fresh)
        return result

    async def _attempt(self, message: OutboundMessage, body: bytes, token: Secret) -> SendResult:
        headers = {"Authorization": f"Bearer {token.reveal()}", "Content-Type": "application/json"}
        try:
            response = await self._transport.request("POST", self.messages_url(message.sender), headers, body)
        except TransportError as error:
            code = LocalErrorCode.TIMEOUT if isinstance(error, TransportTimeout) else LocalErrorCode.NETWORK
            return failed(message, ProviderError(code, str(error)), Outcome.RETRY_LATER, maybe_sent=error.maybe_sent)
        return self._read(message, response)

    def _read(self, message: OutboundMessage, response: TransportResponse) -> SendResult:
        payload = _json(response.body)
        if 200 <= response.status < 300:
            return _accepted(message, payload, response.status)
        error = _provider_error(payload, response.status)
        retry_after = retry_after_for(error) or _retry_after_header(response.headers)
        # A 5xx can come after Meta queued the message; say so, the receipts will tell.
        return failed(message, error, self.classify(error), retry_after=retry_after, maybe_sent=response.status >= 500,
                      throttled=is_throttle(error))

    def classify(self, error: ProviderError) -> Outcome:
        """Meta's code through WHATSAPP_ERROR_CODES; unknown codes by is_transient, then by HTTP status."""
        return classify_whatsapp(error)

    def opted_out(self, error: ProviderError) -> str | None:
        """131050: the user stopped marketing messages from the business (their other messages still go)."""
        return "marketing" if error.code == MARKETING_OPT_OUT else None

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """X-Hub-Signature-256 over the raw bytes with the app secret, compared in constant time."""
        verify_hub_signature(headers, raw_body, self.config.app_secret.get().reveal())

    def parse_webhook(self, raw_body: bytes) -> list[NormalizedItem]:
        """Every entry, change, status and message; our message id from biz_opaque_callback_data."""
        return parse_whatsapp_webhook(raw_body)

    def check_webhook(self, raw_body: bytes) -> None:
        """The envelope, every entry and every change are objects in lists; the items are not built."""
        check_whatsapp_webhook(raw_body)

    def answer_handshake(self, query: Mapping[str, str]) -> str | None:
        """The hub.challenge to echo when hub.mode is subscribe and hub.verify_token matches."""
        return answer_hub_challenge(query, self.config.verify_token.get().reveal())

    async def aclose(self) -> None:
        """Closes the transport when the driver created it."""
        if self._owns_transport:
            await self._transport.aclose()


def _accepted(message: OutboundMessage, payload: Any, status: int) -> SendResult:
    sent = _first(payload, "messages")
    if not sent.get("id"):
        error = ProviderError(LocalErrorCode.BAD_RESPONSE, "success without messages[0].id", http_status=status)
        return failed(message, error, Outcome.RETRY_LATER, maybe_sent=True)
    wa_id = _first(payload, "contacts").get("wa_id")
    return SendResult(Outcome.ACCEPTED, message.message_id, str(sent["id"]), str_or_none(wa_id),
                      str_or_none(sent.get("message_status")))


def _first(payload: Any, key: str) -> dict[str, Any]:
    """payload[key][0] when it is an object, else an empty one."""
    items = payload.get(key) if isinstance(payload, dict) else None
    first = items[0] if isinstance(items, list) and items else None
    return first if isinstance(first, dict) else {}


def _provider_error(payload: Any, status: int) -> ProviderError:
    body = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(body, dict) or "code" not in body:
        return ProviderError(LocalErrorCode.HTTP, f"HTTP {status} without an error body", http_status=status)
    data = body.get("error_data")
    data = data if isinstance(data, dict) else {}
    transient = body.get("is_transient")
    return ProviderError(
        code=str(body["code"]),
        message=str(body.get("message", "")),
        details=str_or_none(data.get("details")),
        http_status=status,
        is_transient=transient if isinstance(transient, bool) else None,
        trace_id=str_or_none(body.get("fbtrace_id")),
    )


def _retry_after_header(headers: Mapping[str, str]) -> float | None:
    value = header_value(headers, "Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _log_result(message: OutboundMessage, result: SendResult) -> None:
    # Never the body or the token: the recipient is masked and the message id is ours.
    code = f" code={result.error.code}" if result.error else ""
    level = logging.INFO if result.accepted else logging.WARNING
    _log.log(level, "whatsapp send %s from %s to %s: %s%s", message.message_id, message.sender,
             mask_phone(message.recipient), result.outcome.value, code)

"""Small pieces the HTTP channel drivers share: reading answers, building failed results, logging safely."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from connectors._errors import InvalidMessage, TransportError, TransportTimeout
from connectors._hub import header_value
from connectors._messages import OutboundMessage
from connectors._privacy import MissingSecret, mask_phone
from connectors._results import LocalErrorCode, Outcome, ProviderError, SendResult
from connectors._transport import TransportResponse

__all__ = ["failed", "json_or_none", "log_result", "parse_retry_after", "request_or_failure", "str_or_none",
           "utc_from_seconds"]


def failed(message: OutboundMessage, error: ProviderError, outcome: Outcome, *, retry_after: float | None = None,
           maybe_sent: bool = False, consent_revoked: bool = False, throttled: bool | None = None) -> SendResult:
    """A result without a provider message id. Unless said otherwise, an HTTP 429 to be retried is a throttle (one
    that stops the account, such as a used-up monthly quota, is not: that is a failure the circuit should see)."""
    if throttled is None:
        throttled = error.http_status == 429 and outcome is Outcome.RETRY_LATER
    return SendResult(outcome, message.message_id, error=error, retry_after=retry_after, maybe_sent=maybe_sent,
                      consent_revoked=consent_revoked, throttled=throttled)


def local_failure(message: OutboundMessage, error: InvalidMessage | MissingSecret) -> SendResult:
    """The result of a send that never reached the provider: our message was invalid, or a credential is missing."""
    if isinstance(error, InvalidMessage):
        return failed(message, ProviderError(LocalErrorCode.INVALID_MESSAGE, str(error)), Outcome.PERMANENT_FAILURE)
    return failed(message, ProviderError(LocalErrorCode.CREDENTIALS, str(error)), Outcome.STOP_ACCOUNT)


async def request_or_failure(message: OutboundMessage, call: Callable[[], Awaitable[TransportResponse]]
                             ) -> TransportResponse | SendResult:
    """The response, or a retry_later result when the transport failed (timeout or network)."""
    try:
        return await call()
    except TransportError as error:
        code = LocalErrorCode.TIMEOUT if isinstance(error, TransportTimeout) else LocalErrorCode.NETWORK
        return failed(message, ProviderError(code, str(error)), Outcome.RETRY_LATER, maybe_sent=error.maybe_sent)


def json_or_none(body: bytes) -> Any:
    """The decoded JSON document, or None when the body is not JSON."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def str_or_none(value: Any) -> str | None:
    """str(value) unless it is None."""
    return None if value is None else str(value)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """An HTTP Retry-After header in seconds (the date form is ignored)."""
    value = header_value(headers, "Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def utc_from_seconds(value: Any, *, millis: bool = False) -> datetime | None:
    """A Unix time in seconds (or milliseconds) as an aware UTC datetime; None when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value) / (1000 if millis else 1)
    except ValueError:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)


def log_result(log: logging.Logger, channel: str, message: OutboundMessage, result: SendResult) -> None:
    """One line per send: our id, the masked recipient, the outcome and code; never a body or a credential."""
    code = f" code={result.error.code}" if result.error else ""
    level = logging.INFO if result.accepted else logging.WARNING
    log.log(level, "%s send %s to %s: %s%s", channel, message.message_id, mask_phone(message.recipient),
            result.outcome.value, code)
